package dev.surgery.trainer;

import dev.surgery.core.algorithms.SurgeryChanges;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What became of one scheduled entry on one trainer's model when a {@link SurgeryListener} ran it:
 * applied (with the {@link SurgeryChanges} the algorithm made), failed or skipped, and the mean
 * training loss around it. The surgery log file holds one per entry that ran, under {@code
 * applications}.
 *
 * @param trainer the listener's 1-based number for the trainer (a listener may serve several)
 * @param algorithm the algorithm's config name
 * @param hyperparameters the hyperparameters it ran with
 * @param epoch the number of completed epochs when it ran
 * @param step the number of steps taken when it ran, counted from the start of training as {@code
 *     step:} entries count them: {@code BATCH_END} events (optimizer steps) where they are reported
 *     (the agent, {@link SurgeryTrain}), else DJL's {@code onTrainingBatch} calls; 0 before the
 *     first batch. It places a surgery inside an epoch, which {@code epoch} alone cannot.
 * @param source where the schedule entry was declared ({@code file:line:column} or builder entry)
 * @param status what happened
 * @param changes what the algorithm changed; null unless {@code status} is {@link Status#APPLIED}
 * @param error the failure message; null when applied
 * @param nanos time spent in the algorithm, in nanoseconds
 * @param lossBefore mean training loss of the last batches before, or null when none was seen
 * @param lossBeforeBatches how many batches {@code lossBefore} averages (at most 20)
 * @param lossAfter mean training loss of the first batches after, or null when none was seen yet
 * @param lossAfterBatches how many batches {@code lossAfter} averages (at most 20; fewer while
 *     training is still filling the window)
 */
public record SurgeryOutcome(
    int trainer,
    String algorithm,
    Map<String, Object> hyperparameters,
    int epoch,
    long step,
    String source,
    Status status,
    SurgeryChanges changes,
    String error,
    long nanos,
    Double lossBefore,
    int lossBeforeBatches,
    Double lossAfter,
    int lossAfterBatches) {

  /**
   * Copies the hyperparameters.
   *
   * @param trainer the listener's 1-based number for the trainer (a listener may serve several)
   * @param algorithm the algorithm's config name
   * @param hyperparameters the hyperparameters it ran with
   * @param epoch the number of completed epochs when it ran
   * @param step the number of steps taken when it ran, counted from the start of training as {@code
   *     step:} entries count them: {@code BATCH_END} events (optimizer steps) where they are
   *     reported (the agent, {@link SurgeryTrain}), else DJL's {@code onTrainingBatch} calls; 0
   *     before the first batch. It places a surgery inside an epoch, which {@code epoch} alone
   *     cannot.
   * @param source where the schedule entry was declared ({@code file:line:column} or builder entry)
   * @param status what happened
   * @param changes what the algorithm changed; null unless {@code status} is {@link Status#APPLIED}
   * @param error the failure message; null when applied
   * @param nanos time spent in the algorithm, in nanoseconds
   * @param lossBefore mean training loss of the last batches before, or null when none was seen
   * @param lossBeforeBatches how many batches {@code lossBefore} averages (at most 20)
   * @param lossAfter mean training loss of the first batches after, or null when none was seen yet
   * @param lossAfterBatches how many batches {@code lossAfter} averages (at most 20; fewer while
   *     training is still filling the window)
   */
  public SurgeryOutcome {
    hyperparameters = Collections.unmodifiableMap(new LinkedHashMap<>(hyperparameters));
  }

  /** Whether the scheduled algorithm ran, and if not, what training did about it. */
  public enum Status {
    /** The algorithm ran (it may have found nothing to replace). */
    APPLIED,
    /** The algorithm failed and training was stopped ({@code on_error: fail}). */
    FAILED,
    /** The algorithm failed and training went on with the model unchanged ({@code skip}). */
    SKIPPED
  }
}
