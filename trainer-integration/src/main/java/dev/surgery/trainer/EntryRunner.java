package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.AbstractSurgeryAlgorithm;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.NothingTargetedException;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.NoTrainerRegistered;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.List;
import java.util.Objects;
import java.util.function.Function;

/**
 * Runs a listener's entries: applies an entry's algorithm through the core engine with the live
 * trainers of the model, checks what it did against the model before the run ({@link BeforeRun}),
 * and hands the outcome on: what a successful run changed to {@link AppliedEntries}, a failure to
 * {@link FailedEntries}, which reports it as {@code on_error} says. The listener decides when an
 * entry is due ({@link DueEntries}); this class does what running it means.
 */
final class EntryRunner {

  private final List<ScheduledAlgorithm> schedule;
  private final TrainingLength length;
  private final RecordedEntries records;
  private final FailedEntries failures;
  private final AppliedEntries applied;

  /** Whether the program ended (nothing begins any more), and the applications under way. */
  private final ProgramEnd programEnd;

  /** The live trainers of a trainer's model that a surgery must keep exact, the trainer first. */
  private final Function<Trainer, List<Trainer>> trainersOf;

  EntryRunner(
      List<ScheduledAlgorithm> schedule,
      TrainingLength length,
      RecordedEntries records,
      FailedEntries failures,
      AppliedEntries applied,
      ProgramEnd programEnd,
      Function<Trainer, List<Trainer>> trainersOf) {
    this.schedule = schedule;
    this.length = length;
    this.records = records;
    this.failures = failures;
    this.applied = applied;
    this.programEnd = programEnd;
    this.trainersOf = trainersOf;
  }

  /** What an algorithm sees at an event: the trainers to keep exact once the model is live. */
  private EventState stateAt(Trainer trainer, TrainerState st, Event event) {
    Block block = trainer.getModel().getBlock();
    // A trainer whose store is still empty (before trainer.initialize) has nothing to keep exact:
    // initialize registers the new blocks' parameters like all others.
    boolean live =
        block != null && block.isInitialized() && DjlTrainers.hasRegisteredParameters(trainer);
    return new EventState(
        event,
        trainer,
        live ? trainersOf.apply(trainer) : List.of(),
        st,
        length.plannedEpochs(st),
        length.plannedSteps(st));
  }

  /** Asks an event-driven entry's algorithm whether it runs now, and runs it if so. */
  void runIfMatches(Trainer trainer, TrainerState st, int index, Event event) {
    Algorithm algorithm = st.schedule.entry(index).algorithm();
    if (!algorithm.events().contains(event)) {
      return;
    }
    boolean match;
    try {
      match = algorithm.match(event, stateAt(trainer, st, event));
    } catch (Throwable e) { // whatever the plugin's call throws is its failure: checked ones
      // undeclared, a class its jar lacks, a broken assert, its recursion overflowing the stack
      failures.failed(st, index, event, FailedEntries.pluginError("match", event, algorithm, e), 0);
      return;
    }
    if (match) {
      apply(trainer, st, index, event);
    }
  }

  /**
   * Runs entry {@code index} now: applies its algorithm with the trainer's live state, records what
   * it changed in the model and the surgery log, or reports its failure ({@link FailedEntries}).
   */
  void apply(Trainer trainer, TrainerState st, int index, Event event) {
    if (!programEnd.beginApplying()) {
      return; // onProgramEnd listed it as never run; the program is going away
    }
    int outer = st.applying;
    st.applying = index;
    try {
      applyNow(trainer, st, index, event);
    } finally {
      st.applying = outer;
      programEnd.doneApplying();
    }
  }

