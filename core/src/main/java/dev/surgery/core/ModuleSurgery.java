package dev.surgery.core;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.internal.NoTrainerRegistered;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Model surgery for DJL blocks: the Java port of Composer's {@code module_surgery}.
 *
 * <p>In DJL the {@link Trainer} owns what a PyTorch optimizer holds (the parameter set, in its
 * {@code ParameterStore}, and the {@code Optimizer} state), so the "optimizers" of Composer's API
 * are trainers here. Passing {@code null} or an empty collection changes the model only; a trainer
 * that already registered the model's parameters must then be recreated.
 *
 * <p>Every replacing call is all-or-nothing: if a replacement function throws, a replacement fails
 * to initialize or changes output shapes, or the trainer update fails, the tree, the children keys
 * and fields, the parameter arrays, the trainers' stores and the optimizer state are restored
 * exactly, and a {@link SurgeryException} naming the block path propagates.
 *
 * <p>Every call that changes or plans on a model runs under {@link SurgeryLock}: two threads never
 * change one model at once. A thread that uses the model meanwhile without the lock (a forward, a
 * training step) can meet it half changed.
 */
public final class ModuleSurgery {

  /**
   * Whether the reminder about trainers after a surgery without one was logged at INFO yet
   * (package-private: a test resets it).
   */
  static final AtomicBoolean TRAINERLESS_REMINDED = new AtomicBoolean();

  /** The same for the listener's wording, before its trainer's first step (a test resets it). */
  static final AtomicBoolean LISTENER_REMINDED = new AtomicBoolean();

  private ModuleSurgery() {}

  /**
   * Counts the distinct blocks strictly below {@code module} that are instances of any given class
   * (subclasses included). A block reachable along several paths counts once.
   *
   * @param module the root; never counted itself
   * @param moduleClasses the classes to count
   * @return the number of distinct matching blocks
   */
  public static int countModuleInstances(Block module, Class<?>... moduleClasses) {
    requireArgument(module, "module");
    requireArgument(moduleClasses, "moduleClasses");
    BlockMatcher matcher = BlockMatcher.ofClass(moduleClasses);
    return countModuleInstances(module, matcher);
  }

  /**
   * Counts the distinct blocks strictly below {@code module} that a matcher selects.
   *
   * @param module the root; never counted itself
   * @param matcher the selection
   * @return the number of distinct matching blocks
   * @throws SurgeryException when the tree nests too deeply for this thread's stack
   */
  public static int countModuleInstances(Block module, BlockMatcher matcher) {
    requireArgument(module, "module");
    requireArgument(matcher, "matcher");
    return notTooDeep(() -> countWalking(module, matcher));
  }

  private static int countWalking(Block module, BlockMatcher matcher) {
    IdentityIndex<Boolean> seen = new IdentityIndex<>();
    seen.putIfAbsent(module, Boolean.TRUE);
    if (matcher instanceof PathFreeMatcher pathFree) {
      // No path strings for a class or name matcher.
      DistinctCount matchedLeaves = new DistinctCount();
      int composites =
          countBelow(BlockPaths.children(module).values(), pathFree, seen, matchedLeaves);
      return composites + matchedLeaves.distinct();
    }
    int[] count = {0};
    countBelow(module, "", matcher, seen, count);
    return count[0];
  }

  /**
   * Counts the matching composites below, each once, and adds every matching leaf met (repeats too)
   * to {@code matchedLeaves}, which tells their distinct number in the end.
   */
  private static int countBelow(
      List<Block> children,
      PathFreeMatcher matcher,
      IdentityIndex<Boolean> seen,
      DistinctCount matchedLeaves) {
    int count = 0;
    for (int i = 0, n = children.size(); i < n; i++) {
      Block child = children.get(i);
      List<Block> below = BlockPaths.children(child).values();
      boolean matches = matcher.matches(child);
      if (below.isEmpty()) {
        // A leaf leads nowhere, so meeting it again matters only to the count: a matching one is
        // deduplicated at the end, all at once, without a probe into a table as large as the tree
        // per leaf; one that does not match adds nothing, however often it is met.
        if (matches) {
          matchedLeaves.add(child);
        }
        continue;
      }
      // A composite is entered once, which also stops cycles.
      if (seen.putIfAbsent(child, Boolean.TRUE) == null) {
        if (matches) {
          count++;
        }
        count += countBelow(below, matcher, seen, matchedLeaves);
      }
    }
    return count;
  }

