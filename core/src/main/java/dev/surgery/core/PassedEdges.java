package dev.surgery.core;

import ai.djl.nn.Block;

/**
 * The edges from parents to the leaves a surgery's walk passed by, in the order they were met: per
 * edge the leaf, its parent's record and the key (null for a child of a replacement). A large tree
 * records one edge per unmatched leaf, so the three references go to a {@link ChunkedArray}: no
 * object and no boxing per edge, and no humongous array. Appended to, read once in order, then
 * dropped.
 */
final class PassedEdges {

  private final ChunkedArray fields = new ChunkedArray(); // leaf, parent, key per edge

  /** Appends an edge. */
  void add(Block leaf, Object parent, String key) {
    fields.add(leaf);
    fields.add(parent);
    fields.add(key);
  }

  /** The number of edges. */
  int size() {
    return fields.size() / 3;
  }

  /** The leaf of edge {@code i}. */
  Block leaf(int i) {
    return (Block) field(i, 0);
  }

  /** The parent record of edge {@code i}. */
  Object parent(int i) {
    return field(i, 1);
  }

  /** The key of edge {@code i}, null for a replacement's child. */
  String key(int i) {
    return (String) field(i, 2);
  }

  private Object field(int i, int offset) {
    if (i < 0 || i >= size()) {
      throw new IndexOutOfBoundsException(i);
    }
    return fields.get(3 * i + offset);
  }
}
