package dev.surgery.trainer;

import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;

/**
 * Which of a trainer's entries are due at each point of training, handed to {@link EntryRunner} in
 * schedule order. {@link SurgeryListener} keeps the counts (epochs, through {@link EpochEnds};
 * steps; batches) and the warnings about them; this class reads them and decides: epoch-0 entries
 * at the training's begin, once the length is known or once the model is initialized; {@code
 * epoch:} and {@code every: Nep} entries at an epoch's end; step, duration and event-driven entries
 * at an event.
 */
final class DueEntries {

  /** Why a duration entry's step can have passed before the length was known, in most loops. */
  static final String UNTOLD_SIZE =
      "data that does not report its size tells it when the first epoch ends";

  private final EntryRunner runner;
  private final FailedEntries failures;
  private final NotRunEntries notRun;
  private final TrainingLength length;

  DueEntries(
      EntryRunner runner, FailedEntries failures, NotRunEntries notRun, TrainingLength length) {
    this.runner = runner;
    this.failures = failures;
    this.notRun = notRun;
    this.length = length;
  }

  /**
   * The epoch-0 entries at the training's begin: those that need an initialized model wait for it
   * when it is not, and so do the entries after them (epoch-0 entries run in schedule order: a
   * {@code weight_standardization} after a waiting {@code factorize} must standardize the layers
   * the factorization makes), those that follow an unknown length wait for it, the rest run.
   */
  void atTrainingBegin(Trainer trainer, TrainerState st) {
    boolean initialized = isInitialized(trainer);
    Schedule schedule = st.schedule;
    boolean waiting = false;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (!schedule.isPendingBeforeTraining(i)) {
        continue;
      }
      if (!initialized && (waiting || entry.algorithm().needsInitializedModel())) {
        schedule.defer(i);
        waiting = true;
        ListenerLog.logger()
            .debug(
                "Surgery: {} waits for the model to be initialized (onInitialized)",
                entry.describe());
        continue;
      }
      if (length.lacks(st, entry)) {
        awaitLength(st, i);
        continue;
      }
      runner.apply(trainer, st, i, Event.FIT_START);
    }
  }

  /** The epoch-0 entries that waited for the planned length, which is now known. */
  void afterLengthKnown(Trainer trainer, TrainerState st) {
    boolean initialized = isInitialized(trainer);
    Schedule schedule = st.schedule;
    boolean waiting = false;
    for (int i = 0; i < schedule.size(); i++) {
      if (schedule.status(i) == EntryStatus.DEFERRED) {
        // an earlier epoch-0 entry waits for the initialized model: the later ones wait behind it
        waiting = true;
      }
      if (schedule.status(i) != EntryStatus.AWAITING_LENGTH) {
        continue;
      }
      if (!initialized && (waiting || schedule.entry(i).algorithm().needsInitializedModel())) {
        waiting = true;
        schedule.defer(i);
        continue;
      }
      runner.apply(trainer, st, i, Event.FIT_START);
    }
  }

  /**
   * At {@link Event#INIT}: the epoch-0 entries that waited for the initialized model (or had not
   * run, when no batch was trained yet), and the event-driven entries that listen for it.
   */
  void atInitialized(Trainer trainer, TrainerState st) {
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      boolean due =
          schedule.status(i) == EntryStatus.DEFERRED
              || (schedule.isPendingBeforeTraining(i) && st.batches == 0);
      if (due && st.completedEpochs == 0) {
        if (length.lacks(st, entry)) {
          awaitLength(st, i);
          continue;
        }
        runner.apply(trainer, st, i, Event.INIT);
      } else if (schedule.isPending(i) && schedule.hasKind(i, Trigger.Kind.EVENTS)) {
        runner.runIfMatches(trainer, st, i, Event.INIT);
      }
    }
  }

  /**
   * At the end of epoch {@code completed}: the {@code epoch:} entries due now, those whose epoch
   * passed unseen (listed as missed), the {@code every: Nep} entries whose period ends here and the
   * event-driven entries.
   */
  void atEpochEnd(Trainer trainer, TrainerState st, int completed) {
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      if (!schedule.isPending(i)) {
        continue;
      }
      ScheduledAlgorithm entry = schedule.entry(i);
      if (schedule.isEpochBefore(i, completed)) {
        // An earlier entry stopped training at its epoch end (a program that caught the failure
        // trains on), or the listener was attached after that epoch (or missed onTrainingBegin).
        String stopped = notRun.stoppedBefore(st, entry);
        notRun.missed(
            st,
            i,
            stopped != null
                ? stopped
                : "the listener first saw this trainer after that point (epoch "
                    + completed
                    + " has completed)");
      } else if (schedule.isEpoch(i, completed)) {
        runner.apply(trainer, st, i, Event.EPOCH_END);
      } else if (schedule.hasKind(i, Trigger.Kind.EVERY_EPOCHS)
          && completed % entry.trigger().amount() == 0) {
        runner.apply(trainer, st, i, Event.EPOCH_END);
      } else if (schedule.hasKind(i, Trigger.Kind.EVENTS)) {
        runner.runIfMatches(trainer, st, i, Event.EPOCH_END);
      }
    }
  }

  /** The step, duration and event-driven entries due at an event, in schedule order. */
  void atEvent(Trainer trainer, TrainerState st, Event event) {
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      if (!schedule.isPending(i)) {
        continue;
      }
      Trigger trigger = schedule.entry(i).trigger();
      switch (trigger.kind()) {
        case STEP:
          if (event == Event.BATCH_END && st.steps == trigger.amount()) {
            runner.apply(trainer, st, i, event);
          }
          break;
        case EVERY_STEPS:
          if (event == Event.BATCH_END && st.steps % trigger.amount() == 0) {
            runner.apply(trainer, st, i, event);
          }
          break;
        case DURATION:
          if (event == Event.BATCH_END) {
            runDuration(trainer, st, i, trigger, event, UNTOLD_SIZE);
          }
          break;
        case EVENTS:
          runner.runIfMatches(trainer, st, i, event);
          break;
        default:
          break;
      }
    }
  }

  /**
   * When the first epoch's end tells the length, a duration entry due at exactly this step (the
   * epoch's last batch) runs now: no step has been taken since, so the model is the one it was due
   * for; one whose step has passed fails now, saying so (the epoch may be the last, with no batch
   * after it to tell).
   *
   * @param whyLate why the length is known only now: the data did not report its size, or the first
   *     epoch took another number of steps than the batches the data reported
   */
  void durationsDueNow(Trainer trainer, TrainerState st, String whyLate) {
    long total = length.plannedSteps(st);
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      Trigger trigger = schedule.entry(i).trigger();
      if (total > 0
          && schedule.isPending(i)
          && trigger.kind() == Trigger.Kind.DURATION
          && TrainingLength.dueStep(trigger, total) <= st.steps) {
        runDuration(trainer, st, i, trigger, Event.EPOCH_END, whyLate);
      }
    }
  }

  /**
   * Runs a duration entry at its step. Data that does not report its size tells the number of
   * batches per epoch only when the first epoch ends, so until then the entry waits; if its step
   * turns out to have passed by then, it fails (or is skipped) saying so, rather than run late or
   * never; {@code whyLate} says why the length came so late.
   */
  private void runDuration(
      Trainer trainer, TrainerState st, int index, Trigger trigger, Event event, String whyLate) {
    long total = length.plannedSteps(st);
    String time = "'" + trigger.describe().substring(3) + "'";
    if (total <= 0 && length.plannedEpochs(st) > 0 && st.completedEpochs == 0) {
      return; // the epochs are known, their size comes with the first epoch's end
    }
    RuntimeException problem = null;
    if (total <= 0) {
      problem =
          new IllegalStateException(
              time
                  + " needs the planned number of optimizer steps, which is unknown: set"
                  + " 'total_steps: <n>', or 'total_epochs: <n>'");
    } else if (st.steps > TrainingLength.dueStep(trigger, total)) {
      problem =
          new IllegalStateException(
              time
                  + " is step "
                  + TrainingLength.dueStep(trigger, total)
                  + " of "
                  + total
                  + ", but training is already at step "
                  + st.steps
                  + ": the length of training became known too late ("
                  + whyLate
                  + "); set 'total_steps: <n>' to place it exactly");
    }
    if (problem != null) {
      failures.failed(st, index, event, problem, 0);
    } else if (st.steps == TrainingLength.dueStep(trigger, total)) {
      runner.apply(trainer, st, index, event);
    }
  }

  private static void awaitLength(TrainerState st, int index) {
    st.schedule.awaitLength(index);
    ListenerLog.logger()
        .debug(
            "Surgery: {} waits for the planned number of epochs (EasyTrain.fit under the agent,"
                + " onPlannedEpochs)",
            st.schedule.entry(index).describe());
  }

  private static boolean isInitialized(Trainer trainer) {
    Block block = trainer.getModel().getBlock();
    return block != null && block.isInitialized();
  }
}
