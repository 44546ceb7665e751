package dev.surgery.core;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import java.util.ArrayList;
import java.util.List;

/** A block's place in the tree as the surgery has seen it. */
final class TreeNode {

  /** Input shapes not read yet (null means read: the block recorded none). */
  static final Shape[] UNREAD = new Shape[0];

  static final byte LEAF = 1;
  static final byte COMPOSITE = 2;

  final Block block;

  /**
   * Display path of the block (or of the block it replaced) once built; until then it is {@code
   * pathParent}'s path joined with {@code key}, built on demand: most blocks never need it.
   */
  String path;

  TreeNode pathParent;
  String key;

  /** The first parent that references the block; null for the root or a detached block. */
  TreeNode parent;

  /** Further parents of a shared block; null while there is at most one. */
  List<TreeNode> moreParents;

  /**
   * Where {@link #parent}'s children list holds the block, as met; -1 when not known. Only used
   * while {@link #repeated} is false: a write then sets that one element instead of scanning.
   */
  int slot = -1;

  /** Whether the block was met under more than one edge: writes then scan every parent's list. */
  boolean repeated;

  /** For a block with children: how many its list held when the surgery enumerated them. */
  int childCount = -1;

  /** Whether the block was enqueued for a visit. */
  boolean seen;

  /**
   * For a block a policy decided on: its position in the surgery's list of decisions; -1 otherwise.
   */
  int decision = -1;

  /**
   * For a block a policy decided on: the node of what it returned (itself when a policy returned
   * the block unchanged); null otherwise.
   */
  TreeNode swap;

  /** For a replacement: the original block it stands for; null otherwise. */
  TreeNode origin;

  /** How many replacements of replacements lead to this block. */
  int generation;

  int liveEpoch = -1;
  boolean live;

  /** Whether the block was in the tree when the surgery began. */
  boolean original;

  /** For a decided block: whether placement has placed its replacement (or passed it by). */
  boolean placed;

  /**
   * For a replaced original leaf: none of its parameters matters to the trainer update (no trainer,
   * no array), as read while the block was at hand rather than again at the end.
   */
  boolean nothingDisplaced;

  /** Its recorded input shapes, read while it was at hand ({@link #UNREAD} until then). */
  Shape[] inputShapes = UNREAD;

  /** {@link #LEAF}, {@link #COMPOSITE}, or 0 while not looked at (it never changes). */
  byte kind;

  /**
   * Which policies match it, one bit each, when the walk asked path-free matchers while the block
   * was at hand (their answer never changes); -1 when not known.
   */
  int matched = -1;

  TreeNode(Block block) {
    this.block = block;
  }

  /** The path, built (and kept) on first use; null if the block never had a place. */
  String path() {
    if (path == null && pathParent != null) {
      String prefix = pathParent.path();
      path = prefix == null ? null : BlockPaths.join(prefix, key);
    }
    return path;
  }

  /** Whether a path is known or can be built. */
  boolean hasPath() {
    return path != null || pathParent != null;
  }

  /**
   * Notes an edge from {@code p}, the block at {@code index} of its children list (-1 when not
   * known).
   */
  void addParent(TreeNode p, int index) {
    if (parent == null) {
      parent = p;
      slot = index;
      return;
    }
    if (parent == p && slot == index && index >= 0) {
      // The same edge met again: a recursion's walk below a replacement, or a second pass
      // over the children of an existing composite a replacement reuses.
      return;
    }
    repeated = true;
    if (parent != p) {
      if (moreParents == null) {
        moreParents = new ArrayList<>(2);
      }
      if (!hasParent(p)) {
        moreParents.add(p);
      }
    }
  }

  /** Forgets every edge to the block: it left the tree, or takes another block's place. */
  void clearParents() {
    parent = null;
    moreParents = null;
    slot = -1;
    repeated = false;
  }

  /**
   * What stands for this block at the end of its chain of replacements (itself when it was not
   * replaced). Under recursion a block may come back (A -> B -> A): then it stands for itself, as
   * it does when the chain runs longer than {@code limit} steps.
   */
  TreeNode endOfChain(int limit) {
    TreeNode end = this;
    for (int steps = 0; end.swap != null && end.swap != end; steps++) {
      if (steps > limit) {
        return this;
      }
      end = end.swap;
      if (end == this) {
        return this;
      }
    }
    return end;
  }

  /** The original this block stands for: itself unless it is a replacement. */
  TreeNode originOrSelf() {
    return origin == null ? this : origin;
  }

  private boolean hasParent(TreeNode p) {
    for (TreeNode q : moreParents) {
      if (q == p) {
        return true;
      }
    }
    return false;
  }
}