  private static void countBelow(
      Block block, String prefix, BlockMatcher matcher, IdentityIndex<Boolean> seen, int[] count) {
    for (Pair<String, Block> entry : BlockPaths.children(block)) {
      Block child = entry.getValue();
      if (seen.putIfAbsent(child, Boolean.TRUE) == null) {
        String path = BlockPaths.join(prefix, entry.getKey());
        if (matcher.matches(child, path)) {
          count[0]++;
        }
        countBelow(child, path, matcher, seen, count);
      }
    }
  }

  /**
   * Replaces blocks by class, changing the model only. Equivalent to {@code
   * replaceModuleClasses(module, policies, null, false, null)}.
   *
   * @param module the root; never replaced itself
   * @param policies class to replacement function; tried in the map's iteration order (use a {@link
   *     LinkedHashMap} to control it)
   * @return old block to new block, in replacement order (unmodifiable)
   */
  public static Map<Block, Block> replaceModuleClasses(
      Block module, Map<Class<? extends Block>, ReplacementFunction> policies) {
    requirePolicies(module, policies);
    return replaceModuleClasses(module, policies, null, false, null);
  }

  /**
   * Replaces every block below {@code module} that is an instance of a policy's class with what the
   * policy's function returns, in Composer's order (pre-order of first appearance), and keeps the
   * given trainers exact.
   *
   * <p>Policies are tried in the map's iteration order ({@link LinkedHashMap} keeps insertion
   * order). A replacement is written into every parent that references the old block: its {@code
   * children} list (renaming a key derived from the class name, so {@code toString} shows the new
   * type) and every instance field, {@code List}, other collection, array or {@code Map} field that
   * holds it. A parent that holds it where the engine cannot write (a field of another interface
   * type, inside a {@code Pair}, {@code PairList}, {@code Optional}, {@code Map.Entry} or {@code
   * AtomicReference} or a concrete class of these, as a map key, or in a collection of a field the
   * writes do not reach such as one declared {@code Iterable}) refuses the surgery: its forward
   * would still call the old block. Replacing an initialized block initializes its replacement on
   * the same manager, data type and device with the old block's input shapes (unless the function
   * did) and rejects a replacement that changes the output shapes. Descendants of a replaced block
   * are visited only while still reachable from the live tree. Once the surgery succeeds, the
   * arrays of parameters that left the model (and that no live parameter shares) are closed, those
   * of replacements that did not stay in it (replaced again, or dropped with their holder)
   * included, so the returned old and intermediate blocks must not be run again, nor returned by a
   * later surgery (a replacement with a freed array is refused); copy what a replacement needs
   * inside its function. A parameter that the model of another given trainer still uses (a block
   * shared by two models) stays in that trainer and keeps its array.
   *
   * @param module the root; never replaced itself
   * @param policies class to replacement function, tried in iteration order
   * @param optimizers the live trainers to keep exact; null or empty to change the model only
   * @param recurseOnReplacements whether replacements and their children are visited too
   * @param indices per-class call counters passed to the functions and incremented on every call,
   *     including calls that return null; written back in place when the traversal ends (a
   *     replacement function reading the map sees the values from before the surgery), and left as
   *     they were if the surgery fails, so a retry passes the same indices; null to start all at 0
   * @return old block to new block, in replacement order, intermediate replacements included
   *     (unmodifiable)
   * @throws SurgeryException if anything failed; everything was restored then
   * @throws NullPointerException if {@code optimizers} holds a null (nothing is changed)
   */
  public static Map<Block, Block> replaceModuleClasses(
      Block module,
      Map<Class<? extends Block>, ReplacementFunction> policies,
      Collection<Trainer> optimizers,
      boolean recurseOnReplacements,
      Map<Class<? extends Block>, Integer> indices) {
    requirePolicies(module, policies);
    requireNoNullTrainer(optimizers, "optimizers");
    return replaceModuleClasses(
        module, policies, optimizers, recurseOnReplacements, indices, Faults.NONE);
  }

