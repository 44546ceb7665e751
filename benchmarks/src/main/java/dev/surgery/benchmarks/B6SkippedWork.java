package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.core.algorithms.SurgeryContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * B6a: is the work a recipe claims to save really skipped? On ResNetV1-20 (1 x 28 x 28, batch 64,
 * SGD with momentum, one PyTorch thread) it measures the training thread's CPU time of the forward
 * pass, the backward pass and the optimizer step, mean over steps (the mean, as stochastic depth's
 * saving is an expectation over its draws), for the plain network, for stochastic depth (block
 * mode) dropping nine in ten of the residual branches (uniform 0.9: the library refuses a rate of
 * 1, as a branch never kept never trains), half of them, or its default linear schedule (rate 0.2),
 * and for layer freezing with the first third, two thirds, or all but the last of the layers
 * frozen. A dropped branch that was still computed, or a frozen layer whose gradients were still
 * computed, would leave the times where the plain network's are.
 *
 * <p>It also counts, after the measured steps, the frozen parameters whose arrays still ask the
 * engine for a gradient ({@code NDArray.hasGradient}): PyTorch computes no gradient for an array
 * that does not require one, and builds no backward graph for operations none of whose inputs do.
 *
 * <p>Run: {@code mvn -B -q -pl benchmarks exec:exec
 * -Dbench.main=dev.surgery.benchmarks.B6SkippedWork -Dbench.args="--steps 20 --rounds 3"}.
 */
public final class B6SkippedWork {

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of(
              "B6SkippedWork",
              "B6a: is the work stochastic depth and layer freezing save really skipped?")
          .count("steps", 20, 1, "measured steps per round")
          .count("rounds", 3, 1, "rounds (the setups take turns within a round)")
          .count("batch", 64, 1, "batch size");

  private B6SkippedWork() {}

  /** One way of training to measure: its name in the table, and what it does to the model. */
  record Setup(String name, Consumer<Trainer> change) {}

  private record Times(List<Double> forward, List<Double> backward, List<Double> step) {}

  /**
   * Runs the check.
   *
   * @param args {@code --steps N} measured steps per round (default 20), {@code --rounds N}
   *     (default 3; the setups take turns within a round), {@code --batch N} (default 64)
   * @throws Exception if DJL fails
   */
  public static void main(String[] args) throws Exception {
    BenchFlags.Values flags = FLAGS.orExit(args, v -> v);
    int steps = flags.count("steps");
    int rounds = flags.count("rounds");
    int batch = flags.count("batch");
    System.out.println(
        "B6a "
            + java.time.Instant.now()
            + ", "
            + BenchSupport.machine()
            + ", PyTorch threads "
            + System.getProperty("ai.djl.pytorch.num_threads", "default")
            + ", load average at start "
            + B5AlgorithmAccuracy.loadAverage());
    List<Setup> setups = setups();
    List<Times> times = new ArrayList<>();
    List<String> gradientChecks = new ArrayList<>();
    for (int i = 0; i < setups.size(); i++) {
      times.add(new Times(new ArrayList<>(), new ArrayList<>(), new ArrayList<>()));
      gradientChecks.add("");
    }
    for (int round = 0; round < rounds; round++) {
      for (int i = 0; i < setups.size(); i++) {
        // Every round starts each setup from the same weights; the setups take turns.
        gradientChecks.set(i, measure(setups.get(i), batch, steps, times.get(i)));
      }
    }
    double base = total(times.get(0));
    List<List<String>> rows = new ArrayList<>();
    for (int i = 0; i < setups.size(); i++) {
      Times t = times.get(i);
      rows.add(
          List.of(
              setups.get(i).name(),
              BenchSupport.f("%.1f", mean(t.forward())),
              BenchSupport.f("%.1f", mean(t.backward())),
              BenchSupport.f("%.1f", mean(t.step())),
              BenchSupport.f("%.1f", total(t)),
              BenchSupport.f("%.2f", total(t) / base),
              gradientChecks.get(i)));
    }
    BenchSupport.printTable(
        "B6a skipped work: ResNetV1-20, 1 x 28 x 28, batch "
            + batch
            + ", SGD momentum 0.9; training thread CPU ms per step, mean of "
            + rounds * steps
            + " steps ("
            + rounds
            + " rounds of "
            + steps
            + ", setups in turn)",
        List.of(
            "setup",
            "forward ms",
            "backward ms",
            "step ms",
            "total ms",
            "vs plain",
            "frozen parameters still requiring a gradient"),
        rows);
    System.out.println(
        "ended " + java.time.Instant.now() + ", load " + B5AlgorithmAccuracy.loadAverage());
  }

