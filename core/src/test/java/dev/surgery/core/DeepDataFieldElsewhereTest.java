package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.testing.PassThroughBlock;
import dev.surgery.core.testing.TinyModels;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * From a review of 482a0767 (fixed): a block of the program's own keeps plain data (a chain of its
 * own node objects, e.g. a tokenizer trie or a linked list of 20 entries, no block anywhere in it)
 * in a field. The search refused what lay deeper than 16 holders, and the tie step looks at every
 * such block of the model, so a surgery anywhere else in the model (here a Conv2d that is the data
 * block's sibling, not its child) was refused because of the data. Now a final data class whose
 * fields reach no block is not searched at all, and a search follows a chain to its end (up to
 * 100,000 holders): the surgery goes on.
 */
class DeepDataFieldElsewhereTest {

  /** A node of a chain of the program's own data (no block in it). */
  static final class Node {
    final String token;
    final Node next;

    Node(String token, Node next) {
      this.token = token;
      this.next = next;
    }
  }

  /** A block with no children that keeps a chain of 20 data nodes (a vocabulary, say). */
  static final class Vocabulary extends PassThroughBlock {
    final Node head;

    Vocabulary(int length) {
      super((byte) 1);
      Node n = null;
      for (int i = length; i > 0; i--) {
        n = new Node("t" + i, n);
      }
      head = n;
    }
  }

  @Test
  void aLongDataChainInAnotherBlockDoesNotRefuseASurgeryElsewhere() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = vocabularyBesideAStridedConv(manager, 20);
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Conv2d.class, (block, i) -> BlurConv2d.fromConv2d((Conv2d) block, true));
      Map<Block, Block> replaced =
          assertDoesNotThrow(() -> ModuleSurgery.replaceModuleClasses(net, policies));
      assertEquals(1, replaced.size());
    }
  }

  @Test
  void aShortDataChainIsFine() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = vocabularyBesideAStridedConv(manager, 10);
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Conv2d.class, (block, i) -> BlurConv2d.fromConv2d((Conv2d) block, true));
      assertEquals(1, ModuleSurgery.replaceModuleClasses(net, policies).size());
    }
  }

  /**
   * A chain longer than a search follows ({@link FieldBlocks#MAX_HOLDERS}) is no obstacle either:
   * its nodes are known to reach no block without being followed (a class met again on the way adds
   * nothing new), so nothing is left unexplored.
   */
  @Test
  void aDataChainLongerThanASearchFollowsIsFineToo() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = vocabularyBesideAStridedConv(manager, FieldBlocks.MAX_HOLDERS + 1);
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Conv2d.class, (block, i) -> BlurConv2d.fromConv2d((Conv2d) block, true));
      assertEquals(1, ModuleSurgery.replaceModuleClasses(net, policies).size());
    }
  }

  /** A vocabulary of {@code length} data nodes, then a strided 3x3 convolution, initialized. */
  private static SequentialBlock vocabularyBesideAStridedConv(NDManager manager, int length) {
    SequentialBlock net =
        new SequentialBlock().add(new Vocabulary(length)).add(TinyModels.conv3x3(4, 2));
    net.initialize(manager, DataType.FLOAT32, new Shape(1, 2, 8, 8));
    return net;
  }
}