  /** {@link #replaceModuleClasses(Block, Map, Collection, boolean, Map)} with injected faults. */
  static Map<Block, Block> replaceModuleClasses(
      Block module,
      Map<Class<? extends Block>, ReplacementFunction> policies,
      Collection<Trainer> optimizers,
      boolean recurseOnReplacements,
      Map<Class<? extends Block>, Integer> indices,
      Faults faults) {
    @SuppressWarnings("unchecked")
    Map<Object, Integer> counters =
        indices != null ? (Map<Object, Integer>) (Map<?, Integer>) indices : new HashMap<>();
    List<TreeSurgery.Policy> list = new ArrayList<>();
    for (Map.Entry<Class<? extends Block>, ReplacementFunction> e : policies.entrySet()) {
      Class<? extends Block> type = e.getKey();
      list.add(
          new TreeSurgery.Policy(
              type, type.getSimpleName(), BlockMatcher.ofClass(type), e.getValue()));
    }
    return run(module, list, optimizers, recurseOnReplacements, false, counters, faults);
  }

  /**
   * Replaces every block a matcher selects; the matcher form of {@link #replaceModuleClasses}, for
   * blocks that a class cannot single out (DJL's pools and activations are {@code LambdaBlock}s).
   * The per-policy counters in {@link SurgeryOptions#getIndices()} are keyed by the matcher.
   *
   * @param module the root; never replaced itself
   * @param policies matcher to replacement function, tried in iteration order
   * @param options trainers, recursion, shape-change permission and counters
   * @return old block to new block, in replacement order (unmodifiable)
   * @throws SurgeryException if anything failed; everything was restored then
   */
  public static Map<Block, Block> replaceModules(
      Block module, Map<BlockMatcher, ReplacementFunction> policies, SurgeryOptions options) {
    requirePolicies(module, policies);
    requireArgument(options, "options");
    List<TreeSurgery.Policy> list = new ArrayList<>();
    int i = 0;
    for (Map.Entry<BlockMatcher, ReplacementFunction> e : policies.entrySet()) {
      list.add(new TreeSurgery.Policy(e.getKey(), "#" + i++, e.getKey(), e.getValue()));
    }
    return run(
        module,
        list,
        options.getTrainers(),
        options.isRecurseOnReplacements(),
        options.isAllowShapeChange(),
        options.getIndices(),
        Faults.NONE);
  }

  /**
   * Tells what {@link #replaceModules} would do, without changing anything: the surgery is made on
   * the model alone (the options' trainers are only read, so no parameter store or optimizer state
   * is touched), described, and undone as after a failure. The replacement functions run, so the
   * plan names the very types and parameter shapes an apply would produce, and the parameters each
   * step removes, adds and keeps, with what an apply with the options' trainers would do to their
   * optimizer state ({@link SurgeryPlan.StateFate}: moved, dropped, fresh, or none), decided as the
   * apply decides it.
   *
   * @param module the root; never replaced itself
   * @param policies matcher to replacement function, tried in iteration order
   * @param options recursion and shape-change permission; the counters are copied, not updated
   * @return the plan; empty when nothing matches
   * @throws SurgeryException if the surgery would fail; nothing was changed then
   */
  public static SurgeryPlan plan(
      Block module, Map<BlockMatcher, ReplacementFunction> policies, SurgeryOptions options) {
    return plan(module, policies, options, null);
  }

  /**
   * Tells what {@link #replaceModules} would do, as {@link #plan(Block, Map, SurgeryOptions)} does,
   * and counts each step's multiply-accumulates per sample for one forward of the model on {@code
   * inputShape}: for convolutions, linear layers, the blur filter and the project's layers built
   * from them; null (unknown) for other types and for blocks whose input shape cannot be followed
   * from the model input (sequential and parallel blocks pass it on; below other composites only
   * the shapes recorded at initialization with this very input are used).
   *
   * @param module the root; never replaced itself
   * @param policies matcher to replacement function, tried in iteration order
   * @param options recursion and shape-change permission; the counters are copied, not updated
   * @param inputShape the model's input, batch axis first (the counts are per sample); null for no
   *     counts
   * @return the plan; empty when nothing matches
   * @throws SurgeryException if the surgery would fail; nothing was changed then
   */
  public static SurgeryPlan plan(
      Block module,
      Map<BlockMatcher, ReplacementFunction> policies,
      SurgeryOptions options,
      Shape inputShape) {
    requirePolicies(module, policies);
    requireArgument(options, "options");
    // The whole plan under the lock: its paths and shapes are read before the dry run starts.
    return notTooDeep(
        () -> SurgeryLock.holding(() -> planWalking(module, policies, options, inputShape)));
  }

