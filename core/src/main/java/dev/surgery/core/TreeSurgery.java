package dev.surgery.core;

import static dev.surgery.core.BlockTrees.directParameters;
import static dev.surgery.core.BlockTrees.parametersOf;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.internal.DjlShapes;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One run of {@link ModuleSurgery#replaceModules}: traversal, replacement in every parent,
 * placement of the replacements, trainer updates, and rollback of all of it on failure.
 *
 * <p>The walk from the root and the visits that call the replacement functions and substitute their
 * results are here: they run per block, mostly interpreted (a surgery is rare), so they read this
 * class's fields directly. The steps that run once per surgery or once per replacement are their
 * own classes: {@link TrainedValueSync} first; during the walk {@link CallIndices} (each policy's
 * call index), {@link SelfContainmentCheck} and {@link ParentWrites} (each parent of a replaced
 * block), with {@link TieRewiring} noting the ties it meets; once the traversal is done, {@link
 * ParentWrites}' check of parents that list their children themselves, {@link TieRewiring}'s
 * writes, the call indices written back, {@link ReplacementPlacement} and {@link
 * ParameterTurnover}; the held-back draws of {@link DeferredDraws} and the {@link Journal}'s commit
 * come last, and on failure {@link SurgeryRollback} undoes it all.
 */
final class TreeSurgery {

  /** One policy: a key for its call counter, what it matches and how it replaces. */
  record Policy(Object key, String label, BlockMatcher matcher, ReplacementFunction function) {}

  /** Longest chain of replacements of replacements before recursion is deemed not to terminate. */
  static final int MAX_GENERATIONS = 1000;

  private final Block root;
  private final List<Policy> policies;
  private final List<Trainer> trainers;
  private final boolean recurse;
  private final boolean allowShapeChange;

  /** Where a test injects failures; {@link Faults#NONE} otherwise. */
  private final Faults faults;

  /**
   * Set by a dry run: the replacements it places are freed by its rollback, so their fresh
   * parameters are initialized without drawing from the engine's random generator ({@link
   * NoDrawInitializer}), which a plan must leave where it was (the program's next draws, data or
   * dropout or a later apply, would differ).
   */
  private boolean planning;

  /**
   * A plan's trainers: only read (the plan runs without trainers), but what their models use keeps
   * its arrays when the plan frees the replacements it received, as an apply's rollback keeps them.
   */
  private List<Trainer> planTrainers = List.of();

  // The steps, each its own class (see the class comment), journaled in one journal.

  private final Journal journal = new Journal();

  /** The writes into blocks' own fields, journaled with the rest. */
  private final FieldWrites fieldWrites = new FieldWrites(journal);

  /** The tree as the traversal left it, as the steps after it read it. */
  private final ChangedTree changed =
      new ChangedTree() {
        @Override
        public TreeNode nodeOf(Block block) {
          return nodes.get(block);
        }

        @Override
        public List<TreeNode> decided() {
          return decided;
        }

        @Override
        public boolean isLive(TreeNode node) {
          return TreeSurgery.this.isLive(node);
        }

        @Override
        public boolean stays(TreeNode replacement) {
          return TreeSurgery.this.stays(replacement);
        }

        @Override
        public boolean replacedAgain() {
          return replacedAgain;
        }

        @Override
        public PassedEdges passedLeaves() {
          return passedLeaves;
        }

        @Override
        public int passedByInitialWalk() {
          return passedByInitialWalk;
        }
      };

  /** The writes into the old block's parents: children lists and fields. */
  private final ParentWrites parentWrites = new ParentWrites(journal, fieldWrites);

  /** The tie step: blocks that call a replaced block without being its parent. */
  private final TieRewiring ties = new TieRewiring(changed, fieldWrites);

  /** Each policy's next call index, read from the caller's counters and written back at the end. */
  private final CallIndices callIndices;

  /** The random draws of the replacements placed, held back until the end of an apply. */
  private final DeferredDraws draws;

  // The walk: what it knows of the blocks it met, and how it passes most of them by.

  /**
   * What the surgery knows of each block it met: one identity probe when a block is first met; the
   * queue, parents and replacement pairs then hold nodes, so no later step looks a block up again.
   */
  private final IdentityIndex<TreeNode> nodes = new IdentityIndex<>();

  /** Blocks to visit, in pre-order of first appearance. */
  private final Deque<TreeNode> queue = new ArrayDeque<>();

  /** Whether a policy's matcher may read paths; else no path is built unless a message needs it. */
  private final boolean pathsNeeded;

  /** Whether the walk records in each node which policies match it (all path-free, under 31). */
  private final boolean masks;

  /**
   * Whether every matcher is the library's own (a class, a lambda's name), which may be asked about
   * a replacement to spare work; a predicate of the program's is asked about the model's blocks
   * only (and about replacements under recursion, as documented).
   */
  private final boolean masksOnAnyBlock;

  /** With {@link #masks}: each policy's matcher, in policy order, for the walk's per-block test. */
  private final PathFreeMatcher[] pathFree;

  /**
   * True while leaves that no policy matches get no node: with only path-free matchers (class,
   * lambda name) such a leaf can never be replaced nor lead anywhere, so the walk passes it by
   * without an identity probe (most blocks of a large tree are such leaves). Each edge to one is
   * recorded in {@link #passedLeaves}, and the first time an answer needs their nodes (a
   * replacement that is such a leaf: is it already in the model?) they are all entered exactly as
   * the walk would have entered them, and the surgery continues without passing any by.
   */
  private boolean passLeaves;

  /** Edges to passed-by leaves: leaf, parent node and key (null: not enqueued). */
  private PassedEdges passedLeaves = new PassedEdges();

  /** How many of {@link #passedLeaves} the first walk from the root recorded (they come first). */
  private int passedByInitialWalk;

  /** True while the first walk from the root marks the blocks the model had at the start. */
  private boolean initialWalk;

  /** Whether a trainer holds registered parameters: the trainer update then wants every one. */
  private boolean allParameters;

  /** Bumped by every substitution: liveness answers of earlier epochs are stale. */
  private int epoch;

  /** The block being worked on, named by a failure that does not name one itself. */
  private TreeNode current;

  // The decisions, and the map handed out, a view of them.

  /**
   * The blocks a policy decided on, in replacement order, as nodes, and what it returned (same
   * index), entered before the substitution, so that a rollback also frees the replacement whose
   * substitution failed.
   */
  private final List<TreeNode> decided = new ArrayList<>();

  private final List<Block> returned = new ArrayList<>();

  /** A replacement received and refused before it was decided on: the rollback frees it too. */
  private final List<Block> refused = new ArrayList<>(0);

  /**
   * The map the surgery returns, old block to what a policy returned: a view of {@link #decided}
   * and {@link #returned}, looked up through {@link #nodes}, so a decision costs no hashing beyond
   * the probe the walk made anyway.
   */
  private final Map<Block, Block> replaced = new DecisionMap(nodes, decided, returned);

  // Noted during the traversal, while the nodes were at hand, for the steps after it.

  /**
   * Every parameter of every replacement received that had an array when received (before the
   * replacement's own children change): the only ones the trainer update may have to free. A
   * parameter without one gets it only from {@link #placeReplacements}, for a replacement that
   * stays, so it is never freed; {@link #placedArrays} tells that it happened. A leaf's are added
   * at the end, only if it did not stay.
   */
  private final List<Parameter> received = new ArrayList<>();

  /** Whether {@link #placeReplacements} initialized a replacement. */
  private boolean placedArrays;

  /** Whether an original that a replacement stands for had recorded input shapes. */
  private boolean placementWanted;

  /** Whether a replaced original may leave parameters behind. */
  private boolean mayDisplace;

  /** Whether a replacement was replaced again (recursion). */
  private boolean replacedAgain;

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
    this.faults = faults;
    this.draws = new DeferredDraws(this.trainers, faults);
    boolean paths = false;
    for (Policy policy : policies) {
      paths |= PathFreeMatcher.usesPath(policy.matcher());
    }
    this.pathsNeeded = paths;
    this.masks = !paths && policies.size() < 31;
    this.pathFree = new PathFreeMatcher[masks ? policies.size() : 0];
    for (int i = 0; i < pathFree.length; i++) {
      pathFree[i] = (PathFreeMatcher) policies.get(i).matcher();
    }
    boolean ourOwn = masks;
    for (PathFreeMatcher m : pathFree) {
      ourOwn &= m.isOurOwn();
    }
    this.masksOnAnyBlock = ourOwn;
    this.passLeaves = masks;
    this.callIndices = new CallIndices(policies, indices, journal);
  }

  Map<Block, Block> run() {
    // No walk of every parameter up front: what left the model and what joined it is taken from
    // the replaced subtrees (see ParameterTurnover), so a big tree costs one traversal, not three.
    try {
      replaceAll(null);
      current = null; // parameters, not one block, are concerned from here on
      new ParameterTurnover(root, trainers, journal, faults, nodes, changed)
          .apply(received, mayDisplace, epoch == 0 && !replacedAgain, placedArrays);
      // Last: a surgery that failed before has drawn nothing from the engine's generator.
      draws.drawAll();
      journal.commit();
      // From here on the index is only read, by the map handed out, and only for blocks a policy
      // decided on: a replacement nobody decided on (all of them without recursion) is forgotten
      // rather than entered, which on a large tree saves a probe per replacement.
      nodes.enterPending(n -> n.decision >= 0);
      return replaced;
    } catch (Throwable e) { // checked ones too: a function may throw them undeclared
      throw rollback().failed(e, null, current);
    }
  }

  /** What a dry run hands to its description: the changed tree's pairs and facts. */
  interface Description<T> {
    /**
     * Describes the changed tree.
     *
     * @param replaced old block to new block
     * @param before every parameter of the model before the surgery
     * @param owners each replacement parameter's block path, as the apply's errors name it
     * @return the description
     */
    T describe(Map<Block, Block> replaced, Set<Parameter> before, Map<Parameter, String> owners);
  }

  /**
   * Makes the surgery, lets {@code describe} look at the changed tree, then undoes everything as
   * after a failure: the plan of an apply.
   */
  <T> T dryRun(Description<T> describe, List<Trainer> readTrainers) {
    planning = true;
    planTrainers = readTrainers == null ? List.of() : List.copyOf(readTrainers);
    Set<Parameter> before = parametersOf(root);
    T result;
    try {
      replaceAll(before);
      current = null; // as in run(): the walk is over, a failure from here names no block of it
      nodes.enterPending();
      result = describe.describe(replaced, before, ParameterTurnover.ownerPaths(decided));
    } catch (Throwable e) { // checked ones too: a function may throw them undeclared
      throw rollback().failed(e, before, current);
    }
    rollback().undo(new IllegalStateException("dry run"), before);
    return result;
  }

  /**
   * Runs the traversal and placement; {@code before} is every parameter of the model when the
   * caller has it already, else null (then it is collected only if a trainer needs syncing).
   */
  private void replaceAll(Set<Parameter> before) {
    TrainedValueSync.sync(root, trainers, before, journal);
    for (Trainer t : trainers) {
      allParameters |= TrainerSurgery.hasRegistered(t);
    }
    TreeNode top = node(root);
    top.path = "";
    top.seen = true;
    top.original = true;
    initialWalk = true;
    ties.noteOriginal(root, null, null);
    enqueueDescendants(top);
    initialWalk = false;
    passedByInitialWalk = passedLeaves.size();
    while (!queue.isEmpty()) {
      TreeNode child = queue.poll();
      // Until a block with children is swapped, every queued block is still where the walk met it
      // (a leaf swap detaches that leaf alone, visited already): no liveness to ask.
      if (epoch == 0 || isLive(child)) {
        visit(child);
      }
    }
    parentWrites.refuseStaleLists(changed);
    ties.rewire();
    callIndices.writeBack();
    placeReplacements();
  }

  /**
   * The undoing of this surgery: a plan's trainers keep what their models use, as an apply's
   * trainers do.
   */
  private SurgeryRollback rollback() {
    return new SurgeryRollback(
        root, journal, planning ? planTrainers : trainers, decided, returned, refused);
  }

  // ------------------------------------------------------------------ traversal

  private TreeNode node(Block block) {
    TreeNode fresh = new TreeNode(block);
    TreeNode n = nodes.putIfAbsent(block, fresh); // one probe for a new block
    return n == null ? fresh : n;
  }

  private void enqueueDescendants(TreeNode parent) {
    BlockList children = childrenOf(parent.block);
    List<Block> blocks = children.values();
    List<String> keys = children.keys();
    parent.childCount = blocks.size();
    for (int i = 0, size = blocks.size(); i < size; i++) {
      Block block = blocks.get(i);
      // What later steps ask of the block, read now that it is at hand.
      boolean leaf = childrenOf(block).isEmpty();
      int matched = masks ? matchMask(block) : -1;
      if (initialWalk) {
        ties.noteOriginal(block, parent, keys.get(i));
      }
      if (passLeaves && leaf && matched == 0) {
        passedLeaves.add(block, parent, keys.get(i));
        continue;
      }
      TreeNode n = node(block);
      n.addParent(parent, i);
      if (!n.seen) {
        n.seen = true;
        n.original = initialWalk;
        n.pathParent = parent;
        n.key = keys.get(i);
        n.kind = leaf ? TreeNode.LEAF : TreeNode.COMPOSITE;
        // Below a replacement, a block counts as deep in replacements as it: a replacement that
        // holds a fresh match (a wrapper around a new layer) builds a chain the guard must see.
        n.generation = parent.generation;
        n.matched = matched;
        if (matched != 0) {
          // Asked only of a block a policy may replace (substitute reads it of any other).
          n.inputShapes = DjlShapes.recordedInputShapes(block);
        }
        if (leaf && matched > 0 && !allParameters && initialWalk) {
          n.nothingDisplaced = noneInitialized(directParameters(block));
        }
        queue.add(n);
        if (!leaf) {
          enqueueDescendants(n);
        }
      }
    }
  }

  /** Which policies match a block, one bit each (only asked while all matchers are path-free). */
  private int matchMask(Block block) {
    int mask = 0;
    PathFreeMatcher[] matchers = pathFree;
    for (int i = 0; i < matchers.length; i++) {
      if (matchers[i].matches(block)) {
        mask |= 1 << i;
      }
    }
    return mask;
  }

  /**
   * A block below a replacement that the walk may pass by: a leaf that no policy matches, asked
   * only of the library's own matchers (a predicate of the program's is not asked about blocks that
   * are not the model's yet).
   */
  private boolean passable(Block block) {
    return masksOnAnyBlock && childrenOf(block).isEmpty() && matchMask(block) == 0;
  }

  /**
   * Enters the passed-by leaves in the order the walks met them, with the parents, paths, seen and
   * original marks they would have had, and passes no leaf by from now on.
   */
  private void enterPassedLeaves() {
    passLeaves = false;
    for (int i = 0, size = passedLeaves.size(); i < size; i++) {
      TreeNode n = node(passedLeaves.leaf(i));
      TreeNode parent = (TreeNode) passedLeaves.parent(i);
      String key = passedLeaves.key(i);
      n.addParent(parent, -1);
      if (key != null && !n.seen) {
        n.seen = true;
        n.original = i < passedByInitialWalk;
        n.pathParent = parent;
        n.key = key;
      }
    }
    passedLeaves = new PassedEdges(); // none is recorded from now on
  }

  /**
   * Tells whether a block is still reachable from the root. Answers are memoized until the next
   * substitution, so shared blocks (diamonds) are not walked again and again.
   */
  private boolean isLive(TreeNode n) {
    if (n.block == root) {
      return true;
    }
    if (n.liveEpoch == epoch) {
      return n.live;
    }
    n.liveEpoch = epoch;
    n.live = false; // a block is not its own ancestor; guards cycles
    boolean live = n.parent != null && isLive(n.parent);
    if (!live && n.moreParents != null) {
      for (TreeNode p : n.moreParents) {
        if (isLive(p)) {
          live = true;
          break;
        }
      }
    }
    n.live = live;
    return live;
  }

  /** Whether a replacement is in the model after the traversal: not replaced again, and live. */
  private boolean stays(TreeNode replacement) {
    return (replacement.swap == null || replacement.swap == replacement) && isLive(replacement);
  }

  /** A failure's message for ours; its class too when it has none (an {@code IOException()}). */
  static String messageOf(Throwable e) {
    return e.getMessage() == null ? e.toString() : e.getMessage();
  }

  private void visit(TreeNode node) {
    Block child = node.block;
    current = node;
    String path = pathsNeeded ? node.path() : null;
    int known = node.matched;
    for (int i = 0, size = policies.size(); i < size; i++) {
      Policy policy = policies.get(i);
      if (known != -1 ? (known & (1 << i)) == 0 : !policy.matcher().matches(child, path)) {
        continue;
      }
      int index = callIndices.next(i);
      Block replacement;
      try {
        replacement = policy.function().apply(child, index);
      } catch (
          Exception e) { // checked ones too: Kotlin, Scala or a sneaky throw need no declaration
        throw new SurgeryException(
            BlockPaths.display(node.path()),
            "replacement function of policy " + policy.label() + " failed: " + messageOf(e),
            e);
      }
      if (replacement == null) {
        continue;
      }
      if (node.swap != null) {
        // Received all the same: the rollback frees what it holds (a weight copy's arrays).
        refused.add(replacement);
        throw new SurgeryException(
            BlockPaths.display(node.path()),
            "two policies replace the same "
                + BlockPaths.typeName(child)
                + "; the second is "
                + policy.label());
      }
      node.decision = decided.size();
      decided.add(node);
      returned.add(replacement);
      node.swap = replacement == child ? node : substitute(node, replacement);
    }
  }

  private TreeNode substitute(TreeNode oldNode, Block replacement) {
    Block old = oldNode.block;
    TreeNode fresh = new TreeNode(replacement);
    // One probe, found or entered; none for a block whose identity hash no one ever computed (a
    // new one, the usual replacement): it cannot be in the index.
    TreeNode known = nodes.putNew(replacement, fresh);
    TreeNode n = known == null ? fresh : known;
    List<Block> kids = childrenOf(replacement).values();
    boolean newLeaf = kids.isEmpty();
    if (known == null
        && passLeaves
        && newLeaf
        && !(masksOnAnyBlock && matchMask(replacement) != 0)) {
      // It may be a leaf the walk passed by (one no policy matches, or one a predicate of the
      // program's is not asked about): enter those, so that the check below sees it.
      enterPassedLeaves();
    }
    // Placed already for another match (a replacement has an origin), and still in the model: the
    // same rule as for any block of the model, with or without recursion.
    if ((n.seen || n.origin != null) && isLive(n)) {
      throw new SurgeryException(
          BlockPaths.display(oldNode.path()),
          "the replacement is already part of the model; return a new block");
    }
    // One this surgery replaced (an original block, or a replacement replaced again): its node
    // stands for the place it left, so put back elsewhere it would skip the checks a new block
    // gets (its inputs, its output shapes) and run on inputs it was never built for. (A block that
    // left with a replaced holder was not replaced itself: it may come back, checked as any; and
    // a recursion may put a block back at the place it left.)
    if (n.swap != null && n.swap != n && oldNode.originOrSelf() != n) {
      throw new SurgeryException(
          BlockPaths.display(oldNode.path()),
          n.originOrSelf() == oldNode.originOrSelf()
              ? "a recursion returned a replacement it had already replaced at this place; return"
                  + " a new block"
              : "the replacement is a block this surgery has taken out of the model already"
                  + " (replaced at another match); return a new block, copying the weights it"
                  + " needs");
    }
    // A block whose arrays are gone (the old block of an earlier surgery, which freed them) would
    // fail the next step far from here: refused now, before anything changed for it. Only a block
    // that was initialized can hold arrays at all: a fresh leaf (the usual replacement) is not read
    // here, which on a large tree saves a cache miss or two per replacement.
    boolean mayHoldArrays =
        !(replacement instanceof AbstractBaseBlock)
            || DjlShapes.recordedInputShapes(replacement) != null;
    Collection<Parameter> own =
        newLeaf
            ? (mayHoldArrays ? directParameters(replacement) : List.of())
            : parametersOf(replacement);
    for (Parameter p : own) {
      if (p.isInitialized() && p.getArray().isReleased()) {
        throw new SurgeryException(
            BlockPaths.display(oldNode.path()),
            "the replacement's parameter '"
                + p.getName()
                + "' cannot be used: its array was freed (a block an earlier surgery replaced, or one a plan received?);"
                + " return a new block, copying the weights it needs from a live one");
      }
    }
    // Only a block with children can change whether other blocks are reachable; swapping a leaf
    // for a leaf changes the liveness of those two alone, so the memo of every other block stays.
    boolean oldLeaf = oldNode.kind != 0 ? oldNode.kind == TreeNode.LEAF : childrenOf(old).isEmpty();
    n.kind = newLeaf ? TreeNode.LEAF : TreeNode.COMPOSITE;
    // Read while the replacement is at hand: most are leaves of classes without such fields.
    ties.noteReplacement(replacement, newLeaf);
    if (!oldLeaf || !newLeaf) {
      epoch++;
    }
    // What placement and the trainer update will ask of the two blocks, read while they are at hand
    // (on a large tree, reading them again at the end is a cache miss per block).
    // The walk read them before the replacement function ran; a function that initialized the old
    // block (it records input shapes) made those answers stale, so they are read again then.
    Shape[] recorded = DjlShapes.recordedInputShapes(old);
    boolean initializedSinceWalk = oldNode.inputShapes == null && recorded != null;
    if (oldNode.inputShapes == TreeNode.UNREAD || initializedSinceWalk) {
      oldNode.inputShapes = recorded;
    }
    if (oldLeaf
        && !allParameters
        && oldNode.original
        && (!oldNode.nothingDisplaced || initializedSinceWalk)) {
      oldNode.nothingDisplaced = noneInitialized(directParameters(old));
    }
    if (!newLeaf) {
      // A leaf's parameters stay what they are: looked at in the end, if it does not stay.
      for (Parameter p : own) {
        if (p.isInitialized()) {
          received.add(p);
        }
      }
    }
    // The old block's parents become the replacement's (replacing any it had).
    TreeNode first = oldNode.parent;
    List<TreeNode> more = oldNode.moreParents;
    // Where the walk met the old block, when that is its one place: the write sets it alone.
    int hint = oldNode.repeated ? -1 : oldNode.slot;
    oldNode.clearParents();
    n.clearParents();
    if (first != null) {
      n.addParent(first, parentWrites.write(first, oldNode, replacement, hint));
    }
    if (more != null) {
      for (TreeNode parent : more) {
        parentWrites.write(parent, oldNode, replacement, -1);
        n.addParent(parent, -1);
      }
    }
    n.liveEpoch = -1;
    oldNode.liveEpoch = -1;
    n.origin = oldNode.originOrSelf();
    // What the end of the surgery must look at, noted while the nodes are at hand: on a large tree
    // every pass over the decisions costs a cache miss or two per decision.
    placementWanted |= n.origin.inputShapes != null;
    mayDisplace |= oldNode.original && !oldNode.nothingDisplaced;
    replacedAgain |= oldNode.origin != null;
    int depth = oldNode.generation + 1;
    if (depth > MAX_GENERATIONS) {
      throw new SurgeryException(
          BlockPaths.display(oldNode.path()),
          "replacements were replaced "
              + MAX_GENERATIONS
              + " times in a row: the policies never stop matching their own output under"
              + " recurseOnReplacements");
    }
    n.generation = depth;
    if (!n.hasPath()) {
      // The replacement takes the old block's path, still unbuilt if nobody asked for it.
      n.path = oldNode.path;
      n.pathParent = oldNode.pathParent;
      n.key = oldNode.key;
    }
    // Blocks the replacement reuses (e.g. a wrapped original) stay reachable through it.
    n.childCount = kids.size();
    for (int i = 0, size = kids.size(); i < size; i++) {
      Block kid = kids.get(i);
      if (passLeaves && passable(kid)) {
        passedLeaves.add(kid, n, null);
      } else {
        TreeNode k = node(kid);
        // Only a block the surgery met (walked, or placed as a replacement) can be above.
        boolean met = k.seen || k.origin != null;
        if (met && k.kind != TreeNode.LEAF && SelfContainmentCheck.isAbove(k, n)) {
          throw SelfContainmentCheck.containsItself(oldNode, k);
        }
        if (!met) {
          SelfContainmentCheck.refuseAncestorsBelow(nodes, kid, n, oldNode);
        }
        k.addParent(n, i);
      }
    }
    if (recurse && !n.seen) {
      n.seen = true;
      queue.add(n);
      enqueueDescendants(n);
    }
    return n;
  }

  // ------------------------------------------------------------------ placement

  private void placeReplacements() {
    if (!placementWanted) {
      return; // structural surgery: every replaced original is uninitialized
    }
    ReplacementPlacement placement =
        new ReplacementPlacement(
            root, trainers, planning, draws, allowShapeChange, journal, faults, changed);
    try {
      placement.placeAll();
    } catch (Throwable e) {
      // A failure that names no block is named at the original whose replacement was placed.
      if (placement.placing() != null) {
        current = placement.placing();
      }
      throw e;
    }
    placedArrays = placement.placedArrays();
  }

  // ------------------------------------------------------------------ helpers

  private static boolean noneInitialized(Collection<Parameter> parameters) {
    for (Parameter p : parameters) {
      if (p.isInitialized()) {
        return false;
      }
    }
    return true;
  }

  private static BlockList childrenOf(Block block) {
    return BlockPaths.children(block);
  }
}