  private void applyNow(Trainer trainer, TrainerState st, int index, Event event) {
    ScheduledAlgorithm entry = schedule.get(index);
    Algorithm algorithm = entry.algorithm();
    Model model = trainer.getModel();
    Block block = model.getBlock();
    if (block == null) {
      failures.failed(st, index, event, new IllegalStateException("the model has no block"), 0);
      return;
    }
    // An event-driven entry may change nothing (an average of the weights): asked all the same.
    String unwritable =
        entry.trigger().kind() == Trigger.Kind.EVENTS ? null : records.unwritableRecord(model);
    if (unwritable != null) {
      failures.failed(st, index, event, new IllegalStateException(unwritable), 0);
      return;
    }
    if (!entry.trigger().repeats()
        && !Objects.equals(RecordedEntries.recordOf(model), st.recordSeen)) {
      // Another trainer of this model applied entries since this one started (both were built
      // before either trained): what the record holds now is not applied again.
      st.recordSeen = RecordedEntries.recordOf(model);
      records.skipRecorded(model, st, false);
      if (st.schedule.status(index) == EntryStatus.APPLIED) {
        return;
      }
    }
    int completed = st.passedEpochs();
    int planned = length.plannedEpochs(st);
    if (algorithm.needsTotalEpochs() && planned <= 0) {
      failures.failed(
          st,
          index,
          event,
          new IllegalStateException(
              algorithm.name()
                  + " needs the planned number of epochs, which is unknown: "
                  + length.hint()),
          0);
      return;
    }
    // At an epoch end a loop may have backpropagated batches it did not step yet (after a step,
    // DJL's update has zeroed the gradients: nothing to look for there).
    BeforeRun.PendingGradients pending =
        event == Event.EPOCH_END && entry.trigger().kind() != Trigger.Kind.EVENTS
            ? BeforeRun.PendingGradients.of(block)
            : null;
    EventState state = stateAt(trainer, st, event);
    // What it freezes, looked for where freezing is likely (two parameter walks): not at each
    // run of an event-driven entry, such as a per-batch average of the weights.
    boolean looksForFreezes =
        entry.trigger().kind() != Trigger.Kind.EVENTS || algorithm.needsTotalEpochs();
    BeforeRun before =
        new BeforeRun(completed, planned, pending, st.losses, block, looksForFreezes);
    SurgeryChanges changes;
    // Before the first forward none of the trainers served holds the parameters (a loaded model
    // is initialized already): the engine's reminder then speaks only of other trainers.
    boolean declared =
        NoTrainerRegistered.declare(
            state.trainers().isEmpty() && noneRegistered(trainersOf.apply(trainer)));
    try {
      changes = algorithm.apply(event, state);
    } catch (Throwable e) { // whatever the plugin's call throws is its failure: checked ones
      // undeclared, a class its jar lacks, a broken assert, its recursion overflowing the stack
      long nanos = before.elapsedNanos();
      boolean changed = before.changedModel(model.getBlock());
      if (e instanceof NothingTargetedException && !changed && ranBefore(st, index, model)) {
        // Its earlier runs changed what its include selects (a second BlurPool run meets the
        // layers the first blurred): this run changes nothing, as one without include does, and
        // says so; an include that never selected anything failed the entry's first run.
        changes = nothingLeft(algorithm, e.getMessage(), model.getBlock(), nanos);
      } else {
        failures.failed(
            st,
            index,
            event,
            FailedEntries.pluginError("apply", event, algorithm, e),
            nanos,
            changed);
        return;
      }
    } finally {
      NoTrainerRegistered.restore(declared);
    }
    String untrue;
    try {
      untrue = before.untrueChanges(changes, model.getBlock());
    } catch (RuntimeException e) { // changes it returned that cannot even be read are its failure
      untrue = "its changes cannot be read: " + e;
    }
    if (untrue != null) {
      // A failure of the entry; where it changed the model (unrecordable, and nothing undoes it)
      // training stops whatever on_error says.
      long nanos = before.elapsedNanos();
      failures.failed(
          st,
          index,
          event,
          FailedEntries.pluginError("apply", event, algorithm, new IllegalStateException(untrue)),
          nanos,
          before.changedModel(model.getBlock()));
      return;
    }
    st.schedule.ran(index);
    applied.recordRun(
        st, index, entry, event, model, before.withModelsCounts(changes, model.getBlock()), before);
  }

  private static boolean noneRegistered(List<Trainer> trainers) {
    for (Trainer t : trainers) {
      if (DjlTrainers.hasRegisteredParameters(t)) {
        return false;
      }
    }
    return true;
  }

  /**
   * Whether an entry is a repeating one that ran before: for this trainer, or on this model as its
   * surgery record says (a job restarted from a checkpoint with its schedule, a second trainer).
   */
  private static boolean ranBefore(TrainerState st, int index, Model model) {
    ScheduledAlgorithm entry = st.schedule.entry(index);
    return entry.trigger().repeats()
        && (st.schedule.runs(index) > 0
            || RecordedEntries.holds(RecordedEntries.recordOf(model), entry));
  }

  /** The changes of a run that found nothing left to change under its include, with why. */
  private static SurgeryChanges nothingLeft(
      Algorithm algorithm, String why, Block model, long nanos) {
    String warning =
        "Surgery: "
            + algorithm.name()
            + " did not change any layers this time: "
            + why
            + " (its earlier runs changed what it selects)";
    ListenerLog.logger().warn(warning);
    long parameters = AbstractSurgeryAlgorithm.countParameterScalars(model);
    return new SurgeryChanges(
        algorithm.name(),
        algorithm.hyperparameters(),
        List.of(),
        parameters,
        parameters,
        nanos,
        List.of(warning));
  }
}
