package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.SharedArrayMoveTest.TiedModel;
import dev.surgery.core.SharedArrayMoveTest.TiedReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Inside a gradient-accumulation window, one {@code replaceParamsInOptimizer} call makes a frozen
 * tie of a trainable layer's weight trainable (new Parameter around the array) and moves the layer
 * itself to a copy (other arrays). After the call nothing else trains the tied array, so the
 * restarted parameter's first update must see only the gradient of its own step, as the Javadoc of
 * {@code restartTraining} says, whatever the order of the pairs. With the tie's pair first, the
 * array's pending gradient was kept (the layer, moved out only by the next pair, still counted as
 * "another trainable parameter" wrapping it), so the two orders trained apart.
 */
class RestartBesideAMovedTieTest {

  @ParameterizedTest
  @EnumSource(Kind.class)
  void aRestartedTieStartsWithoutThePendingGradientWhateverTheOrderOfThePairs(Kind kind) {
    try (Batches data = new Batches(47, 9);
        TiedModel tieFirst = new TiedModel(kind, 12);
        TiedModel layerFirst = new TiedModel(kind, 12)) {
      List<TiedModel> runs = List.of(tieFirst, layerFirst);
      for (int k = 0; k < 24; k++) {
        for (TiedModel run : runs) {
          OptimizerMoveRig.forwardBackward(run.trainer, data.get(k));
          if (k == 6) {
            // The window's first backward is in; the surgery; then its second backward.
            surgery(run, run == tieFirst);
            OptimizerMoveRig.forwardBackward(run.trainer, data.get(k + 1));
          }
          run.trainer.step();
        }
        OptimizerMoveRig.assertSameValues(
            OptimizerMoveRig.params(tieFirst.net),
            OptimizerMoveRig.params(layerFirst.net),
            "step " + k + ", the tie's pair first against the layer's pair first");
      }
    }
  }

  private static void surgery(TiedModel run, boolean tieFirst) {
    Linear layer = (Linear) run.net.getChildren().get(0).getValue();
    NDArray x = run.weight0().getArray();
    TiedReader reader = run.reader();
    Linear copy = OptimizerMoveEdgesTest.copy(layer);
    TiedReader trainableReader = new TiedReader(RefusedOptimizerMoveTest.around(x, "tied", true));
    List<Parameter> before = new ArrayList<>(OptimizerMoveRig.params(layer));
    List<Parameter> after = new ArrayList<>(OptimizerMoveRig.params(copy));
    before.add(tieFirst ? 0 : 2, reader.tied);
    after.add(tieFirst ? 0 : 2, trainableReader.tied);
    ModuleSurgery.replaceParamsInOptimizer(before, after, List.of(run.trainer));
    try (NDArray gradient = x.getGradient()) {
      float[] g = gradient.toFloatArray();
      assertArrayEquals(
          new float[g.length],
          g,
          "the restarted tie's pending gradient, the tie's pair " + (tieFirst ? "first" : "last"));
    }
    Map<Block, Block> swap = Map.of(layer, copy, reader, trainableReader);
    ModuleSurgery.replaceModuleClasses(
        run.net, Map.of(Block.class, (b, i) -> swap.get(b)), null, false, null);
    assertTrue(trainableReader.tied.requiresGradient());
  }
}
