package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.algorithms.AbstractSurgeryAlgorithm;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.NothingTargetedException;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.NoTrainerRegistered;
import dev.surgery.trainer.config.OnError;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * Runs a listener's entries: applies an entry's algorithm through the core engine with the live
 * trainers of the model, records and logs what it changed, and reports a failure as {@code
 * on_error} says (recorded, logged, thrown when training stops). The listener decides when an entry
 * is due; this class does what running it means.
 */
final class EntryRunner {

  private final List<ScheduledAlgorithm> schedule;
  private final OnError onError;
  private final TrainingLength length;
  private final ListenerWarnings warnings;
  private final SurgeryLogWriter surgeryLog;
  private final NotRunEntries notRun;
  private final RecordedEntries records;

  /** Whether the program ended (nothing begins any more), and the applications under way. */
  private final ProgramEnd programEnd;

  /** The live trainers of a trainer's model that a surgery must keep exact, the trainer first. */
  private final Function<Trainer, List<Trainer>> trainersOf;

  EntryRunner(
      List<ScheduledAlgorithm> schedule,
      OnError onError,
      TrainingLength length,
      ListenerWarnings warnings,
      SurgeryLogWriter surgeryLog,
      NotRunEntries notRun,
      RecordedEntries records,
      ProgramEnd programEnd,
      Function<Trainer, List<Trainer>> trainersOf) {
    this.schedule = schedule;
    this.onError = onError;
    this.length = length;
    this.warnings = warnings;
    this.surgeryLog = surgeryLog;
    this.notRun = notRun;
    this.records = records;
    this.programEnd = programEnd;
    this.trainersOf = trainersOf;
  }

