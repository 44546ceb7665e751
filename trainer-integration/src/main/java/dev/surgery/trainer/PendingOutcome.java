package dev.surgery.trainer;

import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.util.Map;

/**
 * A {@link SurgeryOutcome} still being completed: the after-loss fills in over the batches that
 * follow the surgery. It is shared between the training thread, which adds losses, and readers of
 * the outcomes (the surgery log, {@link SurgeryListener#getOutcomes()}), hence the synchronized
 * accessors; {@link #snapshot()} gives the immutable outcome.
 */
final class PendingOutcome {
  private final int trainer;
  private final ScheduledAlgorithm entry;
  private final Map<String, Object> hyperparameters;
  private final int epoch;
  private final long step;
  private final SurgeryOutcome.Status status;
  private final SurgeryChanges changes;
  private final String error;
  private final long nanos;
  private final Double lossBefore;
  private final int lossBeforeBatches;
  private double lossAfterSum;
  private int lossAfterBatches;
  private String logItem;
  private int logItemBatches;

  PendingOutcome(
      int trainer,
      ScheduledAlgorithm entry,
      Map<String, Object> hyperparameters,
      int epoch,
      long step,
      SurgeryOutcome.Status status,
      SurgeryChanges changes,
      String error,
      long nanos,
      Double lossBefore,
      int lossBeforeBatches) {
    this.trainer = trainer;
    this.entry = entry;
    this.hyperparameters = hyperparameters;
    this.epoch = epoch;
    this.step = step;
    this.status = status;
    this.changes = changes;
    this.error = error;
    this.nanos = nanos;
    this.lossBefore = lossBefore;
    this.lossBeforeBatches = lossBeforeBatches;
  }

  synchronized void addLossAfter(float loss) {
    lossAfterSum += loss;
    lossAfterBatches++;
  }

  synchronized int lossAfterBatches() {
    return lossAfterBatches;
  }

  /**
   * The outcome as the surgery log prints it, printed again only when its after-loss changed: a
   * long search's log lists every outcome at every write.
   */
  synchronized String logItem() {
    if (logItem == null || logItemBatches != lossAfterBatches) {
      logItem = SurgeryJson.outcomeItem(snapshot());
      logItemBatches = lossAfterBatches;
    }
    return logItem;
  }

  synchronized SurgeryOutcome snapshot() {
    return new SurgeryOutcome(
        trainer,
        entry.algorithm().name(),
        hyperparameters,
        epoch,
        step,
        entry.source(),
        status,
        changes,
        error,
        nanos,
        lossBefore,
        lossBeforeBatches,
        lossAfterBatches == 0 ? null : lossAfterSum / lossAfterBatches,
        lossAfterBatches);
  }
}
