package dev.surgery.core;

import ai.djl.nn.Block;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * The refusal of a replacement that holds, at any depth, a block above the one it replaces (the old
 * block's parent, or a new wrapper around a new wrapper around that parent): the model would
 * contain itself, and every walk of it would run forever. Asked of each child of a replacement as
 * the surgery takes it in, from the edges the surgery's nodes record.
 */
final class SelfContainmentCheck {

  private SelfContainmentCheck() {}

  /** Whether {@code candidate} is an ancestor of {@code node} (a walk up its parents). */
  static boolean isAbove(TreeNode candidate, TreeNode node) {
    Deque<TreeNode> todo = new ArrayDeque<>();
    Set<TreeNode> met = Collections.newSetFromMap(new IdentityHashMap<>());
    todo.add(node);
    while (!todo.isEmpty()) {
      TreeNode n = todo.poll();
      if (n == candidate) {
        return true;
      }
      if (!met.add(n)) {
        continue;
      }
      if (n.parent != null) {
        todo.add(n.parent);
      }
      if (n.moreParents != null) {
        todo.addAll(n.moreParents);
      }
    }
    return false;
  }

  /**
   * Refuses a replacement whose new blocks hold, at any depth, a block above the one it replaces (a
   * new wrapper around a new wrapper around the old block's parent); {@code block} is a child of
   * the replacement the surgery has not met. Only blocks the surgery has not met are descended
   * into: a met block is checked where it is, and below it lies the tree.
   */
  static void refuseAncestorsBelow(
      IdentityIndex<TreeNode> nodes, Block block, TreeNode replacement, TreeNode oldNode) {
    Set<Block> looked = Collections.newSetFromMap(new IdentityHashMap<>());
    Deque<Block> todo = new ArrayDeque<>();
    todo.push(block);
    while (!todo.isEmpty()) {
      for (Block kid : BlockPaths.children(todo.pop()).values()) {
        if (!looked.add(kid)) {
          continue;
        }
        TreeNode k = nodes.get(kid);
        if (k != null && (k.seen || k.origin != null)) {
          if (k.kind != TreeNode.LEAF && isAbove(k, replacement)) {
            throw containsItself(oldNode, k);
          }
        } else {
          todo.push(kid); // new too: look below it
        }
      }
    }
  }

  /** The refusal of the replacement of {@code oldNode}, which holds {@code ancestor}. */
  static SurgeryException containsItself(TreeNode oldNode, TreeNode ancestor) {
    return new SurgeryException(
        BlockPaths.display(oldNode.path()),
        "the replacement holds "
            + BlockPaths.display(ancestor.path())
            + ", which holds the replaced block: the model would contain itself");
  }
}
