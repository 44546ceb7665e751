package dev.surgery.trainer;

import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.List;
import java.util.OptionalInt;

/**
 * The planned length of training a listener's entries follow: the configured totals ({@code
 * total_epochs}, {@code total_steps}), a length the training loop announced for a trainer, and
 * where a missing one can come from. Immutable; a trainer's announced length lives in its {@link
 * TrainerState}.
 */
final class TrainingLength {

  private final int totalEpochs;
  private final long totalSteps;
  private final String totalEpochsHint;

  /** Whether an entry follows the length of training (a fraction of it, or a duration). */
  private final boolean matters;

  TrainingLength(
      List<ScheduledAlgorithm> schedule, int totalEpochs, long totalSteps, String totalEpochsHint) {
    this.totalEpochs = totalEpochs;
    this.totalSteps = totalSteps;
    this.totalEpochsHint = totalEpochsHint;
    this.matters =
        schedule.stream()
            .anyMatch(e -> e.algorithm().needsTotalEpochs() || e.trigger().needsLength());
  }

  /** The configured number of epochs, or 0. */
  int configuredEpochs() {
    return totalEpochs;
  }

  /** How to configure the number of epochs, for this listener's origin (the YAML file, code). */
  String configuredEpochsHint() {
    return totalEpochsHint;
  }

  /** Whether an entry follows the length of training (a fraction of it, or a duration). */
  boolean matters() {
    return matters;
  }

  /** The planned number of epochs for a trainer: announced by its loop, else configured; 0. */
  int plannedEpochs(TrainerState st) {
    return st.plannedEpochs > 0 ? st.plannedEpochs : totalEpochs;
  }

  /** The planned number of optimizer steps: configured, else planned epochs times their size. */
  long plannedSteps(TrainerState st) {
    if (totalSteps > 0) {
      return totalSteps;
    }
    int planned = plannedEpochs(st);
    return planned > 0 && st.batchesPerEpoch > 0 ? planned * st.batchesPerEpoch : 0;
  }

  /** Whether the planned number of optimizer steps is configured rather than estimated. */
  boolean stepsConfigured() {
    return totalSteps > 0;
  }

  /**
   * Whether an entry that ran took the length of training from the loop's announcement alone: no
   * total (of epochs, or of steps for a duration trigger) is configured.
   */
  boolean followsAnnouncement(TrainerState st, ScheduledAlgorithm entry) {
    if (totalEpochs > 0 || st.plannedEpochs <= 0) {
      return false;
    }
    return entry.algorithm().needsTotalEpochs()
        || (entry.trigger().needsLength() && totalSteps <= 0);
  }

  /** Whether an entry needs the planned number of epochs, which is unknown for this trainer. */
  boolean lacks(TrainerState st, ScheduledAlgorithm entry) {
    return entry.algorithm().needsTotalEpochs() && plannedEpochs(st) <= 0;
  }

  /**
   * The planned number of epochs after the loop announced {@code epochs} more: a configured total
   * is the user's word and holds against a shorter announcement (a program that calls fit once per
   * epoch announces one epoch at a time); a longer one means training really runs longer.
   */
  int afterAnnouncement(TrainerState st, int epochs) {
    int announced = st.passedEpochs() + epochs;
    return totalEpochs > 0 ? Math.max(totalEpochs, announced) : announced;
  }

  /** Says where the planned number of epochs can come from, for this listener's origin. */
  String hint() {
    return totalEpochsHint
        + ", or train with EasyTrain.fit(trainer, epochs, ...) under the surgery agent or with"
        + " SurgeryTrain.fit(trainer, epochs, ...), which pass their number of epochs";
  }

  /**
   * The epochs completed when an entry first runs, as far as the planned length tells it: an epoch
   * entry's epoch, a repeat's first interval, for a step the batches per epoch (a step entry runs
   * at the end of its batch, before the epoch it ends is counted), for a duration of the planned
   * epochs {@code ceil(f * epochs) - 1}, whatever the batches per epoch (its step is {@code ceil(f
   * * epochs * batches)}). Empty where that is not known (a step before the batches per epoch are,
   * a duration of {@code total_steps} likewise, an entry on events).
   *
   * @param st the trainer's state, or null for a trainer the listener does not serve (yet)
   * @param entry the entry
   */
  OptionalInt completedAtFirstRun(TrainerState st, ScheduledAlgorithm entry) {
    Trigger t = entry.trigger();
    long batches = st == null ? 0 : st.batchesPerEpoch;
    switch (t.kind()) {
      case EPOCH:
        return OptionalInt.of(entry.epoch());
      case EVERY_EPOCHS:
        return t.amount() <= Integer.MAX_VALUE
            ? OptionalInt.of((int) t.amount())
            : OptionalInt.empty();
      case STEP:
      case EVERY_STEPS:
        return completedBefore(t.amount(), batches);
      case DURATION:
        if (totalSteps > 0) {
          return completedBefore(dueStep(t, totalSteps), batches);
        }
        int planned = st == null ? totalEpochs : plannedEpochs(st);
        if (planned <= 0) {
          return OptionalInt.empty();
        }
        int completed = (int) Math.max(0, Math.ceil(t.fraction() * planned - 1e-9) - 1);
        // Data that does not report its size tells the batches per epoch at the first epoch's end:
        // a duration due in that epoch then runs there, after the epoch is counted.
        return completed == 0 && (st == null || st.batchesPerEpoch <= 0)
            ? OptionalInt.empty()
            : OptionalInt.of(completed);
      default:
        return OptionalInt.empty();
    }
  }

  /** The epochs completed at the end of a step, for a known number of batches per epoch. */
  private static OptionalInt completedBefore(long step, long batchesPerEpoch) {
    if (step <= 1) {
      return OptionalInt.of(0);
    }
    long epochs = batchesPerEpoch > 0 ? (step - 1) / batchesPerEpoch : -1;
    return epochs >= 0 && epochs <= Integer.MAX_VALUE
        ? OptionalInt.of((int) epochs)
        : OptionalInt.empty();
  }

  /** The step at which a duration trigger lands: the first whose fraction reaches it. */
  static long dueStep(Trigger trigger, long totalSteps) {
    return Math.max(1, (long) Math.ceil(trigger.fraction() * totalSteps - 1e-9));
  }
}
