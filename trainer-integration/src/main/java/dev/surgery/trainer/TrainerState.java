package dev.surgery.trainer;

import ai.djl.nn.Block;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * What {@link SurgeryListener} knows about one trainer. It must not refer to the trainer, which is
 * the weak key of the listener's map: a reference would keep finished trainers alive.
 */
final class TrainerState {

  /** The 1-based number of the trainer in the order the listener first saw them. */
  final int ordinal;

  /** The status of each schedule entry: the schedule's only owner. */
  final Schedule schedule;

  /**
   * The model's block when this trainer's state was made, or when it was last seen: a program may
   * give the model another block ({@code setBlock}) between {@code newTrainer} and training.
   */
  Block block;

  boolean begun;

  /**
   * The entry being applied, or -1: read by a shutdown hook's {@link
   * SurgeryListener#onProgramEnd()} on another thread, which lists an application that did not
   * finish in time as such.
   */
  volatile int applying = -1;

  /**
   * Whether the model's blocks were checked (once, before training): the entries' target patterns
   * against the model, and block classes whose fields are closed to the engine.
   */
  boolean modelChecked;

  int completedEpochs;

  /**
   * The model's surgery record as this trainer last read or wrote it: a change it did not make
   * (another trainer of the same model, built before either trained) is checked before a run.
   */
  String recordSeen;

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

  /** Whether a batch (or a step) was reported since the last epoch end. */
  boolean trainedSinceEpochEnd;

  /** Whether two epoch ends with no batch between were warned of (once per trainer). */
  boolean emptyEpochWarned;

  /** Whether {@code onInitialized} for a trainer that does not list the listener was warned of. */
  boolean unregisteredWarned;

  /** The loss windows before and after this trainer's applications. */
  final LossWindows losses = new LossWindows();

  /** Optimizer steps reported ({@code BATCH_END}). */
  long steps;

  /** Batches of the current epoch reported ({@code BATCH_END}). */
  long batchInEpoch;

  /** Batches per epoch, from the data's progress total or the first completed epoch; 0 unknown. */
  long batchesPerEpoch;

  /**
   * Whether the trainer was collected before its training ended (dropped without {@code close()}):
   * its open entries say so.
   */
  boolean collected;

  /** Batches per epoch as the data reports them when its last partial batch is dropped. */
  long batchesPerEpochDroppingLast;

  /** Whether {@code INIT} was reported: it is handled once. */
  boolean initSeen;

  /** How the last epoch end came (true: DJL's onEpoch), to count one reported twice once. */
  Boolean lastEpochEndByCallback;

  /** Whether an epoch ended with no batch or epoch start since. */
  boolean epochJustEnded;

  /** Set once the trainer has warned that training ran past its planned number of epochs. */
  boolean pastPlannedLengthWarned;

  /** Whether steps past the planned number, after a duration entry ran, were warned of. */
  boolean pastPlannedStepsWarned;

  /** The entries warned of for running with gradients pending (once per entry). */
  final Set<Integer> pendingWarned = new HashSet<>();

  /**
   * Warnings that this trainer's epochs count from its own start on a model whose record was made
   * inside an earlier training: given when it first trains ({@link #trained}), so that an
   * evaluation trainer built from the same config, which never does, gets none.
   */
  final List<String> resumeWarnings = new ArrayList<>(0);

  /**
   * The scheduled entries that replaced blocks since this trainer last trained (a batch or a step),
   * as {@link ScheduledAlgorithm#describe()} gives them: those still here when its training ends
   * changed the model after its last step, which the listener warns of then.
   */
  final List<String> changedSinceTraining = new ArrayList<>(0);

  /**
   * A batch event came: the first since an epoch end that no {@code EPOCH_START} followed (a loop
   * that does not report it, to a listener built for events that include it) begins the count of
   * the new epoch's batches, which would otherwise run on from the last epoch's.
   */
  void batchAfterEpochEnd() {
    if (epochJustEnded) {
      batchInEpoch = 0;
    }
  }

  /** A training batch or step happened: what changed before it was trained. */
  void trainedBatch() {
    changedSinceTraining.clear();
  }

  /** Gives the warnings kept for this trainer's first training batch or step, once. */
  void trained(ListenerWarnings warnings) {
    if (!resumeWarnings.isEmpty()) {
      resumeWarnings.forEach(warnings::warn);
      resumeWarnings.clear();
    }
  }

