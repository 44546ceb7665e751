package dev.surgery.core;

import ai.djl.nn.Block;
import java.util.AbstractMap;
import java.util.AbstractSet;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Set;

/**
 * A surgery's result: old block to what a policy returned, in decision order; unmodifiable. Blocks
 * do not override {@code equals}, so identity lookups give what a {@code LinkedHashMap} of the same
 * pairs would. It keeps the surgery's index of the blocks it met reachable while the caller holds
 * it.
 */
final class DecisionMap extends AbstractMap<Block, Block> {
  private final IdentityIndex<TreeNode> nodes;
  private final List<TreeNode> decided;
  private final List<Block> returned;

  DecisionMap(IdentityIndex<TreeNode> nodes, List<TreeNode> decided, List<Block> returned) {
    this.nodes = nodes;
    this.decided = decided;
    this.returned = returned;
  }

  private int positionOf(Object key) {
    TreeNode n = key instanceof Block ? nodes.get(key) : null;
    return n == null ? -1 : n.decision;
  }

  @Override
  public Block get(Object key) {
    int position = positionOf(key);
    return position < 0 ? null : returned.get(position);
  }

  @Override
  public boolean containsKey(Object key) {
    return positionOf(key) >= 0;
  }

  @Override
  public int size() {
    return decided.size();
  }

  @Override
  public Set<Entry<Block, Block>> entrySet() {
    return new AbstractSet<>() {
      @Override
      public Iterator<Entry<Block, Block>> iterator() {
        return new Iterator<>() {
          private int next;

          @Override
          public boolean hasNext() {
            return next < decided.size();
          }

          @Override
          public Entry<Block, Block> next() {
            if (next >= decided.size()) {
              throw new NoSuchElementException();
            }
            int i = next++;
            return new SimpleImmutableEntry<>(decided.get(i).block, returned.get(i));
          }
        };
      }

      @Override
      public int size() {
        return decided.size();
      }
    };
  }
}
