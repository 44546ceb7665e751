package dev.surgery.agent.hookloader;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.DjlHooks;
import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import dev.surgery.agent.shared.SurgeryFailure;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.algorithms.AlgorithmPluginException;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlInternalsException;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.WeakIdentityMap;
import dev.surgery.trainer.SurgeryCheckpoint;
import dev.surgery.trainer.SurgeryFailedException;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.config.ConfigProblem;
import dev.surgery.trainer.config.SurgeryConfigException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;

/**
 * The agent's DJL side: builds the {@link SurgeryListener} from the config and attaches it to each
 * {@link Trainer}. One instance serves every trainer of one DJL class loader, and so does its
 * listener (a listener keeps its state per trainer). What the hooks do beyond attaching the
 * listener and handing it the training events is in their own classes: {@link AgentEvents} turns
 * the instrumented calls into events, {@link FirstForwardInitialization} initializes a model whose
 * epoch-0 surgery waits for its shapes, {@link DryRunPlan} prints the plan of a dry run, and {@link
 * ModelLoadHooks} replays a checkpoint's record around the program's {@code Model.load}.
 *
 * <p>This class is defined by the agent's per-DJL loader, never by the system class loader, so it
 * links against the application's DJL wherever that lives.
 */
public final class DjlAgentHooks implements DjlHooks {

  private final Path config;
  private final List<Path> extensions;
  private final AgentEvents events = new AgentEvents(this::fire);
  private static final String INTERNALS_MISMATCH =
      "this DJL does not have the internals DJL Surgery was built for (DJL 0.36.0);"
          + " surgery disabled, the program runs unmodified";

  private volatile List<String> problems;
  private SurgeryListener listener;
  private ProgramEndHook programEnd;
  private DryRunPlan dryRun;
  private FirstForwardInitialization firstForward;
  private ModelLoadHooks loads;
  private volatile boolean usable;

  /**
   * Trainers met training without the agent's listener, each told of once: created before a late
   * attach (or given a SurgeryListener by the program, which needs no word). Weak: trainers come
   * and go in a long search.
   */
  private final WeakIdentityMap<Object, Boolean> untracked = new WeakIdentityMap<>();

  private final AtomicBoolean loggingChecked = new AtomicBoolean();

  /**
   * Creates the hooks; nothing is read until {@link #prepare()}.
   *
   * @param config the YAML config as the user gave it
   * @param extensions the plugin jars given with {@code extensions}, checked to be readable jars
   */
  public DjlAgentHooks(Path config, List<Path> extensions) {
    this.config = config;
    this.extensions = List.copyOf(extensions);
  }

  /** {@inheritDoc} */
  @Override
  public List<String> prepare() {
    // Every training call asks: once prepared, answer without taking the lock.
    List<String> done = problems;
    return done != null ? done : prepareOnce();
  }

  private synchronized List<String> prepareOnce() {
    if (problems != null) {
      return problems;
    }
    List<String> read = readConfig();
    // Null: this DJL cannot run surgery (warned of), and the program runs unmodified.
    List<String> found = read == null ? List.of() : read;
    try {
      if (read != null && found.isEmpty()) {
        try {
          DjlInternals.verify();
          usable = true;
        } catch (RuntimeException | LinkageError e) {
          AgentLog.warnOnce(AgentLog.DJL_MISMATCH, INTERNALS_MISMATCH, e);
        }
      }
    } finally {
      // Published last, whatever happened: prepare() answers without the lock once it is set, and
      // a trainer created on another thread right then must already find the hooks usable, not
      // be passed by untracked; nor is the config read again after an error here.
      problems = found;
    }
    return found;
  }

