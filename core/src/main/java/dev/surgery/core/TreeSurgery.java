package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.internal.DjlInternals;
import java.lang.reflect.Field;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One run of {@link ModuleSurgery#replaceModules}: traversal, replacement in every parent,
 * placement of the replacements, trainer updates, and rollback of all of it on failure.
 */
final class TreeSurgery {

  /** One policy: a key for its call counter, what it matches and how it replaces. */
  record Policy(Object key, String label, BlockMatcher matcher, ReplacementFunction function) {}

  private static final ClassValue<List<Field>> HOLDER_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          return DjlInternals.blockHoldingFields(type);
        }
      };

  private final Block root;
  private final List<Policy> policies;
  private final List<Trainer> trainers;
  private final boolean recurse;
  private final boolean allowShapeChange;
  private final Map<Object, Integer> indices;

  private static final Logger logger = LoggerFactory.getLogger(TreeSurgery.class);

  private final Journal journal = new Journal();

  /** Where a test injects failures; {@link Faults#NONE} otherwise. */
  private final Faults faults;

  /** What the surgery knows of each block it met, in one map (one hash per block, not five). */
  private final Map<Block, Node> nodes = new IdentityHashMap<>();

  private final Deque<Block> queue = new ArrayDeque<>();
  private final Map<Block, Block> replaced = new LinkedHashMap<>();
  private NDArray[] rootAnchor;

  /** Bumped by every substitution: liveness answers of earlier epochs are stale. */
  private int epoch;

  /** A block's place in the tree as the surgery has seen it. */
  private static final class Node {
    /** Display path of the block (or of the block it replaced); null until known. */
    String path;

    /** Parents that reference the block (several for a shared block). */
    List<Block> parents = new ArrayList<>(1);

    /** Whether the block was enqueued for a visit. */
    boolean seen;

    /** For a replacement: the original block it stands for; null otherwise. */
    Block origin;

    /** How many replacements of replacements lead to this block. */
    int generation;

    int liveEpoch = -1;
    boolean live;

    /** Whether the block was in the tree when the surgery began. */
    boolean original;
  }

  private Node node(Block block) {
    Node n = nodes.get(block);
    if (n == null) {
      n = new Node();
      nodes.put(block, n);
    }
    return n;
  }

  /** The original a replacement of the pair stands for (the pair's own key if none). */
  private Block originOrKey(Map.Entry<Block, Block> pair) {
    Node n = nodes.get(pair.getValue());
    return n == null || n.origin == null ? pair.getKey() : n.origin;
  }

  private String pathOf(Block block) {
    Node n = nodes.get(block);
    return n == null ? null : n.path;
  }

  private Block originOf(Block block) {
    Node n = nodes.get(block);
    return n == null || n.origin == null ? block : n.origin;
  }

  /**
   * Every parameter of every replacement received, as received (before its own children change).
   */
  private final List<Parameter> received = new ArrayList<>();

  /** True while the first walk from the root marks the blocks the model had at the start. */
  private boolean initialWalk;

  /** The block being worked on, named by a failure that does not name one itself. */
  private String currentPath;

  /** Longest chain of replacements of replacements before recursion is deemed not to terminate. */
  static final int MAX_GENERATIONS = 1000;

  TreeSurgery(
      Block root,
      List<Policy> policies,
      Collection<Trainer> trainers,
      boolean recurse,
      boolean allowShapeChange,
      Map<Object, Integer> indices,
      Faults faults) {
    this.root = root;
    this.policies = policies;
    this.trainers = trainers == null ? List.of() : List.copyOf(trainers);
    this.recurse = recurse;
    this.allowShapeChange = allowShapeChange;
    this.indices = indices;
    this.faults = faults;
  }

  Map<Block, Block> run() {
    // No walk of every parameter up front: what left the model and what joined it is taken from
    // the replaced subtrees (see updateTrainers), so a big tree costs one traversal, not three.
    try {
      replaceAll(null);
      updateTrainers();
      journal.commit();
      return replaced;
    } catch (RuntimeException | Error e) {
      throw rolledBack(e, null);
    }
  }

  /**
   * Makes the surgery, lets {@code describe} look at the changed tree (old block to new block, and
   * the parameters before), then undoes everything as after a failure: the plan of an apply.
   */
  <T> T dryRun(java.util.function.BiFunction<Map<Block, Block>, Set<Parameter>, T> describe) {
    Set<Parameter> before = parametersOf(root);
    T result;
    try {
      replaceAll(before);
      result = describe.apply(replaced, before);
    } catch (RuntimeException | Error e) {
      throw rolledBack(e, before);
    }
    journal.rollback(new IllegalStateException("dry run"));
    releaseDiscarded(before);
    return result;
  }

  /**
   * Runs the traversal and placement; {@code before} is every parameter of the model when the
   * caller has it already, else null (then it is collected only if a trainer needs syncing).
   */
  private void replaceAll(Set<Parameter> before) {
    syncTrainedValues(before);
    Node top = node(root);
    top.path = "";
    top.seen = true;
    top.original = true;
    initialWalk = true;
    enqueueDescendants(root);
    initialWalk = false;
    while (!queue.isEmpty()) {
      Block child = queue.poll();
      if (isLive(child)) {
        visit(child);
      }
    }
    placeReplacements();
  }

  /**
   * Rolls back and frees what the surgery received; {@code before} may be null: the rollback has
   * put the tree back, so its parameters are then collected from the root.
   */
  private RuntimeException rolledBack(Throwable e, Set<Parameter> before) {
    journal.rollback(e);
    releaseDiscarded(before != null ? before : parametersOf(root));
    if (e instanceof SurgeryException s) {
      return s;
    }
    return new SurgeryException(
        currentPath == null ? null : BlockPaths.display(currentPath),
        "surgery failed and was rolled back: " + e.getMessage(),
        e);
  }

  /**
   * After a rollback, frees the arrays of the replacements this surgery received that belong to
   * nobody else (parameters the old tree had, such as adopted ones, are left alone), so that a job
   * retrying a failing surgery does not accumulate them until the model closes.
   */
  private void releaseDiscarded(Set<Parameter> before) {
    Set<NDArray> kept = arraysOf(before);
    for (Map.Entry<Block, Block> pair : replaced.entrySet()) {
      if (pair.getValue() == pair.getKey()) {
        continue;
      }
      for (Parameter p : parametersOf(pair.getValue())) {
        if (!before.contains(p) && p.isInitialized() && !kept.contains(p.getArray())) {
          try {
            p.getArray().close();
          } catch (RuntimeException e) {
            // already released with the rolled-back initialization
          }
        }
      }
    }
  }

  /**
   * Makes each model parameter's own array hold what the trainers trained, before any replacement
   * function reads it. A trainer that trains on copies (devices other than the model's, or a store
   * that copies) updates its store's arrays, not {@code Parameter.getArray()}; a weight-copying
   * replacement would capture stale values, and removing the parameter would close the trained
   * copy. The copy on the trainer's first device is taken as the trained value, as DJL's own {@code
   * ParameterStore.sync} does (with several devices DJL's Adam counts one update per copy, so the
   * copies can differ in their last bits); the first given trainer that holds the parameter
   * decides. Journaled: a rollback puts the model's previous values back.
   */
  private void syncTrainedValues(Set<Parameter> known) {
    Set<Parameter> synced = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Parameter> parameters = known;
    for (Trainer trainer : trainers) {
      Map<String, Object> entries = DjlInternals.storeEntries(DjlInternals.parameterStore(trainer));
      if (!trainsOnCopies(entries)) {
        continue; // every trained array is the model's own: nothing is stale (nor registered)
      }
      if (parameters == null) {
        parameters = parametersOf(root);
      }
      for (Parameter p : parameters) {
        Object entry = entries.get(p.getId());
        if (entry == null || !p.isInitialized() || !synced.add(p)) {
          continue;
        }
        List<NDArray> mirrors = DjlInternals.mirrors(entry);
        NDArray array = p.getArray();
        NDArray trained = mirrors.isEmpty() ? array : mirrors.get(0);
        if (trained == array) {
          continue;
        }
        NDArray previous = array.duplicate();
        journal.closeOnCommit(previous);
        journal.closeOnRollback(previous);
        journal.onRollback(() -> previous.copyTo(array));
        trained.copyTo(array);
      }
    }
  }

  /**
   * Tells whether a store holds, for any parameter, a first-device array other than the parameter's
   * own: then {@code getArray()} may be stale. A scan of the store's entries, cheaper than the walk
   * of the whole model that the sync needs, which the usual single-device trainer (training on the
   * model's own arrays) thus never pays. A parameter's id is unique to it, so the entry's parameter
   * is the model's parameter of that id.
   */
  private static boolean trainsOnCopies(Map<String, Object> entries) {
    for (Object entry : entries.values()) {
      List<NDArray> mirrors = DjlInternals.mirrors(entry);
      if (mirrors.isEmpty()) {
        continue;
      }
      Parameter p = DjlInternals.entryParameter(entry);
      if (!p.isInitialized() || mirrors.get(0) != p.getArray()) {
        return true;
      }
    }
    return false;
  }

  /** The arrays of some parameters, by identity (a new Parameter may wrap an existing array). */
  private static Set<NDArray> arraysOf(Collection<Parameter> parameters) {
    Set<NDArray> arrays = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Parameter p : parameters) {
      if (p.isInitialized()) {
        arrays.add(p.getArray());
      }
    }
    return arrays;
  }

  // ------------------------------------------------------------------ traversal

  private void enqueueDescendants(Block parent) {
    String prefix = pathOf(parent);
    for (Pair<String, Block> entry : childrenOf(parent)) {
      Block child = entry.getValue();
      Node n = node(child);
      if (!containsIdentity(n.parents, parent)) {
        n.parents.add(parent);
      }
      if (!n.seen) {
        n.seen = true;
        n.original = initialWalk;
        n.path = BlockPaths.join(prefix, entry.getKey());
        queue.add(child);
        enqueueDescendants(child);
      }
    }
  }

  /**
   * Tells whether a block is still reachable from the root. Answers are memoized until the next
   * substitution, so shared blocks (diamonds) are not walked again and again.
   */
  private boolean isLive(Block block) {
    if (block == root) {
      return true;
    }
    Node n = nodes.get(block);
    if (n == null) {
      return false;
    }
    if (n.liveEpoch == epoch) {
      return n.live;
    }
    n.liveEpoch = epoch;
    n.live = false; // a block is not its own ancestor; guards cycles
    boolean live = false;
    for (Block p : n.parents) {
      if (isLive(p)) {
        live = true;
        break;
      }
    }
    n.live = live;
    return live;
  }

  private void visit(Block child) {
    String path = pathOf(child);
    currentPath = path;
    for (Policy policy : policies) {
      if (!policy.matcher().matches(child, path)) {
        continue;
      }
      int index = nextIndex(policy.key());
      Block replacement;
      try {
        replacement = policy.function().apply(child, index);
      } catch (RuntimeException e) {
        throw new SurgeryException(
            BlockPaths.display(path),
            "replacement function of policy " + policy.label() + " failed: " + e.getMessage(),
            e);
      }
      if (replacement == null) {
        continue;
      }
      if (replaced.containsKey(child)) {
        throw new SurgeryException(
            BlockPaths.display(path),
            "two policies replace the same "
                + BlockPaths.typeName(child)
                + "; the second is "
                + policy.label());
      }
      replaced.put(child, replacement);
      if (replacement != child) {
        substitute(child, replacement, path);
      }
    }
  }

  /**
   * Hands out the policy's next call index and journals the counter, so that a rolled-back surgery
   * leaves the caller's counters as they were and a retry passes the same indices again.
   */
  private int nextIndex(Object key) {
    boolean had = indices.containsKey(key);
    Integer previous = indices.get(key);
    int index = previous == null ? 0 : previous;
    indices.put(key, index + 1);
    journal.onRollback(
        () -> {
          if (had) {
            indices.put(key, previous);
          } else {
            indices.remove(key);
          }
        });
    return index;
  }

  private void substitute(Block old, Block replacement, String path) {
    Node existing = nodes.get(replacement);
    if (existing != null && existing.seen && isLive(replacement)) {
      throw new SurgeryException(
          BlockPaths.display(path),
          "the replacement is already part of the model; return a new block");
    }
    Node oldNode = node(old);
    // Only a block with children can change whether other blocks are reachable; swapping a leaf
    // for a leaf changes the liveness of those two alone, so the memo of every other block stays.
    boolean structural = !childrenOf(old).isEmpty() || !childrenOf(replacement).isEmpty();
    if (structural) {
      epoch++;
    }
    addParameters(replacement, received);
    List<Block> ps = oldNode.parents;
    oldNode.parents = new ArrayList<>(1);
    for (Block parent : ps) {
      writeIntoParent(parent, old, replacement, path);
    }
    Node n = node(replacement);
    n.parents = new ArrayList<>(ps);
    n.liveEpoch = -1;
    oldNode.liveEpoch = -1;
    n.origin = originOf(old);
    int depth = oldNode.generation + 1;
    if (depth > MAX_GENERATIONS) {
      throw new SurgeryException(
          BlockPaths.display(path),
          "replacements were replaced "
              + MAX_GENERATIONS
              + " times in a row: the policies never stop matching their own output under"
              + " recurseOnReplacements");
    }
    n.generation = depth;
    if (n.path == null) {
      n.path = path;
    }
    // Blocks the replacement reuses (e.g. a wrapped original) stay reachable through it.
    for (Pair<String, Block> entry : childrenOf(replacement)) {
      List<Block> cps = node(entry.getValue()).parents;
      if (!containsIdentity(cps, replacement)) {
        cps.add(replacement);
      }
    }
    if (recurse && !n.seen) {
      n.seen = true;
      queue.add(replacement);
      enqueueDescendants(replacement);
    }
  }

  // ------------------------------------------------------------------ writing into parents

  private void writeIntoParent(Block parent, Block old, Block replacement, String path) {
    BlockList children = DjlInternals.liveChildren(parent);
    if (children == null) {
      throw new SurgeryException(
          BlockPaths.display(pathOf(parent)),
          parent.getClass().getName()
              + " keeps its children to itself (it is not an ai.djl.nn.AbstractBlock, as a"
              + " TorchScript symbol block is not), so its child at "
              + path
              + " cannot be replaced in place; replace the whole block instead");
    }
    List<String> keys = children.keys();
    List<Block> values = children.values();
    for (int i = 0; i < values.size(); i++) {
      if (values.get(i) == old) {
        int at = i;
        String oldKey = keys.get(i);
        values.set(i, replacement);
        keys.set(i, renamedKey(oldKey, i, old, replacement));
        journal.onRollback(
            () -> {
              values.set(at, old);
              keys.set(at, oldKey);
            });
      }
    }
    for (Field field : HOLDER_FIELDS.get(parent.getClass())) {
      writeIntoField(parent, field, old, replacement, path);
    }
  }

  /** Renames keys that DJL derived from the class name, so {@code toString} shows the new type. */
  private static String renamedKey(String key, int index, Block old, Block replacement) {
    if (!key.equals(childKey(index, old))) {
      return key;
    }
    return childKey(index, replacement);
  }

  /**
   * DJL's key for the child at {@code index}: {@code %02d} and the class name, without a Formatter.
   */
  private static String childKey(int index, Block block) {
    int number = index + 1;
    String name = block.getClass().getSimpleName();
    // A StringBuilder, not '+': an indy concatenation runs cold on this path (a few calls per
    // surgery, never JIT-compiled) and costs about ten times as much there.
    StringBuilder key = new StringBuilder(name.length() + 3);
    if (number < 10) {
      key.append('0');
    }
    return key.append(number).append(name).toString();
  }

  @SuppressWarnings("unchecked")
  private void writeIntoField(
      Block parent, Field field, Block old, Block replacement, String path) {
    Object value = DjlInternals.read(field, parent);
    if (value == old) {
      if (!field.getType().isInstance(replacement)) {
        throw new SurgeryException(
            BlockPaths.display(path),
            "field "
                + where(parent, field)
                + " of type "
                + field.getType().getSimpleName()
                + " cannot hold the replacement "
                + replacement.getClass().getName());
      }
      DjlInternals.write(field, parent, replacement);
      journal.onRollback(() -> DjlInternals.write(field, parent, old));
    } else if (value instanceof List<?> list) {
      List<Object> objects = (List<Object>) list;
      for (int i = 0; i < objects.size(); i++) {
        if (objects.get(i) == old) {
          int at = i;
          try {
            objects.set(i, replacement);
          } catch (UnsupportedOperationException | ClassCastException e) {
            throw new SurgeryException(
                BlockPaths.display(path),
                "list field " + where(parent, field) + " holds the block but cannot be changed",
                e);
          }
          journal.onRollback(() -> objects.set(at, old));
        }
      }
    } else if (value instanceof Object[] array) {
      for (int i = 0; i < array.length; i++) {
        if (array[i] == old) {
          int at = i;
          try {
            array[i] = replacement;
          } catch (ArrayStoreException e) {
            throw new SurgeryException(
                BlockPaths.display(path),
                "array field "
                    + where(parent, field)
                    + " cannot hold "
                    + replacement.getClass().getName(),
                e);
          }
          journal.onRollback(() -> array[at] = old);
        }
      }
    } else if (value instanceof Map<?, ?> map) {
      Map<Object, Object> objects = (Map<Object, Object>) map;
      for (Map.Entry<Object, Object> e : new ArrayList<>(objects.entrySet())) {
        if (e.getValue() == old) {
          Object key = e.getKey();
          try {
            objects.put(key, replacement);
          } catch (UnsupportedOperationException | ClassCastException ex) {
            throw new SurgeryException(
                BlockPaths.display(path),
                "map field " + where(parent, field) + " holds the block but cannot be changed",
                ex);
          }
          journal.onRollback(() -> objects.put(key, old));
        }
      }
    } else if (value instanceof Collection<?> collection && containsIdentity(collection, old)) {
      // Swap in place of the old element, keeping the collection's order (a deque, an ordered set).
      Collection<Object> objects = (Collection<Object>) collection;
      List<Object> snapshot = new ArrayList<>(objects);
      List<Object> swapped = new ArrayList<>(snapshot.size());
      for (Object o : snapshot) {
        swapped.add(o == old ? replacement : o);
      }
      try {
        objects.clear();
        objects.addAll(swapped);
      } catch (UnsupportedOperationException e) {
        throw new SurgeryException(
            BlockPaths.display(path),
            "collection field " + where(parent, field) + " holds the block but cannot be changed",
            e);
      }
      journal.onRollback(
          () -> {
            objects.clear();
            objects.addAll(snapshot);
          });
    }
  }

  /** Names a parent's field in a message; built only when one is needed. */
  private static String where(Block parent, Field field) {
    return parent.getClass().getSimpleName() + "." + field.getName();
  }

  // ------------------------------------------------------------------ placement

  private void placeReplacements() {
    for (Map.Entry<Block, Block> pair : replaced.entrySet()) {
      Block replacement = pair.getValue();
      if (replacement == pair.getKey()
          || replaced.containsKey(replacement)
          || !isLive(replacement)) {
        continue;
      }
      Block original = nodes.get(replacement).origin;
      currentPath = pathOf(original);
      String path = BlockPaths.display(currentPath);
      Shape[] inputShapes = DjlInternals.recordedInputShapes(original);
      if (inputShapes == null || !allInitialized(original)) {
        continue; // structural surgery: the trainer initializes the replacement later
      }
      if (!allInitialized(replacement) || DjlInternals.recordedInputShapes(replacement) == null) {
        initialize(original, replacement, inputShapes, path);
      }
      if (!allowShapeChange) {
        checkShapes(original, replacement, inputShapes, path);
      }
    }
  }

  private void initialize(Block original, Block replacement, Shape[] inputShapes, String path) {
    List<Parameter> fresh = new ArrayList<>();
    for (Parameter p : parametersOf(replacement)) {
      if (!p.isInitialized()) {
        fresh.add(p);
      }
    }
    NDArray anchor = anchorArray(original);
    NDManager manager;
    DataType dataType;
    if (anchor != null) {
      manager = anchor.getManager();
      dataType = anchor.getDataType();
    } else if (!trainers.isEmpty()) {
      manager = trainers.get(0).getModel().getNDManager();
      dataType = trainers.get(0).getModel().getDataType();
    } else if (fresh.isEmpty()) {
      manager = null;
      dataType = DataType.FLOAT32;
    } else {
      throw new SurgeryException(
          path,
          "cannot tell which NDManager to initialize the replacement on: the model has no"
              + " initialized parameter and no trainer was given");
    }
    try {
      if (manager == null) {
        try (NDManager scratch = NDManager.newBaseManager()) {
          replacement.initialize(scratch, dataType, inputShapes);
        }
      } else {
        replacement.initialize(manager, dataType, inputShapes);
      }
      faults.point("initialize");
    } catch (RuntimeException e) {
      throw new SurgeryException(
          path,
          "replacement "
              + replacement.getClass().getSimpleName()
              + " failed to initialize with input shapes "
              + Arrays.toString(inputShapes)
              + ": "
              + e.getMessage(),
          e);
    } finally {
      for (Parameter p : fresh) {
        if (p.isInitialized()) {
          journal.closeOnRollback(p.getArray());
        }
      }
    }
  }

  /** An array that tells where the old block lived: its own parameter, else any in the model. */
  private NDArray anchorArray(Block original) {
    for (Parameter p : parametersOf(original)) {
      if (p.isInitialized()) {
        return p.getArray();
      }
    }
    if (rootAnchor == null) {
      // Looked up once per surgery: parameter-free replacements would otherwise walk the tree each.
      rootAnchor = new NDArray[1];
      for (Parameter p : parametersOf(root)) {
        if (p.isInitialized()) {
          rootAnchor[0] = p.getArray();
          break;
        }
      }
    }
    return rootAnchor[0];
  }

  private static void checkShapes(
      Block original, Block replacement, Shape[] inputShapes, String path) {
    Shape[] expected = original.getOutputShapes(inputShapes);
    Shape[] actual;
    try {
      actual = replacement.getOutputShapes(inputShapes);
    } catch (RuntimeException e) {
      throw new SurgeryException(
          path, "cannot compute the output shapes of the replacement: " + e.getMessage(), e);
    }
    if (!Arrays.equals(expected, actual)) {
      throw new SurgeryException(
          path,
          "replacement "
              + replacement.getClass().getSimpleName()
              + " changes the output shapes from "
              + Arrays.toString(expected)
              + " to "
              + Arrays.toString(actual)
              + " (allow it with SurgeryOptions.optAllowShapeChange(true))");
    }
  }

  // ------------------------------------------------------------------ trainers

  /**
   * Updates the trainers and frees what left the model. What left and what joined are taken from
   * the replaced subtrees rather than from walks of every parameter before and after: a parameter
   * can only leave with an original block that was replaced ({@link #displaced}) and only join with
   * a replacement that stayed. A block outside the replacements may still hold one of them (a block
   * shared with a kept parent, a parameter object two blocks hold, an array a kept parameter
   * wraps); one walk of the kept part of the tree answers that, and only when the answer matters (a
   * trainer to update or an array to free). The result is the old difference of the whole before
   * and after sets.
   */
  private void updateTrainers() {
    currentPath = null; // parameters, not one block, are concerned from here on
    List<Trainer> active = new ArrayList<>();
    for (Trainer t : trainers) {
      if (TrainerSurgery.hasRegistered(t)) {
        active.add(t);
      }
    }
    // Without a trainer only arrays to free matter: parameters without one need no answer.
    boolean all = !active.isEmpty();
    Set<Parameter> displaced = new LinkedHashSet<>();
    for (Map.Entry<Block, Block> pair : replaced.entrySet()) {
      Node n = nodes.get(pair.getKey());
      if (pair.getValue() != pair.getKey() && n != null && n.original) {
        collectOriginalParameters(pair.getKey(), displaced, all);
      }
    }
    boolean receivedArrays = false;
    for (Parameter p : received) {
      receivedArrays |= p.isInitialized();
    }
    if (!all && displaced.isEmpty() && !receivedArrays) {
      return; // structural surgery on blocks without arrays: nothing to update or free
    }
    Set<Block> stayed = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Parameter> joined = new LinkedHashSet<>();
    for (Map.Entry<Block, Block> pair : replaced.entrySet()) {
      Block replacement = pair.getValue();
      Block next = replaced.get(replacement);
      if (replacement == pair.getKey()
          || (next != null && next != replacement)
          || !isLive(replacement)) {
        continue;
      }
      stayed.add(replacement);
      joined.addAll(parametersOf(replacement));
    }
    List<Parameter> removed = new ArrayList<>();
    for (Parameter p : displaced) {
      if (!joined.contains(p)) {
        removed.add(p);
      }
    }
    List<Parameter> added = new ArrayList<>();
    if (!active.isEmpty()) {
      for (Parameter p : joined) {
        if (!displaced.contains(p)) {
          added.add(p);
        }
      }
    }
    // Parameters of replacements that did not stay (replaced again under recursion, or dropped
    // with the replacement that held them): nothing else can reach them, unless a kept block does.
    Set<Parameter> dropped = new LinkedHashSet<>();
    for (Parameter p : received) {
      if (p.isInitialized() && !joined.contains(p) && !displaced.contains(p)) {
        dropped.add(p);
      }
    }
    boolean arraysToFree = !dropped.isEmpty();
    for (Parameter p : removed) {
      arraysToFree |= p.isInitialized();
    }
    Set<NDArray> live = arraysOf(joined);
    if (arraysToFree || !added.isEmpty() || (!active.isEmpty() && !removed.isEmpty())) {
      Set<Parameter> asked = Collections.newSetFromMap(new IdentityHashMap<>());
      asked.addAll(removed);
      asked.addAll(added);
      asked.addAll(dropped);
      Set<NDArray> askedArrays = arraysOf(removed);
      askedArrays.addAll(arraysOf(dropped));
      Set<Parameter> held = Collections.newSetFromMap(new IdentityHashMap<>());
      heldOutside(stayed, asked, askedArrays, held, live);
      removed.removeIf(held::contains);
      added.removeIf(held::contains);
      dropped.removeIf(held::contains);
    }
    if (!active.isEmpty()) {
      Map<Parameter, String> owners = ownerPaths(added);
      applyUpdate(removed, added, active, owners, journal, faults);
    }
    // The detached parameters belong to nobody now: free their arrays once the surgery commits,
    // unless a live parameter wraps the same array.
    for (Parameter p : removed) {
      if (p.isInitialized() && !live.contains(p.getArray())) {
        journal.closeOnCommit(p.getArray());
      }
    }
    for (Parameter p : dropped) {
      if (!live.contains(p.getArray())) {
        journal.closeOnCommit(p.getArray());
      }
    }
  }

  /**
   * Walks the tree from the root without entering the replacements that stayed, and records which
   * of the asked parameters and which of the asked arrays the blocks met still hold.
   */
  private void heldOutside(
      Set<Block> stayed,
      Set<Parameter> asked,
      Set<NDArray> askedArrays,
      Set<Parameter> held,
      Set<NDArray> heldArrays) {
    Set<Block> visited = Collections.newSetFromMap(new IdentityHashMap<>());
    Deque<Block> stack = new ArrayDeque<>();
    stack.push(root);
    while (!stack.isEmpty()) {
      Block b = stack.pop();
      if (stayed.contains(b) || !visited.add(b)) {
        continue;
      }
      for (Parameter p : directParameters(b)) {
        if (asked.contains(p)) {
          held.add(p);
        }
        if (p.isInitialized() && askedArrays.contains(p.getArray())) {
          heldArrays.add(p.getArray());
        }
      }
      for (Block kid : childrenOf(b).values()) {
        stack.push(kid);
      }
    }
  }

  /**
   * Adds the direct parameters of every block under {@code block} (itself included) that the model
   * had when the surgery began, all of them or only those with an array; blocks that replacements
   * brought in are passed through, not counted. Taken after the traversal, this still finds every
   * original parameter the block had: an original below it either is still below it (edges between
   * original blocks change only where a block was replaced) or was replaced itself, and is
   * collected with its own pair.
   */
  private void collectOriginalParameters(Block block, Set<Parameter> out, boolean all) {
    if (childrenOf(block).isEmpty()) {
      addOriginal(block, out, all);
      return;
    }
    visitOnce(block, b -> addOriginal(b, out, all));
  }

  private Map<Parameter, String> ownerPaths(List<Parameter> added) {
    Map<Parameter, String> owners = new IdentityHashMap<>();
    if (added.isEmpty()) {
      return owners;
    }
    for (Map.Entry<Block, Block> pair : replaced.entrySet()) {
      String path = BlockPaths.display(pathOf(originOrKey(pair)));
      for (Parameter p : parametersOf(pair.getValue())) {
        owners.putIfAbsent(p, path);
      }
    }
    return owners;
  }

  /**
   * Applies Composer's optimizer update: removed parameters leave every trainer that holds them;
   * added parameters join the trainers that held removed ones (all trainers when none were
   * removed). An added parameter around the very array of a removed one takes over its store entry
   * and optimizer state, so the trained weight continues exactly; a removed parameter that no
   * trainer registered (DJL registers lazily, on a parameter's first forward) is skipped, as
   * Composer skips parameters its optimizer does not hold.
   */
  static void applyUpdate(
      List<Parameter> removed,
      List<Parameter> added,
      List<Trainer> trainers,
      Map<Parameter, String> owners,
      Journal journal,
      Faults faults) {
    TrainerSurgery surgery = new TrainerSurgery(journal, faults);
    TrainerUpdate update = decide(removed, added, trainers);
    for (Map.Entry<Parameter, Parameter> e : update.rekeyed().entrySet()) {
      for (Trainer t : trainers) {
        if (TrainerSurgery.holds(t, e.getValue())) {
          surgery.rekey(t, e.getValue(), e.getKey());
        }
      }
    }
    for (Parameter p : update.leaving()) {
      boolean held = false;
      for (Trainer t : trainers) {
        if (TrainerSurgery.holds(t, p)) {
          held = true;
          surgery.remove(t, p);
        }
      }
      if (!held) {
        logger.debug(
            "parameter '{}' ({}) is held by no trainer (never used in a forward pass): skipped",
            p.getName(),
            p.getId());
      }
    }
    for (Parameter p : update.born()) {
      for (Trainer t : update.receivers()) {
        surgery.add(t, p, true, owners.get(p));
      }
    }
  }

  /**
   * What {@link #applyUpdate} does to the trainers, decided before anything changes, so that a plan
   * ({@link StateFates}) tells exactly what an apply does.
   *
   * @param rekeyed added parameter to the removed one around the same array that a trainer holds:
   *     its store entry and optimizer state move over
   * @param born added parameters that start fresh
   * @param leaving removed parameters that leave every trainer holding them, with their state
   * @param receivers the trainers the born parameters join
   */
  record TrainerUpdate(
      Map<Parameter, Parameter> rekeyed,
      List<Parameter> born,
      List<Parameter> leaving,
      List<Trainer> receivers) {}

  /**
   * Decides Composer's optimizer update: an added parameter around the very array of a removed one
   * that a trainer holds takes over its entry and state; other added ones are born; removed ones
   * not taken over leave; born ones join the trainers that held leaving ones (all trainers when
   * none did). Reads the trainers' stores only.
   */
  static TrainerUpdate decide(
      List<Parameter> removed, List<Parameter> added, List<Trainer> trainers) {
    Map<NDArray, Parameter> removedByArray = new IdentityHashMap<>();
    for (Parameter p : removed) {
      if (p.isInitialized()) {
        removedByArray.putIfAbsent(p.getArray(), p);
      }
    }
    Set<Parameter> rewrapped = Collections.newSetFromMap(new IdentityHashMap<>());
    Map<Parameter, Parameter> rekeyed = new LinkedHashMap<>(); // identity keys, added order
    List<Parameter> born = new ArrayList<>();
    for (Parameter p : added) {
      Parameter previous = p.isInitialized() ? removedByArray.remove(p.getArray()) : null;
      if (previous == null) {
        born.add(p);
        continue;
      }
      rewrapped.add(previous);
      if (heldByAny(trainers, previous)) {
        rekeyed.put(p, previous);
      } else {
        born.add(p); // the old wrapper never trained: the new one starts as a fresh parameter
      }
    }
    List<Parameter> leaving = new ArrayList<>();
    Set<Trainer> targets = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Parameter p : removed) {
      if (rewrapped.contains(p)) {
        continue;
      }
      leaving.add(p);
      for (Trainer t : trainers) {
        if (TrainerSurgery.holds(t, p)) {
          targets.add(t);
        }
      }
    }
    List<Trainer> receivers = targets.isEmpty() ? trainers : new ArrayList<>(targets);
    return new TrainerUpdate(rekeyed, born, leaving, receivers);
  }

  private static boolean heldByAny(List<Trainer> trainers, Parameter p) {
    for (Trainer t : trainers) {
      if (TrainerSurgery.holds(t, p)) {
        return true;
      }
    }
    return false;
  }

  private void addOriginal(Block block, Set<Parameter> out, boolean all) {
    Node n = nodes.get(block);
    if (n == null || !n.original) {
      return;
    }
    for (Parameter p : directParameters(block)) {
      if (all || p.isInitialized()) {
        out.add(p);
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  /** Adds every parameter under a block to a list (a leaf without building a set). */
  private static void addParameters(Block block, List<Parameter> out) {
    if (childrenOf(block).isEmpty()) {
      out.addAll(directParameters(block));
    } else {
      out.addAll(parametersOf(block));
    }
  }

  private static BlockList childrenOf(Block block) {
    return BlockPaths.children(block);
  }

  /**
   * Every parameter under a block, each once, in traversal order, from the live children and
   * parameter maps (no per-node subtree walks). Parameters do not override {@code equals}, so the
   * ordered set is an identity set.
   */
  static Set<Parameter> parametersOf(Block block) {
    List<Block> direct = childrenOf(block).values();
    if (direct.isEmpty()) {
      // Most calls are on leaves: no visited set, no stack.
      return new LinkedHashSet<>(directParameters(block));
    }
    Set<Parameter> ordered = new LinkedHashSet<>();
    visitOnce(block, b -> ordered.addAll(directParameters(b)));
    return ordered;
  }

  /** Visits every block under {@code root} once, depth first, children in their order. */
  private static void visitOnce(Block root, Consumer<Block> visit) {
    Set<Block> visited = Collections.newSetFromMap(new IdentityHashMap<>());
    Deque<Block> stack = new ArrayDeque<>();
    stack.push(root);
    while (!stack.isEmpty()) {
      Block b = stack.pop();
      if (!visited.add(b)) {
        continue;
      }
      visit.accept(b);
      List<Block> kids = childrenOf(b).values();
      for (int i = kids.size() - 1; i >= 0; i--) {
        stack.push(kids.get(i));
      }
    }
  }

  private static Collection<Parameter> directParameters(Block block) {
    return block instanceof AbstractBlock ab
        ? DjlInternals.liveParameters(ab).values()
        : block.getDirectParameters().values();
  }

  private static boolean allInitialized(Block block) {
    for (Parameter p : parametersOf(block)) {
      if (!p.isInitialized()) {
        return false;
      }
    }
    return true;
  }

  private static boolean containsIdentity(Collection<?> items, Object target) {
    for (Object o : items) {
      if (o == target) {
        return true;
      }
    }
    return false;
  }
}