  private static SurgeryPlan planWalking(
      Block module,
      Map<BlockMatcher, ReplacementFunction> policies,
      SurgeryOptions options,
      Shape inputShape) {
    List<TreeSurgery.Policy> list = new ArrayList<>();
    int i = 0;
    for (Map.Entry<BlockMatcher, ReplacementFunction> e : policies.entrySet()) {
      list.add(new TreeSurgery.Policy(e.getKey(), "#" + i++, e.getKey(), e.getValue()));
    }
    Map<Block, String> paths = BlockPaths.index(module);
    Map<Object, Integer> indices =
        options.getIndices() == null ? new HashMap<>() : new HashMap<>(options.getIndices());
    TreeSurgery surgery =
        new TreeSurgery(
            module,
            list,
            List.of(),
            options.isRecurseOnReplacements(),
            options.isAllowShapeChange(),
            indices,
            Faults.NONE);
    // Shapes are followed through the tree as it is now, before any replacement.
    MacCounter.Reached inputs =
        inputShape == null ? null : MacCounter.inputShapes(module, new Shape[] {inputShape});
    return alone(
        () ->
            surgery.dryRun(
                (replaced, before, owners) -> {
                  SurgeryPlan plan =
                      SurgeryPlan.describe(
                          module, replaced, before, paths, owners, options.getTrainers());
                  return inputs == null ? plan : plan.withMacs(replaced, inputs, inputShape);
                },
                options.getTrainers()));
  }

  /**
   * Runs a walk of the tree that is no surgery (a count, a plan's reading of paths and shapes); one
   * too deep for this thread's stack is refused with a typed error rather than a bare {@code
   * StackOverflowError}. A surgery's own walks are the engine's, whose rollback says the same.
   */
  private static <T> T notTooDeep(java.util.function.Supplier<T> walk) {
    try {
      return walk.get();
    } catch (StackOverflowError e) {
      throw new SurgeryException(null, TOO_DEEP, e);
    }
  }

  /** Why a tree too deep for the stack is refused; the engine's rollback says the same. */
  static final String TOO_DEEP =
      "the block tree nests too deeply for this thread's stack (a chain thousands of blocks deep;"
          + " DJL itself initializes none much past 3,000 levels): nothing was changed; start the"
          + " surgery from a thread with a larger stack (new Thread(null, task, name, stackSize)),"
          + " not from inside another surgery or algorithm, or nest the blocks less deeply";

  /**
   * Whether a surgery runs on this thread: one started from its replacement function is refused.
   */
  private static final ThreadLocal<Boolean> RUNNING = ThreadLocal.withInitial(() -> false);

  /**
   * Runs a surgery or a dry run, refusing one started from another's replacement function: its
   * changes would be outside the running one's undo (or, under a dry run, would stay).
   */
  private static <T> T alone(java.util.function.Supplier<T> surgery) {
    if (RUNNING.get()) {
      throw new SurgeryException(
          null,
          "a surgery was started while another ran on this thread (from its replacement function):"
              + " a replacement function must not change the tree; return the replacement, and"
              + " run further surgery after this one returns");
    }
    // One model changed by two threads at once ends neither as the one nor as the other order.
    SurgeryLock.get().lock();
    RUNNING.set(true);
    try {
      return surgery.get();
    } finally {
      RUNNING.set(false);
      SurgeryLock.get().unlock();
    }
  }

