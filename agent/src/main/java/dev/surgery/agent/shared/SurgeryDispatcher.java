package dev.surgery.agent.shared;

import java.lang.ref.WeakReference;
import java.lang.reflect.InvocationTargetException;
import java.net.URL;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The entry points the advice woven into {@code ai.djl.training.Trainer} calls. It uses JDK types
 * only, so it links from any class loader that can see the agent jar, and it never lets the agent's
 * own faults reach the program: every failure is logged once and the program goes on unmodified.
 *
 * <p>The DJL side is reached through one {@link DjlHooks} per {@code Trainer} class (that is, per
 * DJL class loader), created on first use in a {@link HookLoader} whose parent is DJL's loader.
 */
public final class SurgeryDispatcher {

  /** The DJL class the agent instruments. */
  public static final String TRAINER = "ai.djl.training.Trainer";

  /** The DJL class whose {@code fit} tells the agent the planned number of epochs. */
  public static final String EASY_TRAIN = "ai.djl.training.EasyTrain";

  /** The DJL class whose parameter loading the agent instruments. */
  public static final String MODEL = "ai.djl.BaseModel";

  private static final String HOOKS_CLASS = "dev.surgery.agent.hookloader.DjlAgentHooks";

  /**
   * The config, its plugin jars and the hooks built for them, published together: a trainer built
   * on another thread while {@code agentmain} configures sees one config or the other, never a new
   * config with the old plugins or the old hooks.
   */
  private record Settings(Path config, List<Path> extensions, ClassValue<Slot> hooks) {}

  private static volatile Settings settings = newSettings(null, List.of());

  /**
   * The trainer that made each gradient collector ({@code Trainer.newGradientCollector}): a
   * collector knows nothing of its trainer, and {@code AFTER_BACKWARD} belongs to one. Weak keys:
   * collectors live for one batch.
   */
  private static final Map<Object, WeakReference<Object>> COLLECTORS =
      Collections.synchronizedMap(new WeakHashMap<>());

  /**
   * The trainer whose training forward ran last on this thread: the owner of a backward through a
   * collector the program made itself ({@code Engine.newGradientCollector()}). Weak, so that a pool
   * thread does not keep a closed trainer alive.
   */
  private static final ThreadLocal<WeakReference<Object>> LAST_FORWARD = new ThreadLocal<>();

  private static volatile boolean dryRun;

  /** Set once the agent made a copy of the library ({@code LibraryCopies.AGENT_COPIES}). */
  public static final String LIBRARY_COPIES_PROPERTY = "dev.surgery.agent.libraryCopies";

  /**
   * The loaders that define the agent's copies of the surgery library, weakly: a program that has
   * the library on its own class path asks them what surgery a block carries ({@link
   * #libraryLoaders()}), as the agent's copy asks the program's.
   */
  private static final List<WeakReference<ClassLoader>> LIBRARY_LOADERS =
      new CopyOnWriteArrayList<>();

  private SurgeryDispatcher() {}

  /**
   * Returns the class loaders that define the agent's copies of the surgery library (one per class
   * loader that holds DJL). A program that uses the library itself reads, through them, what the
   * agent's copy knows of a model it loaded ({@code Model.load} replays a checkpoint's surgery in
   * the agent's copy, whose records the program's copy does not hold).
   *
   * @return the loaders still alive, in the order they were made
   */
  public static List<ClassLoader> libraryLoaders() {
    List<ClassLoader> loaders = new ArrayList<>();
    for (WeakReference<ClassLoader> ref : LIBRARY_LOADERS) {
      ClassLoader loader = ref.get();
      if (loader != null) {
        loaders.add(loader);
      }
    }
    return loaders;
  }

  /**
   * The class loaders that defined classes of the program's own copies of the surgery library (a
   * class of it defined outside the agent's loaders): the agent's copy asks the copies there what a
   * model carries.
   *
   * @return the loaders, oldest first; empty while the program uses no copy of its own
   */
  public static List<ClassLoader> programCopyLoaders() {
    return ProgramCopy.loaders();
  }

