package dev.surgery.core.internal;

import ai.djl.training.tracker.ParameterTracker;
import ai.djl.training.tracker.Tracker;

/**
 * Stands in for an optimizer's learning-rate tracker once a surgery has moved a parameter's
 * training to a new {@code Parameter} (new objects around the same arrays, a 1:1 copy): DJL gives
 * every parameter a new id, and a tracker that answers by id (DJL's {@code FixedPerVarTracker}, a
 * user's layer-wise rates) would give the moved parameter its default rate instead of its own. This
 * one asks the user's tracker with the id the parameter had before its first move, so it trains on
 * exactly as without the surgery. Any other id (a parameter born in a surgery) is passed through:
 * the user's tracker answers it as it would for a fresh optimizer.
 *
 * <p>Installed only in front of a tracker that may answer by id ({@link #answersById}); a {@link
 * Tracker} that keeps DJL's default for ids (every schedule DJL ships but {@code
 * FixedPerVarTracker}) is left alone.
 */
public final class KeptIdTracker implements ParameterTracker {

  private final ParameterTracker tracker;

  /** A moved parameter's id to the id it had before its first move. */
  private final IdMarks<String> firstIds = new IdMarks<>();

  /** Whether any was ever made in this JVM: until then no optimizer can hold one. */
  private static volatile boolean anyMade;

  KeptIdTracker(ParameterTracker tracker) {
    this.tracker = tracker;
    anyMade = true;
  }

  /**
   * Tells whether any stand-in was ever made in this JVM: until one is, no optimizer holds one, and
   * a surgery that only removes parameters need not look (a reflective read, on a cold path).
   *
   * @return whether one may be installed somewhere
   */
  public static boolean anyMade() {
    return anyMade;
  }

  /**
   * Tells whether a tracker may answer differently for different ids: anything but a {@link
   * Tracker} that keeps the interface's default for ids.
   *
   * @param tracker an optimizer's learning-rate tracker
   * @return whether a moved parameter needs its first id kept for it
   */
  public static boolean answersById(ParameterTracker tracker) {
    if (tracker instanceof KeptIdTracker) {
      return true;
    }
    return !(tracker instanceof Tracker) || ANSWERS_BY_ID.get(tracker.getClass());
  }

  private static final ClassValue<Boolean> ANSWERS_BY_ID =
      new ClassValue<>() {
        @Override
        protected Boolean computeValue(Class<?> type) {
          try {
            return type.getMethod("getNewValue", String.class, int.class).getDeclaringClass()
                != Tracker.class;
          } catch (NoSuchMethodException e) {
            return true; // cannot tell: keep the ids
          }
        }
      };

  /** {@inheritDoc} */
  @Override
  public float getNewValue(String parameterId, int numUpdate) {
    String first = firstIds.get(parameterId);
    return tracker.getNewValue(first == null ? parameterId : first, numUpdate);
  }

  /**
   * Returns the user's tracker.
   *
   * @return the tracker this one asks
   */
  public ParameterTracker getTracker() {
    return tracker;
  }

  /**
   * Returns each moved parameter's id mapped to the id it had before its first move.
   *
   * @return the marks, which surgery sets and its rollback puts back
   */
  public IdMarks<String> firstIds() {
    return firstIds;
  }
}
