package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.training.Trainer;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;

/**
 * What {@link SurgeryListener} reports when training ends: for one trainer at its {@code
 * onTrainingEnd} (entries another trainer of its model applied, a change no step trained, the
 * entries that never ran, the surgery log written without "not reached yet"), and for every trainer
 * still training when the program ends ({@link SurgeryListener#onProgramEnd()}: what never ran, the
 * log marked cut short). Both are the last word on a trainer's schedule, said once.
 */
final class EndOfTraining {

  private final TrainerRegistry registry;
  private final RecordedEntries records;
  private final NotRunEntries notRun;
  private final SurgeryLogWriter surgeryLog;
  private final ListenerWarnings warnings;
  private final ProgramEnd programEnd;

  EndOfTraining(
      TrainerRegistry registry,
      RecordedEntries records,
      NotRunEntries notRun,
      SurgeryLogWriter surgeryLog,
      ListenerWarnings warnings,
      ProgramEnd programEnd) {
    this.registry = registry;
    this.records = records;
    this.notRun = notRun;
    this.surgeryLog = surgeryLog;
    this.warnings = warnings;
    this.programEnd = programEnd;
  }

  /** A trainer's training ended ({@code onTrainingEnd}); nothing for one never trained here. */
  void trainingEnded(Trainer trainer) {
    TrainerState st = registry.end(trainer); // null: never trained here, or listed at the end
    if (st == null) {
      return;
    }
    Model model = trainer.getModel();
    // Only for the block this trainer trained: a model given another block since then (a later
    // checkpoint loaded into it) says nothing of what ran on this trainer's block.
    if (model.getBlock() == st.block
        && !Objects.equals(RecordedEntries.recordOf(model), st.recordSeen)) {
      // Another trainer of this model (sharing this listener, as an evaluation trainer built from
      // the same config does) applied entries this one never reached: they ran on the model, and
      // are listed so, not as never run.
      st.recordSeen = RecordedEntries.recordOf(model);
      records.skipRecorded(model, st, false);
    }
    warnChangedAfterTraining(st);
    // A trainer that began after the program's end ran nothing: its entries say so.
    notRun.listNotRun(st, registry.programEnded());
    surgeryLog.write();
  }

  /**
   * Warns of entries that replaced blocks after the trainer's last training batch or step (an
   * {@code epoch:} entry at the last epoch's end, a {@code step:} entry at the last step): nothing
   * trained the changed model, and what was measured before the change (the last validation, the
   * accuracy a save callback wrote from it) belongs to the model before it. Only for a trainer that
   * trained: an evaluation trainer never does.
   */
  private void warnChangedAfterTraining(TrainerState st) {
    if (st.changedSinceTraining.isEmpty() || (st.batches == 0 && st.steps == 0)) {
      return;
    }
    warnings.warn(
        "Surgery: "
            + String.join(", ", st.changedSinceTraining)
            + " changed the model after its last training step: no step trained the changed model,"
            + " and what was measured before the change (the last validation, the accuracy a save"
            + " callback wrote from it into a checkpoint) belongs to the model before it, so a"
            + " model saved or used after training has a change nothing trained or evaluated;"
            + " schedule it before the last epoch's end (or step)");
    st.changedSinceTraining.clear();
  }

  /**
   * The program is ending: lists what never ran for every trainer whose training began but did not
   * end, and marks the log cut short; after it nothing is applied.
   *
   * @return whether some trainer's training was cut short (false when called again)
   */
  boolean programEnded() {
    // First no application may begin, and one under way on the training thread (a SIGTERM in the
    // middle of a surgery) ends, applied or failed, before the log lists what never ran.
    if (!programEnd.end(ProgramEnd.WAIT_MILLIS)) {
      return false;
    }
    // A trainer collected unclosed and not yet ended by a later trainer's start stays unfinished:
    // listed as cut short with the others, as a trainer never closed is.
    List<TrainerState> cut = registry.takeUnfinished(); // once: end() answered true once
    if (cut.isEmpty()) {
      return false;
    }
    try {
      cut.sort(Comparator.comparingInt(st -> st.ordinal));
      for (TrainerState st : cut) {
        notRun.listNotRun(st, true);
      }
    } catch (RuntimeException e) {
      // Another thread may still be training: what could be listed is listed, the mark still goes.
      ListenerLog.logger().debug("Surgery: listing the entries cut short failed", e);
    }
    surgeryLog.markCutShort();
    surgeryLog.write();
    return true;
  }
}