  /**
   * Sets the config every hooks instance reads, forgetting hooks built for an earlier one; called
   * by {@code premain} and {@code agentmain}.
   *
   * @param configFile the YAML config, as the user gave it
   * @param extensionJars plugin jars whose algorithms the config may name ({@code extensions})
   */
  public static void configure(Path configFile, List<Path> extensionJars) {
    settings = newSettings(configFile, List.copyOf(extensionJars));
  }

  /**
   * Sets whether the hooks only print the plan instead of attaching the listener ({@code dry_run});
   * called by {@code premain} and {@code agentmain} before {@link #configure}.
   *
   * @param value true for a dry run
   */
  public static void setDryRun(boolean value) {
    dryRun = value;
  }

  /**
   * Tells whether this is a dry run.
   *
   * @return true when the agent only prints the plan
   */
  public static boolean isDryRun() {
    return dryRun;
  }

  /** Settings with hooks per DJL built for this config (a late attach after a refused one). */
  private static Settings newSettings(Path config, List<Path> extensions) {
    return new Settings(
        config,
        extensions,
        new ClassValue<>() {
          @Override
          protected Slot computeValue(Class<?> trainerClass) {
            return new Slot(createHooks(trainerClass, config, extensions));
          }
        });
  }

  /**
   * Validates the config against the DJL found by the system class loader, when there is one, so
   * that a bad config stops the JVM before the program's {@code main}.
   *
   * @return the problems found; null when DJL is not on the system class path (then the config is
   *     validated when the first {@code Trainer} is created)
   */
  public static List<String> validateEarly() {
    Class<?> trainerClass;
    try {
      trainerClass = Class.forName(TRAINER, false, ClassLoader.getSystemClassLoader());
    } catch (ClassNotFoundException | LinkageError e) {
      return null;
    }
    Slot slot = settings.hooks().get(trainerClass);
    if (slot.hooks == null) {
      return List.of();
    }
    return slot.prepared();
  }

  /**
   * Called by the advice at the end of every {@code Trainer} constructor.
   *
   * @param trainer the trainer that was just constructed
   */
  public static void trainerCreated(Object trainer) {
    try {
      DjlHooks h = readyHooks(trainer);
      if (h != null) {
        h.trainerCreated(trainer);
      }
    } catch (SurgeryFailure f) {
      throw f.rethrow();
    } catch (Throwable t) {
      AgentLog.warnOnce(
          "trainerCreated",
          "could not attach SurgeryListener to " + describe(trainer) + "; it trains unmodified",
          t);
    }
  }

  /**
   * Called by the advice when {@code Trainer.initialize(Shape...)} returns.
   *
   * @param trainer the trainer that was just initialized
   */
  public static void trainerInitialized(Object trainer) {
    try {
      DjlHooks h = readyHooks(trainer);
      if (h != null) {
        h.trainerInitialized(trainer);
      }
    } catch (SurgeryFailure f) {
      throw f.rethrow();
    } catch (Throwable t) {
      AgentLog.warnOnce(
          "trainerInitialized",
          "SurgeryListener.onInitialized failed for " + describe(trainer) + "; training goes on",
          t);
    }
  }

  /**
   * Called by the advice at the start of {@code EasyTrain.fit(Trainer, int, Dataset, Dataset)}.
   *
   * @param trainer the trainer about to train; may be null (fit then fails as it would anyway)
   * @param epochs the number of epochs fit will run
   */
  public static void fitStarting(Object trainer, int epochs) {
    if (trainer == null) {
      return;
    }
    try {
      DjlHooks h = readyHooks(trainer);
      if (h != null) {
        h.fitStarting(trainer, epochs);
      }
    } catch (SurgeryFailure f) {
      throw f.rethrow();
    } catch (Throwable t) {
      AgentLog.warnOnce(
          "fitStarting",
          "could not pass the number of epochs of EasyTrain.fit to the surgery of "
              + describe(trainer)
              + "; training goes on",
          t);
    }
  }