  /** The setups in the order of the table; the plain network first, the others against it. */
  static List<Setup> setups() {
    List<Setup> setups = new ArrayList<>();
    setups.add(new Setup("plain", t -> {}));
    // Nearly every branch dropped, at a rate the library takes: [0, 1), as at 1 a branch never
    // trains.
    setups.add(
        new Setup(
            "stochastic_depth block, nine in ten branches dropped (uniform 0.9)",
            t -> depth(t, "uniform", 0.9)));
    setups.add(new Setup("stochastic_depth block, uniform 0.5", t -> depth(t, "uniform", 0.5)));
    setups.add(
        new Setup("stochastic_depth block, linear 0.2 (default)", t -> depth(t, "linear", 0.2)));
    setups.add(new Setup("first 1/3 of layers frozen", t -> freeze(t, 1, 3)));
    setups.add(new Setup("first 2/3 of layers frozen", t -> freeze(t, 2, 3)));
    setups.add(new Setup("all layers but the last frozen", t -> freeze(t, 1, 1)));
    return setups;
  }

  private static double mean(List<Double> values) {
    return values.stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
  }

  private static double total(Times t) {
    return mean(t.forward()) + mean(t.backward()) + mean(t.step());
  }

  private static void depth(Trainer trainer, String distribution, double rate) {
    StochasticDepth.builder()
        .optDropRate(rate)
        .optDropDistribution(distribution)
        .build()
        .apply(SurgeryContext.live(trainer.getModel().getBlock(), trainer, 0, 0));
  }

  /** Freezes the first {@code num / den} of the layers (all but the last when num == den). */
  private static void freeze(Trainer trainer, int num, int den) {
    Map<Block, String> layers = LayerFreezing.layers(trainer.getModel().getBlock());
    int count = num == den ? layers.size() - 1 : layers.size() * num / den;
    List<Parameter> frozen = new ArrayList<>();
    int i = 0;
    for (Block b : layers.keySet()) {
      if (i++ >= count) {
        break;
      }
      for (Parameter p : b.getDirectParameters().values()) {
        if (p.requiresGradient()) {
          frozen.add(p);
        }
      }
    }
    ModuleSurgery.freezeParameters(frozen, List.of(trainer));
  }

  private static String measure(Setup setup, int batch, int steps, Times into) {
    Engine.getInstance().setRandomSeed(7);
    Shape image = new Shape(1, 28, 28);
    try (Model model = Model.newInstance("b6a")) {
      model.setBlock(BenchSupport.resNet20(image, 10).build());
      DefaultTrainingConfig config = BenchSupport.sgdConfig();
      try (Trainer trainer = model.newTrainer(config)) {
        Shape input = new Shape(batch).addAll(image);
        trainer.initialize(input);
        setup.change().accept(trainer);
        for (int s = 0; s < 3 + steps; s++) {
          NDManager manager = trainer.getManager();
          try (NDManager batchManager = manager.newSubManager()) {
            NDArray x = batchManager.randomUniform(0, 1, input);
            NDArray y =
                batchManager
                    .randomInteger(0, 10, new Shape(batch), DataType.INT64)
                    .toType(DataType.FLOAT32, false);
            long t0 = BenchSupport.threadCpuNanos();
            long t1;
            long t2;
            try (GradientCollector collector = trainer.newGradientCollector()) {
              NDList pred = trainer.forward(new NDList(x));
              NDArray loss = trainer.getLoss().evaluate(new NDList(y), pred);
              loss.getFloat(); // the forward pass has run (CPU kernels are synchronous anyway)
              t1 = BenchSupport.threadCpuNanos();
              collector.backward(loss);
              t2 = BenchSupport.threadCpuNanos();
            }
            trainer.step();
            long t3 = BenchSupport.threadCpuNanos();
            if (s >= 3) {
              into.forward().add((t1 - t0) / 1e6);
              into.backward().add((t2 - t1) / 1e6);
              into.step().add((t3 - t2) / 1e6);
            }
          }
        }
        int frozen = 0;
        int stillGrad = 0;
        for (var p : model.getBlock().getParameters()) {
          Parameter parameter = p.getValue();
          if (!parameter.requiresGradient()
              && parameter.getType() != Parameter.Type.RUNNING_MEAN
              && parameter.getType() != Parameter.Type.RUNNING_VAR) {
            frozen++;
            if (parameter.getArray().hasGradient()) {
              stillGrad++;
            }
          }
        }
        return frozen == 0 ? "(none frozen)" : stillGrad + " of " + frozen;
      }
    }
  }
}
