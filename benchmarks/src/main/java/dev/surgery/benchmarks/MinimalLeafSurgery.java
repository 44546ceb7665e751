package dev.surgery.benchmarks;

import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.IdentityHashes;
import java.util.Arrays;
import java.util.List;

/**
 * A yardstick for B4a, not a surgery: the least work a replacement of leaves must do to keep the
 * guarantees the engine keeps on B4a's trees, so that the engine's cost can be read against a floor
 * as well as against the plain walk.
 *
 * <p>It walks the tree once in pre-order, entering every composite and every matched leaf in an
 * identity set (a block met twice is visited once, a cycle ends), looks at each matched leaf's
 * parameters while it is at hand (the engine frees the arrays a replaced block leaves behind, so it
 * must know whether there are any), and queues it with its parent's live list and its index there.
 * Then, in that order, it calls the function, refuses a replacement already in the model (one
 * identity probe, which also enters it; none for a block whose identity hash no one ever computed,
 * which cannot be in the model, as the engine knows too), checks that the parent's list still holds
 * the old block at that index and writes the replacement there (a matched leaf has one place; the
 * engine too writes a block met in one place without scanning the list) and records the write for
 * an undo. The engine's traversal has the same two phases (every function sees the tree as the walk
 * found it, plus the earlier replacements), so no function call and no probe here is one the engine
 * could skip.
 *
 * <p>Left out, because B4a's trees never need them: a matched leaf with two parents, an initialized
 * leaf, a matched block with children, a replacement that is an unmatched leaf (the engine then
 * enters the leaves its walk passed by) and a list that changed during the surgery (all five are
 * refused with an exception rather than handled), recursion, placement and shape checks, trainers,
 * paths for messages, the rollback itself, the returned map and the keys DJL derives from class
 * names. The set is the engine's kind of table (identity hash and position in a primitive slot,
 * keys appended), not an {@code IdentityHashMap}, so the floor is not raised by a slower structure.
 */
final class MinimalLeafSurgery {

  private final Class<?> type;
  private final ReplacementFunction function;

  private long[] slots = new long[256];
  private Object[] keys = new Object[128];
  private int size;

  /** Matched leaves and their parents' live lists, in pre-order. */
  private Object[] queue = new Object[64];

  /** Each queued leaf's index in its parent's list. */
  private int[] queuedIndices = new int[32];

  private int queued;

  /** Replacements entered without a probe, to join the set before its next look-up. */
  private Object[] unprobedKeys = new Object[64];

  private int unprobed;

  /** Undo records: list, old block (two entries) and index. */
  private Object[] undo = new Object[64];

  private int[] undoIndices = new int[32];
  private int undone;

  private MinimalLeafSurgery(Class<?> type, ReplacementFunction function) {
    this.type = type;
    this.function = function;
  }

  /**
   * Replaces every leaf of a class below {@code root} by what the function returns for it.
   *
   * @param root the root; its children lists are changed in place
   * @param type the class of the leaves to replace
   * @param function the replacement; null keeps the leaf
   * @return the number of leaves replaced
   * @throws IllegalStateException for a replacement already in the model, and for what this
   *     yardstick does not handle: a matched block with children, a matched leaf with two parents
   *     or with arrays, a replacement that is an unmatched leaf
   */
  static int replace(Block root, Class<?> type, ReplacementFunction function) {
    MinimalLeafSurgery surgery = new MinimalLeafSurgery(type, function);
    surgery.enter(root);
    surgery.walk(root);
    return surgery.visitQueued();
  }

  private void walk(Block parent) {
    List<Block> children = BlockPaths.children(parent).values();
    for (int i = 0, n = children.size(); i < n; i++) {
      Block child = children.get(i);
      boolean leaf = BlockPaths.children(child).isEmpty();
      boolean matched = type.isInstance(child);
      if (leaf && !matched) {
        continue;
      }
      if (matched && !leaf) {
        throw new IllegalStateException("a matched block with children: not handled here");
      }
      if (!enter(child)) {
        if (matched) {
          throw new IllegalStateException("a matched leaf with two parents: not handled here");
        }
        continue;
      }
      if (leaf) {
        if (holdsArrays(child)) {
          throw new IllegalStateException("an initialized leaf: not handled here");
        }
        if (queued == queue.length) {
          queue = Arrays.copyOf(queue, 2 * queued);
          queuedIndices = Arrays.copyOf(queuedIndices, queued);
        }
        queuedIndices[queued / 2] = i;
        queue[queued++] = child;
        queue[queued++] = children;
      } else {
        walk(child);
      }
    }
  }

