package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyModels;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Weight standardization, ghost batch norm and stochastic depth keep the checkpoint layout: a plain
 * checkpoint loads into the operated model. A model saved after ghost batch norm and stochastic
 * depth, which evaluate as the plain layers do, loads into the plain architecture too; one saved
 * after weight standardization, which computes with other weights, is refused by it.
 */
class CheckpointCompatibilityTest {

  @TempDir Path dir;

  private static void initialize(Model model, Shape input) {
    try (Trainer trainer = model.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()))) {
      trainer.initialize(input);
    }
  }

  private void roundTrip(Supplier<Block> architecture, Shape input, List<Algorithm> algorithms)
      throws Exception {
    Block operatedNet = architecture.get();
    for (Algorithm a : algorithms) {
      a.apply(SurgeryContext.of(operatedNet)); // before initialization: structural
    }
    try (Model operated = Model.newInstance("operated");
        Model plain = Model.newInstance("operated")) {
      operated.setBlock(operatedNet);
      initialize(operated, input);
      operated.save(dir.resolve("a"), "operated");
      plain.setBlock(architecture.get());
      plain.load(dir.resolve("a"), "operated");
      assertSameValues(operatedNet, plain.getBlock());
      assertPlainCheckpointLoadsIntoTheOperatedModel(plain, architecture, input, algorithms);
    }
  }

  /** A plain checkpoint (pretrained weights) into a freshly operated model. */
  private void assertPlainCheckpointLoadsIntoTheOperatedModel(
      Model plain, Supplier<Block> architecture, Shape input, List<Algorithm> algorithms)
      throws Exception {
    // (DJL cannot save a loaded model before a trainer initialized it: it lacks input names.)
    initialize(plain, input);
    plain.save(dir.resolve("b"), plain.getName());
    Block again = architecture.get();
    for (Algorithm a : algorithms) {
      a.apply(SurgeryContext.of(again));
    }
    try (Model reloaded = Model.newInstance(plain.getName())) {
      reloaded.setBlock(again);
      reloaded.load(dir.resolve("b"), plain.getName());
      assertSameValues(plain.getBlock(), again);
    }
  }

  private static void assertSameValues(Block expected, Block actual) {
    List<Parameter> e = WeightStandardizationTest.parameters(expected);
    List<Parameter> a = WeightStandardizationTest.parameters(actual);
    assertEquals(e.size(), a.size());
    for (int i = 0; i < e.size(); i++) {
      assertEquals(e.get(i).getName(), a.get(i).getName());
      assertArrayEquals(
          e.get(i).getArray().toFloatArray(), a.get(i).getArray().toFloatArray(), 0f, "param " + i);
    }
  }

  @Test
  void smallCnnWithGhostBatchNorm() throws Exception {
    roundTrip(
        LiveTraining::smallCnn,
        new Shape(2, 3, 8, 8),
        List.of(GhostBatchNorm.builder().optGhostBatchSize(2).build()));
  }

  @Test
  void standardizedConvsAreRefusedByThePlainArchitectureAndReadIt() throws Exception {
    Shape input = new Shape(2, 3, 8, 8);
    List<Algorithm> algorithms =
        List.of(
            WeightStandardization.builder().build(),
            GhostBatchNorm.builder().optGhostBatchSize(2).build());
    Block operatedNet = LiveTraining.smallCnn();
    for (Algorithm a : algorithms) {
      a.apply(SurgeryContext.of(operatedNet));
    }
    try (Model operated = Model.newInstance("operated");
        Model plain = Model.newInstance("operated")) {
      operated.setBlock(operatedNet);
      initialize(operated, input);
      operated.save(dir.resolve("a"), "operated");
      plain.setBlock(LiveTraining.smallCnn());
      MalformedModelException refused =
          assertThrows(
              MalformedModelException.class, () -> plain.load(dir.resolve("a"), "operated"));
      assertEquals("Unsupported encoding version: 85", refused.getMessage());
      plain.setBlock(LiveTraining.smallCnn());
      assertPlainCheckpointLoadsIntoTheOperatedModel(
          plain, LiveTraining::smallCnn, input, algorithms);
    }
  }

  @Test
  void resNetWithStochasticDepth() throws Exception {
    roundTrip(
        TinyModels::resNet20,
        new Shape(2, 1, 28, 28),
        List.of(
            StochasticDepth.builder().optStochasticMethod("sample").build(),
            GhostBatchNorm.builder().build()));
  }
}
