package dev.surgery.core;

import ai.djl.nn.Block;
import java.util.List;

/**
 * The tree as a surgery's traversal left it, as the steps that run once the traversal is done read
 * it (the check of parents that list their children themselves, the tie step, placement, the
 * parameter turnover): the traversal's nodes, decisions and liveness, which those steps take rather
 * than work out again. Read-only.
 */
interface ChangedTree {
  /** The surgery's node for a block it met, or null. */
  TreeNode nodeOf(Block block);

  /** The nodes a policy decided on, in decision order. */
  List<TreeNode> decided();

  /** Whether a node's block is still reachable from the root. */
  boolean isLive(TreeNode node);

  /** Whether a replacement is in the model after the traversal. */
  boolean stays(TreeNode replacement);

  /** Whether a replacement was replaced again (recursion). */
  boolean replacedAgain();

  /** The edges to the leaves the walks passed by without a node. */
  PassedEdges passedLeaves();

  /** How many of {@link #passedLeaves} the first walk from the root recorded (they come first). */
  int passedByInitialWalk();
}
