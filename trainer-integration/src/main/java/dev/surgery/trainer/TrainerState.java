package dev.surgery.trainer;

import java.util.Arrays;

/**
 * What {@link SurgeryListener} knows about one trainer. It must not refer to the trainer, which is
 * the weak key of the listener's map: a reference would keep finished trainers alive.
 */
final class TrainerState {

  /** The 1-based number of the trainer in the order the listener first saw them. */
  final int ordinal;

  /** The status of each schedule entry, by schedule index. */
  final EntryStatus[] status;

  boolean begun;
  int completedEpochs;

  /** Epochs whose end was inferred from the batches because no onEpoch came. */
  int unseenEpochs;

  /**
   * The planned number of epochs learnt from the training loop ({@code EasyTrain.fit} under the
   * agent); 0 when unknown. It takes precedence over the configured number.
   */
  int plannedEpochs;

  long batches;
  long lastProgress = -1;
  boolean epochSinceLastBatch;

  /** The loss windows before and after this trainer's applications. */
  final LossWindows losses = new LossWindows();

  TrainerState(int ordinal, int entries) {
    this.ordinal = ordinal;
    this.status = new EntryStatus[entries];
    Arrays.fill(status, EntryStatus.PENDING);
  }

  /**
   * Returns the epochs that have passed, seen or not: counting the unseen ones keeps later entries
   * from running late.
   */
  int passedEpochs() {
    return completedEpochs + unseenEpochs;
  }
}
