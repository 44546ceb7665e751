package dev.surgery.trainer;

import com.google.gson.JsonObject;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Says which entries of a trainer's schedule did not run, and why: each is warned of and listed
 * under {@code not_run} in the surgery log, once. An entry whose moment passed unseen is marked so
 * that it never runs late; one that is still open when training (or the program) ends is listed as
 * never run; while training runs, the log lists the open ones as not reached yet.
 */
final class NotRunEntries {

  private final ListenerWarnings warnings;
  private final SurgeryLogWriter surgeryLog;
  private final TrainingLength length;

  NotRunEntries(ListenerWarnings warnings, SurgeryLogWriter surgeryLog, TrainingLength length) {
    this.warnings = warnings;
    this.surgeryLog = surgeryLog;
    this.length = length;
  }

  /**
   * What the surgery log lists while training runs: the open entries of the trainers whose training
   * began and has not ended ({@code running}, sorted here), not reached yet. A job killed outright
   * leaves its log with these.
   */
  List<JsonObject> notReachedYet(List<TrainerState> running) {
    running.sort(Comparator.comparingInt(st -> st.ordinal));
    List<JsonObject> items = new ArrayList<>();
    for (TrainerState st : running) {
      Schedule schedule = st.schedule;
      for (int i = 0; i < schedule.size(); i++) {
        if (!stillOpen(st, i)) {
          continue;
        }
        ScheduledAlgorithm entry = schedule.entry(i);
        items.add(
            SurgeryLogWriter.notRunItem(
                st.ordinal,
                entry,
                "not reached yet: training was running when this log was written, after "
                    + (countsEpochs(entry)
                        ? completedEpochs(st.completedEpochs)
                        : optimizerSteps(st.stepsTaken()))
                    + " (the write at the end of training replaces this list; a job killed"
                    + " outright leaves it)"));
      }
    }
    return items;
  }

  /** Whether an entry's moment is told in epochs ({@code epoch: k}, {@code every: Nep}). */
  private static boolean countsEpochs(ScheduledAlgorithm entry) {
    return entry.byEpoch() || entry.trigger().kind() == Trigger.Kind.EVERY_EPOCHS;
  }

  /** Whether an entry may still run: not run (or repeating), and not listed as never run. */
  static boolean stillOpen(TrainerState st, int i) {
    Schedule schedule = st.schedule;
    if (!schedule.isOpen(i)) {
      return false;
    }
    ScheduledAlgorithm entry = schedule.entry(i);
    Trigger.Kind kind = entry.trigger().kind();
    if (kind == Trigger.Kind.EVENTS || (entry.trigger().repeats() && schedule.runs(i) > 0)) {
      return false; // it ran when it was due, or its own match never chose to
    }
    return !st.listedNotRun.get(i); // its run that a stopping failure prevented is listed
  }

  /** The start of the reason of an entry whose application the program's end cut into. */
  static final String ENDED_WHILE_APPLIED = "the program ended while it was being applied";

  /**
   * An application that the program's end did not wait for to the finish (it outlasted {@link
   * ProgramEnd#WAIT_MILLIS}) was listed as not run: it ran after all, and is listed once, as what
   * it did.
   *
   * @return whether the program ended (the surgery log then has to be written again)
   */
  boolean forgetIfProgramEnded(TrainerState st, ProgramEnd programEnd) {
    if (programEnd.ended()) {
      surgeryLog.forgetNotRun(st.ordinal, ENDED_WHILE_APPLIED);
      return true;
    }
    return false;
  }

