package dev.surgery.core.algorithms;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Every algorithm that replaces blocks says so at WARN when it changed nothing (as Composer's
 * {@code NoEffectWarning}), not only BlurPool, and returns the warning with its changes: an entry
 * with no effect is never silent. slf4j-simple writes to {@code System.err} in these tests.
 */
class NoEffectWarningTest {

  @Test
  void everyReplacingAlgorithmWarnsWhenItChangesNothing() {
    List<Algorithm> algorithms =
        List.of(
            BlurPool.builder().build(),
            SqueezeExcite.builder().build(),
            GhostBatchNorm.builder().build(),
            WeightStandardization.builder().build(),
            Factorize.builder().build(),
            StochasticDepth.builder().build());
    PrintStream original = System.err;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    try (NDManager manager = NDManager.newBaseManager()) {
      // A small MLP: no convolution, batch norm or residual unit, and layers below 512 features.
      SequentialBlock mlp =
          new SequentialBlock()
              .add(Linear.builder().setUnits(8).build())
              .add(Activation.reluBlock())
              .add(Linear.builder().setUnits(2).build());
      mlp.initialize(manager, DataType.FLOAT32, new Shape(4, 6));
      String before = mlp.toString();
      System.setErr(new PrintStream(captured, true, UTF_8));
      for (Algorithm a : algorithms) {
        SurgeryChanges changes = a.apply(SurgeryContext.of(mlp));
        assertTrue(changes.isEmpty(), a.name());
        // Returned with the changes too, so that a listener lists it among its warnings.
        // Stochastic depth says why: its one setting names a kind of block the model lacks.
        String why =
            a instanceof StochasticDepth
                ? "; the model has no ResNetV1Unit (DJL ResNetV1's residual unit: a ParallelBlock"
                    + " joining a convolution branch with an identity or a 1 x 1 convolution +"
                    + " BatchNorm shortcut), the only block stochastic depth wraps"
                : "";
        assertEquals(
            List.of(
                "Applying "
                    + a.name()
                    + " did not change any layers: "
                    + a.hyperparameters()
                    + why),
            changes.warnings());
      }
      assertEquals(before, mlp.toString());
    } finally {
      System.setErr(original);
    }
    String log = captured.toString(UTF_8);
    for (Algorithm a : algorithms) {
      assertEquals(
          1,
          log.lines()
              .filter(l -> l.contains("WARN") && l.contains("Applying " + a.name() + " did not"))
              .count(),
          a.name() + " in:\n" + log);
    }
  }

  /** The reason is given only where it is true: a ResNet whose units are all excluded has units. */
  @Test
  void stochasticDepthNamesNoMissingUnitWhereTheModelHasUnits() {
    try (NDManager manager = NDManager.newBaseManager()) {
      ai.djl.nn.Block resNet = dev.surgery.core.testing.TinyModels.resNet20();
      resNet.initialize(manager, DataType.FLOAT32, new Shape(2, 1, 28, 28));
      Algorithm excludingEveryUnit =
          StochasticDepth.builder()
              .build()
              .withTargets(dev.surgery.core.Targets.of(List.of(), List.of("type:ParallelBlock")));
      SurgeryChanges changes = excludingEveryUnit.apply(SurgeryContext.of(resNet));
      assertTrue(changes.isEmpty());
      assertEquals(
          List.of(
              "Applying stochastic_depth did not change any layers: "
                  + excludingEveryUnit.hyperparameters()),
          changes.warnings());
    }
  }
}
