package dev.surgery.trainer.config;

import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.Time;
import java.util.EnumSet;
import java.util.Set;

/**
 * When a schedule entry runs: after a number of completed epochs ({@code epoch: N}), after a number
 * of optimizer steps ({@code step: K}), at a time string ({@code at: "0.5dur"}), repeatedly ({@code
 * every: 2ep}, {@code every: 100ba}), or whenever its algorithm matches an event (no schedule key:
 * {@link Algorithm#match}).
 *
 * <p>Every scheduled point is exact: an epoch trigger runs at {@link Event#EPOCH_END} (epoch 0:
 * before training), a step or duration trigger at {@link Event#BATCH_END}, after the optimizer step
 * and before the next forward.
 *
 * @param kind what the amount counts
 * @param amount the epoch, the step, or the repeat interval (epochs or steps); 0 for {@link
 *     Kind#DURATION} and {@link Kind#EVENTS}
 * @param fraction the fraction of the planned training for {@link Kind#DURATION}, else 0
 */
public record Trigger(Kind kind, long amount, double fraction) {

  /** What a trigger counts. */
  public enum Kind {
    /** After {@code amount} completed epochs (0: before training). */
    EPOCH,
    /** After {@code amount} optimizer steps. */
    STEP,
    /** After every {@code amount} completed epochs. */
    EVERY_EPOCHS,
    /** After every {@code amount} optimizer steps. */
    EVERY_STEPS,
    /** After {@code ceil(fraction * planned steps)} optimizer steps. */
    DURATION,
    /** Whenever the algorithm matches an event. */
    EVENTS
  }

  /**
   * Validates the trigger.
   *
   * @param kind what the amount counts
   * @param amount the epoch, the step, or the repeat interval (epochs or steps); 0 for {@link
   *     Kind#DURATION} and {@link Kind#EVENTS}
   * @param fraction the fraction of the planned training for {@link Kind#DURATION}, else 0
   */
  public Trigger {
    if (kind == null) {
      throw new IllegalArgumentException("kind must not be null");
    }
    boolean counted = kind != Kind.DURATION && kind != Kind.EVENTS;
    long min = kind == Kind.EPOCH ? 0 : 1;
    if (counted && amount < min) {
      throw new IllegalArgumentException(kind + " needs an amount >= " + min + ", got " + amount);
    }
    if ((kind == Kind.EPOCH || kind == Kind.EVERY_EPOCHS) && amount > SurgeryConfig.MAX_EPOCH) {
      throw new IllegalArgumentException(
          kind + " needs an amount <= " + SurgeryConfig.MAX_EPOCH + ", got " + amount);
    }
    if (kind == Kind.DURATION && !(fraction > 0 && fraction <= 1)) {
      throw new IllegalArgumentException("a duration must be in (0, 1], got " + fraction);
    }
  }

  /**
   * Runs after a number of completed epochs.
   *
   * @param epoch the completed epochs; 0 runs before training
   * @return the trigger
   * @throws IllegalArgumentException if the epoch is negative or beyond {@link
   *     SurgeryConfig#MAX_EPOCH}
   */
  public static Trigger atEpoch(int epoch) {
    return new Trigger(Kind.EPOCH, epoch, 0);
  }

  /**
   * Runs after exactly {@code step} optimizer steps, at that step's {@link Event#BATCH_END}.
   *
   * @param step the number of steps, at least 1
   * @return the trigger
   * @throws IllegalArgumentException if the step is below 1
   */
  public static Trigger atStep(long step) {
    return new Trigger(Kind.STEP, step, 0);
  }

  /**
   * Runs at a time string: {@code 2ep} as {@link #atEpoch}, {@code 100ba} as {@link #atStep},
   * {@code 0.5dur} after that fraction of the planned steps.
   *
   * @param time the time
   * @return the trigger
   * @throws IllegalArgumentException for an epoch count beyond {@link SurgeryConfig#MAX_EPOCH}, or
   *     a step count of 0
   */
  public static Trigger at(Time time) {
    switch (time.unit()) {
      case EPOCH:
        if (time.count() > Integer.MAX_VALUE) {
          throw new IllegalArgumentException("at: an epoch must fit an int, got " + time);
        }
        return atEpoch((int) time.count());
      case BATCH:
        return atStep(time.count());
      default:
        return new Trigger(Kind.DURATION, 0, time.value());
    }
  }

  /**
   * Runs repeatedly: every {@code n} epochs ({@code 2ep}) or steps ({@code 100ba}).
   *
   * @param interval the interval, in epochs or batches, at least 1
   * @return the trigger
   * @throws IllegalArgumentException for a duration or a zero interval
   */
  public static Trigger every(Time interval) {
    switch (interval.unit()) {
      case EPOCH:
        return new Trigger(Kind.EVERY_EPOCHS, interval.count(), 0);
      case BATCH:
        return new Trigger(Kind.EVERY_STEPS, interval.count(), 0);
      default:
        throw new IllegalArgumentException(
            "every takes epochs or batches ('2ep', '100ba'), not a duration: " + interval);
    }
  }

  /**
   * Runs whenever the algorithm matches an event ({@link Algorithm#match}).
   *
   * @return the trigger
   */
  public static Trigger onEvents() {
    return new Trigger(Kind.EVENTS, 0, 0);
  }

  /**
   * Tells whether the trigger may fire more than once.
   *
   * @return true for repeating and event triggers
   */
  public boolean repeats() {
    return kind == Kind.EVERY_EPOCHS || kind == Kind.EVERY_STEPS || kind == Kind.EVENTS;
  }

  /**
   * Tells whether the trigger needs the planned length of training to be known.
   *
   * @return true for a duration
   */
  public boolean needsLength() {
    return kind == Kind.DURATION;
  }

  /**
   * Lists the events a driver must report for this trigger to fire. Epoch 0 needs none: it runs
   * from DJL's {@code onTrainingBegin} (or {@code INIT}), which every mode sees.
   *
   * @param algorithm the entry's algorithm, for {@link Kind#EVENTS}
   * @return the events
   */
  public Set<Event> events(Algorithm algorithm) {
    switch (kind) {
      case EPOCH:
        return amount == 0 ? Set.of() : EnumSet.of(Event.EPOCH_END);
      case EVERY_EPOCHS:
        return EnumSet.of(Event.EPOCH_END);
      case STEP:
      case EVERY_STEPS:
      case DURATION:
        return EnumSet.of(Event.BATCH_END);
      default:
        Set<Event> events = algorithm.events();
        return events.isEmpty() ? Set.of() : EnumSet.copyOf(events);
    }
  }

  /**
   * Describes the trigger for messages, for example {@code at epoch 2}, {@code at step 100}, {@code
   * every 2ep}, {@code at 0.5dur} or {@code on its events}.
   *
   * @return the description
   */
  public String describe() {
    switch (kind) {
      case EPOCH:
        return "at epoch " + amount;
      case STEP:
        return "at step " + amount;
      case EVERY_EPOCHS:
        return "every " + amount + "ep";
      case EVERY_STEPS:
        return "every " + amount + "ba";
      case DURATION:
        return "at " + new Time(fraction, Time.Unit.DURATION);
      default:
        return "on its events";
    }
  }
}
