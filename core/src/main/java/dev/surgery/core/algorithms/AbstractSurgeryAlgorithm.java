package dev.surgery.core.algorithms;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.Targets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Base class for algorithms that work by replacing blocks through {@link
 * ModuleSurgery#replaceModules}: the subclass says which blocks to replace and how ({@link
 * #policies}); this class runs the surgery on the context's model and trainers, and builds the
 * {@link SurgeryChanges} (block paths before surgery, old and new types, parameter counts before
 * and after, elapsed time).
 *
 * <p>A subclass receives its validated {@link HyperParameterValues} in its constructor (checks
 * between hyperparameters go there too, so that an invalid value fails before anything changes),
 * reads them with {@link #value}, and keeps {@link #policies} free of side effects on the model:
 * the engine makes the changes and undoes all of them if one fails. {@link #hyperparameters} is
 * derived from the values; the subclass's builder extends {@link AlgorithmBuilder}. See
 * core/README.md for the recipe.
 *
 * <p>Frozen layers stay frozen: the replacement of a block whose parameters were all frozen (by
 * {@link LayerFreezing}, or by the user) comes out frozen too, its new parameters included, so a
 * trainer registers them but never updates them; a plan reports them without optimizer state.
 * Blocks that train are replaced by blocks that train.
 */
public abstract class AbstractSurgeryAlgorithm implements Algorithm, Cloneable {

  /** The warnings of the application running on this thread ({@link #warn}); null outside one. */
  private static final ThreadLocal<List<String>> APPLYING = new ThreadLocal<>();

  /** The validated hyperparameters; immutable, so copies made by {@link #withTargets} share it. */
  private final HyperParameterValues values;

  /** Where the algorithm applies; set only on the copy {@link #withTargets} makes. */
  private Targets targets = Targets.ALL;

  /**
   * Creates the algorithm.
   *
   * @param values its validated hyperparameters
   */
  protected AbstractSurgeryAlgorithm(HyperParameterValues values) {
    this.values = values;
  }

  /**
   * Returns the value of one of this algorithm's hyperparameters.
   *
   * @param <T> its type
   * @param hyperParameter the declaration
   * @return the value
   */
  protected final <T> T value(HyperParameter<T> hyperParameter) {
    return values.get(hyperParameter);
  }

  /**
   * Returns the config name the algorithm's spec gave its values.
   *
   * @return the config name
   */
  @Override
  public String name() {
    return values.algorithm();
  }

  /**
   * Returns the hyperparameter values by snake_case name, in declaration order.
   *
   * @return a new map
   */
  @Override
  public Map<String, Object> hyperparameters() {
    return new LinkedHashMap<>(values.asMap());
  }

  /**
   * Returns the replacement policies to run, in priority order: the first matcher that selects a
   * block decides its replacement. Called once per {@link #apply}, before the model is changed, so
   * it may inspect the model and throw a {@link dev.surgery.core.SurgeryException} to refuse the
   * surgery.
   *
   * @param context what the algorithm applies to
   * @return matcher to replacement function, in priority order
   */
  protected abstract LinkedHashMap<BlockMatcher, ReplacementFunction> policies(
      SurgeryContext context);

  /**
   * Returns the policies of an algorithm that replaces one kind of block.
   *
   * @param matcher selects the blocks to replace
   * @param replacement builds the replacement of a selected block
   * @return a map holding the one policy
   */
  protected static LinkedHashMap<BlockMatcher, ReplacementFunction> policy(
      BlockMatcher matcher, ReplacementFunction replacement) {
    LinkedHashMap<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(matcher, replacement);
    return policies;
  }

  /**
   * Returns the engine options for one application. The default keeps the context's trainers exact,
   * does not visit replacements, and requires output shapes to be kept. Override to change that
   * (start from {@code SurgeryOptions.builder().optTrainers(context.trainers())}).
   *
   * @param context what the algorithm applies to
   * @return the options
   */
  protected SurgeryOptions surgeryOptions(SurgeryContext context) {
    return SurgeryOptions.builder().optTrainers(context.trainers()).build();
  }

  /**
   * Runs the surgery described by {@link #policies}, narrowed to {@link #targets}, and reports it.
   *
   * @param context the model, its trainers and where training stands
   * @return what changed; empty when nothing matched (and no include was given)
   * @throws dev.surgery.core.SurgeryException if the surgery failed, or an include pattern matched
   *     no block, or nothing among included blocks would change; nothing was changed then
   */
  @Override
  public SurgeryChanges apply(SurgeryContext context) {
    // The decision and the surgery as one: another thread's surgery between them would leave this
    // one's changes untrue.
    Objects.requireNonNull(context, "context must not be null");
    return SurgeryLock.holding(() -> applyHoldingTheLock(context));
  }

  /**
   * Warns of something the user should know about this application, such as layers it leaves as
   * they are: logged at WARN under the algorithm's class, and returned by {@link #apply} with its
   * changes ({@link SurgeryChanges#warnings()}), which a listener lists among its own warnings.
   *
   * @param message the warning
   */
  protected final void warn(String message) {
    LoggerFactory.getLogger(getClass()).warn(message);
    List<String> collecting = APPLYING.get();
    if (collecting != null) {
      collecting.add(message);
    }
  }

  /** {@link #apply}, with {@link SurgeryLock} held. */
  private SurgeryChanges applyHoldingTheLock(SurgeryContext context) {
    // An apply may run inside another's (a plugin delegating to a built-in): each keeps its own.
    List<String> outer = APPLYING.get();
    List<String> warnings = new ArrayList<>();
    APPLYING.set(warnings);
    try {
      return applyCollectingWarnings(context, warnings);
    } finally {
      if (outer == null) {
        APPLYING.remove();
      } else {
        APPLYING.set(outer);
      }
    }
  }

  private SurgeryChanges applyCollectingWarnings(SurgeryContext context, List<String> warnings) {
    long start = System.nanoTime();
    Block root = context.model();
    Map<Block, String> paths = BlockPaths.index(root);
    refuseFreedArrays(paths);
    long before = countParameterScalarsIfKnown(root);
    FrozenReplacements frozen = new FrozenReplacements(root);
    LinkedHashMap<BlockMatcher, ReplacementFunction> policies = targetedPolicies(context, frozen);
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, surgeryOptions(context));
    if (frozen.frozenReplacements() > 0) {
      logger()
          .info(
              "{}: the new parameters of {} replacements of frozen layers are frozen too (layers are"
                  + " never unfrozen)",
              name(),
              frozen.frozenReplacements());
    }
    List<SurgeryChanges.Change> changes = new ArrayList<>(replaced.size());
    Map<Block, String> pathsAfter = null;
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      String path = paths.get(e.getKey());
      if (path == null) {
        // An intermediate replacement (recursion on replacements): it has only a path after.
        if (pathsAfter == null) {
          pathsAfter = BlockPaths.index(root);
        }
        path = pathsAfter.get(e.getValue());
      }
      changes.add(
          new SurgeryChanges.Change(
              BlockPaths.display(path),
              BlockPaths.typeName(e.getKey()),
              BlockPaths.typeName(e.getValue())));
    }
    if (changes.isEmpty()) {
      requireChangeWhenIncluded();
      // As Composer's NoEffectWarning, for every algorithm: an entry that does nothing is said.
      String why = whyNothingChanged(root);
      warn(
          "Applying "
              + name()
              + " did not change any layers: "
              + hyperparameters()
              + (why == null ? "" : "; " + why));
    }
    long after = countParameterScalarsIfKnown(root);
    return new SurgeryChanges(
        name(), settings(), changes, before, after, System.nanoTime() - start, warnings);
  }

  /**
   * Says why an application changed nothing, where the settings alone do not tell it (a model
   * without any block of the kind the algorithm changes); null when they do. Appended to the
   * warning of an application that changed no layer.
   *
   * @param root the model's root block
   * @return the reason, or null
   */
  protected String whyNothingChanged(Block root) {
    return null;
  }

  /**
   * Tells what {@link #apply} would do: the engine makes the surgery on the model alone and undoes
   * it ({@link ModuleSurgery#plan}), so the trainers' stores and optimizer state are never touched.
   *
   * @param context the model, its trainers and where training stands
   * @return the plan
   * @throws dev.surgery.core.SurgeryException when {@link #apply} would fail for the same reason
   */
  @Override
  public SurgeryPlan plan(SurgeryContext context) {
    return plan(context, null);
  }

  /**
   * Tells what {@link #apply} would do, with multiply-accumulate counts for {@code inputShape}
   * ({@link ModuleSurgery#plan(Block, java.util.Map, dev.surgery.core.SurgeryOptions, Shape)}).
   *
   * @param context the model, its trainers and where training stands
   * @param inputShape the model's input, batch axis first; null for no counts
   * @return the plan
   * @throws dev.surgery.core.SurgeryException when {@link #apply} would fail for the same reason
   */
  @Override
  public SurgeryPlan plan(SurgeryContext context, Shape inputShape) {
    // A plan makes the surgery and undoes it: not while another thread changes the model.
    Objects.requireNonNull(context, "context must not be null");
    return SurgeryLock.holding(() -> planHoldingTheLock(context, inputShape));
  }

  /** {@link #plan}, with {@link SurgeryLock} held. */
  private SurgeryPlan planHoldingTheLock(SurgeryContext context, Shape inputShape) {
    refuseFreedArrays(BlockPaths.index(context.model()));
    LinkedHashMap<BlockMatcher, ReplacementFunction> policies =
        targetedPolicies(context, new FrozenReplacements(context.model()));
    SurgeryPlan plan =
        ModuleSurgery.plan(context.model(), policies, surgeryOptions(context), inputShape);
    if (plan.isEmpty()) {
      requireChangeWhenIncluded();
    }
    return plan;
  }

  /**
   * Refuses a model whose parameters' arrays were freed (its {@code Model} or {@code NDManager}
   * closed, or a block an earlier surgery replaced and freed), before anything changes: the model
   * cannot run, and the algorithm would otherwise fail half way with DJL's "Native resource has
   * been released already" or a refusal aimed at a hand-written replacement function.
   *
   * @param paths every block of the model to its path ({@link BlockPaths#index})
   * @throws SurgeryException naming the first such block and parameter
   */
  static void refuseFreedArrays(Map<Block, String> paths) {
    BlockInspector.firstFreedParameter(paths)
        .ifPresent(
            freed -> {
              throw new SurgeryException(
                  BlockPaths.display(freed.blockPath()),
                  "parameter '"
                      + freed.parameter().getName()
                      + "' has no array any more: it was freed (was the Model or its NDManager"
                      + " closed?), so the model cannot run; nothing was changed");
            });
  }

  /**
   * The subclass's policies, each narrowed to the targets, and each function wrapped so that the
   * replacement of a frozen block comes out frozen ({@code frozen}).
   */
  private LinkedHashMap<BlockMatcher, ReplacementFunction> targetedPolicies(
      SurgeryContext context, FrozenReplacements frozen) {
    Targets.Selection selection = selectTargets(context.model());
    LinkedHashMap<BlockMatcher, ReplacementFunction> policies = policies(context);
    LinkedHashMap<BlockMatcher, ReplacementFunction> narrowed = new LinkedHashMap<>();
    for (Map.Entry<BlockMatcher, ReplacementFunction> e : policies.entrySet()) {
      narrowed.put(
          selection == null ? e.getKey() : selection.narrow(e.getKey()),
          frozen.keepingFrozen(e.getValue()));
    }
    return narrowed;
  }

  /**
   * Returns where this algorithm applies.
   *
   * @return the targets; {@link Targets#ALL} by default
   */
  @Override
  public Targets targets() {
    return targets;
  }

  /**
   * Returns a copy of this algorithm limited to the targets. The copy shares the (immutable)
   * hyperparameters of this one.
   *
   * @param targets the targets
   * @return the narrowed copy
   */
  @Override
  public AbstractSurgeryAlgorithm withTargets(Targets targets) {
    if (targets == null) {
      throw new IllegalArgumentException("targets must not be null");
    }
    try {
      AbstractSurgeryAlgorithm copy = (AbstractSurgeryAlgorithm) super.clone();
      copy.targets = targets;
      return copy;
    } catch (CloneNotSupportedException e) {
      throw new AssertionError("AbstractSurgeryAlgorithm is Cloneable", e);
    }
  }

  /**
   * Resolves the targets on a model, refusing include patterns that match no block.
   *
   * @param root the model's root
   * @return the selection, or null when every block is a target
   * @throws NothingTargetedException naming the patterns that match nothing
   */
  protected Targets.Selection selectTargets(Block root) {
    if (targets.isAll()) {
      return null;
    }
    Targets.Selection selection = targets.select(root);
    List<String> unmatched = selection.unmatchedIncludes();
    if (!unmatched.isEmpty()) {
      // A pattern that only letter case keeps from selecting (type:conv2d for Conv2d) is told so,
      // as the listener's check before training tells it (an outside probe: the agent's dry run
      // said 'type:*conv2d' also matches, itself of the wrong case).
      String typo = targets.caseMismatch(root);
      if (typo != null) {
        for (String u : unmatched) {
          if (typo.startsWith(Targets.INCLUDE + " pattern '" + u + "' ")) {
            throw new NothingTargetedException(name() + ": the " + typo);
          }
        }
      }
      List<String> examples = new ArrayList<>();
      Set<String> types = new java.util.TreeSet<>();
      for (Map.Entry<Block, String> e : BlockPaths.index(root).entrySet()) {
        if (!e.getValue().isEmpty()) {
          if (examples.size() < 4) {
            examples.add(e.getValue());
          }
          types.add(BlockPaths.typeName(e.getKey()));
        }
      }
      // A type pattern matches class names, not subclasses: after an earlier surgery the layers it
      // meant may have another class (a WeightStandardizedConv2d is no type:Conv2d), so the
      // model's types are the useful hint.
      String typePattern =
          unmatched.stream().filter(u -> u.startsWith("type:")).findFirst().orElse(null);
      String typeName = typePattern == null ? "" : typePattern.substring("type:".length());
      // Types that hold the pattern's name first (WeightStandardizedConv2d for type:Conv2d); of a
      // full name, its simple part (ai.djl.nn.core.Linear names Linear).
      String named = typeName.substring(typeName.lastIndexOf('.') + 1).replace("*", "");
      List<String> shown = new ArrayList<>();
      types.stream().filter(t -> !named.isEmpty() && t.contains(named)).forEach(shown::add);
      types.stream().filter(t -> !shown.contains(t)).forEach(shown::add);
      throw new NothingTargetedException(
          name()
              + ": include "
              + (unmatched.size() == 1 ? "pattern " : "patterns ")
              + "'"
              + String.join("', '", unmatched)
              + (unmatched.size() == 1 ? "' matches" : "' match")
              + " no block of the model ("
              + (typePattern != null
                  ? "a type pattern matches whole class or lambda names, case-sensitively, not"
                      + " subclasses; block types here: "
                      + String.join(", ", shown.subList(0, Math.min(8, shown.size())))
                      + (shown.size() > 8 ? ", ..." : "")
                      // The classes that replace a layer end in its name: a wildcard finds them.
                      + (typeName.contains("*") || typeName.contains("?") || named.isEmpty()
                          ? ""
                          : "; 'type:*"
                              + named
                              + "' also matches the classes whose names end in '"
                              + named
                              + "', such as those of replaced layers")
                  : "block paths look like "
                      + String.join(", ", examples)
                      + "; type patterns are written type:Conv2d")
              + ")");
    }
    return selection;
  }

  /**
   * Refuses an application that changes nothing although include patterns were given: the entry
   * would silently be a no-op. Without includes an empty result is allowed (and only logged by some
   * algorithms).
   *
   * @throws NothingTargetedException when include patterns are set
   */
  protected void requireChangeWhenIncluded() {
    if (!targets.includes().isEmpty()) {
      throw new NothingTargetedException(
          name()
              + ": nothing among the included blocks ("
              + targets
              + ") is something "
              + name()
              + " changes with "
              + hyperparameters());
    }
  }

  /**
   * Counts the parameter values (scalars) under a block: the sum of the sizes of its distinct
   * {@link Parameter} objects (a parameter shared by several blocks counts once), each of its shape
   * or else its array's ({@link BlockInspector#shapeOf}). A parameter whose shape is not known yet
   * (uninitialized model) counts 0.
   *
   * @param root the root block
   * @return the number of scalars
   */
  public static long countParameterScalars(Block root) {
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    long total = 0;
    for (Pair<String, Parameter> p : root.getParameters()) {
      Parameter parameter = p.getValue();
      if (seen.add(parameter)) {
        Shape shape = BlockInspector.shapeOf(parameter);
        if (shape != null) {
          total += shape.size();
        }
      }
    }
    return total;
  }

  /**
   * Counts the parameter values (scalars) under a block as {@link #countParameterScalars}, but
   * returns {@link SurgeryChanges#UNKNOWN_PARAMETERS} when a parameter has no shape yet (a model
   * before {@code Trainer.initialize}): a surgery there must not report "0 -> 0".
   *
   * @param root the root block
   * @return the number of scalars, or {@link SurgeryChanges#UNKNOWN_PARAMETERS}
   */
  public static long countParameterScalarsIfKnown(Block root) {
    return countParameterScalarsIfKnown(root.getParameters().values());
  }

  /**
   * Counts the values (scalars) of some parameters as {@link #countParameterScalarsIfKnown(Block)}
   * counts a tree's: each distinct {@link Parameter} once, {@link
   * SurgeryChanges#UNKNOWN_PARAMETERS} when one has no shape yet.
   *
   * @param parameters the parameters, repeats allowed (a parameter shared by several blocks)
   * @return the number of scalars, or {@link SurgeryChanges#UNKNOWN_PARAMETERS}
   */
  public static long countParameterScalarsIfKnown(Iterable<Parameter> parameters) {
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    long total = 0;
    for (Parameter parameter : parameters) {
      if (seen.add(parameter)) {
        Shape shape = BlockInspector.shapeOf(parameter);
        if (shape == null) {
          return SurgeryChanges.UNKNOWN_PARAMETERS;
        }
        total += shape.size();
      }
    }
    return total;
  }

  /**
   * Shows the algorithm as its config name and hyperparameters, for example {@code
   * blurpool{replace_convs=true, min_channels=16}}.
   *
   * @return the description
   */
  @Override
  public String toString() {
    return name() + settings();
  }

  /**
   * Base class of the algorithms' builders: starts from each declaration's default and builds
   * through {@link AlgorithmSpec#create}, the path YAML configs take, so a builder and a config
   * refuse the same values with the same messages.
   *
   * @param <B> the builder type
   * @param <A> the algorithm type
   */
  public abstract static class AlgorithmBuilder<
      B extends AlgorithmBuilder<B, A>, A extends Algorithm> {

    private final AlgorithmSpec spec;
    private final Map<String, Object> given = new LinkedHashMap<>();

    /**
     * Creates a builder with every hyperparameter at its default.
     *
     * @param spec the algorithm's spec, whose factory builds an {@code A}
     */
    protected AlgorithmBuilder(AlgorithmSpec spec) {
      this.spec = spec;
    }

    /**
     * Sets a hyperparameter, checking it against its declaration at once.
     *
     * @param <T> its type
     * @param hyperParameter the declaration
     * @param value the value
     * @return this builder
     * @throws IllegalArgumentException naming the parameter, the value and the valid range
     */
    protected final <T> B set(HyperParameter<T> hyperParameter, T value) {
      if (spec.hyperParameter(hyperParameter.name()) != hyperParameter) {
        throw new IllegalArgumentException(
            hyperParameter.name() + " is not a hyperparameter of " + spec.name());
      }
      given.put(hyperParameter.name(), hyperParameter.convert(value));
      return self();
    }

    @SuppressWarnings("unchecked")
    private B self() {
      return (B) this;
    }

    /**
     * Builds the algorithm.
     *
     * @return the algorithm
     * @throws IllegalArgumentException naming the invalid hyperparameters
     */
    @SuppressWarnings("unchecked") // the spec's factory is the algorithm's constructor
    public A build() {
      return (A) spec.create(given);
    }
  }

  /**
   * The class's logger, made when something is first logged: the agent builds the library's objects
   * before the program's {@code main}, which may still configure its logging.
   */
  private static Logger logger() {
    return LogHolder.LOGGER;
  }

  private static final class LogHolder {
    static final Logger LOGGER = LoggerFactory.getLogger(AbstractSurgeryAlgorithm.class);
  }
}
