package dev.surgery.trainer;

import ai.djl.training.Trainer;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * What {@link SurgeryListener} does when a trainer's training, or one of its fits, starts: its
 * training begins ({@code onTrainingBegin}, once per trainer: the checks before training and the
 * epoch-0 entries that need no initialized model; a failure there ends its training at once), its
 * model is initialized ({@link Event#INIT}, once per trainer: the epoch-0 entries that waited for
 * it run), and a training loop announces its length ({@code onPlannedEpochs}, at the start of every
 * fit, so possibly after steps: a program that calls fit once per epoch announces one epoch at a
 * time; an entry that followed a shorter length fails, the epoch-0 entries that waited for the
 * length run). The listener keeps the public methods, their documentation, and the per-batch path.
 */
final class TrainingStarts {

  private final TrainerRegistry registry;
  private final StartChecks startChecks;
  private final DueEntries due;
  private final TrainingLength length;
  private final FailedEntries failures;
  private final LengthWarnings lengthWarnings;
  private final Consumer<Trainer> endTraining;
  private final SurgeryLogWriter surgeryLog;

  /**
   * @param endTraining the listener's {@code onTrainingEnd}, which a failure at training begin runs
   */
  TrainingStarts(
      TrainerRegistry registry,
      StartChecks startChecks,
      DueEntries due,
      TrainingLength length,
      FailedEntries failures,
      LengthWarnings lengthWarnings,
      Consumer<Trainer> endTraining,
      SurgeryLogWriter surgeryLog) {
    this.registry = registry;
    this.startChecks = startChecks;
    this.due = due;
    this.length = length;
    this.failures = failures;
    this.lengthWarnings = lengthWarnings;
    this.endTraining = endTraining;
    this.surgeryLog = surgeryLog;
  }

  /**
   * A trainer's training began ({@code onTrainingBegin}), once: the checks and the epoch-0 entries
   * that need no initialized model, then the surgery log written as this job's.
   */
  void trainingBegan(Trainer trainer) {
    TrainerState st = registry.state(trainer);
    if (st.begun) {
      return; // the agent and the program may both forward this event
    }
    st.begun = true;
    try {
      beginTraining(trainer, st);
    } catch (SurgeryFailedException e) {
      // DJL calls this from the Trainer constructor, which now throws: no trainer reaches the
      // program to close, so its training ends here, and the log says why, not "running".
      try {
        endTraining.accept(trainer);
      } catch (RuntimeException ending) {
        e.addSuppressed(ending);
      }
      throw e;
    }
    // From onTrainingBegin on, the log on disk is this job's: marked cut short, with what is not
    // reached yet, until training ends (a previous job's log would otherwise stay until the first
    // surgery, and a job killed before then would leave it).
    surgeryLog.write();
  }

  /** The checks before training and the epoch-0 entries that need no initialized model. */
  private void beginTraining(Trainer trainer, TrainerState st) {
    startChecks.atTrainingBegin(trainer, st);
    due.atTrainingBegin(trainer, st);
  }

  /**
   * The training loop announced {@code epochs} more epochs ({@code onPlannedEpochs}, at each fit's
   * start); nothing happens when it is not positive.
   */
  void plannedEpochs(Trainer trainer, int epochs) {
    if (epochs <= 0) {
      return;
    }
    TrainerState st = registry.state(trainer);
    int announced = st.passedEpochs() + epochs;
    int planned = length.afterAnnouncement(st, epochs);
    if (st.lengthFollowedBy != null && planned > st.lengthFollowed) {
      failures.lengthProvedWrong(st, planned);
    }
    lengthWarnings.announcedLength(st, announced, planned);
    st.plannedEpochs = planned;
    if (st.passedEpochs() == 0) {
      due.afterLengthKnown(trainer, st);
    }
  }

  /** The epoch-0 entries that wait for the trainer's model to be initialized, in schedule order. */
  List<ScheduledAlgorithm> awaitingInitialization(Trainer trainer) {
    TrainerState st = registry.find(trainer);
    if (st == null || st.initSeen) {
      return List.of();
    }
    List<ScheduledAlgorithm> waiting = new ArrayList<>();
    for (int i = 0; i < st.schedule.size(); i++) {
      if (st.schedule.status(i) == EntryStatus.DEFERRED) {
        waiting.add(st.schedule.entry(i));
      }
    }
    return waiting;
  }

  /** The trainer's model was initialized ({@link Event#INIT}), handled once per trainer. */
  void initialized(Trainer trainer) {
    TrainerState st = registry.state(trainer);
    if (st.initSeen) {
      return; // SurgeryTrain.fit reports INIT again after the program did
    }
    st.initSeen = true;
    st.begun = true;
    startChecks.atInitialized(trainer, st);
    due.atInitialized(trainer, st);
  }
}
