package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import dev.surgery.core.testing.TinyDense;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Where the engine writes a replacement: every place a parent holds the old block, whether the
 * block sits there once (the write then goes straight to where the walk met it), twice in one list,
 * under several parents, or in a list a replacement function lengthened against the contract.
 */
class ChildWritesTest {

  private static Linear linear() {
    return Linear.builder().setUnits(4).build();
  }

  private static List<Block> children(Block block) {
    return new ArrayList<>(block.getChildren().values());
  }

  private static SurgeryOptions recurse(boolean recurse) {
    return SurgeryOptions.builder().optRecurseOnReplacements(recurse).build();
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void eachLeafLandsInItsOwnPlaceAmongAlternatingSiblings(boolean recurse) {
    SequentialBlock root = new SequentialBlock();
    SequentialBlock left = new SequentialBlock();
    SequentialBlock right = new SequentialBlock();
    for (int i = 0; i < 6; i++) {
      left.add(i % 2 == 0 ? linear() : Blocks.identityBlock());
      right.add(i % 3 == 0 ? Blocks.identityBlock() : linear());
    }
    root.add(left).add(right);
    List<Block> leftBefore = children(left);
    List<Block> rightBefore = children(right);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.of(BlockMatcher.ofClass(Linear.class), (block, index) -> new TinyDense(4)),
            recurse(recurse));

    assertEquals(7, replaced.size());
    for (int i = 0; i < 6; i++) {
      Block l = leftBefore.get(i);
      Block r = rightBefore.get(i);
      assertSame(replaced.getOrDefault(l, l), left.getChildren().valueAt(i), "left " + i);
      assertSame(replaced.getOrDefault(r, r), right.getChildren().valueAt(i), "right " + i);
    }
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void aBlockTwiceInOneListAndOnceElsewhereIsReplacedInAllThreePlaces(boolean recurse) {
    Linear shared = linear();
    SequentialBlock twice =
        new SequentialBlock().add(shared).add(Blocks.identityBlock()).add(shared);
    SequentialBlock once = new SequentialBlock().add(linear()).add(shared);
    SequentialBlock root = new SequentialBlock().add(twice).add(once);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.of(
                BlockMatcher.ofClass(Linear.class),
                (block, index) -> block == shared ? new TinyDense(4) : null),
            recurse(recurse));

    Block dense = replaced.get(shared);
    assertSame(dense, twice.getChildren().valueAt(0));
    assertSame(dense, twice.getChildren().valueAt(2));
    assertSame(dense, once.getChildren().valueAt(1));
    assertEquals("03TinyDense", twice.getChildren().keyAt(2), "the key follows the new type");
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void aBlockTwiceInOneListAndNowhereElseIsReplacedAtBothPlaces(boolean recurse) {
    Linear shared = linear();
    SequentialBlock root =
        new SequentialBlock().add(shared).add(Blocks.identityBlock()).add(shared);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.of(BlockMatcher.ofClass(Linear.class), (block, index) -> new TinyDense(4)),
            recurse(recurse));

    assertEquals(1, replaced.size());
    Block dense = replaced.get(shared);
    assertSame(dense, root.getChildren().valueAt(0));
    assertSame(dense, root.getChildren().valueAt(2));
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void aRollbackPutsTheBlockBackInEveryPlace(boolean recurse) {
    Linear shared = linear();
    Linear alone = linear();
    SequentialBlock twice =
        new SequentialBlock().add(shared).add(Blocks.identityBlock()).add(shared);
    SequentialBlock root = new SequentialBlock().add(twice).add(alone);
    List<Block> twiceBefore = children(twice);
    List<Block> rootBefore = children(root);

    List<Block> twiceWhenTheLastFailed = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(Linear.class),
        (block, index) -> {
          if (block == alone) {
            twiceWhenTheLastFailed.addAll(children(twice));
            throw new IllegalStateException("the last one fails");
          }
          return new TinyDense(4);
        });
    assertThrows(
        SurgeryException.class,
        () -> ModuleSurgery.replaceModules(root, policies, recurse(recurse)));

    // Both places had been written before the failure, and both are put back.
    assertEquals(3, twiceWhenTheLastFailed.size());
    assertTrue(twiceWhenTheLastFailed.get(0) instanceof TinyDense);
    assertSame(twiceWhenTheLastFailed.get(0), twiceWhenTheLastFailed.get(2));
    assertEquals(twiceBefore, children(twice));
    assertEquals(rootBefore, children(root));
    assertEquals("01Linear", twice.getChildren().keyAt(0));
    assertEquals("03Linear", twice.getChildren().keyAt(2));
  }

  @Test
  void aReplacementReplacedAgainUnderRecursionTakesTheSamePlace() {
    SequentialBlock parent =
        new SequentialBlock().add(Blocks.identityBlock()).add(linear()).add(linear());
    Block first = parent.getChildren().valueAt(1);
    Block second = parent.getChildren().valueAt(2);
    // Each Linear is replaced by a new one, which is replaced again, twice over: generations 0-2.
    Map<Block, Integer> generation = new IdentityHashMap<>();
    ReplacementFunction younger =
        (block, index) -> {
          int g = generation.getOrDefault(block, 0);
          if (g == 2) {
            return null;
          }
          Linear next = linear();
          generation.put(next, g + 1);
          return next;
        };

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            parent, Map.of(BlockMatcher.ofClass(Linear.class), younger), recurse(true));

    assertEquals(4, replaced.size(), "two originals replaced, and their replacements again");
    Block firstLast = replaced.get(replaced.get(first));
    Block secondLast = replaced.get(replaced.get(second));
    assertEquals(2, generation.get(firstLast));
    assertEquals(2, generation.get(secondLast));
    assertSame(firstLast, parent.getChildren().valueAt(1));
    assertSame(secondLast, parent.getChildren().valueAt(2));
    assertNotSame(firstLast, secondLast);
  }

  @Test
  void aFunctionThatLengthenedTheListStillSeesEveryPlaceWritten() {
    // Against the contract (a function must not change the tree): a list whose length changed
    // since the walk is scanned, as before. Only a change of length is noticed: an element a
    // function set in place, keeping the length, is not.
    Linear matched = linear();
    SequentialBlock parent = new SequentialBlock().add(Blocks.identityBlock()).add(matched);
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            parent,
            Map.of(
                BlockMatcher.ofClass(Linear.class),
                (block, index) -> {
                  parent.add(block);
                  return new TinyDense(4);
                }),
            SurgeryOptions.defaults());

    Block dense = replaced.get(matched);
    assertSame(dense, parent.getChildren().valueAt(1));
    assertSame(dense, parent.getChildren().valueAt(2));
  }
}
