package dev.surgery.core;

import static dev.surgery.core.BlockTrees.containsIdentity;

import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import dev.surgery.core.internal.BlockFields;
import dev.surgery.core.internal.DjlBlocks;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * A surgery's writes of a replacement into the parents that hold the old block: the element of the
 * children list (journaled, with a key DJL derived from the old block's class renamed), the
 * parent's own fields through {@link FieldWrites}, and, once the traversal is done, the refusal of
 * a parent that lists its children itself and still lists what it held: the surgery cannot reach
 * the place such a list is built from, so it can only check the list after every write.
 */
final class ParentWrites {

  private final Journal journal;
  private final FieldWrites fieldWrites;

  /** Writes into parents that list their children themselves: parent and old block nodes. */
  private final List<TreeNode[]> listedWrites = new ArrayList<>(0);

  ParentWrites(Journal journal, FieldWrites fieldWrites) {
    this.journal = journal;
    this.fieldWrites = fieldWrites;
  }

  /**
   * Writes {@code replacement} wherever the parent holds the old block. {@code hint} is where the
   * walk met the old block when that was its one place (-1 otherwise): if the list kept its length
   * and still holds it there, that element alone is set, without a scan. (A replacement function
   * must not change the tree; one that lengthened the list is caught by the scan, one that set an
   * element in place is not.) Returns the index written when exactly one element was, else -1.
   */
  int write(TreeNode parentNode, TreeNode oldNode, Block replacement, int hint) {
    Block parent = parentNode.block;
    Block old = oldNode.block;
    // Null for a block outside DJL's AbstractBlock (one of its own on AbstractBaseBlock): its
    // children live where its fields keep them, and its getChildren() says where they are.
    BlockList children = DjlBlocks.registeredChildren(parent);
    boolean listsItself = children == null || DjlBlocks.listsChildrenItself(parent.getClass());
    // The walk met the block in the parent's own list: a position there says nothing of where the
    // registered list holds it.
    int written =
        children == null
            ? -1
            : writeIntoList(parentNode, children, old, replacement, listsItself ? -1 : hint);
    if (!BlockFields.blockHoldingFields(parent.getClass()).isEmpty()) {
      fieldWrites.writeFields(parent, old, replacement, oldNode.path());
    }
    // After the writes: a field aliasing a list written above no longer holds the old block.
    if (!BlockFields.blockReferencingFields(parent.getClass()).isEmpty()) {
      fieldWrites.refuseUnwritable(parent, old, oldNode::path);
    }
    if (listsItself) {
      // Its getChildren() is DJL's view of it (parameters, save, the trainer) and usually built
      // from the fields written above: once the traversal is done (another parent's writes may be
      // what it lists), it must list the replacement, not the old block.
      listedWrites.add(new TreeNode[] {parentNode, oldNode});
      return -1;
    }
    return written;
  }

  /**
   * Writes the replacement into a children list: at {@code hint} alone when the list kept its
   * length and still holds the old block there, else wherever it holds it. Returns the index
   * written when exactly one element was, else -1.
   */
  private int writeIntoList(
      TreeNode parentNode, BlockList children, Block old, Block replacement, int hint) {
    List<String> keys = children.keys();
    List<Block> values = children.values();
    // DJL derives a child's key from its class: only a change of class can change the key.
    boolean sameClass = old.getClass() == replacement.getClass();
    int size = values.size();
    if (hint >= 0 && hint < size && size == parentNode.childCount && values.get(hint) == old) {
      setChild(keys, values, hint, old, replacement, sameClass);
      return hint;
    }
    int written = -1;
    int writes = 0;
    for (int i = 0; i < size; i++) {
      if (values.get(i) == old) {
        setChild(keys, values, i, old, replacement, sameClass);
        written = i;
        writes++;
      }
    }
    return writes == 1 ? written : -1;
  }

  /**
   * Refuses when a parent that lists its children itself (and is still in the tree) lists an old
   * block it held, or not what stands for it now, after the traversal's writes: the surgery cannot
   * reach the place the list is built from. Each such parent's list is asked once.
   */
  void refuseStaleLists(ChangedTree tree) {
    Map<TreeNode, List<Block>> listed = new IdentityHashMap<>();
    for (TreeNode[] write : listedWrites) {
      TreeNode parentNode = write[0];
      TreeNode oldNode = write[1];
      if ((parentNode.swap != null && parentNode.swap != parentNode) || !tree.isLive(parentNode)) {
        continue; // replaced, or left with an ancestor: its list is no longer the model's
      }
      List<Block> blocks = listed.computeIfAbsent(parentNode, ParentWrites::listedChildren);
      TreeNode standIn = oldNode.endOfChain(tree.decided().size());
      boolean stale = standIn != oldNode && containsIdentity(blocks, oldNode.block);
      boolean missing = tree.stays(standIn) && !containsIdentity(blocks, standIn.block);
      if (stale || missing) {
        Block parent = parentNode.block;
        throw new SurgeryException(
            BlockPaths.display(oldNode.path()),
            parent.getClass().getName()
                + (parent instanceof ai.djl.nn.AbstractBlock
                    ? " lists its children itself (it overrides getChildren()) and "
                    : " lists its children itself (it is not an ai.djl.nn.AbstractBlock, as a"
                        + " TorchScript symbol block is not) and ")
                + (stale ? "still lists the old block" : "does not list the replacement")
                + " after the surgery wrote the fields that held it: the model DJL trains and"
                + " saves would not be the one its forward runs; keep the children in fields of"
                + " type Block, a List, an array or a Map that getChildren() reads, or replace the"
                + " whole block");
      }
    }
  }

  /** A parent's own list of its children, its failure named by the parent's path. */
  private static List<Block> listedChildren(TreeNode parentNode) {
    try {
      return parentNode.block.getChildren().values();
    } catch (RuntimeException e) {
      throw new SurgeryException(
          BlockPaths.display(parentNode.path()),
          "getChildren() failed after the surgery wrote into the block: "
              + TreeSurgery.messageOf(e),
          e);
    }
  }

  /** Sets one child, journaled, renaming a key DJL derived from the old block's class. */
  private void setChild(
      List<String> keys,
      List<Block> values,
      int i,
      Block old,
      Block replacement,
      boolean sameClass) {
    values.set(i, replacement);
    journal.elementSet(values, i, old);
    // A key DJL derived from the old block's class is renamed, so toString shows the new type.
    String key = sameClass ? null : keys.get(i);
    if (key != null && key.equals(childKey(i, old))) {
      keys.set(i, childKey(i, replacement));
      journal.elementSet(keys, i, key);
    }
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
}
