package dev.surgery.core;

import static dev.surgery.core.BlockTrees.arraysOf;
import static dev.surgery.core.BlockTrees.directParameters;
import static dev.surgery.core.BlockTrees.parametersOf;
import static dev.surgery.core.BlockTrees.walkOnce;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Which parameters left the model and which joined it in a surgery, and what follows: the trainers
 * are updated ({@link TrainerUpdate}) and the arrays nobody holds any more are freed when the
 * surgery commits. What left and what joined are taken from the replaced subtrees rather than from
 * walks of every parameter before and after: a parameter can only leave with an original block that
 * was replaced and only join with a replacement that stayed, so a big tree costs one traversal, not
 * three.
 */
final class ParameterTurnover {

  private final Block root;
  private final List<Trainer> trainers;
  private final Journal journal;
  private final Faults faults;

  /** The surgery's nodes, read directly by the walk below a replaced original (once per block). */
  private final IdentityIndex<TreeNode> nodes;

  private final ChangedTree tree;

  ParameterTurnover(
      Block root,
      List<Trainer> trainers,
      Journal journal,
      Faults faults,
      IdentityIndex<TreeNode> nodes,
      ChangedTree tree) {
    this.root = root;
    this.trainers = trainers;
    this.journal = journal;
    this.faults = faults;
    this.nodes = nodes;
    this.tree = tree;
  }

  /**
   * Updates the trainers and frees what left the model. A block outside the replacements may still
   * hold one of the parameters concerned (a block shared with a kept parent, a parameter object two
   * blocks hold, an array a kept parameter wraps); one walk of the kept part of the tree answers
   * that, and only when the answer matters (a trainer to update or an array to free). The result is
   * the old difference of the whole before and after sets.
   *
   * @param received every parameter with an array of the replacements with children received; a
   *     leaf replacement's are added to this list (the surgery's own, which a rollback frees from),
   *     if it did not stay
   * @param mayDisplace whether a replaced original may leave parameters behind
   * @param allStay whether every leaf replacement stays (no block with children was swapped and no
   *     replacement replaced again)
   * @param placedArrays whether placement initialized a replacement
   */
  void apply(List<Parameter> received, boolean mayDisplace, boolean allStay, boolean placedArrays) {
    List<TreeNode> decided = tree.decided();
    List<Trainer> active = new ArrayList<>();
    for (Trainer t : trainers) {
      if (TrainerSurgery.hasRegistered(t)) {
        active.add(t);
      }
    }
    // Without a trainer only arrays to free matter: parameters without one need no answer.
    boolean all = !active.isEmpty();
    Set<Parameter> displaced = new LinkedHashSet<>();
    for (int i = 0, size = mayDisplace ? decided.size() : 0; i < size; i++) {
      TreeNode n = decided.get(i);
      if (n.swap != n && n.original && !n.nothingDisplaced) {
        collectOriginalParameters(n.block, displaced, all);
      }
    }
    // A leaf replacement that stays keeps its parameters in the model (they are joined below):
    // only those that do not stay can leave arrays behind. Every one stays unless a block with
    // children was swapped (which may drop what it held) or a replacement was replaced again.
    for (int i = 0, size = allStay ? 0 : decided.size(); i < size; i++) {
      TreeNode n = decided.get(i);
      TreeNode swap = n.swap;
      if (swap != n && swap.kind == TreeNode.LEAF && !tree.stays(swap)) {
        for (Parameter p : directParameters(swap.block)) {
          if (p.isInitialized()) {
            received.add(p);
          }
        }
      }
    }
    if (!all && displaced.isEmpty() && received.isEmpty() && !placedArrays) {
      return; // structural surgery on blocks without arrays: nothing to update or free
    }
    Set<Block> stayed = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Parameter> joined = new LinkedHashSet<>();
    for (TreeNode n : decided) {
      TreeNode swap = n.swap;
      if (swap == n || !tree.stays(swap)) {
        continue; // returned unchanged, replaced again, or dropped with its holder
      }
      Block replacement = swap.block;
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
    // A block this tree shares with another model: its parameters left this tree only.
    StillUsed elsewhere = StillUsed.of(root, trainers, concat(removed, dropped), added);
    if (!active.isEmpty()) {
      // Owner paths name a refused parameter only: built if one is refused.
      TrainerUpdate.apply(
          removed, added, active, p -> ownerPaths(decided).get(p), journal, faults, elsewhere);
    }
    // The detached parameters belong to nobody now: free their arrays once the surgery commits,
    // unless a live parameter wraps the same array, here or in a given trainer's model.
    for (Parameter p : removed) {
      if (p.isInitialized() && !live.contains(p.getArray()) && !elsewhere.usesArray(p.getArray())) {
        journal.closeOnCommit(p.getArray());
      }
    }
    for (Parameter p : dropped) {
      if (!live.contains(p.getArray()) && !elsewhere.usesArray(p.getArray())) {
        journal.closeOnCommit(p.getArray());
      }
    }
  }

  /**
   * Each parameter of what the policies returned, named by the path of the original block it stands
   * for (the first decision that reaches a parameter names it), as the trainer update's refusals
   * and a plan name it.
   */
  static Map<Parameter, String> ownerPaths(List<TreeNode> decided) {
    Map<Parameter, String> owners = new IdentityHashMap<>();
    for (TreeNode n : decided) {
      String path = BlockPaths.display((n.swap.origin != null ? n.swap.origin : n).path());
      for (Parameter p : parametersOf(n.swap.block)) {
        owners.putIfAbsent(p, path);
      }
    }
    return owners;
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
    walkOnce(
        root,
        nodes.size() + tree.passedByInitialWalk(), // about the blocks the first walk met
        b -> {
          if (stayed.contains(b)) {
            return false;
          }
          for (Parameter p : directParameters(b)) {
            if (asked.contains(p)) {
              held.add(p);
            }
            if (p.isInitialized() && askedArrays.contains(p.getArray())) {
              heldArrays.add(p.getArray());
            }
          }
          return true;
        });
  }

  /**
   * Adds the direct parameters of every block under {@code block} (itself included, an original)
   * that the model had when the surgery began, all of them or only those with an array, in
   * pre-order. Taken after the traversal, this still finds every original parameter the block had:
   * an original below it either is still below it (edges between original blocks change only where
   * a block was replaced) or was replaced itself, and is collected with its own pair. So the walk
   * does not enter what replacements brought in: from an original block, edges lead only to
   * originals and to replacements, and a block without a node is an original leaf the walk passed
   * by.
   */
  private void collectOriginalParameters(Block block, Set<Parameter> out, boolean all) {
    if (childrenOf(block).isEmpty()) {
      addDirect(block, out, all);
      return;
    }
    walkOnce(
        block,
        b -> {
          TreeNode n = b == block ? null : nodes.get(b);
          if (n != null && !n.original) {
            return false; // brought in by the surgery
          }
          addDirect(b, out, all);
          return true;
        });
  }

  private static void addDirect(Block block, Set<Parameter> out, boolean all) {
    for (Parameter p : directParameters(block)) {
      if (all || p.isInitialized()) {
        out.add(p);
      }
    }
  }

  private static List<Parameter> concat(List<Parameter> first, Collection<Parameter> second) {
    if (second.isEmpty()) {
      return first;
    }
    List<Parameter> both = new ArrayList<>(first);
    both.addAll(second);
    return both;
  }

  private static BlockList childrenOf(Block block) {
    return BlockPaths.children(block);
  }
}