  /**
   * A longer announcement after an entry followed a length that only the loop announced (no total
   * configured): a second fit (a loop that calls fit once per epoch) shows that length was not the
   * training's, so what the entry did (froze by the fraction of a wrong total, ran at the wrong
   * step) is wrong. Reported as that entry's failure, before this fit's first step: under on_error
   * fail training stops (and again at every later announcement); under skip it goes on, said once
   * (at ERROR, as skip logs failures), with what the entry did: it ran before the proof came.
   */
  void lengthProvedWrong(TrainerState st, int planned) {
    ScheduledAlgorithm entry = st.lengthFollowedBy;
    String message =
        "Surgery: "
            + entry.describe()
            + " followed a length of "
            + st.lengthFollowed
            + " epochs that the training loop announced, but it now announces "
            + planned
            + " epochs in all: that was not the length of training, so what it did is wrong. A"
            + " program that calls fit more than once (once per epoch, say) must "
            + length.configuredEpochsHint();
    logFailure(
        st,
        entry,
        onError == OnError.FAIL ? SurgeryOutcome.Status.FAILED : SurgeryOutcome.Status.SKIPPED,
        message,
        0);
    surgeryLog.write();
    if (onError == OnError.FAIL) {
      st.stopped =
          new TrainerState.StoppedTraining(
              entry, -1, -1, "when a later fit announced " + planned + " epochs in all");
      ListenerLog.logger().error(message + " (on_error: fail stops training)");
      throw new SurgeryFailedException(
          message + " (on_error: fail stops training; on_error: skip trains on)",
          entry.algorithm().name(),
          st.passedEpochs(),
          null,
          null);
    }
    // Logged as skip logs a failure (an error), but unlike a failed surgery nothing can be put
    // back: the entry ran in an earlier fit, and may have been trained on since.
    String skipped =
        message
            + " (on_error: skip: training goes on with what the entry did, which cannot be undone"
            + " after it ran)";
    warnings.keep(skipped);
    ListenerLog.logger().error(skipped);
    st.lengthFollowedBy = null; // said once
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
      failed(st, index, event, pluginError("match", event, algorithm, e), 0);
      return;
    }
    if (match) {
      apply(trainer, st, index, event);
    }
  }

  /**
   * The trainable parameters holding a gradient that a backward pass left and no optimizer step
   * took (a loop that accumulates gradients over several batches per step, its window open across
   * the epoch end), of all trainable parameters.
   */
  private record PendingGradients(int pending, int trainable) {

    /**
     * Counts them: a reduction per trainable parameter, asked when an entry runs at an epoch end.
     */
    static PendingGradients of(Block block) {
      int trainable = 0;
      int pending = 0;
      if (!block.isInitialized()) {
        return new PendingGradients(0, 0);
      }
      for (Parameter parameter : block.getParameters().values()) {
        if (!parameter.isInitialized() || !parameter.requiresGradient()) {
          continue;
        }
        NDArray array = parameter.getArray();
        if (!array.hasGradient()) {
          continue; // frozen
        }
        trainable++;
        try (NDArray gradient = array.getGradient();
            NDArray nonZero = gradient.any()) {
          if (nonZero.getBoolean()) {
            pending++;
          }
        }
      }
      return new PendingGradients(pending, trainable);
    }
  }

  /**
   * Warns that a surgery that changed blocks ran with gradients pending: parameters it keeps keep
   * theirs, those it replaces take theirs away, and new ones start without, so the next step mixes
   * gradients of two models. Once per entry and trainer.
   */
  private void warnPendingGradients(ScheduledAlgorithm entry, PendingGradients pending) {
    warnings.warn(
        "Surgery: "
            + entry.describe()
            + " ran with gradients pending on "
            + pending.pending()
            + " of "
            + pending.trainable()
            + " trainable parameters (a backward pass since the last trainer.step(), such as"
            + " a gradient-accumulation window open across the epoch end): parameters it kept"
            + " keep theirs, parameters it replaced lost theirs and new ones start without, so"
            + " the next step mixes gradients of the model before and after the surgery. Step"
            + " (or zero the gradients) before the epoch ends, or schedule the entry by step");
  }

  /** Wraps a plugin's exception so that the message names the plugin, the call and its jar. */
  private static RuntimeException pluginError(
      String call, Event event, Algorithm algorithm, Throwable e) {
    if (e instanceof SurgeryException s) {
      return s; // the engine's own error, which names the block
    }
    String origin = Algorithms.origin(algorithm.name());
    return new IllegalStateException(
        "algorithm '"
            + algorithm.name()
            + "' ("
            + algorithm.getClass().getName()
            + (origin == null || origin.equals("built-in") ? "" : ", from " + origin)
            + ") threw in "
            + call
            + "("
            + event.configName()
            + "): "
            + e
            + (e.getMessage() == null && e.getCause() != null
                ? " caused by " + e.getCause() // ExceptionInInitializerError: the initializer's
                : ""),
        e);
  }

  /**
   * Runs entry {@code index} now: applies its algorithm with the trainer's live state, records what
   * it changed in the model and the surgery log, or reports its failure (see {@link #failed}).
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
      failed(st, index, event, new IllegalStateException("the model has no block"), 0);
      return;
    }
    // An event-driven entry may change nothing (an average of the weights): asked all the same.
    String unwritable =
        entry.trigger().kind() == Trigger.Kind.EVENTS ? null : records.unwritableRecord(model);
    if (unwritable != null) {
      failed(st, index, event, new IllegalStateException(unwritable), 0);
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
      failed(
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
    PendingGradients pending =
        event == Event.EPOCH_END && entry.trigger().kind() != Trigger.Kind.EVENTS
            ? PendingGradients.of(block)
            : null;
    EventState state = stateAt(trainer, st, event);
    Double lossBefore = st.losses.meanBefore();
    int lossBeforeBatches = st.losses.beforeBatches();
    // The blocks as they were: a plugin may commit a surgery and fail after it, which no rollback
    // of ours can undo; the failure must then not claim the model is unchanged.
    List<Block> blocksBefore = blocksOf(block);
    // What it freezes, looked for where freezing is likely (two parameter walks): not at each
    // run of an event-driven entry, such as a per-batch average of the weights.
    boolean looksForFreezes =
        entry.trigger().kind() != Trigger.Kind.EVENTS || algorithm.needsTotalEpochs();
    FreezeProvenance freezes =
        looksForFreezes ? FreezeProvenance.of(block, CarriedRecords.frozenOrNull(block)) : null;
    long start = System.nanoTime();
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
      long nanos = System.nanoTime() - start;
      boolean changed = changedModel(blocksBefore, freezes, model.getBlock());
      if (e instanceof NothingTargetedException && !changed && ranBefore(st, index, model)) {
        // Its earlier runs changed what its include selects (a second BlurPool run meets the
        // layers the first blurred): this run changes nothing, as one without include does, and
        // says so; an include that never selected anything failed the entry's first run.
        changes = nothingLeft(algorithm, e.getMessage(), model.getBlock(), nanos);
      } else {
        failed(st, index, event, pluginError("apply", event, algorithm, e), nanos, changed);
        return;
      }
    } finally {
      NoTrainerRegistered.restore(declared);
    }
    String untrue;
    try {
      untrue = untrueChanges(changes, blocksBefore, freezes, model.getBlock());
    } catch (RuntimeException e) { // changes it returned that cannot even be read are its failure
      untrue = "its changes cannot be read: " + e;
    }
    if (untrue != null) {
      // A failure of the entry; where it changed the model (unrecordable, and nothing undoes it)
      // training stops whatever on_error says.
      long nanos = System.nanoTime() - start;
      failed(
          st,
          index,
          event,
          pluginError("apply", event, algorithm, new IllegalStateException(untrue)),
          nanos,
          changedModel(blocksBefore, freezes, model.getBlock()));
      return;
    }
    st.schedule.ran(index);
    // What it froze is frozen again for a later trainer of the model: DJL's newTrainer unfreezes
    // every parameter of a model that was loaded, and the recorded entry is not applied again.
    // Not what it froze because the program had frozen the layers it replaced (FreezeProvenance).
    Block after = model.getBlock();
    List<String> bornFrozen = null;
    if (freezes != null && after != null) {
      Set<Parameter> kept = freezes.keptAfter(after);
      CarriedRecords.addFrozen(after, kept);
      bornFrozen = freezes.bornKeptNames(after, kept);
    }
    if (changes == null) {
      // No structural change (for example an average of the weights): nothing to record; but a
      // run the program's end listed as cut short did finish, and the log on disk must say so.
      if (forgetNotRunIfEnded(st)) {
        surgeryLog.write();
      }
      return;
    }
    if (pending != null
        && pending.pending() > 0
        && !changes.isEmpty()
        // Freezing replaces no block: the frozen parameters' gradients are simply never applied.
        && !sameBlocks(blocksBefore, blocksOf(model.getBlock()))
        && st.pendingWarned.add(index)) {
      warnPendingGradients(entry, pending);
    }
    // Logged by the algorithm already; listed with the listener's own.
    changes.warnings().forEach(warnings::keep);
    long nanos = changes.nanos() > 0 ? changes.nanos() : System.nanoTime() - start;
    PendingOutcome applied =
        new PendingOutcome(
            st.ordinal,
            entry,
            algorithm.settings(),
            completed,
            st.stepsTaken(),
            SurgeryOutcome.Status.APPLIED,
            changes,
            null,
            nanos,
            lossBefore,
            lossBeforeBatches);
    forgetNotRunIfEnded(st);
    surgeryLog.add(applied);
    if (entry.trigger().kind() != Trigger.Kind.EVENTS
        && !changes.isEmpty()
        && !sameBlocks(blocksBefore, blocksOf(model.getBlock()))) {
      // Warned of at the trainer's training end if no batch or step trains after it (an outside
      // probe: an 'epoch: 2' entry of a 2-epoch run changed the model after its last validation,
      // and DJL's EasyHpo example saved it with the accuracy of the model before the change).
      st.changedSinceTraining.add(entry.describe());
    }
    if (length.followsAnnouncement(st, entry) && !changes.isEmpty()) {
      // (A run that changed nothing under the announced length changes nothing under a longer one:
      // layer_freezing freezes a smaller fraction of a longer training.)
      st.lengthFollowedBy = entry;
      st.lengthFollowed = planned;
    }
    st.losses.awaitAfter(applied);
    // A quiet freeze (empty changes) is a change too: recorded, so that a checkpoint replays it (a
    // review), where the entry's freezes are looked at.
    boolean froze = freezes != null && after != null && freezes.freezesChanged(after);
    if (!changes.isEmpty() || !entry.trigger().repeats() || froze) {
      // A repeating or event-driven entry that changed nothing this time leaves no record: each
      // record rewrites the property and is replayed at every load. What an algorithm's state
      // lists is the record, so such a run is not listed there either.
      if (records.record(
          model,
          algorithm,
          completed,
          planned,
          changes,
          bornFrozen,
          st.stepsTaken(),
          entry.trigger().describe())) {
        st.reports.add(changes);
      }
      st.recordSeen = RecordedEntries.recordOf(model);
      st.wrote(st.recordSeen);
    }
    if (ListenerLog.logger().isInfoEnabled()) {
      // An epoch entry says which epoch; any other its schedule (a step entry ran "at epoch 0").
      String when =
          entry.byEpoch() || entry.trigger().kind() == Trigger.Kind.EVERY_EPOCHS
              ? "at epoch " + completed
              : entry.trigger().describe();
      String line = logLine(algorithm.name(), when, changes, nanos);
      ListenerLog.logger()
          .info(
              entry.byEpoch()
                  ? line
                  : line + " (" + event.configName() + ", step " + st.stepsTaken() + ")");
    }
    surgeryLog.writeSoon();
  }

  /**
   * An application that the program's end did not wait for to the finish (it outlasted {@link
   * ProgramEnd#WAIT_MILLIS}) was listed as not run: it ran after all, and is listed once, as what
   * it did.
   */
  private boolean forgetNotRunIfEnded(TrainerState st) {
    if (programEnd.ended()) {
      surgeryLog.forgetNotRun(st.ordinal, NotRunEntries.ENDED_WHILE_APPLIED);
      return true;
    }
    return false;
  }

  private static boolean noneRegistered(List<Trainer> trainers) {
    for (Trainer t : trainers) {
      if (DjlTrainers.hasRegisteredParameters(t)) {
        return false;
      }
    }
    return true;
  }

  /** The blocks of a tree in pre-order, by identity. */
  private static List<Block> blocksOf(Block root) {
    List<Block> blocks = new ArrayList<>();
    if (root == null) {
      return blocks;
    }
    Deque<Block> todo = new ArrayDeque<>();
    todo.push(root);
    while (!todo.isEmpty()) {
      Block b = todo.pop();
      blocks.add(b);
      List<Block> children = BlockPaths.children(b).values(); // live: no copy per block
      for (int i = children.size() - 1; i >= 0; i--) {
        todo.push(children.get(i));
      }
    }
    return blocks;
  }

  /**
   * Why the changes an algorithm returned cannot be recorded as they are, or null: none while the
   * model's blocks or freezes changed (a checkpoint would replay nothing, and load into the
   * original architecture); blocks replaced while none is named (its record and report would say it
   * changed nothing); a layer said frozen that is not (no checkpoint of the run would load). The
   * record names the entry's algorithm whatever the changes say, so a plugin may return the changes
   * of a built-in it delegates to. Freezes are looked at where the entry's are ({@code freezes} not
   * null).
   */
  private static String untrueChanges(
      SurgeryChanges changes, List<Block> blocksBefore, FreezeProvenance freezes, Block now) {
    if (changes == null) {
      if (!sameBlocks(blocksBefore, blocksOf(now))) {
        return "it changed the model's blocks but returned no SurgeryChanges, so the change cannot"
            + " be recorded for a checkpoint";
      }
      if (freezes != null && freezes.freezesChanged(now)) {
        return "it froze or unfroze parameters but returned no SurgeryChanges, so the change"
            + " cannot be recorded for a checkpoint (a freeze that names no layer is recorded with"
            + " empty changes)";
      }
      return null;
    }
    for (SurgeryChanges.Change c : changes.changes()) {
      if (c == null || c.path() == null || c.oldType() == null || c.newType() == null) {
        return "its changes hold one without a block path or a type: " + c;
      }
    }
    Map<String, String> named = SurgeryRecord.changesOf(changes);
    // (Changes naming a replacement that did not happen are recorded as they say: their replay
    // does the same, and the checkpoint loads.)
    // The tree walked again only where no replacement is named (a run that names one changed it).
    if (FreezeChanges.structural(named).isEmpty() && !sameBlocks(blocksBefore, blocksOf(now))) {
      return "it changed the model's blocks but its changes name no replaced block, so its record"
          + " and report would say it replaced nothing";
    }
    String notFrozen = FreezeChanges.firstNotFrozen(now, named);
    if (notFrozen != null) {
      return "its changes say it froze " + notFrozen + ", so no checkpoint of the run would load";
    }
    String nowhere = firstPlaceNowhere(now, FreezeChanges.structural(named));
    if (nowhere != null) {
      return "its changes name "
          + nowhere
          + ", which is no block of the model, so its record and report would describe another"
          + " model";
    }
    return null;
  }

  /**
   * The first replaced place that the model has nowhere: not after the run (by its key, or by its
   * number where the replacement renamed the key), and not below another place the changes name
   * (whose replacement took its subtree away). Null when every place is found.
   */
  private static String firstPlaceNowhere(Block now, Map<String, String> structural) {
    for (String place : structural.keySet()) {
      if (StaleRecords.resolveRenamed(now, place) != null) {
        continue;
      }
      boolean belowAnother =
          structural.keySet().stream().anyMatch(other -> place.startsWith(other + "/"));
      if (!belowAnother) {
        return place;
      }
    }
    return null;
  }

  /**
   * Whether an algorithm changed the model: its blocks, or (where the entry's freezes are looked
   * at) which parameters are frozen.
   */
  private static boolean changedModel(
      List<Block> blocksBefore, FreezeProvenance freezes, Block now) {
    return !sameBlocks(blocksBefore, blocksOf(now))
        || (freezes != null && freezes.freezesChanged(now));
  }

  private static boolean sameBlocks(List<Block> a, List<Block> b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (int i = 0; i < a.size(); i++) {
      if (a.get(i) != b.get(i)) {
        return false;
      }
    }
    return true;
  }

  /** Records and reports a failed entry that had not changed the model. */
  void failed(TrainerState st, int index, Event event, RuntimeException e, long nanos) {
    failed(st, index, event, e, nanos, false);
  }

  /**
   * Records an entry that stops training before its first step because the program did not do what
   * it needs (report the trainer's initialization): failed in the surgery log, and named as the
   * reason of the entries it keeps from running. The caller throws.
   */
  void stopsTrainingBeforeItStarts(TrainerState st, int index, String cause) {
    ScheduledAlgorithm entry = schedule.get(index);
    logFailure(st, entry, SurgeryOutcome.Status.FAILED, cause, 0);
    st.schedule.failed(index, false);
    st.stopped = new TrainerState.StoppedTraining(entry, -1, -1, "before the first step");
    surgeryLog.write();
  }

  /** Adds a failed or skipped run of an entry to the surgery log, with the losses before it. */
  private void logFailure(
      TrainerState st,
      ScheduledAlgorithm entry,
      SurgeryOutcome.Status status,
      String cause,
      long nanos) {
    surgeryLog.add(
        new PendingOutcome(
            st.ordinal,
            entry,
            entry.algorithm().settings(),
            st.passedEpochs(),
            st.stepsTaken(),
            status,
            null,
            cause,
            nanos,
            st.losses.meanBefore(),
            st.losses.beforeBatches()));
  }

  /**
   * Records and reports a failed entry. {@code modelChanged}: the algorithm failed after a surgery
   * of its own had committed, so the model is changed, neither undone nor recorded; training on
   * (on_error: skip) would train a model no checkpoint record describes, so training stops whatever
   * on_error says.
   */
  private void failed(
      TrainerState st,
      int index,
      Event event,
      RuntimeException e,
      long nanos,
      boolean modelChanged) {
    if (programEnd.ended() && st.applying != index) {
      return; // as in apply; an application under way at the end is reported as it ends
    }
    forgetNotRunIfEnded(st);
    ScheduledAlgorithm entry = schedule.get(index);
    int completed = st.passedEpochs();
    String path = e instanceof SurgeryException se ? se.getBlockPath() : null;
    String cause = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    String where = path == null || cause.contains(path) ? "" : " at block " + path;
    String at =
        entry.byEpoch() ? "" : " at " + event.configName() + " after " + st.stepsTaken() + " steps";
    boolean jvmFailing = jvmFailing(e.getCause());
    boolean stop = stops(modelChanged, jvmFailing);
    SurgeryOutcome.Status status =
        stop ? SurgeryOutcome.Status.FAILED : SurgeryOutcome.Status.SKIPPED;
    logFailure(st, entry, status, cause, nanos);
    st.schedule.failed(index, !stop);
    if (stop) {
      // Entries after it in the schedule due at the same moment (this epoch end, this step) never
      // get their turn; the others are not due yet. (A stop before training, or at a fit's start,
      // has no such moment.)
      st.stopped =
          new TrainerState.StoppedTraining(
              entry,
              event == Event.EPOCH_END ? completed : -1,
              event == Event.BATCH_END ? st.steps : -1,
              event == Event.EPOCH_END
                  ? "at the end of epoch " + completed
                  : event == Event.BATCH_END
                      ? "at step " + st.steps
                      : st.steps == 0 ? "before the first step" : "after " + st.steps + " steps");
      notRun.listRepeatsStoppedAt(st, index);
    }
    if (stop) {
      surgeryLog.write();
      String state =
          modelChanged
              ? ". That change can be neither undone nor recorded for a checkpoint, so training"
                  + " stops whatever on_error says; an algorithm must fail before it changes the"
                  + " model or make its changes in one engine call"
              : jvmFailing
                  ? ". "
                      + asBefore(entry.algorithm())
                      + "; the JVM is failing, so training stops whatever on_error says"
                  : ". "
                      + asBefore(entry.algorithm())
                      + " (on_error: fail stops training; use on_error: skip to train on without"
                      + " it)";
      throw new SurgeryFailedException(
          "Surgery: "
              + entry.describe()
              + (modelChanged
                  ? " failed after it had changed the model (its blocks or frozen parameters"
                      + " differ from before)"
                  : " failed")
              + at
              + where
              + ": "
              + cause
              + state,
          entry.algorithm().name(),
          completed,
          path,
          e);
    }
    ListenerLog.logger()
        .error(
            "Surgery: {} failed{}{} and was skipped (on_error: skip), it does not run again and {}:"
                + " {}",
            entry.describe(),
            at,
            where,
            isPlugin(entry.algorithm())
                ? "the model's blocks and frozen layers are unchanged (values it wrote into"
                    + " parameter arrays are not undone)"
                : "the model is unchanged",
            cause);
    // The stack trace helps only when debugging the algorithm itself.
    ListenerLog.logger().debug("Surgery: failure of {}", entry.describe(), e);
    surgeryLog.write();
  }

  /**
   * What a failure that changed no block leaves, in words: the whole model as it was for a built-in
   * algorithm, whose arrays are its engine calls' to roll back; for a plugin its blocks and frozen
   * layers, since values it wrote into the model's arrays itself are nothing the listener sees.
   */
  private static String asBefore(Algorithm algorithm) {
    return isPlugin(algorithm)
        ? "The model's blocks and frozen layers are as they were before "
            + algorithm.name()
            + " (values it wrote into parameter arrays itself are not undone)"
        : "The model is as it was before " + algorithm.name();
  }

  private static boolean isPlugin(Algorithm algorithm) {
    return !"built-in".equals(Algorithms.origin(algorithm.name()));
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

  /**
   * Whether a failure stops training (or a load): where on_error says so, and whatever it says
   * where the entry changed the model before it failed (nothing undoes or records that change) or
   * the JVM is failing.
   */
  private boolean stops(boolean modelChanged, boolean jvmFailing) {
    return onError == OnError.FAIL || modelChanged || jvmFailing;
  }

  /**
   * Whether a plugin's failure is the JVM's (out of memory, an internal error): no failure of the
   * entry alone that training could go on from. A stack overflow is the plugin's own recursion.
   */
  private static boolean jvmFailing(Throwable cause) {
    return cause instanceof VirtualMachineError && !(cause instanceof StackOverflowError);
  }

  /**
   * Runs the event-driven entries that take a model's load event ({@link Event#BEFORE_LOAD}, {@link
   * Event#AFTER_LOAD}) when this listener serves no trainer of the model: nothing is recorded (no
   * trainer trains it), and a failure stops the load where it would stop training, for the same
   * reasons, told in the same order.
   *
   * @param event the load event
   * @param model the model being loaded
   * @throws SurgeryFailedException when a failure stops the load
   */
  void runAtModelEvent(Event event, Model model) {
    EventState state = new EventState(event, model);
    for (ScheduledAlgorithm entry : schedule) {
      Algorithm algorithm = entry.algorithm();
      if (entry.trigger().kind() != Trigger.Kind.EVENTS || !algorithm.events().contains(event)) {
        continue;
      }
      String call = "match";
      // Walked only for an entry about to apply, as in training. Only whether the frozen set
      // changed matters here (nothing is recorded at a load): no provenance of the freezes.
      List<Block> blocksBefore = null;
      Set<Parameter> frozenBefore = null;
      try {
        if (algorithm.match(event, state)) {
          call = "apply";
          Block block = model.getBlock();
          blocksBefore = blocksOf(block);
          frozenBefore = block == null ? Set.of() : ParameterSets.frozen(block);
          algorithm.apply(event, state);
        }
      } catch (Throwable e) { // whatever the plugin's call throws is its failure: checked ones
        // undeclared, a class its jar lacks, a broken assert, its recursion overflowing the stack
        RuntimeException error = pluginError(call, event, algorithm, e);
        // As in training: a change no rollback undoes, loaded on under skip, would be a model that
        // neither the program nor a record knows.
        Block now = model.getBlock();
        boolean changed =
            blocksBefore != null
                && (!sameBlocks(blocksBefore, blocksOf(now))
                    || !(now == null ? Set.of() : ParameterSets.frozen(now)).equals(frozenBefore));
        boolean jvm = jvmFailing(e) || jvmFailing(error.getCause());
        String message = "Surgery: " + entry.describe() + " failed: " + error.getMessage();
        if (stops(changed, jvm)) {
          throw new SurgeryFailedException(
              message
                  + (changed
                      ? " (it failed after it had changed the model (its blocks or frozen"
                          + " parameters), which is neither undone nor recorded: loading stops"
                          + " whatever on_error says)"
                      : jvm
                          ? " (the JVM is failing: loading stops whatever on_error says)"
                          : " (on_error: fail stops here; use on_error: skip to go on without it)"),
              algorithm.name(),
              0,
              null,
              error);
        }
        ListenerLog.logger().error("{} (on_error: skip, loading goes on)", message);
      }
    }
  }

  /**
   * Formats the INFO line with the entry's moment as its schedule says it, e.g. {@code Surgery:
   * blurpool at epoch 1 replaced 4 blocks (...)} or {@code ... at step 3 ...}.
   */
  static String logLine(String algorithm, String when, SurgeryChanges changes, long nanos) {
    StringBuilder sb = new StringBuilder("Surgery: ").append(algorithm).append(' ').append(when);
    int n = changes.changes().size();
    // A freeze changes no block (its changes read "Conv2d->frozen Conv2d"): it froze layers.
    boolean froze =
        n > 0 && changes.changes().stream().allMatch(c -> c.newType().startsWith("frozen "));
    sb.append(froze ? " froze " : " replaced ");
    if (n == 0) {
      sb.append("no blocks");
    } else {
      sb.append(n)
          .append(froze ? (n == 1 ? " layer (" : " layers (") : n == 1 ? " block (" : " blocks (");
      sb.append(
          changes.countsByType().entrySet().stream()
              .map(e -> e.getKey() + " x" + e.getValue())
              .collect(Collectors.joining(", ")));
      sb.append(')');
    }
    if (changes.parametersBefore() == SurgeryChanges.UNKNOWN_PARAMETERS
        || changes.parametersAfter() == SurgeryChanges.UNKNOWN_PARAMETERS) {
      // Before Trainer.initialize no parameter has a shape: the count is unknown, not 0.
      sb.append(", parameters unknown (model not initialized)");
    } else {
      sb.append(
          String.format(
              Locale.ROOT,
              ", parameters %,d -> %,d",
              changes.parametersBefore(),
              changes.parametersAfter()));
    }
    sb.append(String.format(Locale.ROOT, ", %d ms", Math.round(nanos / 1e6)));
    return sb.toString();
  }
}
