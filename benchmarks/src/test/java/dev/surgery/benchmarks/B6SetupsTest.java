package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.layers.StochasticResidual;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * B6a's setups and B6's table, without timing: a setup the library refuses (B6a asked stochastic
 * depth for a rate of 1, refused since) would otherwise be found only by running the benchmark.
 */
class B6SetupsTest {

  /** Every setup applies to ResNetV1-20 and trains a step; stochastic depth wraps the 9 units. */
  @Test
  void everySkippedWorkSetupAppliesAndTrains() {
    Shape input = new Shape(2, 1, 28, 28);
    List<String> names = new ArrayList<>();
    for (B6SkippedWork.Setup setup : B6SkippedWork.setups()) {
      names.add(setup.name());
      try (Model model = Model.newInstance("b6a-smoke")) {
        model.setBlock(BenchSupport.resNet20(new Shape(1, 28, 28), 10).build());
        try (Trainer trainer = model.newTrainer(BenchSupport.sgdConfig())) {
          trainer.initialize(input);
          setup.change().accept(trainer);
          BenchSupport.trainStep(trainer, input, 10);
          long wrapped =
              blocks(model.getBlock()).stream()
                  .filter(StochasticResidual.class::isInstance)
                  .count();
          // ResNetV1-20: 3 stages of 3 residual units.
          assertEquals(setup.name().startsWith("stochastic_depth") ? 9 : 0, wrapped, setup.name());
        }
      }
    }
    assertEquals("plain", names.get(0));
    assertEquals(7, names.size(), names.toString());
  }

  /** The table says the batch size the runs trained with. */
  @Test
  void theTimeToAccuracyTableNamesTheBatchSize() {
    List<B6TimeToAccuracy.Variant> variants =
        List.of(
            B6TimeToAccuracy.Variant.baseline(),
            B6TimeToAccuracy.Variant.parse("recipe", B6TimeToAccuracy.DEFAULT_RECIPE));
    List<B6TimeToAccuracy.Run> runs = new ArrayList<>();
    for (int i = 0; i < variants.size(); i++) {
      B6TimeToAccuracy.Checkpoint end =
          new B6TimeToAccuracy.Checkpoint(4, 1.0, 2.0, 1.0, 0.5, 0.6, 0.1, 0.1, 1.0);
      runs.add(
          new B6TimeToAccuracy.Run(
              "synthetic", variants.get(i).name(), 1, i, List.of(end), List.of(), 0.0, "0"));
    }
    String table = B6TimeToAccuracy.table("synthetic", runs, variants, 1, 1, 1, 64, 32, 16);
    assertTrue(table.contains("momentum 0.9, batch 16, baseline 1 epochs"), table);
  }

  private static List<Block> blocks(Block root) {
    List<Block> all = new ArrayList<>();
    ArrayDeque<Block> todo = new ArrayDeque<>(List.of(root));
    while (!todo.isEmpty()) {
      Block b = todo.pop();
      all.add(b);
      for (Pair<String, Block> child : b.getChildren()) {
        todo.push(child.getValue());
      }
    }
    return all;
  }
}