  /**
   * Called by the advice when a DJL model is about to read a parameter file.
   *
   * @param model the model ({@code ai.djl.BaseModel})
   * @param paramsFile the {@code java.nio.file.Path} it reads
   */
  public static void parametersLoading(Object model, Object paramsFile) {
    try {
      DjlHooks h = readyHooks(model);
      if (h != null && paramsFile instanceof Path) {
        h.parametersLoading(model, (Path) paramsFile);
      }
    } catch (SurgeryFailure f) {
      throw f.rethrow();
    } catch (Throwable t) {
      AgentLog.warnOnce(
          "parametersLoading",
          "could not replay the surgery recorded in "
              + paramsFile
              + "; the model loads as plain DJL would",
          t);
    }
  }

  /**
   * Called by the advice when {@code Model.load} failed while reading the parameters: the model is
   * put back as it was before the replay and the load. Never throws: the program gets DJL's own
   * exception, or, for a truncated file, one of the same type that names the file, as without the
   * agent {@code SurgeryCheckpoint.load} throws.
   *
   * @param model the model ({@code ai.djl.BaseModel})
   * @param thrown what reading threw
   * @return what the load throws instead
   */
  public static Throwable parametersLoadFailed(Object model, Throwable thrown) {
    try {
      DjlHooks h = readyHooks(model);
      if (h != null) {
        Throwable named = h.parametersLoadFailed(model, thrown);
        return named == null ? thrown : named;
      }
    } catch (Throwable t) {
      AgentLog.warnOnce(
          "parametersLoadFailed",
          "could not put the model back as it was after its load failed",
          t);
    }
    return thrown;
  }

  /**
   * Called by the advice at one of the training loop's hook points.
   *
   * @param point where DJL is
   * @param target the trainer (the model for {@link HookPoint#PARAMETERS_LOADED})
   */
  public static void at(HookPoint point, Object target) {
    if (point == HookPoint.FORWARD_ENTER) {
      forwardStarting(target, null);
      return;
    }
    if (target == null || settings.config() == null) {
      return;
    }
    try {
      DjlHooks h = readyHooks(target);
      if (h != null) {
        h.hookPoint(point, target);
      }
    } catch (SurgeryFailure f) {
      throw f.rethrow();
    } catch (Throwable t) {
      AgentLog.warnOnce(
          "hook-" + point,
          "the surgery hook at " + point + " failed for " + describe(target) + "; training goes on",
          t);
    }
  }

  /**
   * Called by the advice at the entry of a training {@code Trainer.forward}: {@link
   * HookPoint#FORWARD_ENTER} with the forward's input, which the DJL side needs when it must
   * initialize the model before DJL does so lazily.
   *
   * @param trainer the trainer
   * @param data the forward's first argument (an {@code NDList}); null when not known
   */
  public static void forwardStarting(Object trainer, Object data) {
    if (trainer == null || settings.config() == null) {
      return;
    }
    try {
      WeakReference<Object> last = LAST_FORWARD.get();
      if (last == null || last.get() != trainer) {
        LAST_FORWARD.set(new WeakReference<>(trainer));
      }
      DjlHooks h = readyHooks(trainer);
      if (h != null) {
        h.forwardStarting(trainer, data);
      }
    } catch (SurgeryFailure f) {
      throw f.rethrow();
    } catch (Throwable t) {
      AgentLog.warnOnce(
          "hook-" + HookPoint.FORWARD_ENTER,
          "the surgery hook at "
              + HookPoint.FORWARD_ENTER
              + " failed for "
              + describe(trainer)
              + "; training goes on",
          t);
    }
  }

  /**
   * Called by the advice when {@code Trainer.newGradientCollector()} returns: remembers which
   * trainer the collector's backward belongs to.
   *
   * @param trainer the trainer
   * @param collector the collector it made
   */
  public static void collectorCreated(Object trainer, Object collector) {
    if (collector == null || settings.config() == null) {
      return;
    }
    try {
      COLLECTORS.put(collector, new WeakReference<>(trainer));
    } catch (Throwable t) {
      AgentLog.warnOnce("collectorCreated", "could not track a gradient collector", t);
    }
  }

