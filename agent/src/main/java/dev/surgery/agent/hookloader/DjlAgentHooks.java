package dev.surgery.agent.hookloader;

import ai.djl.Device;
import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import ai.djl.util.Pair;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.DjlHooks;
import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import dev.surgery.agent.shared.SurgeryFailure;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmPluginException;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.PlanUnavailableException;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlInternalsException;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.WeakIdentityMap;
import dev.surgery.trainer.EntryPlan;
import dev.surgery.trainer.ModelLoadUndo;
import dev.surgery.trainer.SurgeryCheckpoint;
import dev.surgery.trainer.SurgeryFailedException;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.SurgeryRecord;
import dev.surgery.trainer.config.ConfigProblem;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.SurgeryConfigException;
import dev.surgery.trainer.config.Trigger;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;

/**
 * The agent's DJL side: builds the {@link SurgeryListener} from the config and attaches it to each
 * {@link Trainer}. One instance serves every trainer of one DJL class loader, and so does its
 * listener (a listener keeps its state per trainer).
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
  private volatile boolean usable;
  private final AtomicBoolean planPrinted = new AtomicBoolean();

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
    try {
      if (!extensions.isEmpty()) {
        String duplicate = ExtensionLoader.duplicateProvider(extensions);
        if (duplicate != null) {
          problems = List.of("extensions: " + duplicate);
          return problems;
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
      problems = List.of();
    } catch (AlgorithmPluginException e) {
      problems = List.of("extensions: " + e.getMessage());
    } catch (SurgeryConfigException e) {
      List<String> lines = new ArrayList<>();
      for (ConfigProblem p : e.getProblems()) {
        lines.add(p.toString());
      }
      if (lines.isEmpty()) {
        lines.add(config + ":0:0: " + e.getMessage());
      }
      problems = List.copyOf(lines);
    } catch (LinkageError e) {
      // The DJL in this class loader lacks what the surgery library links against.
      AgentLog.warnOnce(
          AgentLog.DJL_MISMATCH,
          "the surgery library does not link against this DJL (built for DJL 0.36.0); surgery"
              + " disabled, the program runs unmodified",
          e);
      problems = List.of();
      return problems;
    } catch (DjlInternalsException e) {
      // Reading the config already touched a DJL field that this DJL lacks: not a config error.
      AgentLog.warnOnce(AgentLog.DJL_MISMATCH, INTERNALS_MISMATCH, e);
      problems = List.of();
      return problems;
    } catch (RuntimeException e) {
      if (AgentLog.isDebug()) {
        e.printStackTrace(System.err);
      }
      problems = List.of(config + ":0:0: the config could not be validated: " + e);
    }
    if (problems.isEmpty()) {
      try {
        DjlInternals.verify();
        usable = true;
      } catch (RuntimeException | LinkageError e) {
        AgentLog.warnOnce(AgentLog.DJL_MISMATCH, INTERNALS_MISMATCH, e);
      }
    }
    return problems;
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
      if (planPrinted.compareAndSet(false, true)) {
        AgentLog.info(planTable(trainer));
      }
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
        loaded((Model) target);
        loadEvent(Event.AFTER_LOAD, target);
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
      dryRunAtFirstForward(trainer, data);
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
        events.beforeFirstForward(trainer, () -> initializeAsDjlWould(trainer, data));
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

  /**
   * A dry run for a program that never calls {@code trainer.initialize}: the plan needs the model's
   * shapes, so the model is initialized as DJL's forward is about to do (on the trainer's manager,
   * with the first forward's input shapes, FLOAT32, only for DJL's own blocks), and the plan is
   * printed. Where that would not be exactly DJL's initialization, the dry run says it cannot plan,
   * rather than saying nothing.
   */
  private void dryRunAtFirstForward(Trainer trainer, Object data) {
    if (planPrinted.get()) {
      return;
    }
    Block block = trainer.getModel().getBlock();
    if (block == null || BlockInspector.wasInitialized(block)) {
      return;
    }
    boolean exact =
        block instanceof AbstractBaseBlock
            && data instanceof NDList
            && trainer.getModel().getDataType() == DataType.FLOAT32;
    if (!exact) {
      if (planPrinted.compareAndSet(false, true)) {
        AgentLog.info(
            "dry run (dry_run=true): no plan: the program never called trainer.initialize(shapes)"
                + " and the model cannot be initialized exactly as DJL would at its first forward");
      }
      return;
    }
    // Exactly what DJL's forward is about to do (AbstractBaseBlock.forward: the trainer's manager,
    // FLOAT32, the input's shapes), so the program goes on as without the agent: its arrays on
    // the trainer's manager, the same draws; DJL's forward then finds the model initialized.
    block.initialize(trainer.getManager(), DataType.FLOAT32, ((NDList) data).getShapes());
    // The forward registers each parameter in the trainer's store as it reads it; registered now
    // (the same call, the same arrays), the plan sees what the trainer will hold at the entry's
    // epoch and says what an apply does to each parameter's optimizer state.
    registerInStore(trainer, block);
    if (planPrinted.compareAndSet(false, true)) {
      AgentLog.info(planTable(trainer));
    }
  }

  /**
   * Registers every parameter of a freshly initialized model in the trainer's store on each of its
   * devices: what DJL's first forward does as it reads them, and {@code trainer.initialize} at once
   * (the same call, the same arrays).
   */
  private static void registerInStore(Trainer trainer, Block block) {
    ParameterStore store = DjlTrainers.parameterStore(trainer);
    for (Pair<String, Parameter> p : block.getParameters()) {
      for (Device device : trainer.getDevices()) {
        store.getValue(p.getValue(), device, true);
      }
    }
  }

  /**
   * Initializes the model of a trainer whose epoch-0 surgery waits for it exactly as DJL 0.36's
   * {@code AbstractBaseBlock.forward} is about to (the first training forward's input shapes,
   * {@code FLOAT32}, the trainer's manager, so that the arrays live as long as without the agent:
   * until the trainer closes), registers the parameters in the trainer's store as that forward
   * would as it reads them and {@code trainer.initialize} does, then runs the surgery ({@link
   * Event#INIT}). Elsewhere the surgery cannot run exactly before the first forward and training
   * stops.
   *
   * @throws SurgeryFailure when surgery waits but cannot run exactly, or fails under {@code
   *     on_error: fail}
   */
  private void initializeAsDjlWould(Trainer trainer, Object data) {
    Block block = trainer.getModel().getBlock();
    if (block == null || block.isInitialized()) {
      return; // a parallel forward of the same batch did it
    }
    List<ScheduledAlgorithm> waiting = listener.awaitingInitialization(trainer);
    if (waiting.isEmpty()) {
      return; // nothing needs the shapes: DJL initializes the model as it always does
    }
    DataType dataType = trainer.getModel().getDataType();
    String inexact = null;
    if (!(block instanceof AbstractBaseBlock) || !(data instanceof NDList)) {
      // DJL initializes only an AbstractBaseBlock by itself, and only from the forward's input.
      inexact = "DJL would not initialize " + block.getClass().getName() + " by itself";
    } else if (dataType != DataType.FLOAT32) {
      // Trainer.initialize uses the model's data type, DJL's forward always FLOAT32.
      inexact =
          "the model's data type is "
              + (dataType == null ? "not set" : dataType.name())
              + ", where DJL would initialize FLOAT32";
    }
    if (inexact != null) {
      ScheduledAlgorithm first = waiting.get(0);
      throw new SurgeryFailure(
          new SurgeryFailedException(
              "Surgery: "
                  + waiting.stream()
                      .map(ScheduledAlgorithm::describe)
                      .collect(Collectors.joining("; "))
                  + " needs an initialized model, but the program never called"
                  + " trainer.initialize(shapes) and the surgery agent cannot do it exactly at the"
                  + " first forward ("
                  + inexact
                  + "): call trainer.initialize(shapes) before training, or schedule it at epoch 1"
                  + " or later",
              first.algorithm().name(),
              0,
              null,
              null));
    }
    Shape[] shapes = ((NDList) data).getShapes();
    AgentLog.debug(
        "the program never called trainer.initialize: the model initialized for "
            + Arrays.toString(shapes)
            + " (the first forward's input shapes) on the trainer's manager, as DJL's forward"
            + " would, for "
            + SurgeryDispatcher.describe(trainer)
            + " before its first forward");
    try {
      block.initialize(trainer.getManager(), DataType.FLOAT32, shapes);
      registerInStore(trainer, block);
      // INIT is the listener's onInitialized, which runs the waiting surgery.
      events.initialized(trainer);
    } catch (SurgeryFailure f) {
      throw f; // the listener's deliberate failure (on_error: fail), wrapped once already
    } catch (SurgeryFailedException | SurgeryException e) {
      throw new SurgeryFailure(e); // on_error: fail, rethrown unwrapped by the hook
    } catch (RuntimeException e) {
      // DJL's own forward would throw the same: the program gets it unchanged.
      throw new SurgeryFailure(e);
    }
  }

  /**
   * Reports a load event to every trainer of the model that the agent attached to, or, when none
   * trains it (the usual {@code Model.load} before training), to the listener for the model alone.
   */
  private void loadEvent(Event event, Object model) {
    if (SurgeryDispatcher.isDryRun()) {
      // A dry run changes nothing: no algorithm runs on a load event either.
      return;
    }
    List<Object> trainers = events.trainers(t -> ((Trainer) t).getModel() == model);
    for (Object trainer : trainers) {
      events.load(event, trainer);
    }
    if (trainers.isEmpty()) {
      try {
        listener.onEvent(event, (Model) model);
      } catch (SurgeryFailedException | SurgeryException e) {
        throw new SurgeryFailure(e);
      }
    }
  }

  /**
   * The plan of every entry, in application order, each on the model as it is now (nothing is
   * applied in a dry run, so a later entry's plan does not see an earlier entry's changes), with
   * what an apply would do to the trainer's optimizer state (the plan only reads it).
   */
  private String planTable(Trainer trainer) {
    Block block = trainer.getModel().getBlock();
    StringBuilder sb =
        new StringBuilder(
            "dry run (dry_run=true): nothing is applied. What each entry would change on the"
                + " model as initialized:");
    // Multiply-accumulates are counted for the input the trainer was initialized with.
    Shape input = initializedInput(block);
    List<EntryPlan> plans = new ArrayList<>();
    // Entries at epoch 0 run before the first step: first. The others in the order of the file:
    // an epoch and a step cannot be compared here (the batches per epoch are unknown). A step
    // entry's epoch() is 0, so it must not be taken for an epoch-0 entry.
    List<ScheduledAlgorithm> order = new ArrayList<>(listener.getSchedule());
    order.sort(
        Comparator.comparingInt((ScheduledAlgorithm e) -> beforeTraining(e) ? 0 : 1)
            .thenComparingInt(ScheduledAlgorithm::index));
    for (ScheduledAlgorithm entry : order) {
      Algorithm algorithm = entry.algorithm();
      String title = entry.describe() + " " + algorithm.settings();
      int planned = listener.getPlannedEpochs(trainer);
      // Planned where the entry first runs: what layer freezing freezes follows the epochs
      // completed then (a step entry's epoch() is 0, not the epoch its step falls in).
      OptionalInt completed = listener.completedEpochsAtFirstRun(trainer, entry);
      SurgeryContext context =
          new SurgeryContext(block, List.of(trainer), completed.orElse(entry.epoch()), planned);
      sb.append('\n');
      if (algorithm.needsTotalEpochs() && planned > 0 && completed.isEmpty()) {
        String why =
            EntryPlan.NO_PLAN
                + "what it changes follows the epochs completed when it runs ("
                + entry.trigger().describe()
                + "), which the batches per epoch decide, not known before training; the dry run"
                + " cannot say what it would change";
        plans.add(new EntryPlan(entry, null, why));
        sb.append(title).append("\n  ").append(why);
        continue;
      }
      if (algorithm.needsTotalEpochs() && planned <= 0) {
        // Not a failure: EasyTrain.fit announces the length when it starts, after this plan.
        String why =
            EntryPlan.NO_PLAN
                + "it needs the planned number of epochs, which EasyTrain.fit announces when it"
                + " starts, after this plan (a loop of the program's own needs 'total_epochs');"
                + " the dry run cannot say what it would change";
        plans.add(new EntryPlan(entry, null, why));
        sb.append(title).append("\n  ").append(why);
        continue;
      }
      try {
        SurgeryPlan plan = algorithm.plan(context, input);
        plans.add(new EntryPlan(entry, plan, null));
        sb.append(plan.toTable(title));
      } catch (PlanUnavailableException e) {
        // An algorithm that cannot plan (one that acts on events, a plugin): not a failure.
        String why =
            EntryPlan.NO_PLAN
                + e.getMessage()
                + " before it runs; the dry run cannot say what it would change";
        plans.add(new EntryPlan(entry, null, why));
        sb.append(title).append("\n  ").append(why);
      } catch (RuntimeException e) {
        plans.add(new EntryPlan(entry, null, String.valueOf(e.getMessage())));
        sb.append(title).append("\n  would fail: ").append(e.getMessage());
      }
    }
    listener
        .writePlanReport(plans)
        .ifPresent(path -> sb.append("\nplan written to ").append(path.toAbsolutePath()));
    return sb.toString();
  }

  /** Whether an entry runs before the first training step: at epoch 0. */
  private static boolean beforeTraining(ScheduledAlgorithm entry) {
    return entry.trigger().kind() == Trigger.Kind.EPOCH && entry.epoch() == 0;
  }

  /** The model's single input shape as recorded by {@code Trainer.initialize}, or null. */
  private static Shape initializedInput(Block block) {
    try {
      Shape[] shapes = block.isInitialized() ? DjlShapes.recordedInputShapes(block) : null;
      return shapes != null && shapes.length == 1 ? shapes[0] : null;
    } catch (RuntimeException e) {
      return null;
    }
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
    Model model = (Model) target;
    if (model.getBlock() != null && !calledFromCheckpointLibrary()) {
      // (SurgeryCheckpoint.load has just replayed the record itself before calling Model.load, and
      // puts the model back itself when the load fails.)
      ModelLoadUndo undo = ModelLoadUndo.before(model);
      int replayed;
      try {
        replayed = replay(undo, paramsFile);
      } catch (Throwable t) { // the arrays are off their parameters: put everything back first
        undo.failed();
        throw t;
      }
      LOADS.get().put(model, new Load(paramsFile, undo, replayed));
      try {
        loadEvent(Event.BEFORE_LOAD, model);
      } catch (Throwable t) { // the load does not happen: nor does its exit advice
        LOADS.get().remove(model);
        undo.failed();
        throw t;
      }
      return;
    }
    loadEvent(Event.BEFORE_LOAD, model);
  }

  /** A load in progress: its file, its undo, and how many records were replayed before it. */
  private record Load(Path file, ModelLoadUndo undo, int replayed) {}

  /**
   * The undo of each load this thread is in, from {@link #parametersLoading} to the end of the
   * load: DJL reads the parameters on the calling thread.
   */
  private static final ThreadLocal<Map<Model, Load>> LOADS =
      ThreadLocal.withInitial(IdentityHashMap::new);

  /** Checks what the load read against the replay; refused, the model is put back. */
  private static void loaded(Model model) {
    Load load = LOADS.get().remove(model);
    if (load == null) {
      return;
    }
    try {
      load.undo().loaded(String.valueOf(load.file()));
    } catch (MalformedModelException e) {
      load.undo().failed();
      throw new SurgeryFailure(e);
    }
  }

  /** {@inheritDoc} */
  @Override
  public Throwable parametersLoadFailed(Object target, Throwable thrown) {
    Load load = LOADS.get().remove(target);
    if (load == null) {
      return thrown;
    }
    load.undo().failed();
    AgentLog.info(
        "the parameters of "
            + ((Model) target).getName()
            + " could not be read from "
            + load.file()
            + "; the model is as it was before the load"
            + (load.replayed() > 0
                ? " (the replay of " + load.replayed() + " surgery record(s) undone)"
                : ""));
    return ModelLoadUndo.named(load.file(), thrown);
  }

  /** Replays the file's record under the load's undo; returns how many records it holds. */
  private static int replay(ModelLoadUndo undo, Path paramsFile) {
    List<SurgeryRecord> replayed;
    try {
      replayed = undo.replay(paramsFile);
    } catch (IOException | MalformedModelException e) {
      // The checkpoint carries surgery that cannot be redone: its parameters would not fit either.
      throw new SurgeryFailure(e);
    }
    if (!replayed.isEmpty()) {
      AgentLog.debug(
          "replayed "
              + replayed.size()
              + " surgery record(s) from "
              + paramsFile
              + " before loading its parameters");
    }
    return replayed.size();
  }

  private static boolean calledFromCheckpointLibrary() {
    return StackWalker.getInstance()
        .walk(
            frames ->
                frames.anyMatch(f -> f.getClassName().equals(SurgeryCheckpoint.class.getName())));
  }
}