  /**
   * The last entry that ran following a length of training that only the loop announced (no total
   * configured), or null; {@link #lengthFollowed} is that length in epochs.
   */
  ScheduledAlgorithm lengthFollowedBy;

  int lengthFollowed;

  /** Where a failing entry stopped training, or null while training goes on. */
  StoppedTraining stopped;

  /**
   * An entry's failure that stopped training: at an epoch end ({@code epoch} the completed epochs,
   * else -1), at a step ({@code step} the steps taken, else -1), or neither (before training, at a
   * fit's start); {@code when} says it in words ("at step 6").
   */
  record StoppedTraining(ScheduledAlgorithm by, int epoch, long step, String when) {
    /** Whether entries could be due at that moment: an epoch end or a step. */
    boolean atAMoment() {
      return epoch >= 0 || step >= 0;
    }

    /** Names the failure, for entries that did not run because of it. */
    String reason() {
      return by.describe() + " failed before it " + when + " and stopped training";
    }
  }

  /** Entries already listed under {@code not_run}, by schedule index. */
  final BitSet listedNotRun = new BitSet();

  /** What the listener's surgery changed on this trainer's model, in order. */
  final List<SurgeryChanges> reports = new ArrayList<>();

  /**
   * The model's surgery record as this trainer last read it whole (when it began, when its model
   * got another block, when another trainer had added to it): a replayed checkpoint's, an earlier
   * trainer's entries; null when none.
   */
  private String carriedRecord;

  /** {@link #carriedRecord} as changes, read once when an algorithm first asks. */
  private List<SurgeryChanges> carried;

  /** The first of {@link #reports} applied since {@link #carriedRecord} was read. */
  private int reportsFrom;

  /** The record as this trainer's own last application left it; null before one. */
  private String ownRecord;

  /**
   * The surgery applied to the model so far: its record as last read whole, then what this
   * trainer's listener applied since. A record that changed since, other than by this trainer's own
   * application (another trainer of the model added to it, a checkpoint was loaded into it), is
   * read whole again, this trainer's earlier applications then among its entries.
   *
   * @param current the model's record now
   */
  List<SurgeryChanges> surgeryRecord(String current) {
    if (!Objects.equals(current, carriedRecord) && !Objects.equals(current, ownRecord)) {
      carry(current);
    }
    if (carried == null) {
      carried = SurgeryRecord.asChanges(carriedRecord);
    }
    List<SurgeryChanges> since = reports.subList(reportsFrom, reports.size());
    if (carried.isEmpty()) {
      return List.copyOf(since);
    }
    List<SurgeryChanges> all = new ArrayList<>(carried.size() + since.size());
    all.addAll(carried);
    all.addAll(since);
    return List.copyOf(all);
  }

  /**
   * Reads the model's record whole from now on (the trainer began, its model got another block):
   * this trainer's applications so far are the record's, or were made on a block it no longer has.
   */
  void carry(String record) {
    carriedRecord = record;
    carried = null;
    reportsFrom = reports.size();
    ownRecord = null;
  }

  /** This trainer's application left the model's record so. */
  void wrote(String record) {
    ownRecord = record;
  }

  /** Whether the driver reports optimizer steps ({@code BATCH_END}); else batches count. */
  private final boolean stepsReported;

  TrainerState(int ordinal, List<ScheduledAlgorithm> entries, boolean stepsReported) {
    this.ordinal = ordinal;
    this.schedule = new Schedule(entries);
    this.stepsReported = stepsReported;
  }

  /**
   * Returns the steps taken so far, as {@code step:} entries count them: the optimizer steps, where
   * the driver reports them ({@code BATCH_END}), else the batches {@code onTrainingBatch} saw
   * (DJL's callbacks only). Chosen by the driver, not by the counts, so that under gradient
   * accumulation (several batches per optimizer step) the count never goes back.
   */
  long stepsTaken() {
    return stepsReported ? steps : batches;
  }

  /**
   * Returns the epochs that have passed, seen or not: counting the unseen ones keeps later entries
   * from running late.
   */
  int passedEpochs() {
    return completedEpochs + unseenEpochs;
  }
}
