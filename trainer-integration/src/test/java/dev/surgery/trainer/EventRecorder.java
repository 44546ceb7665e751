package dev.surgery.trainer;

import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BiConsumer;

/**
 * Event-driven test algorithms: {@code t_ev_rec} records every event it is asked about (it never
 * matches), {@code t_ev_mark} logs its tag at its {@code event} when {@code at_step} steps have
 * run, {@code t_ev_throw} throws in {@code match} (unchecked, or an {@code AssertionError}) or
 * {@code apply} (an undeclared checked exception, or a {@code NoClassDefFoundError}) at BATCH_END.
 */
final class EventRecorder implements Algorithm {

  static final String REC = "t_ev_rec";
  static final String MARK = "t_ev_mark";
  static final String THROW = "t_ev_throw";

  /** What {@link #REC} saw, as {@code EVENT} or {@code EVENT steps/batchInEpoch/epochs}. */
  static final List<String> SEEN = Collections.synchronizedList(new ArrayList<>());

  /** What {@link #MARK} entries and the scheduled {@code t_log} did, in order. */
  static final List<String> MARKS = Collections.synchronizedList(new ArrayList<>());

  /**
   * Called by {@link #REC} at each event, and by {@link #MARK} when it runs, for tests that inspect
   * the state.
   */
  static volatile BiConsumer<Event, State> probe;

  static {
    Algorithms.register(new AlgorithmSpec(REC, List.of(), v -> new EventRecorder(REC, v)));
    Algorithms.register(
        new AlgorithmSpec(
            MARK,
            List.of(
                HyperParameter.ofChoice("tag", "a", List.of("a", "b", "c", "d"), "label"),
                HyperParameter.ofInt("at_step", 2, 0, null, "steps before it marks"),
                HyperParameter.ofChoice(
                    "event",
                    "batch_end",
                    List.of("batch_end", "eval_start", "after_load"),
                    "its event")),
            v -> new EventRecorder(MARK, v)));
    Algorithms.register(
        new AlgorithmSpec(
            THROW,
            List.of(
                HyperParameter.ofChoice(
                    "in",
                    "match",
                    List.of(
                        "match",
                        "apply",
                        "match_assert",
                        "apply_linkage",
                        "apply_overflow",
                        "apply_oom"),
                    "where, and what: an exception, or an Error that is the plugin's own")),
            v -> new EventRecorder(THROW, v)));
  }

  static void ensureRegistered() {
    // the static initializer did the work
  }

  private final String name;
  private final Map<String, Object> values;

  private EventRecorder(String name, Map<String, Object> values) {
    this.name = name;
    this.values = new LinkedHashMap<>(values);
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public Map<String, Object> hyperparameters() {
    return values;
  }

  @Override
  public Set<Event> events() {
    switch (name) {
      case REC:
        return EnumSet.range(Event.INIT, Event.FIT_END);
      case MARK:
        return EnumSet.of(Event.valueOf(((String) values.get("event")).toUpperCase()));
      default:
        return EnumSet.of(Event.BATCH_END);
    }
  }

  @Override
  public boolean match(Event event, State state) {
    switch (name) {
      case REC:
        SEEN.add(
            event
                + " "
                + state.globalSteps()
                + "/"
                + state.batchInEpoch()
                + "/"
                + state.completedEpochs());
        BiConsumer<Event, State> p = probe;
        if (p != null) {
          p.accept(event, state);
        }
        return false;
      case MARK:
        return state.globalSteps() == ((Integer) values.get("at_step")).longValue();
      default:
        if (values.get("in").equals("match")) {
          throw new IllegalArgumentException("injected in match");
        }
        if (values.get("in").equals("match_assert")) {
          throw new AssertionError("injected in match");
        }
        return true;
    }
  }

  @Override
  public SurgeryChanges apply(Event event, State state) {
    if (name.equals(THROW) && values.get("in").equals("apply_oom")) {
      throw new OutOfMemoryError("injected in apply"); // the JVM failing, not the algorithm
    }
    if (name.equals(THROW) && values.get("in").equals("apply_overflow")) {
      throw new StackOverflowError("injected in apply"); // its own runaway recursion
    }
    if (name.equals(THROW) && values.get("in").equals("apply_linkage")) {
      // What a plugin jar that lacks a class of its own throws.
      throw new NoClassDefFoundError("injected in apply");
    }
    if (name.equals(THROW)) {
      // An undeclared checked exception, as Kotlin or a sneaky throw can raise: handled the same.
      throw EventRecorder.<RuntimeException>sneaky(new java.io.IOException("injected in apply"));
    }
    MARKS.add(values.get("tag") + "@" + state.globalSteps());
    BiConsumer<Event, State> p = probe;
    if (p != null) {
      p.accept(event, state);
    }
    return null;
  }

  @Override
  public SurgeryChanges apply(SurgeryContext context) {
    return new SurgeryChanges(name, hyperparameters(), List.of(), 0, 0, 1);
  }

  @SuppressWarnings("unchecked")
  private static <T extends Throwable> T sneaky(Throwable t) throws T {
    throw (T) t;
  }
}
