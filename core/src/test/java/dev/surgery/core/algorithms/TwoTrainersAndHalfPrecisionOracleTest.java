package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.DataType;
import dev.surgery.core.algorithms.OracleRun.Ev;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.core.testing.TrajectoryOracle.Delta;
import dev.surgery.core.testing.TrajectoryOracle.Optim;
import dev.surgery.core.testing.TrajectoryOracle.Settings;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Two things the core API promises beyond one float32 trainer, over long runs against the
 * plain-Java oracle {@link TrajectoryOracle}:
 *
 * <ul>
 *   <li>One model trained by two {@code Trainer}s (the user guide: pass every trainer, {@code
 *       List.of(trainerA, trainerB)}; each keeps its parameter store and optimizer state): they
 *       step in turn, one under Adam and one under SGD with momentum, each with its own schedule,
 *       and the built-in algorithms are applied with both in the context. Each trainer's optimizer
 *       must carry its own state for adopted parameters and start born ones fresh at its own
 *       position.
 *   <li>A float16 model (reliability.md, "Surgery keeps a float16 model float16 and trains it
 *       exactly", under SGD and SGD with momentum: DJL's Adam is NaN in float16 without surgery),
 *       every algorithm applied live, each step checked within float16 resolution (see {@link
 *       TrajectoryOracle#half}) and every parameter kept float16.
 * </ul>
 */
class TwoTrainersAndHalfPrecisionOracleTest {

  /**
   * Trainer 0 (Adam) steps on even iterations, trainer 1 (SGD with momentum; in a second run AdamW
   * resumed at step 100) on odd ones, 280 iterations; surgery with both trainers at iterations 31
   * (squeeze-excite, 10 gate weights born in both optimizers), 60 (blurpool), 91 (factorize of unit
   * 2's gated convolutions: 4 leave, 6 born), 120 (layer_freezing 2/4 of 26 layers: 12 layers, 19
   * parameters), 151 (ghost batch norm), 180 (factorize of unit 1's two and the strided
   * convolution, all frozen, in their gates: 6 leave, 9 born frozen), 211 (weight standardization),
   * 240 (layer_freezing 3/4, as many parameters as the docs' rule counts).
   */
  @Test
  void oneModelTrainedByTwoTrainersInTurnWithSurgeryPassingBoth() {
    List<Ev> events =
        List.of(
            new Ev(
                31,
                SqueezeExcite.NAME,
                Map.of("min_channels", 8, "latent_channels", 2),
                0,
                4,
                Delta.bornRemoved(10, 0)),
            new Ev(60, BlurPool.NAME, Map.of("min_channels", 8), 1, 4, Delta.NONE),
            new Ev(
                91,
                Factorize.NAME,
                Map.of("min_channels", 16, "latent_channels", 0.25),
                1,
                4,
                Delta.bornRemoved(6, 4)),
            new Ev(120, LayerFreezing.NAME, Map.of("freeze_start", 0.0), 2, 4, Delta.frozen(19)),
            new Ev(151, GhostBatchNorm.NAME, Map.of("ghost_batch_size", 4), 2, 4, Delta.NONE),
            new Ev(
                180,
                Factorize.NAME,
                Map.of("min_channels", 8, "latent_channels", 0.25),
                2,
                4,
                new Delta(0, 9, 0, 6, 0, 0)),
            new Ev(211, WeightStandardization.NAME, Map.of(), 3, 4, Delta.NONE),
            new Ev(240, LayerFreezing.NAME, Map.of("freeze_start", 0.0), 3, 4, null));
    Settings adam = Settings.preset(Optim.ADAM);
    assertAll(
        () ->
            new OracleRun("two-trainers-adam-sgd", 600, adam, Settings.preset(Optim.SGD_MOMENTUM))
                .batches(7)
                .train(280, events),
        // The second trainer resumed at step 100 (optBeginNumUpdate): the two positions differ by
        // 100 throughout, and each trainer's born parameters follow the schedule at its own.
        () ->
            new OracleRun(
                    "two-trainers-adam-adamw@100",
                    601,
                    adam,
                    Settings.preset(Optim.ADAMW).resumedAt(100))
                .batches(7)
                .train(280, events));
  }

  /**
   * A float16 model under SGD with momentum (weight decay, rescale, clip, warm-up + cosine), every
   * algorithm applied live over 220 steps; after each, every parameter must still be float16.
   */
  @Test
  void aFloat16ModelThroughEveryAlgorithmStaysOnTheOracleAtFloat16Resolution() {
    List<Ev> events =
        List.of(
            new Ev(20, GhostBatchNorm.NAME, Map.of("ghost_batch_size", 4), 0, 4, Delta.NONE),
            new Ev(40, BlurPool.NAME, Map.of("min_channels", 8), 0, 4, Delta.NONE),
            new Ev(
                60,
                SqueezeExcite.NAME,
                Map.of("min_channels", 16, "latent_channels", 4),
                1,
                4,
                Delta.bornRemoved(4, 0)),
            new Ev(
                80,
                Factorize.NAME,
                Map.of("min_channels", 8, "latent_channels", 0.25),
                1,
                4,
                Delta.bornRemoved(15, 10)),
            new Ev(100, WeightStandardization.NAME, Map.of(), 1, 4, Delta.NONE),
            new Ev(
                120,
                StochasticDepth.NAME,
                Map.of("drop_rate", 0.3, "stochastic_method", "sample"),
                2,
                4,
                Delta.NONE),
            new Ev(150, LayerFreezing.NAME, Map.of("freeze_start", 0.0), 2, 4, null));
    Settings sgd = Settings.float16();
    // Stochastic depth in block mode first (a dropped branch gets no gradient at all), then
    // parameters born inside the branches.
    List<Ev> blockFirst =
        List.of(
            new Ev(
                20,
                StochasticDepth.NAME,
                Map.of("drop_rate", 0.5, "drop_distribution", "uniform"),
                0,
                4,
                Delta.NONE),
            new Ev(
                40,
                SqueezeExcite.NAME,
                Map.of("min_channels", 8, "latent_channels", 2),
                0,
                4,
                Delta.bornRemoved(10, 0)),
            new Ev(
                90,
                Factorize.NAME,
                Map.of("min_channels", 16, "latent_channels", 0.25),
                1,
                4,
                Delta.bornRemoved(6, 4)));
    assertAll(
        () -> half("float16-700", 700, sgd).train(220, events),
        () -> half("float16-701", 701, sgd).train(220, events),
        () -> half("float16-block-702", 702, sgd).train(160, blockFirst),
        // The float16 room has teeth: an oracle that drops the adopted parameters' momentum at the
        // squeeze-excite surgery is caught at the next step.
        () -> {
          OracleRun mutant =
              half("float16-mutant", 700, sgd).with(o -> o.mutantResetSurvivors = true);
          AssertionError e = assertThrows(AssertionError.class, () -> mutant.train(80, events));
          assertTrue(e.getMessage().contains("step 61 "), e.getMessage());
        });
  }

  /**
   * A float16 run: every parameter must be float16 at the start, after each event and at the end.
   */
  private static OracleRun half(String name, long seed, Settings s) {
    return new OracleRun(name, seed, s).of(DataType.FLOAT16);
  }
}
