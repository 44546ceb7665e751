package dev.surgery.core;

import ai.djl.nn.Block;
import dev.surgery.core.internal.BlockFields;
import dev.surgery.core.internal.FieldSlot;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The tie step of a surgery: after the traversal, points the fields of kept blocks that call a
 * replaced block without being its parent (weight tying) at its replacement, and refuses the
 * surgery where such a block still reaches the old block in a place the engine cannot write. The
 * blocks to look at are noted during the walk ({@link #noteOriginal}, {@link #noteReplacement});
 * {@link #rewire} runs once the traversal is done.
 */
final class TieRewiring {

  private final ChangedTree tree;
  private final FieldWrites fieldWrites;

  /** Which blocks the first walk meets may tie another one. */
  private final TieLookout lookout = new TieLookout();

  /**
   * Blocks of the original tree whose own fields may reference another block (weight tying), with
   * their parent node and key (the root: none), as the first walk met them; looked at again only
   * when the surgery replaced a block.
   */
  private final PassedEdges tyingBlocks = new PassedEdges();

  /** Whether any block was replaced (a policy may keep every block it decides on). */
  private boolean replacedAny;

  /** Whether a replacement has children or fields that may reach another block. */
  private boolean replacementsMayTie;

  TieRewiring(ChangedTree tree, FieldWrites fieldWrites) {
    this.tree = tree;
    this.fieldWrites = fieldWrites;
  }

  /**
   * Notes a block of the original tree, met by the first walk under {@code parent} at {@code key}
   * (both null for the root), if its own fields may reach another block. One table lookup.
   */
  void noteOriginal(Block block, TreeNode parent, String key) {
    if (lookout.mayTie(block)) {
      tyingBlocks.add(block, parent, key);
    }
  }

  /**
   * Notes a replacement received, read while it is at hand: most are leaves without such fields.
   */
  void noteReplacement(Block replacement, boolean leaf) {
    replacementsMayTie |= !leaf || lookout.mayTie(replacement);
    replacedAny = true;
  }

  /**
   * Points the fields of kept blocks that hold a replaced block without being its parent (weight
   * tying: a block that calls a layer held elsewhere in the tree) at the replacement, as the
   * parents' fields are, and refuses the surgery where such a block still reaches it in a place the
   * engine cannot write: otherwise its forward would still call the old block, whose arrays are
   * freed. The parents' fields were written with the children lists; a replaced block's parents
   * hold its replacement now, so they are passed over here. Looked at: the blocks of the original
   * tree the first walk noted, if still in the tree (a block a replacement reuses is not known to
   * be, unless it is met below the replacement), and every replacement that stays with the blocks
   * below it (a function may have built one around a block the same surgery replaced).
   */
  void rewire() {
    if (!replacedAny || (tyingBlocks.size() == 0 && !replacementsMayTie)) {
      return; // nothing replaced (every policy kept its block), or nothing that can tie
    }
    if (tree.replacedAgain() && !anOriginalReplaced()) {
      return; // under recursion every replaced block came back (A -> B -> A)
    }
    for (int i = 0, size = tyingBlocks.size(); i < size; i++) {
      Block holder = tyingBlocks.leaf(i);
      TreeNode own = tree.nodeOf(holder);
      TreeNode parent = (TreeNode) tyingBlocks.parent(i);
      boolean kept =
          own != null
              ? (own.swap == null || own.swap == own) && tree.isLive(own)
              : parent == null || tree.isLive(parent);
      if (kept) {
        String key = tyingBlocks.key(i);
        untie(holder, () -> holderPath(own, parent, key), null);
      }
    }
    List<TreeNode> decided = tree.decided();
    for (int i = 0, size = replacementsMayTie ? decided.size() : 0; i < size; i++) {
      TreeNode swap = decided.get(i).swap;
      if (swap == null || swap == decided.get(i)) {
        continue;
      }
      Block replacement = swap.block;
      if (swap.kind == TreeNode.LEAF) {
        // Most replacements are leaves of classes without such fields: one table lookup each.
        if (lookout.mayTie(replacement) && tree.stays(swap)) {
          untie(replacement, swap::path, swap);
        }
      } else if (tree.stays(swap)) {
        // A block of the original tree the replacement reuses is checked as an original: only
        // the replacement's own new blocks may hold the block it stands for.
        BlockTrees.walkOnce(
            replacement,
            b -> {
              if (lookout.mayTie(b)) {
                untie(b, swap::path, b != replacement && isOriginal(b) ? null : swap);
              }
              return true;
            });
      }
    }
  }

  /** Whether an original block stands replaced at the end of the traversal. */
  private boolean anOriginalReplaced() {
    for (TreeNode d : tree.decided()) {
      if (d.original && replacementOf(d.block) != null) {
        return true;
      }
    }
    return false;
  }

  /**
   * Writes the replacements into a holder's writable fields and refuses when it still reaches a
   * replaced block elsewhere; {@code within} is the replacement the holder belongs to (null for an
   * original block), whose own original it may hold on purpose (a wrapper around the old block).
   */
  private void untie(Block holder, Supplier<String> path, TreeNode within) {
    for (FieldSlot field : BlockFields.blockHoldingFields(holder.getClass())) {
      List<Block> tied = new ArrayList<>(0); // grows only for a field that holds a tie
      FieldBlocks.forEachWritable(
          field.get(holder),
          b -> {
            TreeNode replacement = replacementOf(b);
            if (replacement != null
                && replacement != within
                && !BlockTrees.containsIdentity(tied, b)) {
              tied.add(b);
            }
          });
      for (Block old : tied) {
        TreeNode replacement = replacementOf(old);
        if (!tree.stays(replacement)) {
          throw tieRefused(holder, field, old, path.get(), "", "its replacement was dropped again");
        }
        fieldWrites.writeIntoField(holder, field, old, replacement.block, tree.nodeOf(old).path());
      }
    }
    // Then every field once: what the writes did not reach (nested places, unwritable holders).
    for (FieldSlot field : BlockFields.aliasFields(holder.getClass())) {
      checkUnwritable(holder, field, path, within);
    }
  }

  /**
   * The holders the searches of original tying blocks found nothing in (one question for all of
   * them), with the depth each was entered at: a collection several blocks share is searched once.
   */
  private final Map<Object, Integer> searchedClean = new IdentityHashMap<>();

  /** The blocks below the replacements that stay, once asked for (null until then). */
  private Set<Block> belowReplacements;

  /**
   * Whether a block of the original tree, not replaced itself, is no longer in it: below a replaced
   * block and not reused by a replacement that stays. A block the walk did not meet is no concern
   * of this surgery (one outside its root).
   */
  private boolean leftTheTree(Block block) {
    TreeNode n = tree.nodeOf(block);
    if (n != null) {
      if (!n.original || (n.swap != null && n.swap != n) || tree.isLive(n)) {
        return false;
      }
    } else {
      Boolean kept = passedLeafKept(block);
      if (kept == null || kept) {
        return false; // not met by the first walk, or still below a kept parent
      }
    }
    return !belowReplacements().contains(block);
  }

  /** The blocks below the replacements that stay, taken at the first question. */
  private Set<Block> belowReplacements() {
    if (belowReplacements == null) {
      belowReplacements = Collections.newSetFromMap(new IdentityHashMap<>());
      for (TreeNode d : tree.decided()) {
        TreeNode swap = d.swap;
        if (swap != null && swap != d && swap.kind == TreeNode.COMPOSITE && tree.stays(swap)) {
          BlockTrees.visitOnce(swap.block, belowReplacements::add);
        }
      }
    }
    return belowReplacements;
  }

  /**
   * Whether a block of the replacement {@code within} may hold it: the block the replacement stands
   * for, kept below it as a child (a wrapper). Held only in a field, it would leave the model.
   */
  private boolean wrapped(Block block, TreeNode replacement, TreeNode within) {
    return replacement == within && belowReplacements().contains(block);
  }

  /** Per leaf the first walk passed by: whether a parent it had is still in the tree. */
  private Map<Block, Boolean> passedLeavesKept;

  /**
   * Whether a leaf the first walk passed by still has a kept parent; null for a block it did not
   * pass by. The answers for all of them are taken in one pass, at the first question.
   */
  private Boolean passedLeafKept(Block leaf) {
    if (passedLeavesKept == null) {
      passedLeavesKept = new IdentityHashMap<>();
      for (int i = 0, size = Math.min(tree.passedByInitialWalk(), tree.passedLeaves().size());
          i < size;
          i++) {
        TreeNode parent = (TreeNode) tree.passedLeaves().parent(i);
        boolean kept = (parent.swap == null || parent.swap == parent) && tree.isLive(parent);
        passedLeavesKept.merge(tree.passedLeaves().leaf(i), kept, Boolean::logicalOr);
      }
    }
    return passedLeavesKept.get(leaf);
  }

  /**
   * Whether a block was in the tree when the surgery began (a node marked so, or a passed leaf).
   */
  private boolean isOriginal(Block block) {
    TreeNode n = tree.nodeOf(block);
    return n != null ? n.original : passedLeafKept(block) != null;
  }

  /** The path where the first walk passed a leaf by (its first place), for a message. */
  private String passedLeafPath(Block leaf) {
    for (int i = 0, size = Math.min(tree.passedByInitialWalk(), tree.passedLeaves().size());
        i < size;
        i++) {
      if (tree.passedLeaves().leaf(i) == leaf) {
        String prefix = ((TreeNode) tree.passedLeaves().parent(i)).path();
        return prefix == null
            ? tree.passedLeaves().key(i)
            : BlockPaths.join(prefix, tree.passedLeaves().key(i));
      }
    }
    return leaf.getClass().getSimpleName();
  }

  /** A tying block's path: its node's, or its parent's joined with its key (null: the root). */
  private static String holderPath(TreeNode own, TreeNode parent, String key) {
    if (own != null) {
      return own.path();
    }
    String prefix = parent == null ? null : parent.path();
    return prefix == null ? key : BlockPaths.join(prefix, key);
  }

  /** Refuses when a field's value still reaches a replaced block after the writes. */
  private void checkUnwritable(
      Block holder, FieldSlot field, Supplier<String> path, TreeNode within) {
    Object value = field.get(holder);
    // One search for both kinds of trouble: a replaced block (other than the replacement's own
    // original), and, for an original holder, a block that left the tree with a replaced ancestor.
    FieldBlocks.Found found =
        FieldBlocks.search(
            value,
            b -> {
              TreeNode replacement = replacementOf(b);
              return replacement != null
                  ? !wrapped(b, replacement, within)
                  : within == null && leftTheTree(b);
            },
            within == null ? searchedClean : null);
    Block tied = found.block();
    if (tied != null && within != null && replacementOf(tied) == within) {
      throw new SurgeryException(
          BlockPaths.display(tree.nodeOf(tied).path()),
          "its replacement "
              + holder.getClass().getName()
              + " keeps it in field "
              + FieldWrites.where(holder, field)
              + " but not as a child: it would leave the model, its arrays freed, and the"
              + " replacement's forward would call it; add it as a child of the replacement");
    }
    if (tied != null && replacementOf(tied) != null) {
      throw tieRefused(
          holder,
          field,
          tied,
          path.get(),
          " " + FieldWrites.describeHolder(value, tied, field),
          "the surgery cannot change that place (its forward would still call the old block)");
    }
    if (tied != null) {
      TreeNode n = tree.nodeOf(tied);
      throw new SurgeryException(
          BlockPaths.display(path.get()),
          "field "
              + FieldWrites.where(holder, field)
              + " holds "
              + "the block at "
              + BlockPaths.display(n != null ? n.path() : passedLeafPath(tied))
              + " without being its parent (weight tying), and that block leaves the model with"
              + " an ancestor this surgery replaces; the tying block would call it after its"
              + " arrays are freed. Replace the tied block itself, or have the replacement keep"
              + " it as a child");
    }
    if (found.opaque() != null && within == null && FieldWrites.runsInForward(field)) {
      throw FieldWrites.unreadableFunction(path.get(), holder, field, found.opaque());
    }
    if (found.unexplored() != null && within == null) {
      throw FieldWrites.unexplored(path.get(), holder, field, found.unexplored());
    }
  }

  /**
   * The node of what stands for an original block after the traversal (the end of a chain of
   * replacements), or null when the block is not an original the surgery replaced.
   */
  private TreeNode replacementOf(Block block) {
    TreeNode n = tree.nodeOf(block);
    if (n == null || !n.original || n.swap == null || n.swap == n) {
      return null;
    }
    TreeNode end = n.endOfChain(tree.decided().size());
    return end == n ? null : end;
  }

  private SurgeryException tieRefused(
      Block holder, FieldSlot field, Block old, String holderPath, String how, String why) {
    return new SurgeryException(
        BlockPaths.display(tree.nodeOf(old).path()),
        "block "
            + BlockPaths.display(holderPath)
            + " (field "
            + FieldWrites.where(holder, field)
            + ") holds this block"
            + how
            + " without being its parent (weight tying), and "
            + why
            + "; hold the tied block as a child of the block that calls it, or replace that block"
            + " too");
  }
}
