package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The passed-by edges come back in the order they were added, across the chunks that hold them. */
class PassedEdgesTest {

  @Test
  void edgesComeBackInOrderAcrossChunks() {
    PassedEdges edges = new PassedEdges();
    List<Block> leaves = new ArrayList<>();
    List<Object> parents = new ArrayList<>();
    int n = 3 * 4096 + 17; // the small first chunk's doublings, full chunks and a partial one
    for (int i = 0; i < n; i++) {
      Block leaf = Blocks.identityBlock();
      Object parent = new Object();
      leaves.add(leaf);
      parents.add(parent);
      edges.add(leaf, parent, i % 5 == 0 ? null : "key" + i);
    }

    assertEquals(n, edges.size());
    for (int i = 0; i < n; i++) {
      assertSame(leaves.get(i), edges.leaf(i), "leaf " + i);
      assertSame(parents.get(i), edges.parent(i), "parent " + i);
      if (i % 5 == 0) {
        assertNull(edges.key(i), "key " + i);
      } else {
        assertEquals("key" + i, edges.key(i), "key " + i);
      }
    }
    assertThrows(IndexOutOfBoundsException.class, () -> edges.leaf(n));
    assertThrows(IndexOutOfBoundsException.class, () -> edges.key(-1));
  }
}
