package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import dev.surgery.core.testing.TinyModels;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * ^ * From an outside probe: {@code stochastic_depth} targets "residual units of DJL's ResNetV1"
 * (configuration.md, {@code target_layer_name: ResNetV1Unit}). It recognizes a unit by shape alone
 * (a ParallelBlock of a SequentialBlock with a convolution and a SequentialBlock holding DJL's
 * identity lambda) and never looks at the ParallelBlock's join. So a block of the program's own
 * that is not residual (a DenseNet-style block that concatenates the branch with its input, or a
 * gate that multiplies them) is wrapped too: in training its branch is replaced by zeros at random
 * (a dropped gate zeroes the whole block's output) and scaled by 1 / (1 - p) otherwise, a model the
 * program never built, without a word. Expected: such a block is not a target (nothing changes).
 */
class StochasticDepthTargetsTest {

  @ParameterizedTest(name = "{0} join")
  @ValueSource(strings = {"concatenation", "product"})
  void aParallelBlockThatIsNotResidualIsNotATarget(String join) {
    Function<List<NDList>, NDList> merge =
        join.equals("product")
            ? list -> new NDList(list.get(0).singletonOrThrow().mul(list.get(1).singletonOrThrow()))
            : list ->
                new NDList(
                    NDArrays.concat(
                        new NDList(list.get(0).singletonOrThrow(), list.get(1).singletonOrThrow()),
                        1));
    ParallelBlock notResidual =
        new ParallelBlock(
            merge,
            Arrays.asList(
                new SequentialBlock().add(TinyModels.conv3x3(4, 1)).add(Activation::sigmoid),
                new SequentialBlock().add(Blocks.identityBlock())));
    SequentialBlock net =
        new SequentialBlock()
            .add(TinyModels.conv3x3(4, 1))
            .add(notResidual)
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(2).build());
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 1, 6, 6));
      SurgeryChanges changes =
          Algorithms.spec("stochastic_depth")
              .create(Map.of("drop_rate", 0.5))
              .apply(SurgeryContext.of(net));
      assertTrue(
          changes.changes().isEmpty(),
          "stochastic_depth changed a "
              + join
              + " block that is no ResNetV1 unit: "
              + changes.changes());
    }
  }

  /** A block of two parallel children joined by {@code join}, in a model of its own. */
  private static Block parallel(Function<List<NDList>, NDList> join, Block first, Block second) {
    return new SequentialBlock().add(new ParallelBlock(join, Arrays.asList(first, second)));
  }

  private static Block branch() {
    return new SequentialBlock().add(TinyModels.conv3x3(4, 1));
  }

  private static Block identity() {
    return new SequentialBlock().add(Blocks.identityBlock());
  }

  /**
   * Only ResNetV1's shape is a unit: two sequential children, a projection shortcut of a
   * convolution and a batch norm, a join that gives the sum as one array. A join that gives two
   * arrays or fails on two, children that are not sequential blocks, or a shortcut convolution
   * followed by anything but a batch norm is no unit, while the same blocks joined by a sum are.
   */
  @Test
  void otherParallelBlocksAreNoUnits() {
    Function<List<NDList>, NDList> sum =
        list -> new NDList(list.get(0).singletonOrThrow().add(list.get(1).singletonOrThrow()));
    Function<List<NDList>, NDList> both =
        list -> new NDList(list.get(0).singletonOrThrow(), list.get(1).singletonOrThrow());
    Function<List<NDList>, NDList> failing =
        list -> {
          throw new IllegalStateException("this join takes one input");
        };
    Block projectedByRelu =
        new SequentialBlock().add(TinyModels.conv3x3(4, 1)).add(Activation.reluBlock());
    Block projectedByNorm =
        new SequentialBlock().add(TinyModels.conv3x3(4, 1)).add(BatchNorm.builder().build());

    assertEquals(1, StochasticDepth.residualBranches(parallel(sum, branch(), identity())).size());
    assertEquals(
        1, StochasticDepth.residualBranches(parallel(sum, branch(), projectedByNorm)).size());

    assertEquals(List.of(), StochasticDepth.residualBranches(parallel(both, branch(), identity())));
    assertEquals(
        List.of(), StochasticDepth.residualBranches(parallel(failing, branch(), identity())));
    assertEquals(
        List.of(),
        StochasticDepth.residualBranches(
            parallel(sum, TinyModels.conv3x3(4, 1), Blocks.identityBlock())));
    assertEquals(
        List.of(), StochasticDepth.residualBranches(parallel(sum, branch(), projectedByRelu)));
    // ResNetV1Unit is the one target name there is.
    assertEquals(
        "ResNetV1Unit",
        StochasticDepth.builder()
            .optTargetLayerName("ResNetV1Unit")
            .build()
            .hyperparameters()
            .get("target_layer_name"));
  }
}
