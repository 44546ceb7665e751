package dev.surgery.core.algorithms;

import static dev.surgery.core.algorithms.OracleRun.freeze;
import static dev.surgery.core.testing.TrajectoryOracle.forEachOptim;
import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.OracleRun.Ev;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.core.testing.TrajectoryOracle.Delta;
import dev.surgery.core.testing.TrajectoryOracle.Optim;
import dev.surgery.core.testing.TrajectoryOracle.Settings;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The seven built-in algorithms applied live, through the core API ({@code Algorithms.spec(name)
 * .create(values).apply(context)} with the live trainer), to a small CNN with residual units, batch
 * norms, a strided convolution and a max pool, over 160-280 steps, against the plain-Java oracle
 * {@link TrajectoryOracle} after every step, under Adam, AdamW and SGD with momentum (each with
 * weight decay, a one-sided clip, a gradient rescale and a warm-up + cosine schedule).
 *
 * <p>For each application the test states, from docs/algorithms.md and the README, which parameters
 * it adopts (same Parameter objects: optimizer state and count carry on), which are born (fresh
 * state, own count, the schedule at the model's position), which leave, and which are frozen or
 * born frozen; the oracle learns the same from the model and the {@link Delta} must match. Then
 * every parameter's every update is checked.
 */
class AlgorithmsLongTrajectoryOracleTest {

  static final Map<String, Object> SE16 = Map.of("min_channels", 16, "latent_channels", 4);
  static final Map<String, Object> FACTORIZE8 =
      Map.of("min_channels", 8, "latent_channels", 0.25, "min_features", 16);

  // --------------------------------------------------------------------------- the scenarios

  /**
   * Trains {@code steps} steps with {@code events} under each optimizer's preset, each run named
   * {@code what-OPTIM} and seeded {@code seedBase} plus the optimizer's ordinal.
   */
  private static void trainUnderEachOptim(String what, int seedBase, int steps, List<Ev> events) {
    forEachOptim(
        o ->
            new OracleRun(what + "-" + o, seedBase + o.ordinal(), Settings.preset(o))
                .train(steps, events));
  }

  /** Each algorithm alone, at step 45 of 160, under the three optimizers. */
  private static void alone(String what, Ev ev) {
    trainUnderEachOptim(what, 100, 160, List.of(ev));
  }

  @Test
  void blurPoolAloneAdoptsEveryParameter() {
    // The strided conv (8 inputs) and the max pool; BlurConv2d adopts the conv's parameters.
    alone("blurpool", new Ev(45, BlurPool.NAME, Map.of("min_channels", 8), 0, 0, 2, Delta.NONE));
  }

  @Test
  void weightStandardizationAloneAdoptsEveryParameter() {
    // All six convolutions (n_last_layers_ignore 0), parameters adopted.
    alone("ws", new Ev(45, WeightStandardization.NAME, Map.of(), 0, 0, 6, Delta.NONE));
  }

  @Test
  void ghostBatchNormAloneAdoptsEveryParameter() {
    // All six batch norms, chunks of 4 of the batch of 8; gamma and beta adopted.
    alone(
        "ghost",
        new Ev(45, GhostBatchNorm.NAME, Map.of("ghost_batch_size", 4), 0, 0, 6, Delta.NONE));
  }

  @Test
  void squeezeExciteAloneBornsOnlyTheGates() {
    // The two 16 -> 16 convolutions of unit 2 are gated; each gate has two weights (no biases).
    alone("se", new Ev(45, SqueezeExcite.NAME, SE16, 0, 0, 2, Delta.bornRemoved(4, 0)));
  }

  @Test
  void factorizeAloneRemovesTheLayersAndBornsTheirFactors() {
    // Five convolutions with min(in, out) >= 8 (unit 1's two, the strided one, unit 2's two) and
    // the 16 -> 16 linear: 12 parameters leave; each becomes a k x k layer without bias and a
    // 1 x 1 layer (or second linear) with the original's bias: 18 born.
    alone("factorize", new Ev(45, Factorize.NAME, FACTORIZE8, 0, 0, 6, Delta.bornRemoved(18, 12)));
  }

  @Test
  void stochasticDepthAloneChangesNoParameter() {
    assertAll(
        List.of("block", "sample").stream()
            .map(
                method ->
                    () ->
                        alone(
                            "sd-" + method,
                            new Ev(
                                45,
                                StochasticDepth.NAME,
                                Map.of("drop_rate", 0.5, "stochastic_method", method),
                                0,
                                0,
                                2,
                                Delta.NONE))));
  }

  @Test
  void layerFreezingAloneFreezesTheFirstLayers() {
    // 1 of 4 epochs, freeze_start 0: floor(0.25 * 13) = 3 layers (conv, BN, unit 1's first conv).
    alone(
        "freeze",
        new Ev(
            45,
            LayerFreezing.NAME,
            Map.of("freeze_start", 0.0, "freeze_level", 1.0),
            1,
            4,
            3,
            Delta.frozen(6)));
  }

  /**
   * Seven algorithms composed at different steps, five of them applied twice (squeeze-excite and
   * factorize again with lower thresholds, layer_freezing at a later epoch, blurpool again, which
   * changes nothing, weight standardization again after factorize, which standardizes the 1 x 1
   * layers), the last factorize replacing frozen layers.
   */
  @Test
  void sevenAlgorithmsComposedAtDifferentStepsWithRepeats() {
    List<Ev> events =
        List.of(
            new Ev(0, WeightStandardization.NAME, Map.of(), 0, 4, 6, Delta.NONE),
            new Ev(30, GhostBatchNorm.NAME, Map.of("ghost_batch_size", 4), 0, 4, 6, Delta.NONE),
            new Ev(60, BlurPool.NAME, Map.of("min_channels", 8), 1, 4, 2, Delta.NONE),
            new Ev(75, BlurPool.NAME, Map.of("min_channels", 8), 1, 4, 0, Delta.NONE),
            new Ev(90, SqueezeExcite.NAME, SE16, 1, 4, 2, Delta.bornRemoved(4, 0)),
            new Ev(
                120,
                Factorize.NAME,
                Map.of("min_channels", 16, "latent_channels", 0.25),
                1,
                4,
                2,
                Delta.bornRemoved(6, 4)),
            // Again after factorize: the plain 1 x 1 layers of the two factorized convolutions are
            // standardized now ("after Factorize it standardizes both layers"); adopted.
            new Ev(135, WeightStandardization.NAME, Map.of(), 1, 4, 2, Delta.NONE),
            new Ev(
                150,
                SqueezeExcite.NAME,
                Map.of("min_channels", 8, "latent_channels", 4),
                2,
                4,
                3,
                Delta.bornRemoved(6, 0)),
            new Ev(
                175,
                StochasticDepth.NAME,
                Map.of("drop_rate", 0.3, "stochastic_method", "block"),
                2,
                4,
                2,
                Delta.NONE),
            freeze(200, 2, 4),
            freeze(230, 3, 4),
            // unit 1's two convolutions and the strided one, all frozen now: their factors are
            // born frozen (registered, never updated).
            new Ev(
                250,
                Factorize.NAME,
                Map.of("min_channels", 8, "latent_channels", 0.25),
                3,
                4,
                3,
                new Delta(0, 9, 0, 6, 0, 0)));
    // Plain SGD (momentum 0): born parameters read the rate at the model's position.
    Settings plain =
        new Settings(
            Optim.SGD_MOMENTUM,
            1e-3f,
            0.5f,
            0.8f,
            0f,
            0,
            new TrajectoryOracle.WarmupCosine(1e-3f, 25, 0.05f, 1e-3f, 400));
    assertAll(
        () -> trainUnderEachOptim("composed", 200, 280, events),
        () -> new OracleRun("composed-SGD", 210, plain).train(280, events));
  }

  /**
   * layer_freezing first, then replacing algorithms: the replacement of a frozen layer is frozen,
   * its new parameters included (docs/algorithms.md, "Combining algorithms").
   */
  @Test
  void freezingFirstThenReplacingAlgorithmsKeepTheirNewParametersOfFrozenLayersFrozen() {
    List<Ev> events =
        List.of(
            // 2 of 4: floor(0.5 * 13) = 6 layers: conv, BN, unit 1's four layers -> 12 params.
            new Ev(
                40,
                LayerFreezing.NAME,
                Map.of("freeze_start", 0.0, "freeze_level", 1.0),
                2,
                4,
                6,
                Delta.frozen(12)),
            // gates on unit 1's frozen convs (born frozen, 2 x 2), on the strided conv and unit
            // 2's convs (born, 3 x 2)
            new Ev(
                80,
                SqueezeExcite.NAME,
                Map.of("min_channels", 8, "latent_channels", 2),
                2,
                4,
                5,
                new Delta(6, 4, 0, 0, 0, 0)),
            // unit 1's frozen convs: 4 removed, 6 born frozen; the strided conv, unit 2's convs
            // and the linear: 8 removed, 12 born
            new Ev(120, Factorize.NAME, FACTORIZE8, 2, 4, 6, new Delta(12, 6, 0, 12, 0, 0)),
            new Ev(150, BlurPool.NAME, Map.of("min_channels", 8), 2, 4, -1, Delta.NONE),
            new Ev(170, WeightStandardization.NAME, Map.of(), 2, 4, -1, Delta.NONE),
            new Ev(200, GhostBatchNorm.NAME, Map.of("ghost_batch_size", 4), 2, 4, 6, Delta.NONE));
    trainUnderEachOptim("freeze-first", 300, 240, events);
  }

  /**
   * Stochastic depth in block mode at a high rate, 0.75 (a dropped branch is skipped: its
   * parameters get no gradient that step, DJL reads zeros and still updates them; at 0.9 the kept
   * branches, scaled by 10, made SGD diverge to NaN after 190 steps, with the oracle on DJL's
   * trajectory until the gradients were NaN), then parameters born inside the branches:
   * squeeze-excite gates (min_channels 8: 10 born) and factorized layers (unit 1's and 2's
   * convolutions inside their gates and the strided one: 10 leave, 15 born), whose own counts must
   * advance at every step, dropped or not.
   */
  @Test
  void parametersBornInsideBranchesThatStochasticDepthDrops() {
    List<Ev> events =
        List.of(
            new Ev(
                20,
                StochasticDepth.NAME,
                Map.of("drop_rate", 0.75, "drop_distribution", "uniform"),
                0,
                4,
                2,
                Delta.NONE),
            new Ev(
                40,
                SqueezeExcite.NAME,
                Map.of("min_channels", 8, "latent_channels", 2),
                0,
                4,
                5,
                Delta.bornRemoved(10, 0)),
            new Ev(
                80,
                Factorize.NAME,
                Map.of("min_channels", 8, "latent_channels", 0.25),
                1,
                4,
                5,
                Delta.bornRemoved(15, 10)));
    trainUnderEachOptim("dropped", 350, 200, events);
  }

  /**
   * A backbone frozen whole by layer_freezing at the end of its plan (4/4: all 14 layers but the
   * last, 26 parameters), then the linears factorized (factorize_convs false, min_features 4: the
   * frozen 16 -> 16 one, 2 leave, 3 born frozen; the head, rank 1, 2 leave, 3 born): from there
   * only born parameters train, so DJL's own global count stands still while the model's position
   * advances; then squeeze-excite on the frozen convolutions (every gate born frozen).
   */
  @Test
  void aBackboneFrozenByLayerFreezingWhoseHeadIsFactorized() {
    List<Ev> events =
        List.of(
            new Ev(
                30,
                LayerFreezing.NAME,
                Map.of("freeze_start", 0.0, "freeze_level", 1.0),
                4,
                4,
                13,
                Delta.frozen(26)),
            new Ev(
                60,
                Factorize.NAME,
                Map.of("factorize_convs", false, "min_features", 4, "latent_features", 0.25),
                4,
                4,
                2,
                new Delta(3, 3, 0, 4, 0, 0)),
            new Ev(
                100,
                SqueezeExcite.NAME,
                Map.of("min_channels", 8, "latent_channels", 2),
                4,
                4,
                5,
                new Delta(0, 10, 0, 0, 0, 0)));
    trainUnderEachOptim("frozen-backbone", 380, 170, events);
  }

  /**
   * The checks have teeth here too: an oracle that puts squeeze-excite's born gates on Adam's
   * global count, that resets the state of the parameters the surgery adopts, or (under SGD with
   * momentum) that restarts the born gates' schedule at their birth, is caught at the first step
   * after the surgery.
   */
  @Test
  void wrongReadingsOfThePromiseAreCaught() {
    List<Ev> se = List.of(new Ev(45, SqueezeExcite.NAME, SE16, 0, 0, 2, Delta.bornRemoved(4, 0)));
    OracleRun born =
        new OracleRun("mutant-born", 100, Settings.preset(Optim.ADAM))
            .with(o -> o.mutantBornOnGlobalCount = true);
    OracleRun reset =
        new OracleRun("mutant-reset", 100, Settings.preset(Optim.ADAM))
            .with(o -> o.mutantResetSurvivors = true);
    OracleRun restart =
        new OracleRun("mutant-restart", 102, Settings.preset(Optim.SGD_MOMENTUM))
            .with(o -> o.mutantScheduleRestartsAtBirth = true);
    for (OracleRun mutant : List.of(born, reset, restart)) {
      AssertionError e = assertThrows(AssertionError.class, () -> mutant.train(80, se));
      assertTrue(e.getMessage().contains("step 46 "), e.getMessage());
    }
  }
}
