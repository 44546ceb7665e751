package dev.surgery.core.internal;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A mark per parameter id that surgery sets and takes off, and its rollback puts back: the birth
 * step of a born parameter ({@link BirthAwareOptimizer}), the first id of a moved one ({@link
 * KeptIdTracker}). Read on the threads that update parameters, so concurrent.
 *
 * @param <V> the mark
 */
public final class IdMarks<V> {

  private final Map<String, V> marks = new ConcurrentHashMap<>();

  /**
   * Returns an id's mark.
   *
   * @param id the parameter id
   * @return its mark, or null
   */
  public V get(String id) {
    return marks.get(id);
  }

  /**
   * Sets an id's mark.
   *
   * @param id the parameter id
   * @param mark the mark
   * @return the mark it had, or null
   */
  public V put(String id, V mark) {
    return marks.put(id, mark);
  }

  /**
   * Takes an id's mark off.
   *
   * @param id the parameter id
   * @return the mark it had, or null
   */
  public V remove(String id) {
    return marks.remove(id);
  }

  /**
   * Puts back the mark an id had (null: none), as a rollback does.
   *
   * @param id the parameter id
   * @param mark the mark it had, or null
   */
  public void restore(String id, V mark) {
    if (mark == null) {
      marks.remove(id);
    } else {
      marks.put(id, mark);
    }
  }
}
