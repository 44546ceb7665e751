package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.internal.DjlBlocks;
import java.util.ArrayDeque;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * Walks and lookups over a block tree that the engine's steps share: each block visited once
 * (shared blocks and cycles), the parameters under a block, a block's own parameters as DJL holds
 * them.
 */
final class BlockTrees {

  private BlockTrees() {}

  /** The arrays of some parameters, by identity (a new Parameter may wrap an existing array). */
  static Set<NDArray> arraysOf(Collection<Parameter> parameters) {
    Set<NDArray> arrays = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Parameter p : parameters) {
      if (p.isInitialized()) {
        arrays.add(p.getArray());
      }
    }
    return arrays;
  }

  /**
   * Every parameter under a block, each once, in traversal order, from the live children and
   * parameter maps (no per-node subtree walks). Parameters do not override {@code equals}, so the
   * ordered set is an identity set.
   */
  static Set<Parameter> parametersOf(Block block) {
    List<Block> direct = BlockPaths.children(block).values();
    if (direct.isEmpty()) {
      // Most calls are on leaves: no visited set, no stack.
      return new LinkedHashSet<>(directParameters(block));
    }
    Set<Parameter> ordered = new LinkedHashSet<>();
    visitOnce(block, b -> ordered.addAll(directParameters(b)));
    return ordered;
  }

  /**
   * {@link #parametersOf}, for a caller that only reads the parameters while the block's own
   * parameter list stays as it is: a leaf's live list itself, without a copy (most surgeries
   * replace leaves, and each copy builds a set).
   */
  static Collection<Parameter> parametersRead(Block block) {
    return BlockPaths.children(block).isEmpty() ? directParameters(block) : parametersOf(block);
  }

  /** Visits every block under {@code root} once, depth first, children in their order. */
  static void visitOnce(Block root, Consumer<Block> visit) {
    walkOnce(
        root,
        b -> {
          visit.accept(b);
          return true;
        });
  }

  /**
   * Visits blocks under {@code root} once each, depth first, children in their order, descending
   * below a block only when {@code visit} returns true for it.
   */
  static void walkOnce(Block root, Predicate<Block> visit) {
    walkOnce(root, 32, visit);
  }

  /**
   * {@link #walkOnce(Block, Predicate)} for a walk expected to meet about {@code expectedBlocks}
   * blocks: the visited set is sized for them once rather than grown step by step.
   */
  static void walkOnce(Block root, int expectedBlocks, Predicate<Block> visit) {
    Set<Block> visited = Collections.newSetFromMap(new IdentityHashMap<>(expectedBlocks));
    Deque<Block> stack = new ArrayDeque<>();
    stack.push(root);
    Block b;
    while ((b = stack.poll()) != null) { // the stack's top: depth first
      enter(b, visited, stack, visit);
    }
  }

  /**
   * One step of {@link #walkOnce}: a method of its own because a surgery walks a tree only a few
   * times, so a loop body inside the walk stays interpreted for many surgeries, while a method
   * called once per block is compiled during the first.
   */
  private static void enter(
      Block b, Set<Block> visited, Deque<Block> stack, Predicate<Block> visit) {
    if (!visited.add(b) || !visit.test(b)) {
      return;
    }
    List<Block> kids = BlockPaths.children(b).values();
    for (int i = kids.size() - 1; i >= 0; i--) {
      stack.push(kids.get(i));
    }
  }

  static Collection<Parameter> directParameters(Block block) {
    return block instanceof AbstractBlock ab && !DjlBlocks.listsParametersItself(ab.getClass())
        ? DjlBlocks.liveParameters(ab).values()
        : block.getDirectParameters().values();
  }

  static boolean containsIdentity(Collection<?> items, Object target) {
    for (Object o : items) {
      if (o == target) {
        return true;
      }
    }
    return false;
  }

  /** Whether every parameter under a block has an array. */
  static boolean allInitialized(Block block) {
    for (Parameter p : parametersOf(block)) {
      if (!p.isInitialized()) {
        return false;
      }
    }
    return true;
  }
}
