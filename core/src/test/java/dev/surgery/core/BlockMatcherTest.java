package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * What the matchers and their combinations select on a small uninitialized tree, and which of them
 * stay path-free (the engine then builds no path strings) and the library's own (the engine may
 * then ask them about replacements, which a program's predicate must never see).
 */
class BlockMatcherTest {

  private static final Block ROOT =
      new SequentialBlock()
          .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).build())
          .add(BatchNorm.builder().build())
          .add(Activation.reluBlock())
          .add(Pool.maxPool2dBlock(new Shape(2, 2)))
          .add(Linear.builder().setUnits(10).build());

  /** The paths of the blocks below the root that the matcher selects. */
  private static Set<String> selected(BlockMatcher matcher) {
    Set<String> out = new TreeSet<>();
    for (Map.Entry<Block, String> e : BlockPaths.index(ROOT).entrySet()) {
      if (!e.getValue().isEmpty() && matcher.matches(e.getKey(), e.getValue())) {
        out.add(e.getValue());
      }
    }
    return out;
  }

  @Test
  void ofClassWithSeveralClassesSelectsTheInstancesOfEach() {
    assertEquals(
        Set.of("01Conv2d", "05Linear"), selected(BlockMatcher.ofClass(Conv2d.class, Linear.class)));
    assertEquals(Set.of("02BatchNorm"), selected(BlockMatcher.ofClass(BatchNorm.class)));
    assertEquals(Set.of(), selected(BlockMatcher.ofClass()));
  }

  @Test
  void combinationsOfPathMatchersSelectAsTheirLogicSays() {
    BlockMatcher conv = BlockMatcher.pathGlob("01*");
    BlockMatcher linear = BlockMatcher.pathGlob("05*");
    assertEquals(Set.of("01Conv2d", "05Linear"), selected(conv.or(linear)));
    assertEquals(
        Set.of("02BatchNorm", "05Linear"), selected(BlockMatcher.pathGlob("02*").or(linear)));
    assertEquals(
        Set.of("02BatchNorm", "03LambdaBlock", "04LambdaBlock", "05Linear"),
        selected(conv.negate()));
    assertEquals(Set.of("01Conv2d"), selected(conv.and(BlockMatcher.ofClass(Conv2d.class))));
  }

  @Test
  void combinationsOfPathFreeMatchersSelectAsTheirLogicSaysAndStayPathFree() {
    BlockMatcher conv = BlockMatcher.ofClass(Conv2d.class);
    BlockMatcher pools = BlockMatcher.lambdaNamed("maxPool2d");
    BlockMatcher relu = BlockMatcher.byBlock(b -> BlockPaths.typeName(b).equals("ReLU"));
    List<BlockMatcher> combined =
        List.of(conv.or(pools), pools.or(conv), conv.and(pools), conv.negate(), relu.or(pools));
    for (BlockMatcher m : combined) {
      assertFalse(PathFreeMatcher.usesPath(m), m.toString());
    }
    assertEquals(Set.of("01Conv2d", "04LambdaBlock"), selected(conv.or(pools)));
    assertEquals(Set.of("01Conv2d", "04LambdaBlock"), selected(pools.or(conv)));
    assertEquals(Set.of("03LambdaBlock", "04LambdaBlock"), selected(relu.or(pools)));
    assertEquals(Set.of(), selected(conv.and(pools)));
    assertEquals(Set.of("01Conv2d"), selected(conv.and(conv)));
    // With a path matcher the combination needs the path, and still selects by both.
    BlockMatcher convOrLinear = conv.or(BlockMatcher.pathGlob("05*"));
    assertTrue(PathFreeMatcher.usesPath(convOrLinear));
    assertEquals(Set.of("01Conv2d", "05Linear"), selected(convOrLinear));
    BlockMatcher convAtOne = conv.and(BlockMatcher.pathGlob("01*"));
    assertTrue(PathFreeMatcher.usesPath(convAtOne));
    assertEquals(Set.of("01Conv2d"), selected(convAtOne));
  }

  /**
   * Only a combination of the library's own tests is its own: one program predicate anywhere in it,
   * on either side, keeps the engine from asking it about replacements.
   */
  @Test
  void aCombinationIsTheLibrarysOwnOnlyWhenEveryPartIs() {
    PathFreeMatcher conv = (PathFreeMatcher) BlockMatcher.ofClass(Conv2d.class);
    PathFreeMatcher pools = (PathFreeMatcher) BlockMatcher.lambdaNamed("maxPool2d");
    PathFreeMatcher program = (PathFreeMatcher) BlockMatcher.byBlock(b -> true);
    assertTrue(conv.isOurOwn());
    assertTrue(((PathFreeMatcher) BlockMatcher.ofClass(Conv2d.class, Linear.class)).isOurOwn());
    assertTrue(((PathFreeMatcher) conv.and(pools)).isOurOwn());
    assertTrue(((PathFreeMatcher) conv.or(pools)).isOurOwn());
    assertTrue(((PathFreeMatcher) conv.negate()).isOurOwn());
    assertFalse(program.isOurOwn());
    assertFalse(((PathFreeMatcher) conv.and(program)).isOurOwn());
    assertFalse(((PathFreeMatcher) program.and(conv)).isOurOwn());
    assertFalse(((PathFreeMatcher) conv.or(program)).isOurOwn());
    assertFalse(((PathFreeMatcher) program.or(conv)).isOurOwn());
    assertFalse(((PathFreeMatcher) program.negate()).isOurOwn());
  }
}
