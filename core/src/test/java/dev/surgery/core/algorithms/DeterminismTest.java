package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import ai.djl.ndarray.types.Shape;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every built-in algorithm, applied to a live ResNet-20 right after {@code Trainer.initialize} or
 * after the first epoch: two runs from the same seed are bit-identical on CPU (every batch's loss
 * and every final parameter value), and stay finite throughout (parameters, gradients, optimizer
 * state). A garbage collection runs between every forward and backward, so a backward that reads
 * memory nobody owns shows up here as a difference or a NaN.
 */
class DeterminismTest {

  private static final Shape SAMPLE = new Shape(1, 28, 28);
  private static final int EPOCHS = 2;

  /**
   * Hyperparameters that make each algorithm change ResNet-20 (1x28x28, 16 to 64 channels, batch
   * 8); the rest are the defaults.
   */
  static final Map<String, Map<String, Object>> SETTINGS =
      Map.of(
          BlurPool.NAME, Map.of(),
          SqueezeExcite.NAME, Map.of("min_channels", 16, "latent_channels", 0.25),
          GhostBatchNorm.NAME, Map.of("ghost_batch_size", 4),
          Factorize.NAME, Map.of("min_channels", 32, "latent_channels", 0.25),
          StochasticDepth.NAME, Map.of(),
          LayerFreezing.NAME, Map.of("freeze_start", 0.0),
          WeightStandardization.NAME, Map.of());

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  @Test
  void coversEveryBuiltinAlgorithm() {
    assertEquals(LiveTraining.builtinNames(), SETTINGS.keySet());
  }

  static Stream<Arguments> cases() {
    List<Arguments> cases = new ArrayList<>();
    for (String name : LiveTraining.builtinNames()) {
      cases.add(Arguments.of(name, 0));
      cases.add(Arguments.of(name, 1));
    }
    return cases.stream();
  }

  @ParameterizedTest(name = "{0} after epoch {1}")
  @MethodSource("cases")
  void sameSeedGivesTheSameRun(String name, int applyAfterEpoch) throws Exception {
    Algorithm algorithm = Algorithms.spec(name).create(SETTINGS.get(name));
    SeededTraining.Result first =
        SeededTraining.run(TinyModels::resNet20, SAMPLE, algorithm, applyAfterEpoch, EPOCHS, 11);
    SeededTraining.Result second =
        SeededTraining.run(TinyModels::resNet20, SAMPLE, algorithm, applyAfterEpoch, EPOCHS, 11);
    // Layer freezing freezes nothing at the very start (no training has elapsed yet).
    if (!(LayerFreezing.NAME.equals(name) && applyAfterEpoch == 0)) {
      assertFalse(first.report().isEmpty(), name + " changed nothing: " + first.report());
    }
    assertEquals(
        EPOCHS * SeededTraining.SAMPLES / SeededTraining.BATCH, first.losses.size(), "batches");
    assertEquals(first.losses, second.losses, "loss of every batch");
    assertEquals(first.parameters.keySet(), second.parameters.keySet());
    for (Map.Entry<String, float[]> e : first.parameters.entrySet()) {
      assertArrayEquals(e.getValue(), second.parameters.get(e.getKey()), e.getKey());
    }
  }
}