  @SuppressWarnings("unchecked")
  private int visitQueued() {
    int replaced = 0;
    int index = 0;
    for (int k = 0; k < queued; k += 2) {
      Block old = (Block) queue[k];
      Block replacement = function.apply(old, index++);
      if (replacement == null) {
        continue;
      }
      if (!type.isInstance(replacement) && BlockPaths.children(replacement).isEmpty()) {
        // It could be one of the unmatched leaves the walk passed by, which the set does not hold.
        throw new IllegalStateException(
            "a replacement that is an unmatched leaf: not handled here");
      }
      if (IdentityHashes.neverComputed(replacement)) {
        // A block whose identity hash no one computed cannot be in the model: no probe (as the
        // engine); its hash is computed so that, met again, it is looked up.
        System.identityHashCode(replacement);
        if (unprobed == unprobedKeys.length) {
          unprobedKeys = Arrays.copyOf(unprobedKeys, 2 * unprobed);
        }
        unprobedKeys[unprobed++] = replacement;
      } else {
        enterUnprobed();
        if (!enter(replacement)) {
          throw new IllegalStateException("the replacement is already part of the model");
        }
      }
      // A matched leaf has one place (one met twice is refused above): the write goes there, after
      // the check the engine makes too (the list still holds it where the walk met it).
      List<Block> siblings = (List<Block>) queue[k + 1];
      int i = queuedIndices[k / 2];
      if (siblings.get(i) != old) {
        throw new IllegalStateException("the list changed during the surgery: not handled here");
      }
      siblings.set(i, replacement);
      record(siblings, old, i);
      replaced++;
    }
    return replaced;
  }

  private void record(List<Block> list, Block old, int index) {
    if (undone == undoIndices.length) {
      undo = Arrays.copyOf(undo, 4 * undone);
      undoIndices = Arrays.copyOf(undoIndices, 2 * undone);
    }
    undo[2 * undone] = list;
    undo[2 * undone + 1] = old;
    undoIndices[undone++] = index;
  }

  private static boolean holdsArrays(Block block) {
    if (block instanceof AbstractBlock abstractBlock) {
      for (Parameter p : DjlBlocks.liveParameters(abstractBlock).values()) {
        if (p.isInitialized()) {
          return true;
        }
      }
      return false;
    }
    for (Pair<String, Parameter> p : block.getDirectParameters()) {
      if (p.getValue().isInitialized()) {
        return true;
      }
    }
    return false;
  }

  private void enterUnprobed() {
    for (int i = 0; i < unprobed; i++) {
      enter(unprobedKeys[i]);
    }
    unprobed = 0;
  }

  /** Enters a block in the identity set; false if it was there. */
  private boolean enter(Object key) {
    int hash = System.identityHashCode(key);
    int mask = slots.length - 1;
    int i = (hash * 0x9E3779B9) >>> (32 - Integer.numberOfTrailingZeros(slots.length));
    while (slots[i] != 0) {
      long s = slots[i];
      if ((int) (s >>> 32) == hash && keys[(int) s] == key) {
        return false;
      }
      i = (i + 1) & mask;
    }
    if (size == keys.length) {
      keys = Arrays.copyOf(keys, 2 * size);
    }
    keys[size] = key;
    slots[i] = ((long) hash << 32) | size;
    if (++size * 2 > slots.length) {
      grow();
    }
    return true;
  }

  private void grow() {
    long[] old = slots;
    slots = new long[4 * old.length];
    int mask = slots.length - 1;
    int shift = 32 - Integer.numberOfTrailingZeros(slots.length);
    for (long s : old) {
      if (s != 0) {
        int i = ((int) (s >>> 32) * 0x9E3779B9) >>> shift;
        while (slots[i] != 0) {
          i = (i + 1) & mask;
        }
        slots[i] = s;
      }
    }
  }
}
