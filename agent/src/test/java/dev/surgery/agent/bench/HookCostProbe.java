package dev.surgery.agent.bench;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Measures what the woven advice costs per training batch when nothing is due: the five dispatcher
 * calls one batch makes under the agent ({@code Trainer.forward} entry and exit, {@code
 * newGradientCollector}, {@code backward}, {@code step}), through the real dispatcher, per-DJL
 * loader and listener (blurpool due at epoch 1,000,000), without DJL's own work. Prints nanoseconds
 * of this thread's CPU time per batch (and wall time), best of five rounds. Not a test: a main for
 * {@code docs/benchmarks.md}.
 *
 * <pre>
 * java -cp agent/target/test-classes:agent/target/classes:&lt;agent test class path&gt;
 *     dev.surgery.agent.bench.HookCostProbe [batches per round, default 200000]
 * </pre>
 */
public final class HookCostProbe {

  private HookCostProbe() {}

  /**
   * Runs the measurement.
   *
   * @param args optionally the number of batches per round
   * @throws Exception if DJL fails
   */
  public static void main(String[] args) throws Exception {
    int batches = args.length > 0 ? Integer.parseInt(args[0]) : 200_000;
    Path config = Files.createTempFile("hook-cost", ".yaml");
    Files.writeString(config, "algorithms:\n  - name: blurpool\n    epoch: 1000000\n");
    SurgeryDispatcher.configure(config, List.of());
    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    try (Model model = Model.newInstance("hook-cost")) {
      model.setBlock(Linear.builder().setUnits(2).build());
      try (Trainer trainer = model.newTrainer(new DefaultTrainingConfig(Loss.l2Loss()))) {
        SurgeryDispatcher.trainerCreated(trainer);
        trainer.initialize(new Shape(1, 3));
        SurgeryDispatcher.trainerInitialized(trainer);
        Object collector = new Object();
        double bestCpu = Double.MAX_VALUE;
        double bestWall = Double.MAX_VALUE;
        for (int round = 0; round < 6; round++) {
          long cpu = threads.getCurrentThreadCpuTime();
          long wall = System.nanoTime();
          for (int b = 0; b < batches; b++) {
            SurgeryDispatcher.at(HookPoint.FORWARD_ENTER, trainer);
            SurgeryDispatcher.at(HookPoint.FORWARD_EXIT, trainer);
            SurgeryDispatcher.collectorCreated(trainer, collector);
            SurgeryDispatcher.backwardDone(collector);
            SurgeryDispatcher.at(HookPoint.STEP_EXIT, trainer);
          }
          double cpuPerBatch = (threads.getCurrentThreadCpuTime() - cpu) / (double) batches;
          double wallPerBatch = (System.nanoTime() - wall) / (double) batches;
          if (round > 0) { // round 0 warms up
            bestCpu = Math.min(bestCpu, cpuPerBatch);
            bestWall = Math.min(bestWall, wallPerBatch);
          }
          System.out.printf(
              "round %d: %.0f ns CPU, %.0f ns wall per batch%n", round, cpuPerBatch, wallPerBatch);
        }
        System.out.printf(
            "HOOK_COST best of 5 rounds of %d batches: %.0f ns CPU, %.0f ns wall per batch%n",
            batches, bestCpu, bestWall);
      }
    }
    Files.deleteIfExists(config);
  }
}