  /**
   * Reads the extensions and the config: the problems found, none when the agent can serve, or null
   * when this DJL cannot run surgery (warned of here).
   */
  private List<String> readConfig() {
    try {
      if (!extensions.isEmpty()) {
        String duplicate = ExtensionLoader.duplicateProvider(extensions);
        if (duplicate != null) {
          return List.of("extensions: " + duplicate);
        }
        List<AlgorithmSpec> added =
            Algorithms.loadPlugins(
                new ExtensionLoader(extensions, DjlAgentHooks.class.getClassLoader()));
        AgentLog.debug(
            "extensions "
                + extensions
                + " add the algorithms "
                + added.stream().map(AlgorithmSpec::name).collect(Collectors.toList()));
      }
      // The agent reports every event (TrainerInstrumentation weaves all hook points or none).
      listener = SurgeryListener.fromYaml(config, EnumSet.allOf(Event.class));
      programEnd = new ProgramEndHook(listener);
      dryRun = new DryRunPlan(listener);
      firstForward = new FirstForwardInitialization(listener, events);
      loads = new ModelLoadHooks(listener, events);
      return List.of();
    } catch (AlgorithmPluginException e) {
      return List.of("extensions: " + e.getMessage());
    } catch (SurgeryConfigException e) {
      List<String> lines = new ArrayList<>();
      for (ConfigProblem p : e.getProblems()) {
        lines.add(p.toString());
      }
      if (lines.isEmpty()) {
        lines.add(config + ":0:0: " + e.getMessage());
      }
      return List.copyOf(lines);
    } catch (LinkageError e) {
      // The DJL in this class loader lacks what the surgery library links against.
      AgentLog.warnOnce(
          AgentLog.DJL_MISMATCH,
          "the surgery library does not link against this DJL (built for DJL 0.36.0); surgery"
              + " disabled, the program runs unmodified",
          e);
      return null;
    } catch (DjlInternalsException e) {
      // Reading the config already touched a DJL field that this DJL lacks: not a config error.
      AgentLog.warnOnce(AgentLog.DJL_MISMATCH, INTERNALS_MISMATCH, e);
      return null;
    } catch (RuntimeException e) {
      if (AgentLog.isDebug()) {
        e.printStackTrace(System.err);
      }
      return List.of(config + ":0:0: the config could not be validated: " + e);
    }
  }

  /** {@inheritDoc} */
  @Override
  public void trainerCreated(Object target) {
    if (!usable) {
      return;
    }
    Trainer trainer = (Trainer) target;
    if (SurgeryDispatcher.isDryRun()) {
      AgentLog.debug(
          "dry run: no SurgeryListener for "
              + SurgeryDispatcher.describe(trainer)
              + "; nothing changes");
      return;
    }
    List<TrainingListener> current = DjlTrainers.listeners(trainer);
    if (current == null) {
      current = List.of();
    }
    if (hasSurgeryListener(current)) {
      AgentLog.debug(
          SurgeryDispatcher.describe(trainer)
              + " already has a SurgeryListener (registered by the program); not adding another");
      return;
    }
    // A new list: the old one may be the TrainingConfig's own (DefaultTrainingConfig hands out its
    // internal ArrayList) or immutable, and must not change.
    List<TrainingListener> extended = new ArrayList<>(current.size() + 2);
    extended.addAll(current);
    extended.add(new EventTrackingListener(events));
    extended.add(listener);
    DjlTrainers.setListeners(trainer, extended);
    events.track(trainer);
    AgentLog.debug("attached SurgeryListener to " + SurgeryDispatcher.describe(trainer));
    String silence = loggingChecked.compareAndSet(false, true) ? SurgeryLogging.silence() : null;
    if (silence != null) {
      AgentLog.info(silenceNotice(silence, config, listener.getReportPath().orElse(null)));
    }
    // A program that exits in the middle of training never closes the trainer: the hook tells the
    // listener, so that the surgery log does not read as complete.
    programEnd.registerOnce();
    // The constructor has already sent onTrainingBegin to the listeners it knew about.
    try {
      listener.onTrainingBegin(trainer);
    } catch (SurgeryFailedException | SurgeryException e) {
      // Stopping training on purpose (on_error: fail): the program gets it, as without the agent.
      throw new SurgeryFailure(e);
    }
  }

  /**
   * What the agent says once when the program's SLF4J shows nothing: why, what is lost, and the
   * ways to see it (a printing binding; the surgery log, or where it is written already).
   */
  static String silenceNotice(String silence, Path config, Path report) {
    boolean nop = silence.contains("slf4j-nop");
    return silence
        + ", so the surgery's own lines are not shown: what each entry changed, entries that"
        + " changed nothing or never ran, failures under on_error: skip. "
        + (nop ? "Replace slf4j-nop by a binding that prints" : "Add a binding")
        + " (slf4j-simple, logback) to the class path"
        + (report == null
            ? ", or set 'report: <file>' in " + config + " for the surgery log"
            : "; the surgery log is written to " + report);
  }

  /** {@inheritDoc} */
  @Override
  public void trainerInitialized(Object target) {
    if (!usable) {
      return;
    }
    Trainer trainer = (Trainer) target;
    if (SurgeryDispatcher.isDryRun()) {
      dryRun.trainerInitialized(trainer);
      return;
    }
    if (!events.tracks(trainer)) {
      // Not ours: a program that registers SurgeryListener itself also calls onInitialized itself.
      return;
    }
    // INIT is the listener's onInitialized.
    AgentLog.debug(
        "Trainer.initialize returned: SurgeryListener.onInitialized for "
            + SurgeryDispatcher.describe(trainer));
    events.initialized(trainer);
  }

