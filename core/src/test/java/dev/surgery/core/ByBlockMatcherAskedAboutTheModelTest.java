package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;

/**
 * From an outside probe: the user guide recommends {@code BlockMatcher.byBlock(block -> ...)} "to
 * select by what a block is (its class, a setting such as a stride)" rather than a {@code (block,
 * path)} lambda that ignores the path. A byBlock predicate that reads the selected layer's weight
 * shape (selecting the 3-unit head) makes replaceModules fail ("surgery failed and was rolled back:
 * The array for parameter "weight" has not been initialized"): without recursion the engine still
 * asks path-free matchers about each replacement, uninitialized, while deciding whether to enter
 * passed-by leaves (TreeSurgery.substitute -> matchMask). The same predicate as a (block, path)
 * matcher succeeds. Now both succeed, and a predicate of the program's is asked only about blocks
 * of the model (without recursion), which a replacement wrapping a model block does not change.
 */
class ByBlockMatcherAskedAboutTheModelTest {

  private static final Predicate<Block> THREE_UNIT_HEAD =
      b -> b instanceof Linear && b.getParameters().get("weight").getArray().getShape().get(0) == 3;

  private static Map<Block, Block> swapHead(BlockMatcher matcher) {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net =
          new SequentialBlock()
              .add(Linear.builder().setUnits(8).build())
              .add(Activation::relu)
              .add(Linear.builder().setUnits(3).build());
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 4));
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(matcher, (old, i) -> Linear.builder().setUnits(3).build());
      return ModuleSurgery.replaceModules(net, policies, SurgeryOptions.builder().build());
    }
  }

  @Test
  void aPathLambdaSwapsTheHead() {
    Map<Block, Block> replaced = swapHead((b, path) -> THREE_UNIT_HEAD.test(b));
    assertEquals(1, replaced.size());
  }

  @Test
  void theSamePredicateThroughByBlockSwapsTheHeadToo() {
    Map<Block, Block> replaced = swapHead(BlockMatcher.byBlock(THREE_UNIT_HEAD));
    assertEquals(1, replaced.size());
  }

  @Test
  void aProgramsPredicateIsAskedAboutTheModelsBlocksOnly() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net =
          new SequentialBlock()
              .add(Linear.builder().setUnits(8).build())
              .add(Activation.reluBlock())
              .add(Linear.builder().setUnits(3).build());
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 4));
      java.util.Set<Block> model =
          java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
      model.add(net);
      net.getChildren().values().forEach(model::add);
      java.util.List<Block> askedOutside = new java.util.ArrayList<>();
      BlockMatcher linears =
          BlockMatcher.byBlock(
              b -> {
                if (!model.contains(b)) {
                  askedOutside.add(b);
                }
                return b instanceof Linear;
              });
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      // Each Linear becomes a new Linear, and the ReLU stays: fresh leaves and a wrapper kid.
      policies.put(linears, (old, i) -> Linear.builder().setUnits(i == 0 ? 8 : 3).build());
      policies.put(
          BlockMatcher.lambdaNamed("ReLU"),
          (old, i) -> new SequentialBlock().add(old).add(Activation::relu));
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(net, policies, SurgeryOptions.builder().build());
      assertEquals(3, replaced.size(), replaced.toString());
      assertEquals(java.util.List.of(), askedOutside, "asked about blocks not of the model");
    }
  }
}
