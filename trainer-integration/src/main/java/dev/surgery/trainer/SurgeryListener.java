package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListenerAdapter;
import com.google.gson.JsonObject;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.trainer.config.OnError;
import dev.surgery.trainer.config.ScheduleComposition;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Applies scheduled surgery algorithms to a model while a DJL {@link Trainer} trains it.
 *
 * <p>Register it with {@code DefaultTrainingConfig.addTrainingListeners(...)}. Each entry of the
 * schedule names an algorithm and the number of completed epochs after which it runs:
 *
 * <ul>
 *   <li>epoch 0 runs in {@link #onTrainingBegin}, which DJL fires from the {@code Trainer}
 *       constructor, usually before {@code trainer.initialize}: the surgery is then structural and
 *       {@code initialize} initializes the new blocks. An epoch-0 algorithm that needs an
 *       initialized model ({@link Algorithm#needsInitializedModel()}) waits for {@link
 *       #onInitialized}, which the program must call right after {@code trainer.initialize} (the
 *       agent does it by itself); training refuses to start while it waits. The epoch-0 entries
 *       after it in the schedule wait with it, so that they still run in schedule order.
 *   <li>epoch k &gt; 0 runs in the k-th {@link #onEpoch}, between steps and outside any gradient
 *       collector, through the core engine with the live trainer, so its parameter store and
 *       optimizer state stay exact.
 * </ul>
 *
 * <p>One instance may serve several trainers, each with its own epoch count; per-trainer state is
 * keyed weakly by the trainer and dropped at {@link #onTrainingEnd}. Every application is logged at
 * INFO, recorded in the model's {@code surgery} property (so that {@link SurgeryCheckpoint#load}
 * can replay it), and written to the surgery log (a JSON file) when one is configured. Entries
 * whose epoch passes unseen (a custom loop that never notifies {@code onEpoch}) or that never run
 * are reported as warnings, through SLF4J and {@link #getWarnings()}. A program that may end before
 * its trainers are closed ({@code System.exit}, an uncaught exception) calls {@link
 * #onProgramEnd()} from a shutdown hook (the agent does), so that the surgery log says it was cut
 * short. A trainer's training ends once: later training events for it are refused.
 *
 * <p>On a model loaded from a checkpoint: when every record in its {@code surgery} property matches
 * an entry of the schedule (a job restarted with its schedule), the matched one-shot entries are
 * not applied again; and what the replayed record froze is frozen again when the new trainer starts
 * ({@code Model.newTrainer} unfreezes a loaded model).
 *
 * <p>Algorithms that follow the planned length of training ({@link Algorithm#needsTotalEpochs()},
 * such as layer freezing) get it from the training loop when it is known ({@link #onPlannedEpochs},
 * which the agent calls when {@code EasyTrain.fit} starts; a configured total holds against a
 * shorter announcement), from the configured number otherwise ({@code total_epochs} in YAML, {@link
 * Builder#optTotalEpochs}); without either they fail with an error that names the setting.
 *
 * <p><b>Events.</b> Any driver reports training {@link Event}s through the one entry point {@link
 * #onEvent(Event, Trainer)}: the drop-in {@link SurgeryTrain#fit} reports every event at its exact
 * point, a hand-written loop calls {@code listener.onEvent(Event.BATCH_END, trainer)} after {@code
 * trainer.step()} (and the others where it has them), and the agent calls it from its advice. A
 * listener is built for a driver that can report a given set of events ({@link
 * Builder#optObservableEvents}, {@link #fromConfig(SurgeryConfig, Set)}); an entry whose trigger or
 * algorithm needs an event outside that set is refused when the listener is built, with the entry's
 * {@code file:line:column}, never skipped silently. DJL's own callbacks make {@link
 * #CALLBACK_EVENTS}. Entries due at one event run in schedule (YAML) order.
 */
public final class SurgeryListener extends TrainingListenerAdapter {

  /**
   * The model property that records applied surgery, as a JSON array; a record longer than a DJL
   * property can hold (65,535 bytes) continues in {@code surgery.part2} ... with the count in
   * {@code surgery.parts}: read a saved one whole with {@link SurgeryCheckpoint#readRecord}.
   */
  public static final String PROPERTY = "surgery";

  /** How many batches the loss means before and after an application average. */
  public static final int LOSS_WINDOW = 20;

  /**
   * The events DJL's {@code TrainingListener} callbacks alone report: {@link Event#EPOCH_END}
   * ({@code onEpoch}). {@code onTrainingBatch} fires before {@code Trainer.step()}, so it reports
   * no exact point, and {@code onTrainingBegin} fires from the {@code Trainer} constructor, before
   * initialization (it runs epoch-0 entries, which need no event). The default for {@link
   * #fromYaml(Path)}, {@link #fromConfig(SurgeryConfig)} and {@link #builder()}.
   */
  public static final Set<Event> CALLBACK_EVENTS =
      Collections.unmodifiableSet(EnumSet.of(Event.EPOCH_END));

  private final List<ScheduledAlgorithm> schedule;
  private final OnError onError;
  private final Path reportPath;
  private final TrainingLength length;
  private final Set<Event> observable;

  /**
   * Whether the driver reports no batch end (DJL's callbacks alone): the listener then counts an
   * epoch's batches itself. Decided once, off the per-batch path.
   */
  private final boolean countsBatchesInEpoch;

  /**
   * Whether an entry is event-driven: it may run at any batch, so every batch's loss is kept for
   * {@code State.recentLosses()}.
   */
  private final boolean eventDriven;

  /** The program's end as applications see it: none begins after it, one under way is awaited. */
  private final ProgramEnd programEnd = new ProgramEnd();

  private final ListenerWarnings warnings = new ListenerWarnings();
  private final LengthWarnings lengthWarnings;
  private final SurgeryLogWriter surgeryLog;
  private final NotRunEntries notRun;
  private final EndOfTraining ends;
  private final TrainerRegistry registry;
  private final LoadEventEntries loadEvents;
  private final StartChecks startChecks;
  private final DueEntries due;
  private final EpochEnds epochEnds;
  private final TrainingStarts start;

  private SurgeryListener(
      List<ScheduledAlgorithm> schedule,
      OnError onError,
      Path reportPath,
      int totalEpochs,
      String totalEpochsHint,
      long totalSteps,
      Set<Event> observable) {
    // Fail at start-up, naming the DJL field, rather than in the middle of a training run.
    DjlInternals.verify();
    this.schedule = List.copyOf(schedule);
    this.onError = onError;
    this.reportPath = reportPath;
    this.surgeryLog = new SurgeryLogWriter(reportPath, this::notReachedYet, warnings);
    this.length = new TrainingLength(this.schedule, totalEpochs, totalSteps, totalEpochsHint);
    boolean hasDurations =
        this.schedule.stream().anyMatch(e -> e.trigger().kind() == Trigger.Kind.DURATION);
    this.lengthWarnings = new LengthWarnings(hasDurations, length, warnings);
    this.notRun = new NotRunEntries(warnings, surgeryLog, length);
    RecordedEntries records = new RecordedEntries(warnings, surgeryLog);
    this.registry =
        new TrainerRegistry(
            this.schedule,
            observable.contains(Event.BATCH_END),
            this,
            records,
            notRun,
            surgeryLog,
            warnings);
    FailedEntries failures =
        new FailedEntries(this.schedule, onError, length, warnings, surgeryLog, notRun, programEnd);
    this.loadEvents = new LoadEventEntries(this.schedule, failures);
    EntryRunner runner =
        new EntryRunner(
            this.schedule,
            length,
            records,
            failures,
            new AppliedEntries(warnings, surgeryLog, records, notRun, length, programEnd),
            programEnd,
            registry::trainersOf);
    this.observable = Collections.unmodifiableSet(eventSet(observable));
    this.ends = new EndOfTraining(registry, records, notRun, surgeryLog, warnings, programEnd);
    this.startChecks =
        new StartChecks(this, runner, failures, notRun, length, this.observable, warnings);
    this.due = new DueEntries(runner, failures, notRun, length);
    this.countsBatchesInEpoch = !observable.contains(Event.BATCH_END);
    this.epochEnds =
        new EpochEnds(
            registry,
            warnings,
            lengthWarnings,
            due,
            length,
            surgeryLog,
            programEnd,
            this.observable,
            hasDurations);
    this.start =
        new TrainingStarts(
            registry,
            startChecks,
            due,
            length,
            failures,
            lengthWarnings,
            this::onTrainingEnd,
            surgeryLog);
    this.eventDriven =
        this.schedule.stream().anyMatch(e -> e.trigger().kind() == Trigger.Kind.EVENTS);
  }

  /**
   * Creates a builder for a schedule written in code.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Builds a listener from a YAML config file (see {@link SurgeryConfig} for the format).
   *
   * @param config the YAML file
   * @return the listener
   * @throws dev.surgery.trainer.config.SurgeryConfigException listing every problem in the file
   */
  public static SurgeryListener fromYaml(Path config) {
    Objects.requireNonNull(config, "config must not be null");
    return fromConfig(SurgeryConfig.load(config));
  }

  /**
   * Builds a listener from a YAML config file for a driver that reports the given events.
   *
   * @param config the YAML file
   * @param observable the events the driver reports through {@link #onEvent} or DJL's callbacks,
   *     for example {@link SurgeryTrain#EVENTS} or {@code EnumSet.allOf(Event.class)}
   * @return the listener
   * @throws dev.surgery.trainer.config.SurgeryConfigException listing every problem in the file,
   *     including entries that need an event the driver cannot report (with file:line:column)
   */
  public static SurgeryListener fromYaml(Path config, Set<Event> observable) {
    Objects.requireNonNull(config, "config must not be null");
    return fromConfig(SurgeryConfig.load(config), observable);
  }

  /**
   * Builds a listener from a validated config, for DJL's callbacks alone ({@link
   * #CALLBACK_EVENTS}).
   *
   * @param config the config
   * @return the listener
   * @throws dev.surgery.trainer.config.SurgeryConfigException for entries that need events DJL's
   *     callbacks do not report
   */
  public static SurgeryListener fromConfig(SurgeryConfig config) {
    Objects.requireNonNull(config, "config must not be null");
    return fromConfig(config, CALLBACK_EVENTS);
  }

  /**
   * Builds a listener from a validated config for a driver that reports the given events.
   *
   * @param config the config
   * @param observable the events the driver reports
   * @return the listener
   * @throws dev.surgery.trainer.config.SurgeryConfigException for each entry that needs an event
   *     outside {@code observable}, at the entry's file:line:column
   */
  public static SurgeryListener fromConfig(SurgeryConfig config, Set<Event> observable) {
    Objects.requireNonNull(config, "config must not be null");
    config.requireObservable(observable);
    return new SurgeryListener(
        config.getAlgorithms(),
        config.getOnError(),
        config.getReportPath().orElse(null),
        config.getTotalEpochs(),
        "set 'total_epochs: <n>' at the top level of " + config.getFileName(),
        config.getTotalSteps(),
        observable);
  }

  /**
   * Returns the events this listener's driver reports; entries needing others were refused.
   *
   * @return the observable events
   */
  public Set<Event> getObservableEvents() {
    return observable;
  }

  /**
   * Reports a training event: the one entry point every driver calls (the drop-in {@link
   * SurgeryTrain#fit}, a hand-written loop, the agent's advice). Entries and event-driven
   * algorithms due at the event run now, in schedule order. Call it at the exact point the event
   * names (see {@link Event}); in particular {@link Event#BATCH_END} right after {@code
   * trainer.step()}, outside any gradient collector.
   *
   * <p>{@link Event#INIT} is the same as {@link #onInitialized}, and {@link Event#EPOCH_END} the
   * same as DJL's {@link #onEpoch}: a driver that reports both for one epoch counts it once. The
   * batch loss that {@link dev.surgery.core.events.State#recentLosses()} shows comes from DJL's
   * {@code onTrainingBatch} callback, which {@code EasyTrain.trainBatch} and {@link
   * SurgeryTrain#trainBatch} fire.
   *
   * @param event the event
   * @param trainer the trainer it happened to
   * @throws SurgeryFailedException when an algorithm fails and {@code on_error} is {@code fail},
   *     and whatever {@code on_error} says when a failing algorithm had changed the model or the
   *     JVM is failing (out of memory)
   */
  public void onEvent(Event event, Trainer trainer) {
    boolean modelEvent = event == Event.BEFORE_LOAD || event == Event.AFTER_LOAD;
    if (modelEvent && registry.endedAndGone(trainer)) {
      // A load into the model of a trainer that was closed: the model's event, not a training one.
      onEvent(event, trainer.getModel());
      return;
    }
    switch (event) {
      case INIT:
        start.initialized(trainer);
        return;
      case EPOCH_END:
        epochEnds.ended(trainer, false);
        return;
      default:
        break;
    }
    TrainerState st = registry.state(trainer);
    if (event == Event.BATCH_START
        || event == Event.AFTER_FORWARD
        || event == Event.AFTER_BACKWARD
        || event == Event.BATCH_END) {
      st.batchAfterEpochEnd();
    }
    switch (event) {
      case EPOCH_START:
        st.batchInEpoch = 0;
        st.epochJustEnded = false;
        break;
      case BATCH_START:
        st.epochJustEnded = false;
        st.trainedSinceEpochEnd = true;
        break;
      case AFTER_FORWARD:
      case AFTER_BACKWARD:
        st.trainedSinceEpochEnd = true;
        break;
      case BATCH_END:
        st.trained(warnings);
        st.trainedBatch();
        st.epochJustEnded = false;
        st.trainedSinceEpochEnd = true;
        st.steps++;
        break;
      default:
        break;
    }
    due.atEvent(trainer, st, event);
    if (event == Event.BATCH_END) {
      if (!countsBatchesInEpoch) {
        // A listener built for DJL's callbacks alone counted this batch in onTrainingBatch
        // already (SurgeryTrain.fit reports its events to such a listener too).
        st.batchInEpoch++;
      }
      lengthWarnings.pastPlannedSteps(st);
      surgeryLog.flushIfDue();
    } else if (event == Event.FIT_END) {
      surgeryLog.flush(); // what the fit applied is on disk before the program goes on
    }
  }

  /**
   * Reports a load event ({@link Event#BEFORE_LOAD} or {@link Event#AFTER_LOAD}) of a model that no
   * trainer trains yet, such as {@code Model.load} before training. The event-driven entries whose
   * algorithm lists the event are asked in schedule order, with a {@link
   * dev.surgery.core.events.State} that has no trainer and counters at 0; a structural change made
   * here is not recorded in the model's surgery record. A load of a model that a trainer known to
   * this listener trains goes to {@link #onEvent(Event, Trainer)} instead, so that a surgery there
   * keeps that trainer's parameter store and optimizer state exact.
   *
   * @param event {@link Event#BEFORE_LOAD} or {@link Event#AFTER_LOAD}
   * @param model the model being loaded
   * @throws IllegalArgumentException for any other event, which happens to a trainer
   * @throws SurgeryFailedException when an algorithm fails and {@code on_error} is {@code fail},
   *     and whatever {@code on_error} says when the JVM is failing (out of memory) or the algorithm
   *     failed after it had changed the model's blocks (nothing undoes that change)
   */
  public void onEvent(Event event, Model model) {
    if (event != Event.BEFORE_LOAD && event != Event.AFTER_LOAD) {
      throw new IllegalArgumentException(
          event + " happens to a trainer: report it with onEvent(event, trainer)");
    }
    Trainer training = registry.trainerOf(model);
    if (training != null) {
      onEvent(event, training);
      return;
    }
    loadEvents.run(event, model);
  }

  /**
   * Returns the schedule, in order.
   *
   * @return the scheduled algorithms
   */
  public List<ScheduledAlgorithm> getSchedule() {
    return schedule;
  }

  /**
   * Returns what happens when an algorithm fails.
   *
   * @return the policy
   */
  public OnError getOnError() {
    return onError;
  }

  /**
   * Returns where the surgery log (JSON) is written.
   *
   * @return the surgery log's path, if any
   */
  public Optional<Path> getReportPath() {
    return Optional.ofNullable(reportPath);
  }

  /**
   * Writes a dry run's plans to the surgery log ({@code report:}), when one is configured: the file
   * lists no applications, only what each entry would change ({@code "dry_run": true, "plans":
   * [...]}). Nothing else is touched; a failure to write is logged, not thrown.
   *
   * @param plans the plan of every entry, in application order
   * @return the file written, if a report is configured
   */
  public Optional<Path> writePlanReport(List<EntryPlan> plans) {
    return surgeryLog.writePlans(plans);
  }

  /**
   * Returns the configured planned number of epochs ({@code total_epochs}, {@link
   * Builder#optTotalEpochs}); a longer length learnt from the training loop ({@link
   * #onPlannedEpochs}) takes precedence for its trainer, see {@link #getPlannedEpochs(Trainer)}.
   *
   * @return the number, or 0 when not configured
   */
  public int getTotalEpochs() {
    return length.configuredEpochs();
  }

  /**
   * Returns the planned number of epochs algorithms get for a trainer: the length learnt from its
   * training loop when there is one, the configured one otherwise.
   *
   * @param trainer the trainer
   * @return the number, or 0 when unknown
   */
  public int getPlannedEpochs(Trainer trainer) {
    TrainerState st = registry.find(trainer);
    return st == null ? length.configuredEpochs() : length.plannedEpochs(st);
  }

  /**
   * Tells how many epochs will have been completed when an entry first runs for a trainer, as far
   * as the planned length tells it before the entry runs: what an algorithm that follows the
   * progress of training (layer freezing) is given then. An epoch entry gives its epoch, {@code
   * every: 2ep} 2, a duration {@code ceil(fraction * planned epochs) - 1} (it runs at the end of a
   * batch of that epoch); a step, and a duration due in the first epoch, need the batches per
   * epoch, known once the data says its size (data that does not tell it before the first epoch
   * ends runs such a duration there).
   *
   * @param trainer the trainer, served by this listener or not
   * @param entry an entry of this listener's schedule
   * @return the completed epochs, or empty when they cannot be told yet (a step entry before the
   *     batches per epoch are known, an entry on events)
   */
  public OptionalInt completedEpochsAtFirstRun(Trainer trainer, ScheduledAlgorithm entry) {
    return length.completedAtFirstRun(registry.find(trainer), entry);
  }

  /**
   * Returns every warning this listener has logged so far (entries whose epoch passed unseen,
   * entries that never ran, the algorithms' own warnings, a surgery log that cannot be written), in
   * order; the last 10,000 at most.
   *
   * @return a snapshot of the warnings
   */
  public List<String> getWarnings() {
    return warnings.list();
  }

  /**
   * Returns the outcome of every scheduled entry that ran so far, over all trainers, in order.
   * Without a surgery log ({@link Builder#optReportPath}) only the last 10,000 are kept: a listener
   * serving a long hyperparameter search does not grow for the life of the JVM.
   *
   * @return a snapshot of the outcomes
   */
  public List<SurgeryOutcome> getOutcomes() {
    return surgeryLog.outcomes();
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * {@inheritDoc}
   *
   * <p>Runs the epoch-0 entries that need no initialized model. DJL calls it from the {@code
   * Trainer} constructor: an entry whose failure stops training here makes that constructor throw,
   * so no trainer reaches the program to close, and this trainer's training ends at once (its other
   * entries are listed as not run because of that failure).
   */
  @Override
  public void onTrainingBegin(Trainer trainer) {
    start.trainingBegan(trainer);
  }

  /**
   * Tells the listener how many more epochs the training loop is about to run for a trainer, so
   * that algorithms that follow the length of training ({@link Algorithm#needsTotalEpochs()}) know
   * it. The planned length becomes the epochs already completed plus {@code epochs}, or the
   * configured {@code total_epochs} where that is larger: a program that calls {@code fit} once per
   * epoch announces one epoch at a time, so a shorter announcement does not override what the user
   * configured (a warning says so). The agent calls it when {@code EasyTrain.fit(trainer, epochs,
   * ...)} starts, and {@link SurgeryTrain#fit} before {@code FIT_START}; a program with its own
   * loop may call it before training. Epoch-0 entries that waited for the length run now. Where no
   * total is configured and an entry that follows the length ran with a shorter announced one (a
   * loop that calls fit once per epoch), a longer announcement is that entry's failure: recorded,
   * and under {@code on_error: fail} thrown before the new fit's first step.
   *
   * @param trainer the trainer about to train
   * @param epochs the number of epochs the loop will run; nothing happens when it is not positive
   * @throws SurgeryFailedException under {@code on_error: fail}, when the length an entry followed
   *     proves shorter than this announcement
   */
  public void onPlannedEpochs(Trainer trainer, int epochs) {
    start.plannedEpochs(trainer, epochs);
  }

  /**
   * Runs the epoch-0 surgery that needed an initialized model (for example BlurPool with {@code
   * min_channels}), and reports {@link Event#INIT}: the same as {@code onEvent(Event.INIT,
   * trainer)}. Call it right after {@code trainer.initialize(shapes)}; the agent calls it from its
   * {@code Trainer.initialize} hook. Handled once per trainer; does nothing when nothing waits.
   *
   * @param trainer the trainer that was just initialized
   */
  public void onInitialized(Trainer trainer) {
    startChecks.warnIfNotListed(trainer, registry);
    start.initialized(trainer);
  }

  /**
   * Lists the epoch-0 entries that wait for {@link #onInitialized} for a trainer: shape-dependent
   * surgery due before training on a model that was not initialized when training began. A driver
   * that sees DJL about to initialize the model by itself (the first training forward pass) uses it
   * to initialize the model first and report {@link Event#INIT}, so that they still run before
   * training.
   *
   * @param trainer the trainer
   * @return the waiting entries, in schedule order; empty when none waits
   */
  public List<ScheduledAlgorithm> awaitingInitialization(Trainer trainer) {
    return start.awaitingInitialization(trainer);
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingBatch(Trainer trainer, BatchData batchData) {
    TrainerState st = registry.state(trainer);
    st.batchAfterEpochEnd();
    st.trained(warnings);
    st.trainedBatch();
    if (st.stopped != null) {
      notRun.resumedAfterStop(st);
    }
    if (st.batches == 0) {
      startChecks.atFirstBatch(trainer, st);
    }
    st.batches++;
    st.epochJustEnded = false;
    st.trainedSinceEpochEnd = true;
    Batch batch = batchData.getBatch();
    long progress = batch == null ? 0 : batch.getProgress();
    long progressTotal = batch == null ? 0 : batch.getProgressTotal();
    int size = batch == null ? 0 : batch.getSize();
    if (st.batchesPerEpoch == 0 && progressTotal > 0 && size > 0) {
      st.batchesPerEpoch = (progressTotal + size - 1) / size;
      st.batchesPerEpochDroppingLast = progressTotal / size;
    }
    if (!st.epochSinceLastBatch
        && st.lastProgress > 0
        && progressTotal > 0
        && progress <= st.lastProgress) {
      // The dataset iteration started over, but no onEpoch came in between: an epoch whose end the
      // loop did not report (a second pass over the data within one epoch looks the same: the
      // listener takes the reading that never runs an entry late).
      st.unseenEpochs++;
      notRun.warnUnseen(st);
    }
    st.epochSinceLastBatch = false;
    st.lastProgress = progress;

    // Every batch for an event-driven entry, whose State shows the window at any batch; a scheduled
    // entry's State shows the window computed before its run anyway.
    boolean forState = eventDriven;
    // This batch becomes step st.steps + 1: a step entry within the window needs its loss.
    boolean stepSoon =
        st.schedule.stepsUntilDue(st.steps + 1, length.plannedSteps(st)) < LOSS_WINDOW;
    if (forState
        || stepSoon
        || st.losses.needsLoss(
            st.passedEpochs(),
            st.schedule.nextDueEpoch(st.passedEpochs()),
            batch,
            progress,
            progressTotal)) {
      float loss = st.losses.batchLoss(trainer, batchData, this);
      if (!Float.isFinite(loss)) {
        st.losses.passOver(st.batches);
      } else if (st.losses.add(loss, st.batches)) {
        surgeryLog.writeSoon();
      }
    }
    if (countsBatchesInEpoch) {
      st.batchInEpoch++; // a driver of DJL's callbacks alone: this is its batch end
    }
    surgeryLog.flushIfDue();
  }

  /**
   * Ends an epoch ({@link Event#EPOCH_END}): DJL calls it after each epoch of {@code
   * EasyTrain.fit}; a hand-written loop calls {@code trainer.notifyListeners(l ->
   * l.onEpoch(trainer))} or {@code onEvent(Event.EPOCH_END, trainer)}.
   *
   * @param trainer the trainer
   */
  @Override
  public void onEpoch(Trainer trainer) {
    epochEnds.ended(trainer, true);
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingEnd(Trainer trainer) {
    ends.trainingEnded(trainer);
  }

  /**
   * Tells the listener that the program is ending: call it from a JVM shutdown hook (the agent
   * registers one). For every trainer whose training began but did not end ({@link #onTrainingEnd}
   * never came: {@code System.exit}, an uncaught exception, a trainer never closed), the entries
   * that never ran are logged as warnings and listed under {@code not_run} with the completed
   * epochs (or steps), and the surgery log is marked {@code "cut_short": true} and rewritten. Does
   * nothing when every trainer's training ended, so a complete run's log stays as {@link
   * #onTrainingEnd} wrote it. After it the listener applies nothing more; an application under way
   * on another thread is awaited (up to 2 s) so that the log lists it as what it did. Never throws;
   * called more than once, only the first call counts.
   *
   * @return whether some trainer's training was cut short
   */
  public boolean onProgramEnd() {
    return ends.programEnded();
  }

  /**
   * What the surgery log lists while training runs: the open entries of every trainer whose
   * training began and has not ended, not reached yet; null when none trains (or the program ended,
   * which lists them itself).
   */
  private List<JsonObject> notReachedYet() {
    List<TrainerState> running = registry.running();
    return running == null ? null : notRun.notReachedYet(running);
  }

  /** Copies a set of events; EnumSet.copyOf refuses an empty set that is no EnumSet. */
  static EnumSet<Event> eventSet(Set<Event> events) {
    EnumSet<Event> copy = EnumSet.noneOf(Event.class);
    copy.addAll(events);
    return copy;
  }

  // ------------------------------------------------------------------ builder

  /** Builds a {@link SurgeryListener} from a schedule written in code. */
  public static final class Builder {

    private final List<Algorithm> algorithms = new ArrayList<>();
    private OnError onError = OnError.FAIL;
    private Path reportPath;
    private int totalEpochs;
    private long totalSteps;
    private final List<Trigger> triggers = new ArrayList<>();
    private Set<Event> observable = CALLBACK_EVENTS;

    Builder() {}

    /**
     * Schedules an algorithm with any trigger ({@link Trigger#atStep}, {@link Trigger#every},
     * {@link Trigger#at}, {@link Trigger#onEvents}). Entries due at one event run in the order they
     * are added.
     *
     * @param algorithm the configured algorithm
     * @param trigger when it runs
     * @return this builder
     * @throws IllegalArgumentException if the algorithm or the trigger is null
     */
    public Builder add(Algorithm algorithm, Trigger trigger) {
      if (algorithm == null || trigger == null) {
        throw new IllegalArgumentException("algorithm and trigger must not be null");
      }
      algorithms.add(algorithm);
      triggers.add(trigger);
      return this;
    }

    /**
     * Declares the events the driver reports (default {@link #CALLBACK_EVENTS}); {@link #build}
     * refuses entries that need others.
     *
     * @param observable the events, for example {@link SurgeryTrain#EVENTS}
     * @return this builder
     */
    public Builder optObservableEvents(Set<Event> observable) {
      this.observable = observable == null ? CALLBACK_EVENTS : eventSet(observable);
      return this;
    }

    /**
     * Schedules an algorithm. Entries run in the order they are added when they share an epoch.
     *
     * @param algorithm the configured algorithm
     * @param epoch the number of completed epochs after which it runs; 0 runs it before training
     * @return this builder
     * @throws IllegalArgumentException if the algorithm is null, or the epoch is negative or beyond
     *     {@link SurgeryConfig#MAX_EPOCH}
     */
    public Builder add(Algorithm algorithm, int epoch) {
      if (algorithm == null) {
        throw new IllegalArgumentException("algorithm must not be null");
      }
      if (epoch < 0 || epoch > SurgeryConfig.MAX_EPOCH) {
        throw new IllegalArgumentException(
            "epoch must be in [0, " + SurgeryConfig.MAX_EPOCH + "], got " + epoch);
      }
      algorithms.add(algorithm);
      triggers.add(Trigger.atEpoch(epoch));
      return this;
    }

    /**
     * Sets what happens when an algorithm fails (default {@link OnError#FAIL}).
     *
     * @param onError the policy
     * @return this builder
     */
    public Builder optOnError(OnError onError) {
      this.onError = onError == null ? OnError.FAIL : onError;
      return this;
    }

    /**
     * Sets where to write the surgery log, a JSON file (relative paths resolve against the working
     * directory). Checked here as a config's {@code report} is ({@link
     * SurgeryConfig#checkReportPath}), so that a log is never lost after the run, but for a
     * trailing slash, which a {@code Path} does not keep ({@code Path.of("logs/")} names a file
     * {@code logs}).
     *
     * @param reportPath the file, or null for no surgery log
     * @return this builder
     * @throws IllegalArgumentException for a path the log could not be written to
     */
    public Builder optReportPath(Path reportPath) {
      if (reportPath != null) {
        SurgeryConfig.checkReportPath(reportPath);
      }
      this.reportPath = reportPath;
      return this;
    }

    /**
     * Sets the planned number of epochs, passed to algorithms that follow a schedule. As {@code
     * total_epochs} in a config file, it bounds the schedule: {@link #build} refuses an entry after
     * it, which would never run (a loop that announces a longer training still lengthens it for
     * what runs).
     *
     * @param totalEpochs the number of epochs, or 0 when unknown
     * @return this builder
     * @throws IllegalArgumentException if it is negative or beyond {@link SurgeryConfig#MAX_EPOCH}
     */
    public Builder optTotalEpochs(int totalEpochs) {
      if (totalEpochs < 0 || totalEpochs > SurgeryConfig.MAX_EPOCH) {
        throw new IllegalArgumentException(
            "totalEpochs must be in [0, "
                + SurgeryConfig.MAX_EPOCH
                + "] (0: unknown), as total_epochs in a config file, got "
                + totalEpochs);
      }
      this.totalEpochs = totalEpochs;
      return this;
    }

    /**
     * Sets the planned number of optimizer steps, for duration triggers ({@code 0.5dur}); without
     * it the planned epochs times the batches per epoch are used.
     *
     * @param totalSteps the number of steps, or 0 when unknown
     * @return this builder
     * @throws IllegalArgumentException if it is negative or beyond {@link SurgeryConfig#MAX_STEP}
     */
    public Builder optTotalSteps(long totalSteps) {
      if (totalSteps < 0 || totalSteps > SurgeryConfig.MAX_STEP) {
        throw new IllegalArgumentException(
            "totalSteps must be in [0, "
                + SurgeryConfig.MAX_STEP
                + "] (0: unknown), as total_steps in a config file, got "
                + totalSteps);
      }
      this.totalSteps = totalSteps;
      return this;
    }

    /**
     * Builds the listener.
     *
     * @return the listener
     * @throws IllegalArgumentException if an entry would never run in the planned length ({@link
     *     #optTotalEpochs}, {@link #optTotalSteps}), as a config file's is refused, if an entry
     *     cannot follow an earlier one, or a one-time entry placed by step or duration cannot run
     *     with another in either order (see {@link ScheduleComposition}); the message names both
     */
    public SurgeryListener build() {
      List<ScheduledAlgorithm> schedule = new ArrayList<>();
      for (int i = 0; i < algorithms.size(); i++) {
        ScheduledAlgorithm entry =
            ScheduledAlgorithm.of(
                algorithms.get(i), triggers.get(i), i, "builder entry " + (i + 1));
        Set<Event> needed = EnumSet.noneOf(Event.class);
        needed.addAll(entry.trigger().events(entry.algorithm()));
        needed.removeAll(observable);
        if (!needed.isEmpty()) {
          throw new IllegalArgumentException(
              entry.describe()
                  + " needs the events "
                  + needed
                  + ", which this listener's driver does not report (observable: "
                  + observable
                  + "); use SurgeryTrain.fit or call listener.onEvent, and declare it with"
                  + " optObservableEvents");
        }
        String never = entry.neverRunsIn(totalEpochs, totalSteps);
        if (never != null) {
          throw new IllegalArgumentException(entry.describe() + ": " + never);
        }
        schedule.add(entry);
      }
      List<ScheduleComposition.Refusal> refusals = ScheduleComposition.check(schedule);
      if (!refusals.isEmpty()) {
        throw new IllegalArgumentException(refusals.get(0).message(ScheduledAlgorithm::describe));
      }
      return new SurgeryListener(
          schedule,
          onError,
          reportPath,
          totalEpochs,
          "call SurgeryListener.builder().optTotalEpochs(n) or listener.onPlannedEpochs(trainer, n)",
          totalSteps,
          observable);
    }
  }
}
