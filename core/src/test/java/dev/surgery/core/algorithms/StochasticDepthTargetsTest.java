package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import dev.surgery.core.testing.TinyModels;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
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
}