  /**
   * Called by the advice when a gradient collector's {@code backward(NDArray)} returns: reports
   * {@link HookPoint#BACKWARD_EXIT} for the trainer that made the collector, or else for the
   * trainer whose training forward ran last on this thread.
   *
   * @param collector the engine's gradient collector
   */
  public static void backwardDone(Object collector) {
    if (settings.config() == null) {
      return;
    }
    Object trainer = null;
    try {
      WeakReference<Object> owner = COLLECTORS.get(collector);
      if (owner == null) {
        owner = LAST_FORWARD.get();
      }
      trainer = owner == null ? null : owner.get();
    } catch (Throwable t) {
      AgentLog.warnOnce("backwardDone", "could not find the trainer of a gradient collector", t);
    }
    if (trainer != null) {
      at(HookPoint.BACKWARD_EXIT, trainer);
    }
  }

  /**
   * Names a trainer the way the agent's log lines do.
   *
   * @param trainer a trainer
   * @return for example {@code Trainer@1b6d3586}
   */
  public static String describe(Object trainer) {
    return trainer.getClass().getSimpleName()
        + "@"
        + Integer.toHexString(System.identityHashCode(trainer));
  }

  private static DjlHooks readyHooks(Object djlObject) throws ClassNotFoundException {
    Settings current = settings;
    if (current.config() == null) {
      return null;
    }
    Slot slot = current.hooks().get(trainerClassOf(djlObject.getClass()));
    if (slot.hooks == null) {
      return null;
    }
    List<String> problems = slot.prepared();
    if (!problems.isEmpty()) {
      // DJL was not visible when premain ran (a child class loader), so this is the first time the
      // config could be checked: refuse it now, before any training step.
      SurgeryAgentExit.refuse(problems);
    }
    // The agent's copy is in service: warns now if the program uses a copy of its own already
    // (else when it first does). Not for a copy made only to check the config, nor once the agent
    // is off (no config), when the program's copy meets nothing of the agent's.
    ProgramCopy.agentCopyInService();
    return slot.hooks;
  }

  /**
   * Finds the {@code Trainer} class of the DJL that defines an instrumented object's class: the
   * hooks are keyed by it, so a trainer and a model of one DJL share them.
   */
  private static Class<?> trainerClassOf(Class<?> type) throws ClassNotFoundException {
    for (Class<?> c = type; c != null; c = c.getSuperclass()) {
      if (TRAINER.equals(c.getName())) {
        return c;
      }
      if (MODEL.equals(c.getName())) {
        return Class.forName(TRAINER, false, c.getClassLoader());
      }
    }
    throw new ClassNotFoundException("not a DJL Trainer or BaseModel: " + type.getName());
  }

  private static DjlHooks createHooks(Class<?> trainerClass, Path config, List<Path> extensions) {
    try {
      URL[] classPath = HookLoader.agentClassPath(SurgeryDispatcher.class);
      HookLoader loader =
          new HookLoader(
              classPath, trainerClass.getClassLoader(), SurgeryDispatcher.class.getClassLoader());
      LIBRARY_LOADERS.removeIf(ref -> ref.get() == null);
      LIBRARY_LOADERS.add(new WeakReference<>(loader));
      // Tells a program's own copy of the library that there are copies to ask (LibraryCopies).
      System.setProperty(LIBRARY_COPIES_PROPERTY, SurgeryDispatcher.class.getName());
      Class<?> hooksClass = Class.forName(HOOKS_CLASS, true, loader);
      Object instance =
          hooksClass.getConstructor(Path.class, List.class).newInstance(config, extensions);
      AgentLog.debug(
          "surgery classes for "
              + trainerClass.getName()
              + " of "
              + trainerClass.getClassLoader()
              + " defined by "
              + loader.getName());
      return (DjlHooks) instance;
    } catch (InvocationTargetException e) {
      warnCannotLoad(e.getCause());
    } catch (Throwable t) {
      warnCannotLoad(t);
    }
    return null;
  }

  private static void warnCannotLoad(Throwable t) {
    AgentLog.warnOnce(
        AgentLog.DJL_MISMATCH,
        "cannot load the surgery library next to this DJL (built for DJL 0.36.0); surgery"
            + " disabled, the program runs unmodified",
        t);
  }

  /** The hooks of one DJL class loader; null hooks when they could not be created. */
  private static final class Slot {
    private final DjlHooks hooks;

    Slot(DjlHooks hooks) {
      this.hooks = hooks;
    }

    List<String> prepared() {
      return hooks.prepare();
    }
  }
}
