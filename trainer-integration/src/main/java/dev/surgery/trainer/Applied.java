package dev.surgery.trainer;

import dev.surgery.core.algorithms.SurgeryReport;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.util.Map;

/**
 * One application (applied, failed or skipped) whose after-loss may still be filling in. It is
 * shared between the training thread, which adds losses, and readers of the report, hence the
 * synchronized accessors.
 */
final class Applied {
  private final int trainer;
  private final ScheduledAlgorithm entry;
  private final Map<String, Object> hyperparameters;
  private final int epoch;
  private final SurgeryApplication.Status status;
  private final SurgeryReport report;
  private final String error;
  private final long nanos;
  private final Double lossBefore;
  private final int lossBeforeBatches;
  private double lossAfterSum;
  private int lossAfterBatches;

  Applied(
      int trainer,
      ScheduledAlgorithm entry,
      Map<String, Object> hyperparameters,
      int epoch,
      SurgeryApplication.Status status,
      SurgeryReport report,
      String error,
      long nanos,
      Double lossBefore,
      int lossBeforeBatches) {
    this.trainer = trainer;
    this.entry = entry;
    this.hyperparameters = hyperparameters;
    this.epoch = epoch;
    this.status = status;
    this.report = report;
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

  synchronized SurgeryApplication snapshot() {
    return new SurgeryApplication(
        trainer,
        entry.algorithm().name(),
        hyperparameters,
        epoch,
        entry.source(),
        status,
        report,
        error,
        nanos,
        lossBefore,
        lossBeforeBatches,
        lossAfterBatches == 0 ? null : lossAfterSum / lossAfterBatches,
        lossAfterBatches);
  }
}
