package dev.surgery.trainer;

import dev.surgery.trainer.config.Trigger;
import java.util.ArrayList;
import java.util.List;

/**
 * What {@link SurgeryListener} warns of when training turns out longer or shorter than the length
 * its entries were placed by, or is counted so: more optimizer steps than planned after a duration
 * entry took its step from an estimate, a first epoch whose steps differ from the batches the data
 * reported, more epochs than planned, a loop that announces another length than planned or
 * configured, an epoch end reported with no batch since the last (one epoch counted twice?). Each
 * is a moment an entry may run at that the user did not mean, said with what to configure instead
 * (how often is as the listener's callers and {@link ListenerWarnings} decide); the listener keeps
 * the counts and decides what follows from them, this class says it.
 */
final class LengthWarnings {

  private final ListenerWarnings warnings;
  private final TrainingLength length;

  /** Whether the schedule has {@code at: "<f>dur"} entries, whose steps follow an estimate. */
  private final boolean hasDurations;

  LengthWarnings(boolean hasDurations, TrainingLength length, ListenerWarnings warnings) {
    this.hasDurations = hasDurations;
    this.length = length;
    this.warnings = warnings;
  }

  /**
   * Warns once when training takes more optimizer steps than it was planned at, after an {@code at:
   * "<f>dur"} entry took its step from that estimate (the planned epochs times the first epoch's
   * steps): a loop whose epochs differ in steps, such as gradient accumulation whose windows cross
   * epoch ends, ran it early. A configured {@code total_steps} is the user's word.
   */
  void pastPlannedSteps(TrainerState st) {
    if (!hasDurations || st.pastPlannedStepsWarned || length.stepsConfigured()) {
      return;
    }
    long planned = length.plannedSteps(st);
    // Past the planned epochs too, the epoch-end warning says what happened.
    if (planned <= 0 || st.steps <= planned || st.completedEpochs >= length.plannedEpochs(st)) {
      return;
    }
    List<String> ran = durationEntriesRun(st);
    // Said once, and looked for once: a duration entry not run by now never will be.
    st.pastPlannedStepsWarned = true;
    if (ran.isEmpty()) {
      return;
    }
    warnings.warn(
        "Surgery: step "
            + st.steps
            + " ran, past the "
            + planned
            + " optimizer steps training was planned at ("
            + length.plannedEpochs(st)
            + " epochs times "
            + st.batchesPerEpoch
            + ", the batches per epoch as the data or the first epoch told), so "
            + String.join(", ", ran)
            + " took its step from that estimate, not from the length training has. Give"
            + " total_steps in the config"
            + " (optTotalSteps in the builder) where epochs differ in steps, as with gradient"
            + " accumulation whose windows cross epoch ends");
  }

  /**
   * Warns once when an epoch ends with no training batch or step reported since the previous epoch
   * end, in a loop that reports its batches: counted, as DJL counts it, but more likely one epoch
   * reported twice. Called as the epoch end is counted, before it resets what it reads.
   */
  void emptyEpoch(TrainerState st) {
    if (!st.trainedSinceEpochEnd
        && st.completedEpochs > 0
        && (st.batches > 0 || st.steps > 0)
        && !st.emptyEpochWarned) {
      // A loop that reports its batches, then two epoch ends with no batch between (an epoch
      // start may come between: the agent reports one for an epoch without batches): counted, as
      // DJL counts it, but more likely one epoch reported twice.
      st.emptyEpochWarned = true;
      warnings.warn(
          "Surgery: an epoch ended with no training batch or step reported since the previous"
              + " epoch end (onEpoch reported twice for one epoch?); it counts as an epoch, so"
              + " epoch: entries run earlier than the loop's own epoch count says if it is not one."
              + " Report each epoch end once");
    }
  }

  /**
   * Warns that the first epoch took another number of optimizer steps ({@code BATCH_END}) than the
   * batches the data reports (several batches per step?): duration entries take the epoch's steps
   * as the planned length from now on; those that ran already, by the data's count, are named.
   */
  void firstEpochSteps(TrainerState st) {
    // An entry that ran in the first epoch took its step from the data's count, which this epoch
    // shows was not the length: it ran later than its fraction of the steps training has.
    List<String> ran = durationEntriesRun(st);
    warnings.warn(
        "Surgery: the first epoch had "
            + st.batchInEpoch
            + " optimizer steps (BATCH_END), not the "
            + st.batchesPerEpoch
            + " batches the data reports (several batches per step?), so at: \"<f>dur\""
            + " entries now take "
            + st.batchInEpoch
            + " steps per epoch as the planned length"
            + (ran.isEmpty()
                ? ""
                : " ("
                    + String.join(", ", ran)
                    + " ran already, at the step the data's count placed it: "
                    + length.plannedEpochs(st)
                    + " epochs times "
                    + st.batchesPerEpoch
                    + " batches)")
            + "; give total_steps in the config (optTotalSteps in the builder) for an exact one");
  }

  /** The duration entries that ran, as their schedule describes them. */
  private static List<String> durationEntriesRun(TrainerState st) {
    List<String> ran = new ArrayList<>();
    for (int i = 0; i < st.schedule.size(); i++) {
      if (st.schedule.hasKind(i, Trigger.Kind.DURATION) && st.schedule.runs(i) > 0) {
        ran.add(st.schedule.entry(i).describe());
      }
    }
    return ran;
  }

  /**
   * Warns once when epoch {@code completed} ended past the {@code planned} epochs while nothing
   * announced a longer loop (the agent announces each EasyTrain.fit; a program with the library
   * calls onPlannedEpochs itself): what followed the planned length keeps it.
   */
  void pastPlannedEpochs(TrainerState st, int completed, int planned) {
    if (planned > 0 && completed > planned && !st.pastPlannedLengthWarned && length.matters()) {
      st.pastPlannedLengthWarned = true;
      warnings.warn(
          "Surgery: epoch "
              + completed
              + " ended, past the "
              + planned
              + " epochs training was planned at; algorithms that follow the length of training"
              + " keep "
              + planned
              + ": give the listener the real length (total_epochs in the config, optTotalEpochs"
              + " in the builder, or onPlannedEpochs(trainer, epochs) before training)");
    }
  }

  /**
   * Warns when the loop announces {@code announced} epochs in all ({@code planned} after the
   * configured total had its say) where training was planned at another length, or where the
   * configured total differs. Only schedules that follow the length care; the others would only get
   * noise. Called before the trainer's planned length becomes {@code planned}.
   */
  void announcedLength(TrainerState st, int announced, int planned) {
    int totalEpochs = length.configuredEpochs();
    boolean lengthMatters = length.matters();
    if (lengthMatters && st.plannedEpochs > 0 && st.plannedEpochs != planned) {
      warnings.warn(
          "Surgery: the training loop announced "
              + planned
              + " epochs in all after "
              + st.passedEpochs()
              + " completed, where training was planned at "
              + st.plannedEpochs
              + " epochs; algorithms that follow the length of training now use "
              + planned);
    } else if (lengthMatters
        && st.plannedEpochs == 0
        && totalEpochs > 0
        && totalEpochs != announced) {
      warnings.warn(
          "Surgery: the training loop runs "
              + announced
              + (announced == 1 ? " epoch" : " epochs")
              + " but the configured total is "
              + totalEpochs
              + "; algorithms that follow the length of training use "
              + (planned == totalEpochs
                  ? "the configured "
                      + totalEpochs
                      + " (a loop that calls fit once per epoch announces one epoch at a time)"
                  : "the loop's " + planned));
    }
  }
}
