package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.util.Pair;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.core.testing.TrajectoryOracle.Delta;
import dev.surgery.core.testing.TrajectoryOracle.Optim;
import dev.surgery.core.testing.TrajectoryOracle.Settings;
import dev.surgery.core.testing.TrajectoryOracle.WarmupCosine;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

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

  private static final int BATCH = 8;
  private static final Shape INPUT = new Shape(BATCH, 3, 8, 8);

  record Ev(
      int step,
      String algorithm,
      Map<String, Object> values,
      int completed,
      int total,
      Delta expected) {}

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
    List<Executable> runs = new ArrayList<>();
    Settings adam = Settings.preset(Optim.ADAM);
    runs.add(
        () ->
            twoTrainers(
                "two-trainers-adam-sgd",
                600,
                adam,
                Settings.preset(Optim.SGD_MOMENTUM),
                events,
                280));
    // The second trainer resumed at step 100 (optBeginNumUpdate): the two positions differ by
    // 100 throughout, and each trainer's born parameters follow the schedule at its own.
    runs.add(
        () ->
            twoTrainers(
                "two-trainers-adam-adamw@100",
                601,
                adam,
                Settings.preset(Optim.ADAMW).resumedAt(100),
                events,
                280));
    assertAll(runs.stream());
  }

  private static void twoTrainers(
      String name, long seed, Settings adam, Settings sgd, List<Ev> events, int iterations)
      throws Exception {
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed((int) seed);
      SequentialBlock net = TrajectoryOracle.cnn();
      model.setBlock(net);
      List<NDList[]> batches = TrajectoryOracle.batches(data, seed, 7, BATCH, DataType.FLOAT32);
      try (Trainer a =
              model.newTrainer(
                  new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                      .optOptimizer(adam.build()));
          Trainer b =
              model.newTrainer(
                  new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                      .optOptimizer(sgd.build()))) {
        a.initialize(INPUT);
        b.initialize(INPUT);
        TrajectoryOracle oracle = new TrajectoryOracle(name, net, adam, sgd);
        List<Trainer> both = List.of(a, b);
        for (int it = 0; it < iterations; it++) {
          for (Ev ev : events) {
            if (ev.step() == it) {
              apply(name, ev, net, both, oracle);
            }
          }
          int which = it % 2;
          Trainer t = both.get(which);
          TrajectoryOracle.forwardBackward(t, batches.get(it % batches.size()));
          oracle.beforeStep(which);
          t.step();
          oracle.afterStep("iteration " + (it + 1) + " (trainer " + which + ")");
        }
        assertEquals(adam.begin() + iterations / 2, oracle.position(0), name);
        assertEquals(sgd.begin() + iterations / 2, oracle.position(1), name);
        System.out.println(oracle.summary());
      }
    }
  }

  private static void apply(
      String name, Ev ev, SequentialBlock net, List<Trainer> trainers, TrajectoryOracle oracle) {
    Delta expected = ev.expected();
    if (expected == null) {
      // layer_freezing: the first floor(fraction * (layers - 1)) layers (docs/algorithms.md)
      List<List<Parameter>> layers = AlgorithmsLongTrajectoryOracleTest.layers(net);
      int k = (int) Math.floor((double) ev.completed() / ev.total() * (layers.size() - 1));
      int count = 0;
      for (int i = 0; i < k; i++) {
        for (Parameter p : layers.get(i)) {
          count += p.requiresGradient() ? 1 : 0;
        }
      }
      expected = Delta.frozen(count);
    }
    SurgeryChanges changes =
        Algorithms.spec(ev.algorithm())
            .create(ev.values())
            .apply(new SurgeryContext(net, trainers, ev.completed(), ev.total()));
    String when = ev.algorithm() + " at " + ev.step();
    Delta delta = oracle.reconcile(when);
    System.out.println(name + " " + when + ": " + changes.countsByType() + " " + delta);
    assertEquals(expected, delta, name + " " + when + ": " + changes.countsByType());
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
    Settings sgd =
        new Settings(
            Optim.SGD_MOMENTUM,
            1e-3f,
            0.5f,
            0.8f,
            0.9f,
            0,
            new WarmupCosine(1e-2f, 20, 0.05f, 5e-3f, 300));
    List<Executable> runs = new ArrayList<>();
    for (long seed : new long[] {700, 701}) {
      runs.add(() -> half("float16-" + seed, seed, sgd, events, 220, false));
    }
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
    runs.add(() -> half("float16-block-702", 702, sgd, blockFirst, 160, false));
    // The float16 room has teeth: an oracle that drops the adopted parameters' momentum at the
    // squeeze-excite surgery is caught at the next step.
    runs.add(
        () -> {
          AssertionError e =
              assertThrows(
                  AssertionError.class, () -> half("float16-mutant", 700, sgd, events, 80, true));
          assertTrue(e.getMessage().contains("step 61 "), e.getMessage());
        });
    assertAll(runs.stream());
  }

  private static void half(
      String name, long seed, Settings s, List<Ev> events, int steps, boolean mutant)
      throws Exception {
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed((int) seed);
      model.setDataType(DataType.FLOAT16);
      SequentialBlock net = TrajectoryOracle.cnn();
      model.setBlock(net);
      List<NDList[]> batches = TrajectoryOracle.batches(data, seed, 6, BATCH, DataType.FLOAT16);
      try (Trainer t =
          model.newTrainer(
              new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(s.build()))) {
        t.initialize(INPUT);
        assertAllFloat16(net, name + " at the start");
        TrajectoryOracle oracle = new TrajectoryOracle(name, net, s);
        oracle.half = true;
        oracle.mutantResetSurvivors = mutant;
        for (int step = 0; step < steps; step++) {
          for (Ev ev : events) {
            if (ev.step() == step) {
              apply(name, ev, net, List.of(t), oracle);
              assertAllFloat16(net, name + " after " + ev.algorithm());
            }
          }
          TrajectoryOracle.forwardBackward(t, batches.get(step % batches.size()));
          oracle.beforeStep(0);
          t.step();
          oracle.afterStep("step " + (step + 1) + " ");
        }
        assertAllFloat16(net, name + " at the end");
        System.out.println(oracle.summary());
      }
    }
  }

  private static void assertAllFloat16(SequentialBlock net, String when) {
    for (Pair<String, Parameter> p : net.getParameters()) {
      assertEquals(
          DataType.FLOAT16, p.getValue().getArray().getDataType(), when + ": " + p.getKey());
    }
  }
}
