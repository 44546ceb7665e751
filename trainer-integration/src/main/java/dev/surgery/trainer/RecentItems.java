package dev.surgery.trainer;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * The most recent items of a kind, in the order they came, at most a bound of them (the oldest
 * dropped first) or all of them: the listener's outcomes, warnings and entries that never ran,
 * which a long hyperparameter search in one JVM must not grow without end. Thread-safe: trainers on
 * several threads add at once. Dropping the oldest is constant time (a deque, not a list copy).
 *
 * @param <T> the item type
 */
final class RecentItems<T> {

  private final ArrayDeque<T> items = new ArrayDeque<>();
  private final int bound;

  private RecentItems(int bound) {
    this.bound = bound;
  }

  /** Keeps the last {@code bound} items. */
  static <T> RecentItems<T> last(int bound) {
    if (bound < 1) {
      throw new IllegalArgumentException("bound must be positive, got " + bound);
    }
    return new RecentItems<>(bound);
  }

  /** Keeps every item. */
  static <T> RecentItems<T> all() {
    return new RecentItems<>(Integer.MAX_VALUE);
  }

  synchronized void add(T item) {
    items.addLast(item);
    if (items.size() > bound) {
      items.removeFirst();
    }
  }

  synchronized void removeIf(Predicate<? super T> filter) {
    items.removeIf(filter);
  }

  synchronized int size() {
    return items.size();
  }

  /** A copy of the items, oldest first, each mapped while the lock is held. */
  synchronized <R> List<R> snapshot(Function<? super T, R> map) {
    List<R> copy = new ArrayList<>(items.size());
    for (T item : items) {
      copy.add(map.apply(item));
    }
    return copy;
  }
}
