package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryListener.PROPERTY;

import ai.djl.Model;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.WeakIdentityMap;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The trainers a {@link SurgeryListener} serves and the state of each: made at a trainer's first
 * event (its model's record read, what a replay froze frozen again), bound again when the model is
 * given another block, ended when its training ends or when it was dropped unclosed, and taken at
 * the program's end. One monitor ({@code states}) guards all of it; a new state is made under
 * {@link SurgeryLock} first, as every surgery, so that the two locks are always taken in that
 * order.
 */
final class TrainerRegistry {

  private final List<ScheduledAlgorithm> schedule;
  private final boolean stepsReported;
  private final TrainingListener listener;
  private final RecordedEntries records;
  private final NotRunEntries notRun;
  private final SurgeryLogWriter surgeryLog;
  private final ListenerWarnings warnings;

  private final WeakIdentityMap<Trainer, TrainerState> states = WeakIdentityMap.keepingCollected();

  /** Trainers whose training ended ({@link #end}), by number: they train no more. */
  private final WeakIdentityMap<Trainer, Integer> ended = new WeakIdentityMap<>();

  /**
   * The states of the trainers whose training has not ended ({@link #end}), held strongly: a
   * trainer the program dropped without closing it (an uncaught exception) may be collected before
   * the program's end, which must still report it. A later trainer's start ends those collected by
   * then ({@link #endCollectedTrainers}), so that a long search does not keep every dropped trial's
   * model. Guarded by {@code states}.
   */
  private final Set<TrainerState> unfinished = Collections.newSetFromMap(new IdentityHashMap<>());

  /**
   * Set by {@link #takeUnfinished()} at the program's end; guarded by {@code states}, read without
   * it. Later than {@link ProgramEnd#ended()}, which stops new applications first: a trainer that
   * closes while the end waits for one under way still ends as usual.
   */
  private volatile boolean programEnded;

  private final AtomicInteger trainerCount = new AtomicInteger();

  /**
   * Creates the registry of one listener.
   *
   * @param schedule the listener's entries, in order
   * @param stepsReported whether the driver reports batch ends (else a state counts an epoch's
   *     batches itself)
   * @param listener the listener, which a trainer must list once
   * @param records the listener's reading of models' records
   * @param notRun the listener's list of entries that never ran
   * @param surgeryLog the listener's surgery log
   * @param warnings the listener's warnings
   */
  TrainerRegistry(
      List<ScheduledAlgorithm> schedule,
      boolean stepsReported,
      TrainingListener listener,
      RecordedEntries records,
      NotRunEntries notRun,
      SurgeryLogWriter surgeryLog,
      ListenerWarnings warnings) {
    this.schedule = schedule;
    this.stepsReported = stepsReported;
    this.listener = listener;
    this.records = records;
    this.notRun = notRun;
    this.surgeryLog = surgeryLog;
    this.warnings = warnings;
  }

  /** A trainer's state if it has one now, or null; makes none. */
  TrainerState find(Trainer trainer) {
    return states.get(trainer);
  }

  /** Whether a trainer's training ended and its state is gone: it trains no more. */
  boolean endedAndGone(Trainer trainer) {
    return ended.containsKey(trainer) && !states.containsKey(trainer);
  }

  /**
   * Ends a trainer's training: its state is taken out and returned, or null when it has none or the
   * program's end has listed it already.
   */
  TrainerState end(Trainer trainer) {
    synchronized (states) {
      TrainerState st = states.get(trainer);
      if (st == null || (programEnded && !unfinished.contains(st))) {
        return null; // never trained here, or the program's end listed what never ran already
      }
      // (A trainer that began after the program's end is still unfinished: it ends as usual.)
      states.remove(trainer);
      ended.put(trainer, st.ordinal);
      unfinished.remove(st);
      return st;
    }
  }

  /** Whether the program's end has taken the unfinished trainers ({@link #takeUnfinished}). */
  boolean programEnded() {
    return programEnded;
  }

  /**
   * Takes the states of the trainers whose training never ended, once: from now on no trainer ends,
   * and none is listed as running.
   */
  List<TrainerState> takeUnfinished() {
    synchronized (states) {
      programEnded = true;
      List<TrainerState> cut = new ArrayList<>(unfinished);
      unfinished.clear();
      return cut;
    }
  }

  /**
   * The states of the trainers whose training began and has not ended; null when none trains (or
   * the program ended, which lists them itself).
   */
  List<TrainerState> running() {
    synchronized (states) {
      return programEnded || unfinished.isEmpty() ? null : new ArrayList<>(unfinished);
    }
  }

  /** The live trainer of {@code model} this listener follows, or null. */
  Trainer trainerOf(Model model) {
    synchronized (states) {
      for (Trainer trainer : states.keys()) {
        if (trainer.getModel() == model) {
          return trainer;
        }
      }
    }
    return null;
  }

  /**
   * The trainer and every other trainer of its model this listener serves that holds the model's
   * parameters and has not ended: a surgery must keep them all exact (it frees the arrays it
   * replaces, which another trainer of the model would otherwise still step).
   */
  List<Trainer> trainersOf(Trainer trainer) {
    List<Trainer> trainers = new ArrayList<>();
    trainers.add(trainer);
    synchronized (states) {
      for (Trainer other : states.keys()) {
        if (other != trainer
            && other.getModel() == trainer.getModel()
            && DjlTrainers.hasRegisteredParameters(other)) {
          trainers.add(other);
        }
      }
    }
    return trainers;
  }

  /**
   * A trainer's state, made at its first event, bound again to a block its model was given since.
   */
  TrainerState state(Trainer trainer) {
    synchronized (states) {
      TrainerState st = states.get(trainer);
      if (st != null && st.block == trainer.getModel().getBlock()) {
        return st; // every event after the first
      }
    }
    // A new state may freeze again what a replay froze, which is a surgery: the surgery lock comes
    // first, as for every surgery, so that a thread holding it cannot meet this one the other way.
    return SurgeryLock.holding(() -> stateHoldingTheLock(trainer));
  }

  /**
   * Ends the training of the trainers collected while it had not ended: dropped without {@code
   * close()} (DJL's finalizer then closes a trainer whose key this listener's map has lost, so its
   * {@link SurgeryListener#onTrainingEnd} finds nothing). Their open entries are listed as for a
   * training that ended, and their states, which hold their models' blocks, are let go: a search
   * that leaves trainers unclosed does not keep every trial's model.
   */
  private void endCollectedTrainers() {
    List<TrainerState> dropped;
    synchronized (states) {
      dropped = states.drainCollected(); // after the program's end too, so that none piles up
      // Those the program's end listed are no longer unfinished; one that began after it is.
      dropped.removeIf(st -> !unfinished.remove(st));
    }
    if (dropped.isEmpty()) {
      return;
    }
    // In the order the trainers came: the map gives collected trainers in no particular order.
    dropped.sort(Comparator.comparingInt(st -> st.ordinal));
    for (TrainerState st : dropped) {
      st.collected = true;
      notRun.listNotRun(st, false);
    }
    surgeryLog.write();
  }

  /** {@link #state}, with {@link SurgeryLock} held. */
  private TrainerState stateHoldingTheLock(Trainer trainer) {
    endCollectedTrainers();
    synchronized (states) {
      TrainerState st = states.get(trainer);
      if (st == null) {
        Integer number = ended.get(trainer);
        if (number != null) {
          // A fresh state would restart every count: step entries would run late, silently.
          throw new IllegalStateException(
              "Surgery: trainer "
                  + number
                  + " gets training events after its training ended (onTrainingEnd, which"
                  + " Trainer.close() sends): a trainer's training ends once; create a new"
                  + " trainer to train on");
        }
        refuseRegisteredTwice(trainer);
        st = new TrainerState(trainerCount.incrementAndGet(), schedule, stepsReported);
        if (CarriedRecords.forgetRecordOfAnotherBlock(trainer.getModel())) {
          ListenerLog.logger()
              .info(
                  "Surgery: the model's '{}' property described the block it had before setBlock:"
                      + " taken off (this block's surgery is recorded anew)",
                  PROPERTY);
        }
        records.skipRecorded(trainer.getModel(), st, true);
        st.recordSeen = RecordedEntries.recordOf(trainer.getModel());
        st.carry(st.recordSeen);
        records.freezeAgain(trainer);
        st.block = trainer.getModel().getBlock();
        states.put(trainer, st);
        unfinished.add(st);
      } else if (st.block != trainer.getModel().getBlock()) {
        rebind(trainer, st);
      }
      return st;
    }
  }

  /**
   * The model was given another block after this trainer's state was made (setBlock between
   * newTrainer and training, or in the middle of training): the entries skipped as in the old
   * block's record may run on this one, and this block's own record decides again; the entries this
   * trainer applied to the old block are not due again (its counts go on), which a warning and a
   * not-run entry say, once per entry.
   */
  private void rebind(Trainer trainer, TrainerState st) {
    Model model = trainer.getModel();
    st.block = model.getBlock();
    SurgeryCheckpoint.syncRecord(model);
    String newRecord = RecordedEntries.recordOf(model);
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (schedule.status(i) == EntryStatus.APPLIED
          && schedule.runs(i) > 0
          && !entry.trigger().repeats()
          && !st.listedNotRun.get(i)
          // A checkpoint loaded into the new block brought it with its record: it has it.
          && !RecordedEntries.holds(newRecord, entry)) {
        st.listedNotRun.set(i);
        // This trainer's counts go on: what it applied to the old block is not due again.
        String reason =
            "trainer "
                + st.ordinal
                + " applied it to the block its model had before setBlock; the new block does not"
                + " get it from this trainer (build a new trainer for a new block)";
        warnings.warn("Surgery: " + entry.describe() + " " + reason);
        surgeryLog.addNotRun(st.ordinal, entry, reason);
      }
    }
    if (!st.schedule.reopenRecorded().isEmpty()) {
      surgeryLog.forgetNotRun(st.ordinal, RecordedEntries.ALREADY_RECORDED);
    }
    st.recordSeen = RecordedEntries.recordOf(model);
    st.carry(st.recordSeen);
    records.skipRecorded(model, st, false);
  }

  /**
   * Refuses a trainer that lists this listener twice: every event would reach it twice, counting
   * two steps per batch and two epochs per epoch, so entries would run early and be reported at the
   * wrong moment.
   */
  private void refuseRegisteredTwice(Trainer trainer) {
    List<TrainingListener> registered = DjlTrainers.listeners(trainer);
    int times = 0;
    for (TrainingListener l : registered == null ? List.<TrainingListener>of() : registered) {
      times += l == listener ? 1 : 0;
    }
    if (times > 1) {
      throw new IllegalStateException(
          "Surgery: this SurgeryListener is registered "
              + times
              + " times with one trainer (its TrainingConfig lists it more than once): every event"
              + " would reach it "
              + times
              + " times, and its entries would run at the wrong step or epoch; add it once");
    }
  }
}