  /**
   * Lists the open entries of a trainer whose training is over as never run, with why: training
   * ended ({@link SurgeryListener#onTrainingEnd}) or the program ended before it did ({@link
   * SurgeryListener#onProgramEnd()}).
   */
  void listNotRun(TrainerState st, boolean programEnd) {
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      // The application the end cut into is listed whatever its kind: an event-driven entry, or
      // a repeating one's later run, is not open in the schedule's sense but did not finish.
      boolean cutShort = programEnd && st.applying == i && !st.listedNotRun.get(i);
      if (!cutShort && !stillOpen(st, i)) {
        continue;
      }
      ScheduledAlgorithm entry = schedule.entry(i);
      String reason;
      String stopped = stoppedBefore(st, entry);
      if (stopped != null) {
        reason = stopped;
      } else if (st.stopped != null) {
        reason =
            st.stopped.by().describe()
                + " failed "
                + st.stopped.when()
                + " and stopped training before it was due";
      } else if (st.collected) {
        reason =
            "trainer "
                + st.ordinal
                + " was dropped without close() and collected by the garbage collector after "
                + (countsEpochs(entry)
                    ? completedEpochs(st.completedEpochs)
                    : optimizerSteps(st.stepsTaken()))
                + ": its training ended there (close trainers, as try-with-resources does)";
      } else if (programEnd && st.applying == i) {
        reason =
            ENDED_WHILE_APPLIED
                + " (System.exit inside it, or it had not finished "
                + ProgramEnd.WAIT_MILLIS / 1000
                + " s after the end began): whether the model holds its change is not known";
      } else if (programEnd) {
        reason =
            "the program began to end (System.exit, a signal such as SIGTERM, an uncaught"
                + " exception, or a trainer never closed) after "
                + (countsEpochs(entry)
                    ? completedEpochs(st.completedEpochs)
                    : optimizerSteps(st.stepsTaken()))
                + ", before training ended; nothing is applied after that";
      } else if (schedule.status(i) == EntryStatus.AWAITING_LENGTH) {
        reason =
            "it waited for the planned number of epochs, which never came (" + length.hint() + ")";
      } else if (schedule.status(i) == EntryStatus.DEFERRED) {
        reason = "it waited for onInitialized(trainer), which was never called";
      } else if (st.completedEpochs == 0 && st.batches == 0 && st.steps == 0) {
        // This trainer's own copy of the schedule (one listener serves every trainer of a config,
        // an evaluation trainer too): nothing says it is the training trainer's entry.
        reason =
            "trainer "
                + st.ordinal
                + " reported no training batch, step or epoch end to the listener: an evaluation"
                + " trainer, one closed before training, or a custom training loop that does not"
                + " call trainer.notifyListeners(listener -> listener.onTrainingBatch(trainer,"
                + " batchData)) and listener.onEpoch(trainer); other trainers of this listener keep"
                + " their own schedule";
      } else if (!entry.byEpoch()
          && !schedule.hasKind(i, Trigger.Kind.EVERY_EPOCHS)
          && st.steps == 0
          && st.batches > 0) {
        // Batches trained (DJL's onTrainingBatch) but no step was reported: the listener was
        // built for a driver that reports BATCH_END, and this one (EasyTrain.fit) reports none.
        reason =
            "the listener saw "
                + st.batches
                + " training batches but no BATCH_END event, which counts its optimizer steps: the"
                + " training loop does not report it (EasyTrain.fit reports none; train with"
                + " SurgeryTrain.fit, or report listener.onEvent(Event.BATCH_END, trainer) after"
                + " each trainer.step())";
      } else if (!entry.byEpoch() && !schedule.hasKind(i, Trigger.Kind.EVERY_EPOCHS)) {
        reason = "training ended after " + optimizerSteps(st.steps) + " (BATCH_END events)";
      } else if (st.completedEpochs == 0 && st.batches > 0) {
        reason =
            "the listener saw "
                + st.batches
                + " training batches but no onEpoch event: a listener before it in the trainer's"
                + " list stopped training in its own onEpoch (as DJL's EarlyStoppingListener"
                + " does), or a custom training loop does not call"
                + " trainer.notifyListeners(listener -> listener.onEpoch(trainer)) after each"
                + " epoch";
      } else if (!st.epochSinceLastBatch && st.batchInEpoch > 0) {
        // Batches ran after the last epoch end this listener saw: that epoch's end stopped
        // before it (DJL's EarlyStoppingListener throws from onEpoch), or the loop broke off.
        boolean whole = st.batchesPerEpoch > 0 && st.batchInEpoch >= st.batchesPerEpoch;
        reason =
            "training ended after "
                + completedEpochs(st.completedEpochs)
                + " and "
                + (whole ? "all " : "")
                + st.batchInEpoch
                + " batches of epoch "
                + (st.completedEpochs + 1)
                + ", whose end (onEpoch) did not reach this listener: a listener before it in the"
                + " trainer's list stopped training in its own onEpoch (as DJL's"
                + " EarlyStoppingListener does)"
                + (whole ? "" : ", or the loop stopped within the epoch");
      } else {
        reason = "training ended after " + completedEpochs(st.completedEpochs);
      }
      warnings.warn(
          "Surgery: "
              + entry.describe()
              + (reason.startsWith(ENDED_WHILE_APPLIED)
                  ? " did not finish before the program ended: "
                  : " never ran: ")
              + reason);
      surgeryLog.addNotRun(st.ordinal, entry, reason);
    }
  }

  /**
   * An epoch ended without an onEpoch (the data started over with no epoch end between): each
   * pending epoch entry whose epoch has passed did not run, and never will.
   */
  void warnUnseen(TrainerState st) {
    int passed = st.passedEpochs();
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      // (A repeating every-epochs entry is not marked: if epoch ends come after all, it runs at
      // them; if none comes, training's end lists it with the reason that none came.)
      int due = entry.byEpoch() ? entry.epoch() : 0;
      if (schedule.isPending(i) && due > 0 && due <= passed) {
        // Never run it late: mark it so that a later onEpoch does not apply it at the wrong time.
        missed(
            st,
            i,
            "epoch "
                + due
                + " ended without an onEpoch event. A custom training loop must call"
                + " trainer.notifyListeners(listener -> listener.onEpoch(trainer)) after each"
                + " epoch");
      }
    }
  }

  /**
   * Marks an entry whose moment passed unseen (it is never run late), warns, and lists it under
   * {@code not_run} in the surgery log with the reason.
   */
  void missed(TrainerState st, int index, String reason) {
    ScheduledAlgorithm entry = st.schedule.entry(index);
    st.schedule.missed(index);
    warnings.warn("Surgery: " + entry.describe() + " did not run: " + reason);
    surgeryLog.addNotRun(st.ordinal, entry, reason);
  }

  /**
   * Lists under {@code not_run} the runs of repeating entries that were due at the moment (an epoch
   * end, a step) where the entry at {@code index} failed and stopped training, after it in the
   * schedule: they never come, and a repeating entry is not listed again at training end. (One-shot
   * entries stay pending and are listed once, when they are missed or training ends.)
   */
  void listRepeatsStoppedAt(TrainerState st, int index) {
    TrainerState.StoppedTraining stop = st.stopped;
    if (!stop.atAMoment()) {
      return; // no epoch end or step was due at that moment
    }
    Schedule schedule = st.schedule;
    for (int j = index + 1; j < schedule.size(); j++) {
      ScheduledAlgorithm later = schedule.entry(j);
      Trigger trigger = later.trigger();
      boolean due =
          stop.epoch() >= 0
              ? trigger.kind() == Trigger.Kind.EVERY_EPOCHS && stop.epoch() % trigger.amount() == 0
              : trigger.kind() == Trigger.Kind.EVERY_STEPS && stop.step() % trigger.amount() == 0;
      if (schedule.isPending(j) && due) {
        String reason = stop.reason() + " (its run " + stop.when() + ")";
        warnings.warn("Surgery: " + later.describe() + " did not run: " + reason);
        surgeryLog.addNotRun(st.ordinal, later, reason);
        st.listedNotRun.set(j);
      }
    }
  }

  /**
   * Why a one-shot entry did not run when an earlier entry due at the same moment failed and
   * stopped training before its turn; null when that is not what happened.
   */
  String stoppedBefore(TrainerState st, ScheduledAlgorithm entry) {
    TrainerState.StoppedTraining stop = st.stopped;
    if (stop == null || !stop.atAMoment()) {
      return null;
    }
    Trigger trigger = entry.trigger();
    boolean sameMoment =
        stop.epoch() >= 0
            ? entry.byEpoch() && entry.epoch() == stop.epoch()
            : (trigger.kind() == Trigger.Kind.STEP && trigger.amount() == stop.step())
                || (trigger.kind() == Trigger.Kind.DURATION
                    && length.plannedSteps(st) > 0
                    && TrainingLength.dueStep(trigger, length.plannedSteps(st)) == stop.step());
    return sameMoment ? stop.reason() : null;
  }

  /**
   * Training went on after a stopping failure (the program caught it): the one-shot entries due at
   * that moment are missed now, with that reason, and later entries are judged on their own.
   */
  void resumedAfterStop(TrainerState st) {
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (schedule.isPending(i) && !entry.trigger().repeats()) {
        String stopped = stoppedBefore(st, entry);
        if (stopped != null) {
          missed(st, i, stopped);
        }
      }
    }
    st.stopped = null;
  }

  /** "1 completed epoch", "2 completed epochs": the reasons are read in reports. */
  static String completedEpochs(int epochs) {
    return epochs + (epochs == 1 ? " completed epoch" : " completed epochs");
  }

  /** "1 optimizer step", "2 optimizer steps". */
  static String optimizerSteps(long steps) {
    return steps + (steps == 1 ? " optimizer step" : " optimizer steps");
  }
}