  private static Map<Block, Block> run(
      Block module,
      List<TreeSurgery.Policy> policies,
      Collection<Trainer> trainers,
      boolean recurse,
      boolean allowShapeChange,
      Map<Object, Integer> indices,
      Faults faults) {
    boolean trainerless = trainers == null || trainers.isEmpty();
    // A trainer registers only initialized parameters: before initialization (epoch-0 surgery on a
    // fresh model) there is nothing a trainer could hold, and the reminder would only mislead.
    // Asked of the root first (one field read), so trainerless surgery on a large uninitialized
    // tree does not pay for the reminder; a checkpoint's replay records shapes but leaves no array.
    boolean registrable =
        trainerless && BlockInspector.wasInitialized(module) && holdsAnArray(module);
    Map<Block, Block> replaced =
        alone(
            () ->
                new TreeSurgery(
                        module, policies, trainers, recurse, allowShapeChange, indices, faults)
                    .run());
    long changed =
        registrable
            ? replaced.entrySet().stream().filter(e -> e.getKey() != e.getValue()).count()
            : 0;
    if (changed > 0) {
      // A reminder, not a fault: said at INFO once per process, then at DEBUG, so that a job that
      // changes trees without a trainer again and again (or a benchmark) is not flooded with it.
      // A training listener before its trainer's first forward knows its own trainers hold
      // nothing: only a trainer it does not serve can be at risk, which the line says instead.
      String reminder =
          NoTrainerRegistered.declared()
              ? "Surgery replaced {} before the trainer's first step: another Trainer of"
                  + " this model that already trained it (one this listener does not serve) must"
                  + " be recreated; else its next step meets the freed arrays of the parameters"
                  + " that left the model (\"Native resource has been released already\")."
              : "Surgery replaced {} without a trainer: a Trainer that already registered"
                  + " the old parameters must be recreated, passed to the surgery to follow it, or"
                  + " given the new parameters with replaceParamsInOptimizer; else its next step"
                  + " meets the freed arrays of those that left the model (\"Native resource has"
                  + " been released already\").";
      // Each wording once: the listener's line must not use up the one that warns a program.
      AtomicBoolean once =
          NoTrainerRegistered.declared() ? LISTENER_REMINDED : TRAINERLESS_REMINDED;
      String blocks = changed == 1 ? "1 block" : changed + " blocks";
      if (once.compareAndSet(false, true)) {
        logger().info(reminder, blocks);
      } else {
        logger().debug(reminder, blocks);
      }
    }
    return replaced;
  }

  /**
   * Swaps parameters one-to-one in the trainers: {@code newParams[i]} takes the place of {@code
   * oldParams[i]}. When the shapes are equal the optimizer state and update count move with it, so
   * a weight-copying replacement continues exactly where it was; when both wrap the very same
   * array, the store entry (device copies as trained) moves too; otherwise the old state is closed
   * and the new parameter starts fresh (with its own Adam bias correction). A new parameter that
   * trains where the old one was frozen starts fresh too, as {@link #unfreezeParameters} makes an
   * unfrozen one; one that is frozen where the old one trained is updated no more (a later {@link
   * #unfreezeParameters} starts it fresh, zeroing what its arrays gathered meanwhile). Whatever the
   * shapes, a per-id learning rate answers the new parameter with the old one's first id (it takes
   * its place, as in a Composer parameter group). The blocks may be swapped in the model before or
   * after this call. Where the trainers holding an old parameter train different models (a block
   * shared between models, replaced in one of them), swap first: then a trainer whose model still
   * uses the old parameter keeps it, as {@link #replaceModules} keeps it, and so does one whose
   * model uses neither (a block replaced in each model by a block of its own: each trainer moves at
   * the call for its own model's replacement); a pair no trainer moves is logged at WARN. Before
   * the swap the call is refused.
   *
   * @param oldParams the parameters to take out
   * @param newParams their replacements, same length
   * @param optimizers the trainers to update; null or empty does nothing
   * @throws IllegalArgumentException if the lists differ in length, or hold a null, or a new
   *     parameter has no array or a freed one, is listed twice, is an old parameter at another
   *     position (a permutation) or is held by a given trainer already, or an old parameter is
   *     listed twice (unless kept in place at both positions), or its array was freed and it
   *     declares no shape (its state cannot be matched), or it is used by several models of the
   *     given trainers (two trainers of one model count once) while none uses its replacement yet;
   *     nothing is changed then
   * @throws NullPointerException if {@code optimizers} holds a null; nothing is changed then
   * @throws IllegalStateException if an old parameter is held by none of the trainers
   */
  public static void replaceParamsInOptimizer(
      List<Parameter> oldParams, List<Parameter> newParams, Collection<Trainer> optimizers) {
    requireArgument(oldParams, "oldParams");
    requireArgument(newParams, "newParams");
    Collection<Trainer> trainers = eachOnce(optimizers, "optimizers");
    SurgeryLock.holding(() -> ParameterMoves.replace(oldParams, newParams, trainers));
  }