  /**
   * Hands an event to the listener; a deliberate failure ({@code on_error: fail}) goes to the
   * program, as without the agent.
   */
  private void fire(Event event, Object trainer) {
    try {
      listener.onEvent(event, (Trainer) trainer);
    } catch (SurgeryFailedException | SurgeryException e) {
      throw new SurgeryFailure(e);
    }
  }

  /** {@inheritDoc} */
  @Override
  public void hookPoint(HookPoint point, Object target) {
    if (!usable) {
      return;
    }
    switch (point) {
      case FORWARD_ENTER:
        forwardStarting(target, null);
        break;
      case FORWARD_EXIT:
        events.forwardEnded(target);
        break;
      case BACKWARD_EXIT:
        events.backwardEnded(target);
        break;
      case STEP_EXIT:
        events.stepEnded(target);
        break;
      case EVALUATE_ENTER:
        events.evaluateStarting(target);
        break;
      case EVALUATE_DATASET_ENTER:
        events.evaluateDatasetStarting(target);
        break;
      case EVALUATE_DATASET_EXIT:
        events.evaluateDatasetEnded(target);
        break;
      case FIT_EXIT:
        events.fitEnded(target);
        break;
      case PARAMETERS_LOADED:
        loads.loaded((Model) target);
        break;
      case MODEL_SAVING:
        SurgeryCheckpoint.syncRecord((Model) target);
        break;
      default:
        break;
    }
  }

  /** {@inheritDoc} */
  @Override
  public void forwardStarting(Object target, Object data) {
    if (!usable) {
      return;
    }
    Trainer trainer = (Trainer) target;
    if (SurgeryDispatcher.isDryRun()) {
      dryRun.forwardStarting(trainer, data);
      return;
    }
    if (!events.tracks(trainer)) {
      untrackedTrains(trainer);
      return;
    }
    // Asked at a trainer's first training forward only: DJL initializes the model in that forward
    // if nothing did before, so later ones never find it uninitialized.
    if (events.firstTrainingForward(trainer)) {
      Block block = trainer.getModel().getBlock();
      if (block != null && !BlockInspector.wasInitialized(block)) {
        // The program never called trainer.initialize: DJL is about to initialize the model inside
        // this forward, too late for the epoch-0 surgery that needs its shapes.
        events.beforeFirstForward(trainer, () -> firstForward.beforeFirstForward(trainer, data));
      }
    }
    events.forwardStarting(target);
  }

  /**
   * A trainer trains without the agent's listener: it was created before the agent was attached to
   * the running JVM (late attach reaches trainers created afterwards), unless the program gave it a
   * SurgeryListener of its own. Said once per trainer: such a job would otherwise train without
   * surgery and without a word.
   */
  private void untrackedTrains(Trainer trainer) {
    if (untracked.putIfAbsent(trainer, Boolean.TRUE) != null) {
      return;
    }
    List<TrainingListener> current = DjlTrainers.listeners(trainer);
    if (current != null && hasSurgeryListener(current)) {
      return; // the program's own listener does the surgery
    }
    AgentLog.warn(
        SurgeryDispatcher.describe(trainer)
            + " trains without surgery: the agent attached no listener to it (it was created"
            + " before the agent was attached: a late attach reaches the trainers created after"
            + " it)");
  }

  /**
   * Whether a trainer's listeners hold a SurgeryListener, by class name: the class may exist in two
   * loaders (the program's and the agent's).
   */
  private static boolean hasSurgeryListener(List<TrainingListener> listeners) {
    for (TrainingListener l : listeners) {
      if (l != null && SurgeryListener.class.getName().equals(l.getClass().getName())) {
        return true;
      }
    }
    return false;
  }

  /** {@inheritDoc} */
  @Override
  public void fitStarting(Object target, int epochs) {
    if (!usable) {
      return;
    }
    Trainer trainer = (Trainer) target;
    if (!events.tracks(trainer)) {
      // Not ours: a program that registers SurgeryListener itself gives it the length itself.
      return;
    }
    AgentLog.debug(
        "EasyTrain.fit starts "
            + epochs
            + " epochs: SurgeryListener.onPlannedEpochs for "
            + SurgeryDispatcher.describe(trainer));
    try {
      listener.onPlannedEpochs(trainer, epochs);
    } catch (SurgeryFailedException | SurgeryException e) {
      // Stopping training on purpose (on_error: fail): the program gets it, as without the agent.
      throw new SurgeryFailure(e);
    }
    events.fitStarting(trainer);
  }

  /** {@inheritDoc} */
  @Override
  public void parametersLoading(Object target, Path paramsFile) {
    if (!usable) {
      return;
    }
    loads.loading((Model) target, paramsFile);
  }

  /** {@inheritDoc} */
  @Override
  public Throwable parametersLoadFailed(Object target, Throwable thrown) {
    return ModelLoadHooks.failed(target, thrown);
  }
}
