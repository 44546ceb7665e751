package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.SurgeryTrain;
import dev.surgery.trainer.config.SurgeryConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * B7: what the surgery log costs under an entry that runs at every batch. A tiny network (one 1x1
 * convolution and a batch norm) trains with {@code ghost_batchnorm} at {@code every: 1ba}, with and
 * without {@code report:}, the listener driven with every training event; the listener's own
 * milliseconds per step are printed per window of steps. Each application rewrote the whole log, so
 * with a log the cost per step grew with the steps before it (issue of the twenty-first session);
 * the writes after applications are now spaced once the log holds a hundred outcomes and a write
 * takes a millisecond. Run: {@code mvn -B -q -pl benchmarks exec:exec
 * -Dbench.main=dev.surgery.benchmarks.B7SurgeryLogCost -Dbench.args="--steps 6000"}.
 */
public final class B7SurgeryLogCost {

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of("B7SurgeryLogCost", "B7: the surgery log's cost under an every-batch entry")
          .count("steps", 6000, 4, "training steps per run")
          .count("windows", 4, 1, "windows the steps are reported in")
          .count("epoch-batches", 1_000_000_000, 1, "batches per epoch (epochs of one batch: 1)");

  private B7SurgeryLogCost() {}

  /**
   * Runs the benchmark.
   *
   * @param args {@code --steps N} (default 6000), {@code --windows N} (default 4), {@code
   *     --epoch-batches N} batches per epoch (default: all steps in one epoch)
   * @throws Exception if DJL fails or the log cannot be written
   */
  public static void main(String[] args) throws Exception {
    BenchFlags.Values flags = FLAGS.orExit(args, v -> v);
    int steps = flags.count("steps");
    int windows = Math.min(flags.count("windows"), steps);
    int epochBatches = flags.count("epoch-batches");
    Path dir = Files.createTempDirectory("b7");
    try {
      Path log = dir.resolve("surgery-log.json");
      double[] withLog = run(steps, windows, epochBatches, log);
      double[] withoutLog = run(steps, windows, epochBatches, null);
      List<List<String>> rows = new ArrayList<>();
      for (int w = 0; w < windows; w++) {
        rows.add(
            List.of(
                String.valueOf((long) steps * (w + 1) / windows),
                BenchSupport.f("%.3f", withLog[w]),
                BenchSupport.f("%.3f", withoutLog[w])));
      }
      BenchSupport.printTable(
          "B7 listener ms per step, ghost_batchnorm every: 1ba, "
              + (epochBatches >= steps ? "one epoch, " : "epochs of " + epochBatches + " batches, ")
              + BenchSupport.machine()
              + "; the log at the end: "
              + Files.size(log) / 1024
              + " KiB",
          List.of("steps done", "with report: (ms/step)", "without (ms/step)"),
          rows);
      System.out.println("Command: " + BenchSupport.commandLine(B7SurgeryLogCost.class, args));
    } finally {
      BenchSupport.deleteTree(dir);
    }
  }

  /** Trains {@code steps} steps; returns the listener's mean milliseconds per step per window. */
  static double[] run(int steps, int windows, int epochBatches, Path log) throws Exception {
    String yaml =
        "algorithms:\n  - {name: ghost_batchnorm, every: 1ba, ghost_batch_size: 2}\n"
            + (log == null ? "" : "report: '" + log + "'\n");
    SurgeryListener listener =
        SurgeryListener.fromConfig(SurgeryConfig.parse(yaml, "b7.yaml"), SurgeryTrain.EVENTS);
    Engine.getInstance().setRandomSeed(1);
    double[] perStep = new double[windows];
    try (Model model = Model.newInstance("b7");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(
          new SequentialBlock()
              .add(Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(2).build())
              .add(BatchNorm.builder().build())
              .add(Blocks.batchFlattenBlock()));
      NDArray x = data.randomNormal(new Shape(4, 2, 2, 2));
      NDArray y = data.randomNormal(new Shape(4, 8));
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.l2Loss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build())
              .addTrainingListeners(listener);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(x.getShape());
        listener.onEvent(Event.INIT, trainer);
        listener.onPlannedEpochs(trainer, (steps + epochBatches - 1) / epochBatches);
        listener.onEvent(Event.FIT_START, trainer);
        listener.onEvent(Event.EPOCH_START, trainer);
        double nanos = 0;
        int window = 0;
        int inWindow = 0;
        for (int s = 1; s <= steps; s++) {
          long t = System.nanoTime();
          listener.onEvent(Event.BATCH_START, trainer);
          nanos += System.nanoTime() - t;
          try (GradientCollector collector = trainer.newGradientCollector()) {
            NDList out = trainer.forward(new NDList(x));
            NDArray loss = trainer.getLoss().evaluate(new NDList(y), out);
            t = System.nanoTime();
            listener.onEvent(Event.AFTER_FORWARD, trainer);
            nanos += System.nanoTime() - t;
            collector.backward(loss);
            t = System.nanoTime();
            listener.onEvent(Event.AFTER_BACKWARD, trainer);
            nanos += System.nanoTime() - t;
          }
          trainer.step();
          t = System.nanoTime();
          listener.onEvent(Event.BATCH_END, trainer);
          if (s % epochBatches == 0 && s < steps) {
            listener.onEvent(Event.EPOCH_END, trainer);
            listener.onEvent(Event.EPOCH_START, trainer);
          }
          nanos += System.nanoTime() - t;
          inWindow++;
          if ((long) s * windows >= (long) steps * (window + 1)) {
            perStep[window++] = nanos / 1e6 / inWindow;
            nanos = 0;
            inWindow = 0;
          }
        }
        listener.onEvent(Event.EPOCH_END, trainer);
        listener.onEvent(Event.FIT_END, trainer);
      }
    }
    return perStep;
  }
}
