package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Paths of blocks: resolving them back, and the children lists they are built from. */
class BlockPathsTest {

  @Test
  void resolveFindsTheRootAndBlocksByPathAndNullForAPathNotInTheTree() {
    Block head = Linear.builder().setUnits(3).build();
    SequentialBlock inner = new SequentialBlock().add(head);
    SequentialBlock root = new SequentialBlock().add(Activation.reluBlock()).add(inner);
    assertSame(root, BlockPaths.resolve(root, ""));
    assertSame(inner, BlockPaths.resolve(root, "02SequentialBlock"));
    assertSame(head, BlockPaths.resolve(root, "02SequentialBlock/01Linear"));
    assertEquals("02SequentialBlock/01Linear", BlockPaths.pathOf(root, head));
    assertNull(BlockPaths.resolve(root, "02SequentialBlock/02Linear"));
    assertNull(BlockPaths.pathOf(root, Linear.builder().setUnits(3).build()));
  }

  /** As documented: an AbstractBlock's live list, which shows a child added after it was taken. */
  @Test
  void childrenOfAnAbstractBlockIsItsLiveList() {
    SequentialBlock seq = new SequentialBlock().add(Activation.reluBlock());
    BlockList children = BlockPaths.children(seq);
    Block head = Linear.builder().setUnits(3).build();
    seq.add(head);
    assertEquals(2, children.size());
    assertSame(head, children.get(1).getValue());
  }

  /** A block outside AbstractBlock has no live list: its own getChildren() names its children. */
  @Test
  void theChildrenOfABlockThatListsThemItselfArePathedByItsKeys() {
    Block first = Linear.builder().setUnits(3).build();
    Block second = Activation.reluBlock();
    Block root = new SequentialBlock().add(new ListedChildrenTest.BaseListed(first, second));
    assertEquals(
        List.of("", "01BaseListed", "01BaseListed/first", "01BaseListed/second"),
        List.copyOf(BlockPaths.index(root).values()));
    assertSame(second, BlockPaths.resolve(root, "01BaseListed/second"));
  }
}
