package dev.surgery.trainer.config;

import dev.surgery.core.algorithms.Algorithm;

/**
 * One entry of a surgery schedule: an algorithm and when it runs ({@link Trigger}).
 *
 * @param algorithm the configured algorithm
 * @param epoch for an epoch trigger, the number of completed epochs when it runs (0 runs it before
 *     training); 0 for the other triggers, which are not placed by epoch (see {@link #trigger})
 * @param index the entry's position in the schedule (0-based, file or builder order); entries due
 *     at one event run in this order
 * @param source where the entry was declared, for messages: {@code file:line:column} for a config
 *     entry, {@code builder entry N} for one added in code
 * @param trigger when the entry runs
 */
public record ScheduledAlgorithm(
    Algorithm algorithm, int epoch, int index, String source, Trigger trigger) {

  /**
   * Validates the entry.
   *
   * @param algorithm the configured algorithm
   * @param epoch for an epoch trigger, the number of completed epochs when it runs (0 runs it
   *     before training); 0 for the other triggers, which are not placed by epoch (see {@link
   *     #trigger})
   * @param index the entry's position in the schedule (0-based, file or builder order); entries due
   *     at one event run in this order
   * @param source where the entry was declared, for messages: {@code file:line:column} for a config
   *     entry, {@code builder entry N} for one added in code
   * @param trigger when the entry runs
   */
  public ScheduledAlgorithm {
    if (algorithm == null) {
      throw new IllegalArgumentException("algorithm must not be null");
    }
    if (trigger == null) {
      trigger = Trigger.atEpoch(epoch);
    }
    if (epoch < 0 || epoch > SurgeryConfig.MAX_EPOCH) {
      throw new IllegalArgumentException(
          "epoch must be in [0, " + SurgeryConfig.MAX_EPOCH + "], got " + epoch);
    }
    if (trigger.kind() == Trigger.Kind.EPOCH ? trigger.amount() != epoch : epoch != 0) {
      throw new IllegalArgumentException(
          "epoch " + epoch + " disagrees with the trigger " + trigger.describe());
    }
    if (index < 0) {
      throw new IllegalArgumentException("index must be >= 0, got " + index);
    }
    if (source == null || source.isEmpty()) {
      source = "entry " + (index + 1);
    }
  }

  /**
   * Creates an entry that runs after a number of completed epochs.
   *
   * @param algorithm the configured algorithm
   * @param epoch the completed epochs; 0 runs it before training
   * @param index the entry's position in the schedule
   * @param source where the entry was declared
   */
  public ScheduledAlgorithm(Algorithm algorithm, int epoch, int index, String source) {
    this(algorithm, epoch, index, source, Trigger.atEpoch(epoch));
  }

  /**
   * Creates an entry with any trigger.
   *
   * @param algorithm the configured algorithm
   * @param trigger when it runs
   * @param index the entry's position in the schedule
   * @param source where the entry was declared
   * @return the entry
   */
  public static ScheduledAlgorithm of(
      Algorithm algorithm, Trigger trigger, int index, String source) {
    int epoch = trigger.kind() == Trigger.Kind.EPOCH ? Math.toIntExact(trigger.amount()) : 0;
    return new ScheduledAlgorithm(algorithm, epoch, index, source, trigger);
  }

  /**
   * Tells whether the entry runs after completed epochs (the schedule DJL's callbacks alone can
   * drive).
   *
   * @return true for an epoch trigger
   */
  public boolean byEpoch() {
    return trigger.kind() == Trigger.Kind.EPOCH;
  }

  /**
   * Describes the entry for log lines and exceptions, for example {@code blurpool at epoch 1
   * (surgery.yaml:4:5)} or {@code ema on its events (surgery.yaml:7:5)}.
   *
   * @return the description
   */
  public String describe() {
    return algorithm.name() + " " + trigger.describe() + " (" + source + ")";
  }

  /**
   * Says why this entry would never run in a training of the planned length: an epoch or a first
   * repeat after the last epoch, a step or a first repeat after the last step. The config file and
   * {@code SurgeryListener.Builder} refuse such an entry with this reason.
   *
   * @param totalEpochs the planned epochs, or 0 when not given
   * @param totalSteps the planned optimizer steps, or 0 when not given
   * @return the reason, ending in "this entry would never run", or null when the entry can run
   */
  public String neverRunsIn(int totalEpochs, long totalSteps) {
    return neverRunsIn(trigger, totalEpochs, totalSteps);
  }

  /**
   * Says why an entry with this trigger would never run in a training of the planned length, as
   * {@link #neverRunsIn(int, long)}: the config file asks it of every entry whose schedule it could
   * read, also of one with other problems, so that all of a file's problems are reported at once.
   *
   * @param trigger when the entry runs
   * @param totalEpochs the planned epochs, or 0 when not given
   * @param totalSteps the planned optimizer steps, or 0 when not given
   * @return the reason, ending in "this entry would never run", or null when the entry can run
   */
  static String neverRunsIn(Trigger trigger, int totalEpochs, long totalSteps) {
    long epoch = trigger.kind() == Trigger.Kind.EPOCH ? trigger.amount() : 0;
    if (totalEpochs > 0) {
      if (trigger.kind() == Trigger.Kind.EPOCH && epoch > totalEpochs) {
        return "epoch "
            + epoch
            + " is after the last epoch (total_epochs: "
            + totalEpochs
            + "); this entry would never run";
      }
      if (trigger.kind() == Trigger.Kind.EVERY_EPOCHS && trigger.amount() > totalEpochs) {
        return "every "
            + trigger.amount()
            + " epochs first runs after epoch "
            + trigger.amount()
            + ", after the last epoch (total_epochs: "
            + totalEpochs
            + "); this entry would never run";
      }
    }
    if (totalSteps > 0) {
      boolean once = trigger.kind() == Trigger.Kind.STEP;
      boolean every = trigger.kind() == Trigger.Kind.EVERY_STEPS;
      if ((once || every) && trigger.amount() > totalSteps) {
        return (once ? "step " : "every " + trigger.amount() + " steps first runs at step ")
            + trigger.amount()
            + (once ? " is" : ",")
            + " after the last step (total_steps: "
            + totalSteps
            + "); this entry would never run";
      }
    }
    return null;
  }
}
