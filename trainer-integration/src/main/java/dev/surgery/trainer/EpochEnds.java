package dev.surgery.trainer;

import ai.djl.training.Trainer;
import dev.surgery.core.events.Event;
import java.util.Set;

/**
 * What a trainer's epoch end does, reported by DJL's {@code onEpoch} or by {@link Event#EPOCH_END}
 * (the agent reports both; one epoch end is counted once): the epoch counted, the batches per epoch
 * learnt from the first epoch where the data did not tell them, the warnings about the length
 * ({@link LengthWarnings}), the entries due at the epoch's end ({@link DueEntries}) and the surgery
 * log flushed. {@link SurgeryListener} keeps the per-batch counting.
 */
final class EpochEnds {

  private final TrainerRegistry registry;
  private final ListenerWarnings warnings;
  private final LengthWarnings lengthWarnings;
  private final DueEntries due;
  private final TrainingLength length;
  private final SurgeryLogWriter surgeryLog;
  private final ProgramEnd programEnd;
  private final Set<Event> observable;

  /**
   * Whether the driver reports no batch end (DJL's callbacks alone): the listener then counts an
   * epoch's batches itself.
   */
  private final boolean countsBatchesInEpoch;

  /** Whether the schedule has {@code at: "<f>dur"} entries, whose steps follow an estimate. */
  private final boolean hasDurations;

  EpochEnds(
      TrainerRegistry registry,
      ListenerWarnings warnings,
      LengthWarnings lengthWarnings,
      DueEntries due,
      TrainingLength length,
      SurgeryLogWriter surgeryLog,
      ProgramEnd programEnd,
      Set<Event> observable,
      boolean hasDurations) {
    this.registry = registry;
    this.warnings = warnings;
    this.lengthWarnings = lengthWarnings;
    this.due = due;
    this.length = length;
    this.surgeryLog = surgeryLog;
    this.programEnd = programEnd;
    this.observable = observable;
    this.countsBatchesInEpoch = !observable.contains(Event.BATCH_END); // as the listener's
    this.hasDurations = hasDurations;
  }

  /**
   * A trainer's epoch ended.
   *
   * @param trainer the trainer
   * @param byCallback whether DJL's {@code onEpoch} reported it (false: {@link Event#EPOCH_END})
   */
  void ended(Trainer trainer, boolean byCallback) {
    TrainerState st = registry.state(trainer);
    st.trained(warnings);
    if (st.epochJustEnded
        && st.lastEpochEndByCallback != null
        && st.lastEpochEndByCallback != byCallback) {
      // The same epoch end, reported by DJL's onEpoch and by onEvent (the agent does both).
      return;
    }
    lengthWarnings.emptyEpoch(st);
    st.epochJustEnded = true;
    st.trainedSinceEpochEnd = false;
    st.lastEpochEndByCallback = byCallback;
    st.completedEpochs++;
    st.epochSinceLastBatch = true;
    // The first epoch tells the batches per epoch where the data did not; where the data's count
    // was the estimate but the epoch took another number of steps, durations count the steps.
    boolean untold = st.batchesPerEpoch == 0;
    boolean differs =
        !untold
            && st.batchInEpoch != st.batchesPerEpoch
            && !countsBatchesInEpoch
            && hasDurations
            && !length.stepsConfigured();
    if (st.completedEpochs == 1 && st.batchInEpoch > 0 && (untold || differs)) {
      // A sampler that drops the last partial batch is no news.
      if (differs && st.batchInEpoch != st.batchesPerEpochDroppingLast) {
        lengthWarnings.firstEpochSteps(st);
      }
      // Why the length came only now, for a duration entry whose step turns out to have passed.
      String why =
          untold
              ? DueEntries.UNTOLD_SIZE
              : "the first epoch took "
                  + st.batchInEpoch
                  + " optimizer steps, not the "
                  + st.batchesPerEpoch
                  + " batches the data reports: several batches per step, or an epoch cut short";
      st.batchesPerEpoch = st.batchInEpoch;
      due.durationsDueNow(trainer, st, why);
    }
    // Epochs that ended without an onEpoch still passed: count them, or later entries run late.
    int completed = st.passedEpochs();
    int planned = length.plannedEpochs(st);
    lengthWarnings.pastPlannedEpochs(st, completed, planned);
    if (programEnd.ended()) {
      return; // training goes on while the program ends (a graceful shutdown): nothing is applied
    }
    due.atEpochEnd(trainer, st, completed);
    if (!observable.contains(Event.EPOCH_START)) {
      st.batchInEpoch = 0; // no epoch start will say so
    }
    if (planned > 0 && completed >= planned) {
      surgeryLog.flush(); // after the last epoch no batch end may come for a while
    } else {
      surgeryLog.flushIfDue(); // epochs of a batch or two must keep the spacing
    }
  }
}