  /** Whether any parameter of the tree has an array: the first one found ends the walk. */
  private static boolean holdsAnArray(Block root) {
    Deque<Block> todo = new ArrayDeque<>();
    Set<Block> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    todo.push(root);
    while (!todo.isEmpty()) {
      Block block = todo.pop();
      if (!seen.add(block)) {
        continue; // a block shared by several parents is looked at once
      }
      for (Pair<String, Parameter> p : block.getDirectParameters()) {
        if (p.getValue().isInitialized()) {
          return true;
        }
      }
      for (Block child : BlockPaths.children(block).values()) {
        todo.push(child);
      }
    }
    return false;
  }

  /**
   * Freezes parameters that stay in the model and drops what the trainers kept for updating them:
   * optimizer state (closed), update counts and bias-correction marks. Their store entries stay, so
   * forward passes still see them. All or nothing.
   *
   * @param parameters the parameters to freeze
   * @param optimizers the trainers whose optimizer state to drop; null or empty freezes only
   * @throws SurgeryException when a parameter's array was freed (nothing is frozen)
   * @throws NullPointerException if {@code optimizers} holds a null (nothing is changed)
   */
  public static void freezeParameters(
      Iterable<Parameter> parameters, Collection<Trainer> optimizers) {
    requireArgument(parameters, "parameters");
    requireNoNullTrainer(optimizers, "optimizers");
    SurgeryLock.holding(() -> ParameterFreezes.freeze(parameters, optimizers));
  }

  /**
   * Tells what {@link #freezeParameters} would do to each parameter's optimizer state, without
   * changing anything: {@link SurgeryPlan.StateFate#DROPPED} where a trainer holds the parameter or
   * state for it, else {@link SurgeryPlan.StateFate#NONE}.
   *
   * @param parameters the parameters to freeze
   * @param optimizers the trainers; null or empty for none
   * @return one fate per parameter, in order
   * @throws NullPointerException if {@code optimizers} holds a null
   */
  public static List<SurgeryPlan.StateFate> planFreeze(
      List<Parameter> parameters, Collection<Trainer> optimizers) {
    requireArgument(parameters, "parameters");
    requireNoNullTrainer(optimizers, "optimizers");
    return SurgeryLock.holding(() -> ParameterFreezes.planFreeze(parameters, optimizers));
  }

  /**
   * Unfreezes parameters that stayed in the model while frozen: they train again from the next
   * step, as a fresh optimizer would train them (new optimizer state and, under Adam, the bias
   * correction of their own step count), at the learning rate a tracker by parameter id gives the
   * id each had first (see {@code KeptIdTracker}). All or nothing.
   *
   * @param parameters the parameters to unfreeze
   * @param optimizers the trainers that hold them; null or empty unfreezes only
   * @throws SurgeryException when a parameter's array was freed (nothing is unfrozen)
   * @throws NullPointerException if {@code optimizers} holds a null (nothing is changed)
   */
  public static void unfreezeParameters(
      Iterable<Parameter> parameters, Collection<Trainer> optimizers) {
    requireArgument(parameters, "parameters");
    requireNoNullTrainer(optimizers, "optimizers");
    SurgeryLock.holding(() -> ParameterFreezes.unfreeze(parameters, optimizers));
  }

