package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.ParameterStore;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.trainer.config.ConfigProblem;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.SurgeryConfigException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * An eighth algorithm added by the recipe ({@link ToyLeakyRelu}, one file and one registry line) is
 * configured from YAML through the same path as the built-in ones: typed values, defaults,
 * position-and-meaning errors, builder defaults, and {@code hyperparameters()} without code of its
 * own.
 */
class ToyAlgorithmRecipeTest {

  private static final String FILE = "toy.yaml";

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
  }

  private static Algorithm parseOne(String entry) {
    SurgeryConfig config =
        SurgeryConfig.parse("algorithms:\n  - name: t_leaky_relu\n    epoch: 0\n" + entry, FILE);
    return config.getAlgorithms().get(0).algorithm();
  }

  @Test
  void yamlValuesReachTheAlgorithmTypedAndChangeTheModel() {
    // 1 is a whole number in YAML: it still becomes the Double the declaration types
    Algorithm toy = parseOne("    alpha: 1\n    relu_name: ReLU\n");
    assertInstanceOf(ToyLeakyRelu.class, toy);
    Map<String, Object> expected = new LinkedHashMap<>();
    expected.put("alpha", 1.0);
    expected.put("relu_name", "ReLU");
    assertEquals(expected, toy.hyperparameters());

    Algorithm half = parseOne("    alpha: 0.5\n");
    assertEquals(0.5, half.hyperparameters().get("alpha"));
    SequentialBlock model = new SequentialBlock().add(Activation.reluBlock());
    try (NDManager manager = NDManager.newBaseManager()) {
      model.initialize(manager, DataType.FLOAT32, new Shape(1, 4));
      half.apply(SurgeryContext.of(model));
      assertEquals("LeakyReLU", ((LambdaBlock) model.getChildren().valueAt(0)).getName());
      float[] x = {-2f, -0.5f, 0f, 3f};
      float[] y =
          model
              .forward(
                  new ParameterStore(manager, false),
                  new NDList(manager.create(x, new Shape(1, 4))),
                  false)
              .singletonOrThrow()
              .toFloatArray();
      for (int i = 0; i < x.length; i++) {
        // oracle: the leaky ReLU formula with the configured slope
        assertEquals(x[i] > 0 ? x[i] : 0.5f * x[i], y[i], 1e-6f, "element " + i);
      }
    }
  }

  @Test
  void missingKeysTakeTheDeclaredDefaultsAsTheBuilderDoes() {
    Algorithm fromYaml = parseOne("");
    assertEquals(Map.of("alpha", 0.01, "relu_name", "ReLU"), fromYaml.hyperparameters());
    assertEquals(fromYaml.hyperparameters(), ToyLeakyRelu.builder().build().hyperparameters());
    assertEquals(
        Map.of("alpha", 0.25, "relu_name", "ReLU6"),
        ToyLeakyRelu.builder().optAlpha(0.25).optReluName("ReLU6").build().hyperparameters());
  }

  @Test
  void badValuesAreReportedAtTheirPositionWithTheirMeaning() {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () ->
                SurgeryConfig.parse(
                    "algorithms:\n  - name: t_leaky_relu\n    epoch: 0\n    alpha: 0\n", FILE));
    ConfigProblem p = e.getProblems().get(0);
    assertEquals(List.of(4, 12), List.of(p.line(), p.column()));
    assertTrue(p.message().contains("alpha must be in (0, 1], got 0.0"), p.message());
    assertTrue(p.message().contains("slope of the activation below zero"), p.message());

    IllegalArgumentException builder =
        assertThrows(
            IllegalArgumentException.class, () -> ToyLeakyRelu.builder().optReluName("GELU"));
    assertTrue(builder.getMessage().contains("relu_name must be one of [ReLU, ReLU6]"));
    assertTrue(builder.getMessage().contains("name of the activation lambdas to replace"));
  }
}
