package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListenerAdapter;
import com.google.gson.JsonObject;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.trainer.config.OnError;
import dev.surgery.trainer.config.ScheduleComposition;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Deque;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.WeakHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

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
 *       agent does it by itself); training refuses to start while it waits.
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

  /** The model property that records applied surgery, as a JSON array. */
  public static final String PROPERTY = "surgery";

  /** How the reason of an entry skipped as in the model's record begins. */
  private static final String ALREADY_RECORDED = "it is in the model's surgery record already";

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

  private static final Logger logger = LoggerFactory.getLogger(SurgeryListener.class);

  private final List<ScheduledAlgorithm> schedule;
  private final OnError onError;
  private final Path reportPath;
  private final int totalEpochs;
  private final String totalEpochsHint;
  private final Set<Event> observable;

  /**
   * Whether the driver reports no batch end (DJL's callbacks alone): the listener then counts an
   * epoch's batches itself. Decided once, off the per-batch path.
   */
  private final boolean countsBatchesInEpoch;

  private final long totalSteps;

  /** Whether an entry is event-driven: then batch losses are kept for State.recentLosses. */
  private final boolean eventDriven;

  private final Map<Trainer, TrainerState> states =
      Collections.synchronizedMap(new WeakHashMap<>());

  /** Trainers whose training ended ({@link #onTrainingEnd}), by number: they train no more. */
  private final Map<Trainer, Integer> ended = Collections.synchronizedMap(new WeakHashMap<>());

  /**
   * The states of the trainers whose training has not ended ({@link #onTrainingEnd}), held
   * strongly: a trainer the program dropped without closing it (an uncaught exception) may be
   * collected before {@link #onProgramEnd()}, which must still report it. Guarded by {@code
   * states}.
   */
  private final Set<TrainerState> unfinished = Collections.newSetFromMap(new IdentityHashMap<>());

  /** Set by {@link #onProgramEnd()}; guarded by {@code states}, read without it. */
  private volatile boolean programEnded;

  private final AtomicInteger trainerCount = new AtomicInteger();
  private final RecentItems<String> warnings = RecentItems.last(SurgeryLogWriter.KEPT_WITHOUT_LOG);
  private final SurgeryLogWriter surgeryLog;

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
    this.surgeryLog = new SurgeryLogWriter(reportPath, this::notReachedYet);
    this.totalEpochs = totalEpochs;
    this.totalEpochsHint = totalEpochsHint;
    this.observable = Collections.unmodifiableSet(eventSet(observable));
    this.countsBatchesInEpoch = !observable.contains(Event.BATCH_END);
    this.totalSteps = totalSteps;
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
    if (modelEvent && ended.containsKey(trainer) && !states.containsKey(trainer)) {
      // A load into the model of a trainer that was closed: the model's event, not a training one.
      onEvent(event, trainer.getModel());
      return;
    }
    switch (event) {
      case INIT:
        initialized(trainer);
        return;
      case EPOCH_END:
        epochEnd(trainer, false);
        return;
      default:
        break;
    }
    TrainerState st = state(trainer);
    switch (event) {
      case EPOCH_START:
        st.batchInEpoch = 0;
        st.epochJustEnded = false;
        break;
      case BATCH_START:
        st.epochJustEnded = false;
        break;
      case BATCH_END:
        st.epochJustEnded = false;
        st.steps++;
        break;
      default:
        break;
    }
    runDue(trainer, st, event);
    if (event == Event.BATCH_END) {
      st.batchInEpoch++;
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
   *     and whatever {@code on_error} says when the JVM is failing (out of memory)
   */
  public void onEvent(Event event, Model model) {
    if (event != Event.BEFORE_LOAD && event != Event.AFTER_LOAD) {
      throw new IllegalArgumentException(
          event + " happens to a trainer: report it with onEvent(event, trainer)");
    }
    Trainer training = trainerOf(model);
    if (training != null) {
      onEvent(event, training);
      return;
    }
    EventState state = new EventState(event, model);
    for (ScheduledAlgorithm entry : schedule) {
      Algorithm algorithm = entry.algorithm();
      if (entry.trigger().kind() != Trigger.Kind.EVENTS || !algorithm.events().contains(event)) {
        continue;
      }
      String call = "match";
      try {
        if (algorithm.match(event, state)) {
          call = "apply";
          algorithm.apply(event, state);
        }
      } catch (Throwable e) { // whatever the plugin's call throws is its failure: checked ones
        // undeclared, a class its jar lacks, a broken assert, its recursion overflowing the stack
        RuntimeException error = pluginError(call, event, algorithm, e);
        String message = "Surgery: " + entry.describe() + " failed: " + error.getMessage();
        if (onError == OnError.FAIL) {
          throw new SurgeryFailedException(
              message + " (on_error: fail stops here; use on_error: skip to go on without it)",
              algorithm.name(),
              0,
              null,
              error);
        }
        if (e instanceof VirtualMachineError && !(e instanceof StackOverflowError)) {
          throw new SurgeryFailedException(
              message + " (the JVM is failing: loading stops whatever on_error says)",
              algorithm.name(),
              0,
              null,
              error);
        }
        logger.error("{} (on_error: skip, loading goes on)", message);
      }
    }
  }

  /** The live trainer of {@code model} this listener follows, or null. */
  private Trainer trainerOf(Model model) {
    synchronized (states) {
      for (Trainer trainer : states.keySet()) {
        if (trainer.getModel() == model) {
          return trainer;
        }
      }
    }
    return null;
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
    if (reportPath == null) {
      return Optional.empty();
    }
    try {
      SurgeryJson.write(reportPath, SurgeryJson.plans(plans));
    } catch (java.io.IOException | RuntimeException e) {
      logger.warn(
          "Surgery: cannot write the dry run's plan to {}: {}",
          reportPath.toAbsolutePath(),
          e.toString());
      return Optional.empty();
    }
    return Optional.of(reportPath);
  }

  /**
   * Returns the configured planned number of epochs ({@code total_epochs}, {@link
   * Builder#optTotalEpochs}); a length learnt from the training loop ({@link #onPlannedEpochs})
   * takes precedence for its trainer, see {@link #getPlannedEpochs(Trainer)}.
   *
   * @return the number, or 0 when not configured
   */
  public int getTotalEpochs() {
    return totalEpochs;
  }

  /**
   * Returns the planned number of epochs algorithms get for a trainer: the length learnt from its
   * training loop when there is one, the configured one otherwise.
   *
   * @param trainer the trainer
   * @return the number, or 0 when unknown
   */
  public int getPlannedEpochs(Trainer trainer) {
    TrainerState st = states.get(trainer);
    return st == null ? totalEpochs : plannedEpochs(st);
  }

  private int plannedEpochs(TrainerState st) {
    return st.plannedEpochs > 0 ? st.plannedEpochs : totalEpochs;
  }

  /** Whether an entry follows the length of training (a fraction of it, or a duration). */
  private boolean lengthMatters() {
    return schedule.stream()
        .anyMatch(e -> e.algorithm().needsTotalEpochs() || e.trigger().needsLength());
  }

  /**
   * A longer announcement after an entry followed a length that only the loop announced (no total
   * configured): a second fit (a loop that calls fit once per epoch) shows that length was not the
   * training's, so what the entry did (froze by the fraction of a wrong total, ran at the wrong
   * step) is wrong. Reported as that entry's failure, before this fit's first step: under on_error
   * fail training stops (and again at every later announcement); under skip it goes on, said once
   * (at ERROR, as skip logs failures), with what the entry did: it ran before the proof came.
   */
  private void lengthProvedWrong(TrainerState st, int planned) {
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
            + totalEpochsHint;
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
      logger.error(message + " (on_error: fail stops training)");
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
    keepWarning(skipped);
    logger.error(skipped);
    st.lengthFollowedBy = null; // said once
  }

  /**
   * Whether an entry that ran took the length of training from the loop's announcement alone: no
   * total (of epochs, or of steps for a duration trigger) is configured.
   */
  private boolean followsAnnouncedLength(TrainerState st, ScheduledAlgorithm entry) {
    if (totalEpochs > 0 || st.plannedEpochs <= 0) {
      return false;
    }
    return entry.algorithm().needsTotalEpochs()
        || (entry.trigger().needsLength() && totalSteps <= 0);
  }

  private boolean lacksLength(TrainerState st, ScheduledAlgorithm entry) {
    return entry.algorithm().needsTotalEpochs() && plannedEpochs(st) <= 0;
  }

  /**
   * Returns every warning this listener has logged so far (entries whose epoch passed unseen,
   * entries that never ran), in order; the last 10,000 at most.
   *
   * @return a snapshot of the warnings
   */
  public List<String> getWarnings() {
    return List.copyOf(warnings.snapshot(w -> w));
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

  /** {@inheritDoc} */
  @Override
  public void onTrainingBegin(Trainer trainer) {
    TrainerState st = state(trainer);
    if (st.begun) {
      return; // the agent and the program may both forward this event
    }
    st.begun = true;
    refuseMisspeltPatterns(trainer, st);
    Block block = trainer.getModel().getBlock();
    boolean initialized = block != null && block.isInitialized();
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (!schedule.isPendingBeforeTraining(i)) {
        continue;
      }
      if (!initialized && entry.algorithm().needsInitializedModel()) {
        schedule.defer(i);
        logger.debug(
            "Surgery: {} waits for the model to be initialized (onInitialized)", entry.describe());
        continue;
      }
      if (lacksLength(st, entry)) {
        awaitLength(st, i);
        continue;
      }
      apply(trainer, st, i, Event.FIT_START);
    }
    // From onTrainingBegin on, the log on disk is this job's: marked cut short, with what is not
    // reached yet, until training ends (a previous job's log would otherwise stay until the first
    // surgery, and a job killed before then would leave it).
    surgeryLog.write();
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
    if (epochs <= 0) {
      return;
    }
    TrainerState st = state(trainer);
    int announced = st.passedEpochs() + epochs;
    // A configured total is the user's word and holds against a shorter announcement: a program
    // that calls fit once per epoch announces one epoch at a time. A longer one means training
    // really runs longer than configured.
    int planned = totalEpochs > 0 ? Math.max(totalEpochs, announced) : announced;
    if (st.lengthFollowedBy != null && planned > st.lengthFollowed) {
      lengthProvedWrong(st, planned);
    }
    // Only schedules that follow the length care; the others would only get noise.
    boolean lengthMatters = lengthMatters();
    if (lengthMatters && st.plannedEpochs > 0 && st.plannedEpochs != planned) {
      warn(
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
      warn(
          "Surgery: the training loop runs "
              + announced
              + " epochs but the configured total is "
              + totalEpochs
              + "; algorithms that follow the length of training use "
              + (planned == totalEpochs
                  ? "the configured "
                      + totalEpochs
                      + " (a loop that calls fit once per epoch announces one epoch at a time)"
                  : "the loop's " + planned));
    }
    st.plannedEpochs = planned;
    if (st.passedEpochs() > 0) {
      return;
    }
    Block block = trainer.getModel().getBlock();
    boolean initialized = block != null && block.isInitialized();
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      if (schedule.status(i) != EntryStatus.AWAITING_LENGTH) {
        continue;
      }
      if (!initialized && schedule.entry(i).algorithm().needsInitializedModel()) {
        schedule.defer(i);
        continue;
      }
      apply(trainer, st, i, Event.FIT_START);
    }
  }

  private void awaitLength(TrainerState st, int index) {
    st.schedule.awaitLength(index);
    logger.debug(
        "Surgery: {} waits for the planned number of epochs (EasyTrain.fit under the agent,"
            + " onPlannedEpochs)",
        schedule.get(index).describe());
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
    initialized(trainer);
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
    TrainerState st;
    synchronized (states) {
      st = states.get(trainer);
    }
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

  private void initialized(Trainer trainer) {
    TrainerState st = state(trainer);
    if (st.initSeen) {
      return; // SurgeryTrain.fit reports INIT again after the program did
    }
    st.initSeen = true;
    st.begun = true;
    refuseMisspeltPatterns(trainer, st);
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      boolean due =
          schedule.status(i) == EntryStatus.DEFERRED
              || (schedule.isPendingBeforeTraining(i) && st.batches == 0);
      if (due && st.completedEpochs == 0) {
        if (lacksLength(st, entry)) {
          awaitLength(st, i);
          continue;
        }
        apply(trainer, st, i, Event.INIT);
      } else if (schedule.isPending(i) && schedule.hasKind(i, Trigger.Kind.EVENTS)) {
        runIfMatches(trainer, st, i, Event.INIT);
      }
    }
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingBatch(Trainer trainer, BatchData batchData) {
    TrainerState st = state(trainer);
    if (st.stopped != null) {
      resumedAfterStop(st);
    }
    if (st.batches == 0) {
      firstBatch(trainer, st);
    }
    st.batches++;
    st.epochJustEnded = false;
    Batch batch = batchData.getBatch();
    long progress = batch == null ? 0 : batch.getProgress();
    long progressTotal = batch == null ? 0 : batch.getProgressTotal();
    int size = batch == null ? 0 : batch.getSize();
    if (st.batchesPerEpoch == 0 && progressTotal > 0 && size > 0) {
      st.batchesPerEpoch = (progressTotal + size - 1) / size;
    }
    if (!st.epochSinceLastBatch
        && st.lastProgress > 0
        && progressTotal > 0
        && progress <= st.lastProgress) {
      // The dataset iteration started over, but no onEpoch came in between.
      st.unseenEpochs++;
      warnUnseen(st);
    }
    st.epochSinceLastBatch = false;
    st.lastProgress = progress;

    boolean forState = eventDriven;
    // This batch becomes step st.steps + 1: a step entry within the window needs its loss.
    boolean stepSoon = st.schedule.stepsUntilDue(st.steps + 1, plannedSteps(st)) < LOSS_WINDOW;
    if (forState
        || stepSoon
        || st.losses.needsLoss(
            st.passedEpochs(),
            st.schedule.nextDueEpoch(st.passedEpochs()),
            batch,
            progress,
            progressTotal)) {
      float loss = st.losses.batchLoss(trainer, batchData, this);
      if (forState && Float.isFinite(loss)) {
        st.recentLosses.addLast(loss);
        if (st.recentLosses.size() > LOSS_WINDOW) {
          st.recentLosses.removeFirst();
        }
      }
      if (Float.isFinite(loss) && st.losses.add(loss, st.batches)) {
        surgeryLog.write();
      }
    }
    if (countsBatchesInEpoch) {
      st.batchInEpoch++; // a driver of DJL's callbacks alone: this is its batch end
    }
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
    epochEnd(trainer, true);
  }

  private void epochEnd(Trainer trainer, boolean byCallback) {
    TrainerState st = state(trainer);
    if (st.epochJustEnded
        && st.lastEpochEndByCallback != null
        && st.lastEpochEndByCallback != byCallback) {
      // The same epoch end, reported by DJL's onEpoch and by onEvent (the agent does both).
      return;
    }
    st.epochJustEnded = true;
    st.lastEpochEndByCallback = byCallback;
    st.completedEpochs++;
    st.epochSinceLastBatch = true;
    if (st.batchesPerEpoch == 0 && st.completedEpochs == 1 && st.batchInEpoch > 0) {
      st.batchesPerEpoch = st.batchInEpoch;
      runDurationsDueNow(trainer, st);
    }
    // Epochs that ended without an onEpoch still passed: count them, or later entries run late.
    int completed = st.passedEpochs();
    int planned = plannedEpochs(st);
    if (planned > 0 && completed > planned && !st.pastPlannedLengthWarned && lengthMatters()) {
      // Nothing announced a longer loop (the agent announces each EasyTrain.fit; a program with
      // the library calls onPlannedEpochs itself): what followed the planned length keeps it.
      st.pastPlannedLengthWarned = true;
      warn(
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
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (schedule.isPending(i) && schedule.isEpochBefore(i, completed)) {
        // An earlier entry stopped training at its epoch end (a program that caught the failure
        // trains on), or the listener was attached after that epoch (or missed onTrainingBegin).
        String stopped = stoppedBefore(st, entry);
        missed(
            st,
            i,
            stopped != null
                ? stopped
                : "the listener first saw this trainer after that point (epoch "
                    + completed
                    + " has completed)");
      } else if (schedule.isPending(i) && schedule.isEpoch(i, completed)) {
        apply(trainer, st, i, Event.EPOCH_END);
      } else if (schedule.isPending(i)
          && schedule.hasKind(i, Trigger.Kind.EVERY_EPOCHS)
          && completed % entry.trigger().amount() == 0) {
        apply(trainer, st, i, Event.EPOCH_END);
      } else if (schedule.isPending(i) && schedule.hasKind(i, Trigger.Kind.EVENTS)) {
        runIfMatches(trainer, st, i, Event.EPOCH_END);
      }
    }
    if (!observable.contains(Event.EPOCH_START)) {
      st.batchInEpoch = 0; // no epoch start will say so
    }
  }

  /** Runs the step, duration and event-driven entries due at an event, in schedule order. */
  private void runDue(Trainer trainer, TrainerState st, Event event) {
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      if (!schedule.isPending(i)) {
        continue;
      }
      ScheduledAlgorithm entry = schedule.entry(i);
      Trigger trigger = entry.trigger();
      switch (trigger.kind()) {
        case STEP:
          if (event == Event.BATCH_END && st.steps == trigger.amount()) {
            apply(trainer, st, i, event);
          }
          break;
        case EVERY_STEPS:
          if (event == Event.BATCH_END && st.steps % trigger.amount() == 0) {
            apply(trainer, st, i, event);
          }
          break;
        case DURATION:
          if (event == Event.BATCH_END) {
            runDuration(trainer, st, i, trigger);
          }
          break;
        case EVENTS:
          runIfMatches(trainer, st, i, event);
          break;
        default:
          break;
      }
    }
  }

  /**
   * Runs a duration entry at its step. Data that does not report its size tells the number of
   * batches per epoch only when the first epoch ends, so until then the entry waits; if its step
   * turns out to have passed by then, it fails (or is skipped) saying so, rather than run late or
   * never.
   */
  private void runDuration(Trainer trainer, TrainerState st, int index, Trigger trigger) {
    long total = plannedSteps(st);
    String time = "'" + trigger.describe().substring(3) + "'";
    if (total <= 0 && plannedEpochs(st) > 0 && st.completedEpochs == 0) {
      return; // the epochs are known, their size comes with the first epoch's end
    }
    RuntimeException problem = null;
    if (total <= 0) {
      problem =
          new IllegalStateException(
              time
                  + " needs the planned number of optimizer steps, which is unknown: set"
                  + " 'total_steps: <n>', or 'total_epochs: <n>'");
    } else if (st.steps > dueStep(trigger, total)) {
      problem =
          new IllegalStateException(
              time
                  + " is step "
                  + dueStep(trigger, total)
                  + " of "
                  + total
                  + ", but training is already at step "
                  + st.steps
                  + ": the length of training became known too late (data that does not report"
                  + " its size tells it when the first epoch ends); set 'total_steps: <n>' to"
                  + " place it exactly");
    }
    if (problem != null) {
      failed(st, index, Event.BATCH_END, problem, 0);
    } else if (st.steps == dueStep(trigger, total)) {
      apply(trainer, st, index, Event.BATCH_END);
    }
  }

  /**
   * When the first epoch's end tells the length, a duration entry due at exactly this step (the
   * epoch's last batch) runs now: no step has been taken since, so the model is the one it was due
   * for.
   */
  private void runDurationsDueNow(Trainer trainer, TrainerState st) {
    long total = plannedSteps(st);
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      Trigger trigger = schedule.entry(i).trigger();
      if (total > 0
          && schedule.isPending(i)
          && trigger.kind() == Trigger.Kind.DURATION
          && dueStep(trigger, total) == st.steps) {
        apply(trainer, st, i, Event.EPOCH_END);
      }
    }
  }

  /** The step at which a duration trigger lands: the first whose fraction reaches it. */
  static long dueStep(Trigger trigger, long totalSteps) {
    return Math.max(1, (long) Math.ceil(trigger.fraction() * totalSteps - 1e-9));
  }

  private long plannedSteps(TrainerState st) {
    if (totalSteps > 0) {
      return totalSteps;
    }
    int planned = plannedEpochs(st);
    return planned > 0 && st.batchesPerEpoch > 0 ? planned * st.batchesPerEpoch : 0;
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingEnd(Trainer trainer) {
    TrainerState st;
    synchronized (states) {
      if (programEnded) {
        return; // onProgramEnd listed what never ran already
      }
      st = states.remove(trainer);
      if (st == null) {
        return;
      }
      ended.put(trainer, st.ordinal);
      unfinished.remove(st);
    }
    Model model = trainer.getModel();
    // Only for the block this trainer trained: a model given another block since then (a later
    // checkpoint loaded into it) says nothing of what ran on this trainer's block.
    if (model.getBlock() == st.block && !Objects.equals(recordOf(model), st.recordSeen)) {
      // Another trainer of this model (sharing this listener, as an evaluation trainer built from
      // the same config does) applied entries this one never reached: they ran on the model, and
      // are listed so, not as never run.
      st.recordSeen = recordOf(model);
      skipRecorded(model, st, false);
    }
    listNotRun(st, false);
    surgeryLog.write();
  }

  /**
   * Tells the listener that the program is ending: call it from a JVM shutdown hook (the agent
   * registers one). For every trainer whose training began but did not end ({@link #onTrainingEnd}
   * never came: {@code System.exit}, an uncaught exception, a trainer never closed), the entries
   * that never ran are logged as warnings and listed under {@code not_run} with the completed
   * epochs (or steps), and the surgery log is marked {@code "cut_short": true} and rewritten. Does
   * nothing when every trainer's training ended, so a complete run's log stays as {@link
   * #onTrainingEnd} wrote it. After it the listener applies nothing more. Quick; never throws;
   * called more than once, only the first call counts.
   *
   * @return whether some trainer's training was cut short
   */
  public boolean onProgramEnd() {
    List<TrainerState> cut;
    synchronized (states) {
      if (programEnded) {
        return false;
      }
      programEnded = true;
      cut = new ArrayList<>(unfinished);
      unfinished.clear();
    }
    if (cut.isEmpty()) {
      return false;
    }
    try {
      cut.sort(Comparator.comparingInt(st -> st.ordinal));
      for (TrainerState st : cut) {
        listNotRun(st, true);
      }
    } catch (RuntimeException e) {
      // Another thread may still be training: what could be listed is listed, the mark still goes.
      logger.debug("Surgery: listing the entries cut short failed", e);
    }
    surgeryLog.markCutShort();
    surgeryLog.write();
    return true;
  }

  /**
   * What the surgery log lists while training runs: the open entries of every trainer whose
   * training began and has not ended, not reached yet; null when none trains (or the program ended,
   * which lists them itself). A job killed outright leaves its log with these.
   */
  private List<JsonObject> notReachedYet() {
    List<TrainerState> running;
    synchronized (states) {
      if (programEnded || unfinished.isEmpty()) {
        return null;
      }
      running = new ArrayList<>(unfinished);
    }
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
                    + (entry.byEpoch()
                        ? st.completedEpochs + " completed epochs"
                        : st.stepsTaken() + " optimizer steps")
                    + " (the write at the end of training replaces this list; a job killed"
                    + " outright leaves it)"));
      }
    }
    return items;
  }

  /** Whether an entry may still run: not run (or repeating), and not listed as never run. */
  private static boolean stillOpen(TrainerState st, int i) {
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

  /**
   * Lists the open entries of a trainer whose training is over as never run, with why: training
   * ended ({@link #onTrainingEnd}) or the program ended before it did ({@link #onProgramEnd()}).
   */
  private void listNotRun(TrainerState st, boolean programEnd) {
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      if (!stillOpen(st, i)) {
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
      } else if (programEnd) {
        reason =
            "the program ended (System.exit, an uncaught exception, or a trainer never closed)"
                + " after "
                + (entry.byEpoch()
                    ? st.completedEpochs + " completed epochs"
                    : st.stepsTaken() + " optimizer steps")
                + ", before training ended";
      } else if (schedule.status(i) == EntryStatus.AWAITING_LENGTH) {
        reason =
            "it waited for the planned number of epochs, which never came (" + lengthHint() + ")";
      } else if (schedule.status(i) == EntryStatus.DEFERRED) {
        reason = "it waited for onInitialized(trainer), which was never called";
      } else if (!entry.byEpoch()) {
        reason = "training ended after " + st.steps + " optimizer steps (BATCH_END events)";
      } else if (st.completedEpochs == 0 && st.batches > 0) {
        reason =
            "the listener saw "
                + st.batches
                + " training batches but no onEpoch event; a custom training loop must call"
                + " trainer.notifyListeners(listener -> listener.onEpoch(trainer)) after each"
                + " epoch";
      } else {
        reason = "training ended after " + st.completedEpochs + " completed epochs";
      }
      warn("Surgery: " + entry.describe() + " never ran: " + reason);
      surgeryLog.addNotRun(st.ordinal, entry, reason);
    }
  }

  // ------------------------------------------------------------------ applying

  private EventState stateAt(Trainer trainer, TrainerState st, Event event) {
    Block block = trainer.getModel().getBlock();
    // A trainer whose store is still empty (before trainer.initialize) has nothing to keep exact:
    // initialize registers the new blocks' parameters like all others.
    boolean live =
        block != null && block.isInitialized() && ModuleSurgery.hasRegisteredParameters(trainer);
    return new EventState(
        event,
        trainer,
        live ? trainersOf(trainer) : List.of(),
        st,
        plannedEpochs(st),
        plannedSteps(st));
  }

  /**
   * The trainer and every other trainer of its model this listener serves that holds the model's
   * parameters and has not ended: a surgery must keep them all exact (it frees the arrays it
   * replaces, which another trainer of the model would otherwise still step).
   */
  private List<Trainer> trainersOf(Trainer trainer) {
    List<Trainer> trainers = new ArrayList<>();
    trainers.add(trainer);
    synchronized (states) {
      for (Trainer other : states.keySet()) {
        if (other != trainer
            && other.getModel() == trainer.getModel()
            && ModuleSurgery.hasRegisteredParameters(other)) {
          trainers.add(other);
        }
      }
    }
    return trainers;
  }

  /** Asks an event-driven entry's algorithm whether it runs now, and runs it if so. */
  private void runIfMatches(Trainer trainer, TrainerState st, int index, Event event) {
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

  private void apply(Trainer trainer, TrainerState st, int index, Event event) {
    if (programEnded) {
      return; // onProgramEnd listed it as never run; the program is going away
    }
    ScheduledAlgorithm entry = schedule.get(index);
    Algorithm algorithm = entry.algorithm();
    Model model = trainer.getModel();
    Block block = model.getBlock();
    if (block == null) {
      failed(st, index, event, new IllegalStateException("the model has no block"), 0);
      return;
    }
    if (!entry.trigger().repeats() && !Objects.equals(recordOf(model), st.recordSeen)) {
      // Another trainer of this model applied entries since this one started (both were built
      // before either trained): what the record holds now is not applied again.
      st.recordSeen = recordOf(model);
      skipRecorded(model, st, false);
      if (st.schedule.status(index) == EntryStatus.APPLIED) {
        return;
      }
    }
    int completed = st.passedEpochs();
    int planned = plannedEpochs(st);
    if (algorithm.needsTotalEpochs() && planned <= 0) {
      failed(
          st,
          index,
          event,
          new IllegalStateException(
              algorithm.name()
                  + " needs the planned number of epochs, which is unknown: "
                  + lengthHint()),
          0);
      return;
    }
    EventState state = stateAt(trainer, st, event);
    Double lossBefore = st.losses.meanBefore();
    int lossBeforeBatches = st.losses.beforeBatches();
    // The blocks as they were: a plugin may commit a surgery and fail after it, which no rollback
    // of ours can undo; the failure must then not claim the model is unchanged.
    List<Block> blocksBefore = blocksOf(block);
    // What it freezes, looked for where freezing is likely (two parameter walks): not at each
    // run of an event-driven entry, such as a per-batch average of the weights.
    Set<Parameter> frozenBefore =
        entry.trigger().kind() != Trigger.Kind.EVENTS || algorithm.needsTotalEpochs()
            ? SurgeryCheckpoint.frozen(block)
            : null;
    long start = System.nanoTime();
    SurgeryChanges changes;
    try {
      changes = algorithm.apply(event, state);
    } catch (Throwable e) { // whatever the plugin's call throws is its failure: checked ones
      // undeclared, a class its jar lacks, a broken assert, its recursion overflowing the stack
      long nanos = System.nanoTime() - start;
      boolean changed = !sameBlocks(blocksBefore, blocksOf(model.getBlock()));
      failed(st, index, event, pluginError("apply", event, algorithm, e), nanos, changed);
      return;
    }
    String untrue = untrueChanges(changes, blocksBefore, model.getBlock());
    if (untrue != null) {
      // Committed and unrecordable: as a failure after a change, training stops whatever
      // on_error says.
      long nanos = System.nanoTime() - start;
      failed(
          st,
          index,
          event,
          pluginError("apply", event, algorithm, new IllegalStateException(untrue)),
          nanos,
          !sameBlocks(blocksBefore, blocksOf(model.getBlock())));
      return;
    }
    st.schedule.ran(index);
    // What it froze is frozen again for a later trainer of the model: DJL's newTrainer unfreezes
    // every parameter of a model that was loaded, and the recorded entry is not applied again.
    Block after = model.getBlock();
    if (frozenBefore != null && after != null) {
      Set<Parameter> frozenNow = SurgeryCheckpoint.frozen(after);
      frozenNow.removeAll(frozenBefore);
      SurgeryCheckpoint.addFrozenBySurgery(after, frozenNow);
    }
    if (changes == null) {
      // No structural change (for example an average of the weights): nothing to record.
      return;
    }
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
    surgeryLog.add(applied);
    if (followsAnnouncedLength(st, entry) && !changes.isEmpty()) {
      // (A run that changed nothing under the announced length changes nothing under a longer one:
      // layer_freezing freezes a smaller fraction of a longer training.)
      st.lengthFollowedBy = entry;
      st.lengthFollowed = planned;
    }
    st.reports.add(changes);
    st.losses.awaitAfter(applied);
    if (!changes.isEmpty() || !entry.trigger().repeats()) {
      // A repeating or event-driven entry that changed nothing this time leaves no record: each
      // record rewrites the property and is replayed at every load.
      record(model, algorithm, completed, planned, changes);
      st.recordSeen = recordOf(model);
    }
    if (logger.isInfoEnabled()) {
      // An epoch entry says which epoch; any other its schedule (a step entry ran "at epoch 0").
      String when =
          entry.byEpoch() || entry.trigger().kind() == Trigger.Kind.EVERY_EPOCHS
              ? "at epoch " + completed
              : entry.trigger().describe();
      String line = logLine(algorithm.name(), when, changes, nanos);
      logger.info(
          entry.byEpoch()
              ? line
              : line + " (" + event.configName() + ", step " + st.stepsTaken() + ")");
    }
    surgeryLog.write();
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
   * Why the changes an algorithm returned cannot be recorded, or null: none while the model's
   * blocks changed (a checkpoint would replay nothing, and load into the original architecture).
   * The record names the entry's algorithm whatever the changes say, so a plugin may return the
   * changes of a built-in it delegates to.
   */
  private static String untrueChanges(SurgeryChanges changes, List<Block> blocksBefore, Block now) {
    if (changes == null && !sameBlocks(blocksBefore, blocksOf(now))) {
      return "it changed the model's blocks but returned no SurgeryChanges, so the change cannot be"
          + " recorded for a checkpoint";
    }
    return null;
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

  private void failed(TrainerState st, int index, Event event, RuntimeException e, long nanos) {
    failed(st, index, event, e, nanos, false);
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
    if (programEnded) {
      return; // as in apply
    }
    ScheduledAlgorithm entry = schedule.get(index);
    int completed = st.passedEpochs();
    String path = e instanceof SurgeryException se ? se.getBlockPath() : null;
    String cause = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    String where = path == null || cause.contains(path) ? "" : " at block " + path;
    String at =
        entry.byEpoch() ? "" : " at " + event.configName() + " after " + st.stepsTaken() + " steps";
    // The JVM running out of memory (or failing inside) is no failure of the entry alone that
    // training could go on from: it stops training whatever on_error says, recorded as failed.
    boolean jvmFailing =
        e.getCause() instanceof VirtualMachineError
            && !(e.getCause() instanceof StackOverflowError);
    boolean stop = onError == OnError.FAIL || modelChanged || jvmFailing;
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
      listRepeatsStoppedAt(st, index);
    }
    if (stop) {
      surgeryLog.write();
      String state =
          modelChanged
              ? ". That change can be neither undone nor recorded for a checkpoint, so training"
                  + " stops whatever on_error says; an algorithm must fail before it changes the"
                  + " model or make its changes in one engine call"
              : jvmFailing
                  ? ". The model is as it was before "
                      + entry.algorithm().name()
                      + "; the JVM is failing, so training stops whatever on_error says"
                  : ". The model is as it was before "
                      + entry.algorithm().name()
                      + " (on_error: fail stops training; use on_error: skip to train on without"
                      + " it)";
      throw new SurgeryFailedException(
          "Surgery: "
              + entry.describe()
              + (modelChanged
                  ? " failed after it had changed the model (its blocks differ from before)"
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
    logger.error(
        "Surgery: {} failed{}{} and was skipped (on_error: skip), it does not run again and the"
            + " model is unchanged: {}",
        entry.describe(),
        at,
        where,
        cause);
    // The stack trace helps only when debugging the algorithm itself.
    logger.debug("Surgery: failure of {}", entry.describe(), e);
    surgeryLog.write();
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

  /** Appends the application to the model's {@code surgery} property, which model.save keeps. */
  private void record(
      Model model, Algorithm algorithm, int epoch, int planned, SurgeryChanges changes) {
    List<SurgeryRecord> records = new ArrayList<>();
    String existing = SurgeryCheckpoint.recordOf(model);
    if (existing != null && !existing.isBlank()) {
      try {
        records.addAll(SurgeryJson.recordsFromJson(existing));
      } catch (IllegalArgumentException e) {
        warn(
            "Surgery: the model's '"
                + PROPERTY
                + "' property is not a surgery record and is replaced ("
                + e.getMessage()
                + ")");
      }
    }
    records.add(
        new SurgeryRecord(
            algorithm.name(),
            algorithm.settings(),
            epoch,
            planned,
            SurgeryRecord.changesOf(changes)));
    String json = SurgeryJson.recordsToJson(records);
    // The block first: a save on another thread syncs the property from it.
    SurgeryCheckpoint.carries(model.getBlock(), json);
    model.setProperty(PROPERTY, json);
    SurgeryCheckpoint.describes(model);
  }

  // ------------------------------------------------------------------ batches and loss

  private void firstBatch(Trainer trainer, TrainerState st) {
    refuseMisspeltPatterns(trainer, st);
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (schedule.status(i) == EntryStatus.AWAITING_LENGTH
          || (schedule.isPending(i)
              && entry.trigger().kind() != Trigger.Kind.EVENTS
              && !observable.contains(Event.FIT_START)
              && lacksLength(st, entry))) {
        // Training starts without the length an entry needs, and this listener's driver reports
        // no fit start (DJL's callbacks alone: no SurgeryTrain, no agent), so nothing announces
        // it from now on: the entry fails (or is skipped) here, before the first step, naming
        // where to set it, not epochs into training. (Under the agent a warm-up batch may come
        // before EasyTrain.fit announces the length.)
        apply(trainer, st, i, Event.FIT_START);
        continue;
      }
      if (schedule.status(i) == EntryStatus.DEFERRED) {
        throw new IllegalStateException(
            "Surgery: "
                + entry.describe()
                + " needs an initialized model and is still waiting: call"
                + " surgeryListener.onInitialized(trainer) right after trainer.initialize(...)"
                + " (the surgery agent does this by itself), or schedule it at epoch 1 or later");
      }
      if (schedule.isPendingBeforeTraining(i)) {
        missed(
            st,
            i,
            "the listener did not see onTrainingBegin for this trainer (it was added after the"
                + " Trainer was created)");
      }
    }
  }

  /**
   * Fails, before training, each open entry whose include or exclude pattern selects nothing in the
   * model but would with case ignored ({@code type:Conv2D}): a typo that would otherwise fail the
   * entry only when it runs, epochs into training. Once per trainer; on_error decides as for any
   * failure of the entry (fail: training stops here; skip: the entry is dropped).
   */
  private void refuseMisspeltPatterns(Trainer trainer, TrainerState st) {
    if (st.patternsChecked) {
      return;
    }
    st.patternsChecked = true;
    Block root = trainer.getModel().getBlock();
    if (root == null) {
      return;
    }
    for (int i = 0; i < st.schedule.size(); i++) {
      Algorithm algorithm = st.schedule.entry(i).algorithm();
      if (!st.schedule.isOpen(i) || algorithm.targets().isAll()) {
        continue;
      }
      String typo = algorithm.targets().caseMismatch(root);
      if (typo != null) {
        failed(
            st,
            i,
            Event.FIT_START,
            new SurgeryException(null, algorithm.name() + ": the " + typo),
            0);
      }
    }
  }

  /** Says where the planned number of epochs can come from, for this listener's origin. */
  private String lengthHint() {
    return totalEpochsHint
        + ", or train with EasyTrain.fit(trainer, epochs, ...) under the surgery agent or with"
        + " SurgeryTrain.fit(trainer, epochs, ...), which pass their number of epochs";
  }

  private void warnUnseen(TrainerState st) {
    int passed = st.passedEpochs();
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (schedule.isPending(i)
          && entry.byEpoch()
          && entry.epoch() > 0
          && entry.epoch() <= passed) {
        // Never run it late: mark it so that a later onEpoch does not apply it at the wrong time.
        missed(
            st,
            i,
            "epoch "
                + entry.epoch()
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
  private void missed(TrainerState st, int index, String reason) {
    ScheduledAlgorithm entry = st.schedule.entry(index);
    st.schedule.missed(index);
    warn("Surgery: " + entry.describe() + " did not run: " + reason);
    surgeryLog.addNotRun(st.ordinal, entry, reason);
  }

  /**
   * Lists under {@code not_run} the runs of repeating entries that were due at the moment (an epoch
   * end, a step) where the entry at {@code index} failed and stopped training, after it in the
   * schedule: they never come, and a repeating entry is not listed again at training end. (One-shot
   * entries stay pending and are listed once, when they are missed or training ends.)
   */
  private void listRepeatsStoppedAt(TrainerState st, int index) {
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
        warn("Surgery: " + later.describe() + " did not run: " + reason);
        surgeryLog.addNotRun(st.ordinal, later, reason);
        st.listedNotRun.set(j);
      }
    }
  }

  /**
   * Why a one-shot entry did not run when an earlier entry due at the same moment failed and
   * stopped training before its turn; null when that is not what happened.
   */
  private String stoppedBefore(TrainerState st, ScheduledAlgorithm entry) {
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
                    && plannedSteps(st) > 0
                    && dueStep(trigger, plannedSteps(st)) == stop.step());
    return sameMoment ? stop.reason() : null;
  }

  /**
   * Training went on after a stopping failure (the program caught it): the one-shot entries due at
   * that moment are missed now, with that reason, and later entries are judged on their own.
   */
  private void resumedAfterStop(TrainerState st) {
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

  // ------------------------------------------------------------------ warnings

  private void warn(String message) {
    keepWarning(message);
    logger.warn(message);
  }

  /** Keeps a warning for {@link #getWarnings}, the last 10,000 at most. */
  private void keepWarning(String message) {
    warnings.add(message);
  }

  /** Copies a set of events; EnumSet.copyOf refuses an empty set that is no EnumSet. */
  static EnumSet<Event> eventSet(Set<Event> events) {
    EnumSet<Event> copy = EnumSet.noneOf(Event.class);
    copy.addAll(events);
    return copy;
  }

  private TrainerState state(Trainer trainer) {
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

  /** {@link #state}, with {@link SurgeryLock} held. */
  private TrainerState stateHoldingTheLock(Trainer trainer) {
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
        st = new TrainerState(trainerCount.incrementAndGet(), schedule, !countsBatchesInEpoch);
        if (SurgeryCheckpoint.forgetRecordOfAnotherBlock(trainer.getModel())) {
          logger.info(
              "Surgery: the model's '{}' property described the block it had before setBlock:"
                  + " taken off (this block's surgery is recorded anew)",
              PROPERTY);
        }
        skipRecorded(trainer.getModel(), st, true);
        st.recordSeen = recordOf(trainer.getModel());
        freezeAgain(trainer);
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
    Schedule schedule = st.schedule;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.entry(i);
      if (schedule.status(i) == EntryStatus.APPLIED
          && schedule.runs(i) > 0
          && !entry.trigger().repeats()
          && !st.listedNotRun.get(i)) {
        st.listedNotRun.set(i);
        // This trainer's counts go on: what it applied to the old block is not due again.
        String reason =
            "trainer "
                + st.ordinal
                + " applied it to the block its model had before setBlock; the new block does not"
                + " get it from this trainer (build a new trainer for a new block)";
        warn("Surgery: " + entry.describe() + " " + reason);
        surgeryLog.addNotRun(st.ordinal, entry, reason);
      }
    }
    SurgeryCheckpoint.syncRecord(model);
    if (!st.schedule.reopenRecorded().isEmpty()) {
      surgeryLog.forgetNotRun(st.ordinal, ALREADY_RECORDED);
    }
    st.recordSeen = recordOf(model);
    skipRecorded(model, st, false);
  }

  /**
   * Refuses a trainer that lists this listener twice: every event would reach it twice, counting
   * two steps per batch and two epochs per epoch, so entries would run early and be reported at the
   * wrong moment.
   */
  private void refuseRegisteredTwice(Trainer trainer) {
    List<TrainingListener> registered = DjlInternals.listeners(trainer);
    int times = 0;
    for (TrainingListener l : registered == null ? List.<TrainingListener>of() : registered) {
      times += l == this ? 1 : 0;
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

  /**
   * Freezes again what a checkpoint's replayed surgery, or an entry an earlier trainer of the model
   * ran, froze ({@code layer_freezing}): DJL's {@code newTrainer} unfreezes every parameter of a
   * loaded model, just before this trainer starts, and the record's entries are not applied again.
   */
  private void freezeAgain(Trainer trainer) {
    Block root = trainer.getModel() == null ? null : trainer.getModel().getBlock();
    List<Parameter> thawed = new ArrayList<>();
    for (Parameter p : SurgeryCheckpoint.frozenByReplay(root)) {
      if (p.requiresGradient()) {
        thawed.add(p);
      }
    }
    if (thawed.isEmpty()) {
      return;
    }
    Set<Parameter> inModel = Collections.newSetFromMap(new IdentityHashMap<>());
    inModel.addAll(root.getParameters().values());
    thawed.retainAll(inModel); // a later surgery may have replaced some
    if (!thawed.isEmpty()) {
      try {
        ModuleSurgery.freezeParameters(thawed, List.of(trainer));
      } catch (RuntimeException e) {
        warn(
            "Surgery: could not freeze again the "
                + thawed.size()
                + " parameters the checkpoint's record froze ("
                + e.getMessage()
                + "); they train");
        return;
      }
      logger.info(
          "Surgery: froze again {} parameters that the checkpoint's surgery record froze (DJL's"
              + " newTrainer unfreezes a loaded model)",
          thawed.size());
    }
  }

  /**
   * The surgery record of the model's current block (see SurgeryCheckpoint#recordOf); null: none.
   */
  private static String recordOf(Model model) {
    return model == null ? null : SurgeryCheckpoint.recordOf(model);
  }

  /**
   * Marks as applied the one-shot entries that the model's surgery record holds already: a
   * checkpoint loaded with its surgery replayed (through {@link SurgeryCheckpoint#load} or under
   * the agent), or an earlier trainer of the same model. Running them again would at best change
   * nothing and record them twice, and an entry whose algorithm is not idempotent would be applied
   * twice. A record matches an entry with the same algorithm and hyperparameters, and for an epoch
   * entry the same epoch; each record stands for one entry, and a repeating entry accounts for
   * every run of it. Only when every record is accounted for (the job restarted with the schedule
   * the record came from) are the matched entries skipped: a schedule of the rest of training runs
   * in full, even an entry equal to one recorded. When {@code trainerBegins}, the entries the
   * record does not hold are warned of: they count epochs from this trainer's start.
   */
  private void skipRecorded(Model model, TrainerState st, boolean trainerBegins) {
    String existing = recordOf(model);
    if (existing == null || existing.isBlank()) {
      return;
    }
    List<SurgeryRecord> records;
    try {
      records = new ArrayList<>(SurgeryJson.recordsFromJson(existing));
    } catch (IllegalArgumentException e) {
      return; // not a record of ours: record() says so when it replaces it
    }
    Schedule entries = st.schedule;
    int[] recordOf = new int[entries.size()];
    Arrays.fill(recordOf, -1);
    boolean[] accounted = new boolean[records.size()];
    for (int i = 0; i < entries.size(); i++) {
      ScheduledAlgorithm entry = entries.entry(i);
      Algorithm algorithm = entry.algorithm();
      for (int k = 0; k < records.size(); k++) {
        SurgeryRecord r = records.get(k);
        boolean same =
            r.algorithm().equals(algorithm.name())
                && SurgeryJson.sameHyperparameters(r.hyperparameters(), algorithm.settings());
        if (same && entry.trigger().repeats()) {
          accounted[k] = true; // one of its runs: accounted for, but the entry runs on
        } else if (same && !accounted[k] && (!entry.byEpoch() || r.epoch() == entry.epoch())) {
          accounted[k] = true;
          recordOf[i] = k;
          break;
        }
      }
    }
    for (boolean a : accounted) {
      if (!a) {
        // The schedule is not the one the record came from (a rest-of-training schedule, or
        // another one): it runs in full, and an entry equal to a recorded one is meant anew.
        logger.info(
            "Surgery: the model's surgery record holds entries this schedule does not: the"
                + " schedule runs in full ({} recorded)",
            records.size());
        return;
      }
    }
    for (int i = 0; i < entries.size(); i++) {
      // Open, not only pending: an epoch-0 entry may wait for onInitialized or for the length.
      if (recordOf[i] >= 0 && entries.isOpen(i)) {
        entries.alreadyRecorded(i);
        String reason =
            ALREADY_RECORDED
                + " (a replayed checkpoint or an earlier trainer applied it at epoch "
                + records.get(recordOf[i]).epoch()
                + "): not applied again";
        logger.info("Surgery: {} {}", entries.entry(i).describe(), reason);
        surgeryLog.addNotRun(st.ordinal, entries.entry(i), reason);
      }
    }
    if (trainerBegins) {
      warnEpochsCountFromResume(st, records, recordOf);
    }
  }

  /**
   * A job restarted with its whole schedule from a checkpoint: this run counts epochs from 0, so an
   * entry the record does not hold runs that many epochs after the resume, not at the job's epoch
   * the schedule names (documented; said here because nothing else shows it until the end).
   */
  private void warnEpochsCountFromResume(
      TrainerState st, List<SurgeryRecord> records, int[] recordOf) {
    int reached = 0;
    for (SurgeryRecord r : records) {
      reached = Math.max(reached, r.epoch());
    }
    Schedule entries = st.schedule;
    for (int i = 0; reached > 0 && i < entries.size(); i++) {
      ScheduledAlgorithm entry = entries.entry(i);
      if (recordOf[i] < 0 && entries.isOpen(i) && entry.byEpoch() && entry.epoch() > 0) {
        warn(
            "Surgery: "
                + entry.describe()
                + " counts epochs from this trainer's start: the model comes with a surgery record"
                + " (a loaded checkpoint, or an earlier trainer) that reaches epoch "
                + reached
                + ", so it runs "
                + entry.epoch()
                + (entry.epoch() == 1 ? " epoch" : " epochs")
                + " from now (at least epoch "
                + (reached + entry.epoch())
                + " of the whole job); for the job's epoch "
                + entry.epoch()
                + ", give this trainer a schedule for what remains (see 'Checkpoints and"
                + " resuming')");
      }
    }
  }

  // ------------------------------------------------------------------ builder

  /** Builds a {@link SurgeryListener} from a schedule written in code. */
  public static final class Builder {

    private final List<Algorithm> algorithms = new ArrayList<>();
    private final List<Integer> epochs = new ArrayList<>();
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
     */
    public Builder add(Algorithm algorithm, Trigger trigger) {
      if (algorithm == null || trigger == null) {
        throw new IllegalArgumentException("algorithm and trigger must not be null");
      }
      algorithms.add(algorithm);
      epochs.add(trigger.kind() == Trigger.Kind.EPOCH ? (int) trigger.amount() : 0);
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
     * @throws IllegalArgumentException if the epoch is negative or beyond {@link
     *     SurgeryConfig#MAX_EPOCH}
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
      epochs.add(epoch);
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
     * directory).
     *
     * @param reportPath the file, or null for no surgery log
     * @return this builder
     */
    public Builder optReportPath(Path reportPath) {
      this.reportPath = reportPath;
      return this;
    }

    /**
     * Sets the planned number of epochs, passed to algorithms that follow a schedule.
     *
     * @param totalEpochs the number of epochs, or 0 when unknown
     * @return this builder
     */
    public Builder optTotalEpochs(int totalEpochs) {
      if (totalEpochs < 0) {
        throw new IllegalArgumentException("totalEpochs must be >= 0, got " + totalEpochs);
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
     */
    public Builder optTotalSteps(long totalSteps) {
      if (totalSteps < 0) {
        throw new IllegalArgumentException("totalSteps must be >= 0, got " + totalSteps);
      }
      this.totalSteps = totalSteps;
      return this;
    }

    /**
     * Builds the listener.
     *
     * @return the listener
     * @throws IllegalArgumentException if an entry cannot follow an earlier one, or a one-time
     *     entry placed by step or duration cannot run with another in either order (see {@link
     *     ScheduleComposition}); the message names both
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