  /**
   * Updates the trainers after parameters changed: Composer's ordered difference. Each parameter in
   * {@code oldParams} but not in {@code newParams} leaves every trainer that holds it (store entry
   * and device mirrors closed, optimizer state removed and closed, update count removed; the
   * parameter's own array is left to its owner). Each parameter in {@code newParams} but not in
   * {@code oldParams} is registered on every device of the trainers that held removed ones, those
   * taken over below included (all trainers when no given trainer held any, as when nothing was
   * removed), so the next {@code step()} updates it, with the bias correction of its own step count
   * under Adam.
   *
   * <p>An added parameter around the very array of a removed one (a new {@code Parameter} wrapping
   * a trained weight) takes over the removed one's store entry, optimizer state and update count;
   * where several removed ones wrap that array (a frozen Parameter tied to a trainable one), it
   * takes over one a trainer holds before one none holds, and among those one that trains as it
   * does. One that trains where the removed one was frozen starts fresh, as an unfrozen parameter
   * does. A removed parameter that no trainer holds (DJL registers parameters on their first
   * forward pass) is skipped and logged at debug level, as Composer skips parameters its optimizer
   * lacks. A removed parameter that a trainer's model still holds is removed all the same, with a
   * warning: DJL registers it again at its next forward, with fresh optimizer state.
   *
   * @param oldParams the parameters before
   * @param newParams the parameters after
   * @param optimizers the trainers to update; null or empty does nothing
   * @throws IllegalStateException if an added parameter is not initialized or its array was freed;
   *     nothing was changed then
   * @throws NullPointerException if {@code optimizers} holds a null; nothing is changed then
   */
  public static void updateParamsInOptimizer(
      Iterable<Parameter> oldParams,
      Iterable<Parameter> newParams,
      Collection<Trainer> optimizers) {
    requireArgument(oldParams, "oldParams");
    requireArgument(newParams, "newParams");
    Collection<Trainer> trainers = eachOnce(optimizers, "optimizers");
    SurgeryLock.holding(() -> ParameterMoves.update(oldParams, newParams, trainers));
  }

  /**
   * The trainers, each once (by identity) in the order given, a null among them refused by name and
   * position ({@link #requireNoNullTrainer}); null for null. A trainer given twice is one trainer:
   * a second pass over it would move its pairs again, and write the moved-away parameter's id as
   * the new one's first id, which a rate by id then answers with its default.
   */
  private static Collection<Trainer> eachOnce(Collection<Trainer> trainers, String name) {
    requireNoNullTrainer(trainers, name);
    if (trainers == null) {
      return null;
    }
    Set<Trainer> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    List<Trainer> once = new ArrayList<>(trainers.size());
    for (Trainer t : trainers) {
      if (seen.add(t)) {
        once.add(t);
      }
    }
    return once;
  }

  /** A null argument is refused by name, not met as a bare NullPointerException deep inside. */
  private static void requireArgument(Object value, String name) {
    if (value == null) {
      throw new NullPointerException(name + " must not be null");
    }
  }

  /** A null among the trainers is refused by name and position, before anything changes. */
  static void requireNoNullTrainer(Collection<Trainer> trainers, String name) {
    if (trainers == null) {
      return;
    }
    int i = 0;
    for (Trainer t : trainers) {
      if (t == null) {
        throw new NullPointerException(name + " must not contain null (at " + i + ")");
      }
      i++;
    }
  }

  /** The tree and the policies, none of whose keys or functions may be null. */
  private static void requirePolicies(Block module, Map<?, ReplacementFunction> policies) {
    requireArgument(module, "module");
    requireArgument(policies, "policies");
    int i = 0;
    for (Map.Entry<?, ReplacementFunction> e : policies.entrySet()) {
      if (e.getKey() == null || e.getValue() == null) {
        throw new NullPointerException(
            "policy #"
                + i
                + " has no "
                + (e.getKey() == null ? "matcher" : "replacement function"));
      }
      i++;
    }
  }

  /**
   * The class's logger, made when something is first logged: the agent builds the library's objects
   * before the program's {@code main}, which may still configure its logging.
   */
  static Logger logger() {
    return LogHolder.LOGGER;
  }

  private static final class LogHolder {
    static final Logger LOGGER = LoggerFactory.getLogger(ModuleSurgery.class);
  }
}
