package dev.surgery.trainer.config;

import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.Composition;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Checks a whole schedule against {@link Composition}'s rules, for a config file and for a listener
 * built in code alike: {@code epoch} entries in the order they are applied, a pair whose order is
 * known only during training ({@code step}, {@code at}) in both orders. Repeating ({@code every})
 * and event-driven entries are not checked: a run that changes nothing says so at WARN.
 */
public final class ScheduleComposition {

  private ScheduleComposition() {}

  /** What kind of refusal: the entry after another, or with another in either order. */
  public enum Kind {
    /** The entry cannot follow an earlier one. */
    FOLLOWS,
    /** The entry and another cannot run together, whichever runs first. */
    EITHER_ORDER
  }

  /**
   * An entry the schedule cannot hold.
   *
   * @param entry the refused entry (the later one, for {@link Kind#FOLLOWS})
   * @param other the entry it conflicts with
   * @param kind the kind of conflict
   * @param reason why, from {@link Composition}
   */
  public record Refusal(
      ScheduledAlgorithm entry, ScheduledAlgorithm other, Kind kind, String reason) {

    /**
     * Writes the refusal as a sentence.
     *
     * @param name how to name an entry, for example by its {@link ScheduledAlgorithm#describe}
     * @return the message
     */
    public String message(Function<ScheduledAlgorithm, String> name) {
      return kind == Kind.FOLLOWS
          ? name.apply(entry) + " cannot follow " + name.apply(other) + ": " + reason
          : name.apply(entry)
              + " cannot run with "
              + name.apply(other)
              + ", whichever runs first: "
              + reason;
    }
  }

  /**
   * Finds the entries the schedule cannot hold; at most one refusal of each kind per entry (an
   * epoch entry may also conflict, in either order, with a step entry).
   *
   * @param entries the schedule, in declaration order; a null element is an entry a parser already
   *     refused for a problem of its own: unknown, so it is taken to run between any two others
   *     (only a refusal that holds whatever it turns out to be is made, and the file's other
   *     problems are reported with the schedule's at once)
   * @return the refusals, epoch conflicts first; empty when the schedule composes
   */
  public static List<Refusal> check(List<ScheduledAlgorithm> entries) {
    List<Refusal> refusals = new ArrayList<>();
    // An entry refused for its own problem could be any registered algorithm once fixed, and run
    // between two others wherever its declaration allows: each such pair is then checked with one
    // of every name between them.
    List<Algorithm> anyEntry = entries.contains(null) ? anyEntry() : List.of();
    List<ScheduledAlgorithm> order =
        applicationOrder(entries.stream().filter(e -> e != null && e.byEpoch()).toList());
    List<Algorithm> algorithms = order.stream().map(ScheduledAlgorithm::algorithm).toList();
    List<Integer> epochs = order.stream().map(ScheduledAlgorithm::epoch).toList();
    Composition.Unplaced unplaced =
        anyEntry.isEmpty()
            ? Composition.Unplaced.NONE
            : (i, j) -> mayRunBetween(entries, order.get(i), order.get(j)) ? anyEntry : List.of();
    for (Composition.Conflict c : Composition.check(algorithms, epochs, unplaced)) {
      refusals.add(
          new Refusal(order.get(c.later()), order.get(c.earlier()), Kind.FOLLOWS, c.reason()));
    }
    // A one-time step or duration entry meets the others in an order known only during training:
    // a pair is refused where it conflicts in both orders, with every other entry between.
    for (int j = 0; j < entries.size(); j++) {
      ScheduledAlgorithm b = entries.get(j);
      for (int i = 0; i < j && oneTime(b); i++) {
        ScheduledAlgorithm a = entries.get(i);
        if (!oneTime(a) || (a.byEpoch() && b.byEpoch())) {
          continue;
        }
        String reason =
            Composition.conflictEitherOrder(
                a.algorithm(), b.algorithm(), othersThan(entries, i, j, anyEntry));
        if (reason != null) {
          refusals.add(new Refusal(b, a, Kind.EITHER_ORDER, reason));
          break;
        }
      }
    }
    return refusals;
  }

  /**
   * Whether an entry refused for its own problem may run between two epoch entries once fixed:
   * between two of one epoch only when declared between them (entries of one epoch run in
   * declaration order); between two of different epochs always (its epoch may be anything).
   */
  private static boolean mayRunBetween(
      List<ScheduledAlgorithm> entries, ScheduledAlgorithm earlier, ScheduledAlgorithm later) {
    if (earlier.epoch() != later.epoch()) {
      return true;
    }
    for (int k = earlier.index() + 1; k < later.index(); k++) {
      if (entries.get(k) == null) {
        return true;
      }
    }
    return false;
  }

  /** Sorts schedule entries the way they are applied: by epoch, then in declaration order. */
  private static List<ScheduledAlgorithm> applicationOrder(List<ScheduledAlgorithm> entries) {
    List<ScheduledAlgorithm> order = new ArrayList<>(entries);
    order.sort(
        Comparator.comparingInt(ScheduledAlgorithm::epoch)
            .thenComparingInt(ScheduledAlgorithm::index));
    return order;
  }

  /** Runs once at a moment of its own (not repeating, not event-driven). */
  private static boolean oneTime(ScheduledAlgorithm e) {
    return e != null && !e.trigger().repeats();
  }

  private static List<Algorithm> othersThan(
      List<ScheduledAlgorithm> entries, int i, int j, List<Algorithm> anyEntry) {
    List<Algorithm> others = new ArrayList<>();
    for (int k = 0; k < entries.size(); k++) {
      if (k != i && k != j && entries.get(k) != null) {
        others.add(entries.get(k).algorithm());
      }
    }
    others.addAll(anyEntry);
    return others;
  }

  /** One stand-in of each registered algorithm's name: what an unknown entry may turn out to be. */
  private static List<Algorithm> anyEntry() {
    List<Algorithm> all = new ArrayList<>();
    all.add(new UnknownEntry("(an entry with problems)"));
    for (String name : Algorithms.names()) {
      all.add(new UnknownEntry(name));
    }
    return all;
  }

  /**
   * Stands for an entry refused for its own problem, only ever among the entries between two others
   * ({@link Composition} reads nothing but the names there): under each registered algorithm's
   * name, so that a refusal is made only where it holds whatever that entry turns out to be.
   */
  private record UnknownEntry(String name) implements Algorithm {
    @Override
    public Map<String, Object> hyperparameters() {
      return Map.of();
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      throw new UnsupportedOperationException("an entry with problems is never applied");
    }
  }
}
