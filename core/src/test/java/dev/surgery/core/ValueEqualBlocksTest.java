package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.surgery.core.algorithms.LayerFreezing;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Blocks of a user's class that compare by value (Lombok's {@code @EqualsAndHashCode}, a
 * value-style layer): two equal blocks are two places in the model, each with its own path.
 */
class ValueEqualBlocksTest {

  /** A learnable per-feature bias, equal to every other with the same width. */
  static final class Bias extends AbstractBlock {
    private final int width;

    Bias(int width) {
      super((byte) 1);
      this.width = width;
      addParameter(Parameter.builder().setName("bias").setType(Parameter.Type.BIAS).build());
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      Parameter bias = getDirectParameters().get("bias");
      NDArray x = inputs.singletonOrThrow();
      return new NDList(x.add(store.getValue(bias, x.getDevice(), training)));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
      return inputShapes;
    }

    @Override
    public void prepare(Shape[] inputShapes) {
      getDirectParameters().get("bias").setShape(new Shape(width));
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Bias b && b.width == width;
    }

    @Override
    public int hashCode() {
      return width;
    }
  }

  private static SequentialBlock tree(Bias first, Bias second, Bias third) {
    return new SequentialBlock()
        .add(first)
        .add(Linear.builder().setUnits(4).build())
        .add(second)
        .add(third);
  }

  @Test
  void equalBlocksKeepTheirOwnPathsInTheIndexAndInAPlan() {
    Bias first = new Bias(4);
    Bias second = new Bias(4);
    Bias third = new Bias(4);
    SequentialBlock root = tree(first, second, third);
    Map<Block, String> index = BlockPaths.index(root);
    assertEquals(5, index.size(), "the root and four blocks");
    assertEquals("01Bias", index.get(first));
    assertEquals("03Bias", index.get(second));
    assertEquals("04Bias", index.get(third));
    assertEquals("03Bias", BlockPaths.pathOf(root, second));
    assertEquals(
        List.of("", "01Bias", "02Linear", "03Bias", "04Bias"), List.copyOf(index.values()));

    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(BlockMatcher.ofClass(Bias.class), (block, i) -> new Bias(4));
    SurgeryPlan plan = ModuleSurgery.plan(root, policies, SurgeryOptions.defaults());
    assertEquals(
        List.of("01Bias", "03Bias", "04Bias"),
        plan.steps().stream().map(SurgeryPlan.Step::path).toList());
  }

  @Test
  void layerFreezingCountsEveryEqualLayer() {
    Bias first = new Bias(4);
    Bias second = new Bias(4);
    Bias third = new Bias(4);
    SequentialBlock root = tree(first, second, third);
    try (NDManager manager = NDManager.newBaseManager()) {
      root.initialize(manager, DataType.FLOAT32, new Shape(2, 4));
      Map<Block, String> layers = LayerFreezing.layers(root);
      assertEquals(List.of("01Bias", "02Linear", "03Bias", "04Bias"), List.copyOf(layers.values()));
    }
  }
}
