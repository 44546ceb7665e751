package dev.surgery.core;

import ai.djl.nn.Block;
import java.util.Arrays;

/**
 * The edges from parents to the leaves a surgery's walk passed by, in the order they were met: per
 * edge the leaf, its parent's record and the key (null for a child of a replacement). A large tree
 * records one edge per unmatched leaf, so the three references go to chunks of plain arrays: no
 * object and no boxing per edge, and no array so large that G1 makes it humongous (stores into one
 * take the write barrier's slow path). Appended to, read once in order, then dropped.
 */
final class PassedEdges {

  private static final int CHUNK_BITS = 12;
  private static final int CHUNK = 1 << CHUNK_BITS; // edges per chunk
  private static final int CHUNK_MASK = CHUNK - 1;

  private Object[][] chunks = new Object[1][];
  private int size;

  /** Appends an edge. */
  void add(Block leaf, Object parent, String key) {
    int chunk = size >>> CHUNK_BITS;
    int at = 3 * (size & CHUNK_MASK);
    if (chunk == chunks.length) {
      chunks = Arrays.copyOf(chunks, 2 * chunk);
    }
    Object[] edges = chunks[chunk];
    if (edges == null || at == edges.length) {
      // The first chunk starts small and doubles: most surgeries pass a few dozen leaves.
      int length = chunk == 0 && edges == null ? 3 * 32 : 3 * CHUNK;
      edges =
          edges == null ? new Object[length] : Arrays.copyOf(edges, Math.min(3 * CHUNK, 2 * at));
      chunks[chunk] = edges;
    }
    edges[at] = leaf;
    edges[at + 1] = parent;
    edges[at + 2] = key;
    size++;
  }

  /** The number of edges. */
  int size() {
    return size;
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
    if (i < 0 || i >= size) {
      throw new IndexOutOfBoundsException(i);
    }
    return chunks[i >>> CHUNK_BITS][3 * (i & CHUNK_MASK) + offset];
  }
}
