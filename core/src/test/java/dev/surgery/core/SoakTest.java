package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.TinyModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Many live surgeries in one JVM on a small CNN with a live Adam trainer: a weight-copying
 * replacement of both convolutions and its reversal, alternately, through {@link
 * ModuleSurgery#replaceModuleClasses}, with a training step after every fifth surgery. Every array
 * a surgery takes out must be freed, and the number of open NDArrays (every array of DJL's manager
 * tree, plus the optimizer state DJL keeps outside it) must be the same after every surgery once
 * warmed up: exactly, not within a margin.
 *
 * <p>{@link #shortSoak} (100 surgeries) runs in {@code mvn verify}; {@link #fullSoak} (1,000
 * surgeries, tag {@value #SOAK}) runs with {@code mvn -Psoak -pl core test} and is excluded
 * otherwise. Both log the process RSS but assert nothing about it: it is not a signal at this
 * scale. The arrays taken out after warm-up total about 4 MB over 100 surgeries and 50 MB over
 * 1,000, and RSS moved by +5.6 % (12 MB) and +7.2 % (35 MB) in such runs with every array freed
 * (JIT, malloc arenas, heap growth, a shared machine); the exact array count is the leak check, and
 * it fails on a replacement that leaks one 4-float array per copy.
 */
class SoakTest {

  private static final Logger logger = LoggerFactory.getLogger(SoakTest.class);

  /** The JUnit tag of the long soak, which the default build excludes (see core/pom.xml). */
  static final String SOAK = "soak";

  private static final Shape INPUT = new Shape(8, 3, 8, 8);

  /** Surgeries before the baseline is taken (lets DJL, PyTorch and the JIT settle): 10%, >= 20. */
  private static int warmUp(int cycles) {
    return Math.max(20, cycles / 10 / 5 * 5); // a multiple of 5: the baseline follows a step
  }

  /** A convolution the soak swaps in and back out, distinguishable by class. */
  static final class MarkedConv2d extends Conv2d {
    MarkedConv2d(Conv2d.Builder builder) {
      super(builder);
    }
  }

  /** The measurements of one soak. */
  record Figures(
      int cycles,
      int trainingSteps,
      long arraysFreed,
      long bytesFreed,
      long bytesFreedAfterWarmUp,
      int arraysAfterWarmUp,
      int arraysAtEnd,
      int maxArrays,
      int minArrays,
      int maxArraysBetweenSteps,
      int minArraysBetweenSteps,
      long rssKbAfterWarmUp,
      long rssKbAtEnd,
      long maxRssKb) {

    double rssGrowth() {
      return (rssKbAtEnd - rssKbAfterWarmUp) / (double) rssKbAfterWarmUp;
    }

    @Override
    public String toString() {
      return String.format(
          Locale.ROOT,
          "%d surgeries, %d training steps, %,d arrays (%,d kB; %,d kB after warm-up) taken out and"
              + " freed: open NDArrays %d after warm-up, %d at the end (after steps %d to %d, between"
              + " steps %d to %d); RSS %,d kB after"
              + " warm-up, %,d kB at the end (max %,d kB, %+.2f%%)",
          cycles,
          trainingSteps,
          arraysFreed,
          bytesFreed / 1024,
          bytesFreedAfterWarmUp / 1024,
          arraysAfterWarmUp,
          arraysAtEnd,
          minArrays,
          maxArrays,
          minArraysBetweenSteps,
          maxArraysBetweenSteps,
          rssKbAfterWarmUp,
          rssKbAtEnd,
          maxRssKb,
          100 * rssGrowth());
    }
  }

  @Test
  void shortSoak() throws Exception {
    assertArraysFlat(soak(100));
  }

  @Test
  @Tag(SOAK)
  void fullSoak() throws Exception {
    assertArraysFlat(soak(Integer.getInteger("surgery.soak.cycles", 1000)));
  }

  /**
   * After warm-up the open-array count is the same after every surgery: no growth at all. Two
   * phases differ by the gradient arrays (a copied parameter has none until the next step), so each
   * is compared with itself: the cycles that end with a training step, then those that do not.
   */
  private static void assertArraysFlat(Figures f) {
    assertTrue(f.arraysAfterWarmUp() > 0, f.toString());
    assertEquals(f.arraysAfterWarmUp(), f.arraysAtEnd(), f.toString());
    assertEquals(f.arraysAfterWarmUp(), f.maxArrays(), "arrays never pile up between checks: " + f);
    assertEquals(f.arraysAfterWarmUp(), f.minArrays(), "arrays never drop between checks: " + f);
    assertTrue(f.minArraysBetweenSteps() > 0, f.toString());
    assertEquals(f.minArraysBetweenSteps(), f.maxArraysBetweenSteps(), "between steps: " + f);
  }

  private static Figures soak(int cycles) throws Exception {
    SequentialBlock net =
        new SequentialBlock()
            .add(conv(32))
            .add(Activation.reluBlock())
            .add(conv(32))
            .add(Activation.reluBlock())
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(4).build());
    DefaultTrainingConfig config =
        new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
            .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.001f)).build());
    try (Model model = TinyModels.model("soak", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config)) {
      trainer.initialize(INPUT);
      NDArray x = data.randomNormal(INPUT);
      NDArray y = data.arange(8).toType(DataType.FLOAT32, false).mod(4);

      Map<Class<? extends Block>, ReplacementFunction> apply = new LinkedHashMap<>();
      apply.put(
          Conv2d.class,
          (block, index) -> block instanceof MarkedConv2d ? null : copy((Conv2d) block, true));
      Map<Class<? extends Block>, ReplacementFunction> revert = new LinkedHashMap<>();
      revert.put(MarkedConv2d.class, (block, index) -> copy((Conv2d) block, false));

      int steps = 0;
      long departed = 0;
      long departedBytes = 0;
      long departedBytesAfterWarmUp = 0;
      int arraysAfterWarmUp = -1;
      long rssAfterWarmUp = -1;
      int maxArrays = 0;
      int minArrays = Integer.MAX_VALUE;
      int maxBetweenSteps = 0;
      int minBetweenSteps = Integer.MAX_VALUE;
      long maxRss = 0;
      List<String> samples = new ArrayList<>();
      int warmUp = warmUp(cycles);
      for (int cycle = 1; cycle <= cycles; cycle++) {
        boolean applying = cycle % 2 == 1;
        Map<String, float[]> before = Fixtures.snapshot(net);
        Set<NDArray> reachableBefore = OpenArrays.reachable(net, trainer);
        Map<NDArray, Long> bytes = new IdentityHashMap<>();
        for (NDArray a : reachableBefore) {
          bytes.put(a, a.size() * a.getDataType().getNumOfBytes());
        }
        Map<Block, Block> replaced =
            ModuleSurgery.replaceModuleClasses(
                net, applying ? apply : revert, List.of(trainer), false, null);
        assertEquals(2, replaced.size(), "cycle " + cycle);
        assertEquals(applying ? 2 : 0, ModuleSurgery.countModuleInstances(net, MarkedConv2d.class));
        assertSameValues(before, Fixtures.snapshot(net), cycle);
        // Every array the surgery took out of the model and the trainer (the old weights, their
        // store entries and their Adam state, which DJL keeps detached from any manager) is freed.
        reachableBefore.removeAll(OpenArrays.reachable(net, trainer));
        assertTrue(!reachableBefore.isEmpty(), "cycle " + cycle);
        for (NDArray gone : reachableBefore) {
          assertTrue(
              gone.isReleased(), () -> "an array taken out is still open: " + gone.getShape());
        }
        departed += reachableBefore.size();
        for (NDArray gone : reachableBefore) {
          departedBytes += bytes.get(gone);
          if (cycle > warmUp) {
            departedBytesAfterWarmUp += bytes.get(gone);
          }
        }
        assertEquals(Fixtures.modelIds(net), Fixtures.storeIds(trainer), "cycle " + cycle);
        for (Set<String> keys : Fixtures.stateKeys(trainer).values()) {
          assertTrue(Fixtures.modelIds(net).containsAll(keys), "cycle " + cycle);
        }
        if (cycle % 5 == 0) {
          trainStep(trainer, x, y);
          steps++;
        }
        if (cycle >= warmUp) {
          // The open-array count after every surgery, not only at the samples: exact per phase.
          int arrays = OpenArrays.ofTraining(model, trainer).size();
          if (cycle % 5 == 0) {
            maxArrays = Math.max(maxArrays, arrays);
            minArrays = Math.min(minArrays, arrays);
          } else {
            maxBetweenSteps = Math.max(maxBetweenSteps, arrays);
            minBetweenSteps = Math.min(minBetweenSteps, arrays);
          }
          if (cycle == warmUp) {
            arraysAfterWarmUp = arrays;
          }
        }
        if (cycle == warmUp || cycle == cycles || cycle % 50 == 0) {
          long rss = rssKbAfterGc();
          if (cycle >= warmUp) {
            maxRss = Math.max(maxRss, rss);
          }
          if (cycle == warmUp) {
            rssAfterWarmUp = rss;
          }
          samples.add(cycle + ":" + OpenArrays.ofTraining(model, trainer).size() + "/" + rss);
        }
      }
      int arraysAtEnd = OpenArrays.ofTraining(model, trainer).size();
      long rssAtEnd = rssKbAfterGc();
      Figures figures =
          new Figures(
              cycles,
              steps,
              departed,
              departedBytes,
              departedBytesAfterWarmUp,
              arraysAfterWarmUp,
              arraysAtEnd,
              Math.max(maxArrays, arraysAtEnd),
              Math.min(minArrays, arraysAtEnd),
              maxBetweenSteps,
              minBetweenSteps,
              rssAfterWarmUp,
              rssAtEnd,
              Math.max(maxRss, rssAtEnd));
      logger.info("Soak: {}", figures);
      logger.info("Soak samples (cycle:openArrays/rssKb): {}", String.join(" ", samples));
      return figures;
    }
  }

  /** One Adam step on a fixed batch; every intermediate array lives in a scratch manager. */
  private static void trainStep(Trainer trainer, NDArray x, NDArray y) {
    try (NDManager scratch = x.getManager().newSubManager()) {
      NDArray xs = x.duplicate();
      NDArray ys = y.duplicate();
      xs.attach(scratch);
      ys.attach(scratch);
      try (GradientCollector collector = trainer.newGradientCollector()) {
        NDList prediction = trainer.forward(new NDList(xs));
        NDArray loss = trainer.getLoss().evaluate(new NDList(ys), prediction);
        collector.backward(loss);
      }
      trainer.step();
    }
  }

  private static void assertSameValues(
      Map<String, float[]> before, Map<String, float[]> after, int cycle) {
    List<float[]> a = new ArrayList<>(before.values());
    List<float[]> b = new ArrayList<>(after.values());
    assertEquals(a.size(), b.size(), "cycle " + cycle);
    for (int i = 0; i < a.size(); i++) {
      assertArrayEquals(a.get(i), b.get(i), "cycle " + cycle + ", parameter #" + i);
    }
  }

  private static Conv2d conv(int filters) {
    return builder(filters).build();
  }

  private static Conv2d.Builder builder(int filters) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optPadding(new Shape(1, 1))
        .setFilters(filters);
  }

  /** A new convolution (marked or plain) on the old one's manager, holding a copy of its values. */
  private static Conv2d copy(Conv2d old, boolean marked) {
    Conv2d.Builder b = builder(old.getFilters());
    Conv2d copy = marked ? new MarkedConv2d(b) : b.build();
    NDArray anchor = old.getParameters().get("weight").getArray();
    copy.initialize(anchor.getManager(), anchor.getDataType(), old.getInputShapes());
    for (var entry : old.getDirectParameters()) {
      entry.getValue().getArray().copyTo(copy.getDirectParameters().get(entry.getKey()).getArray());
    }
    return copy;
  }

  /** The resident set size after garbage collection, or -1 where /proc is not available. */
  private static long rssKbAfterGc() throws InterruptedException, IOException {
    for (int i = 0; i < 3; i++) {
      System.gc();
      Thread.sleep(50);
    }
    Path status = Path.of("/proc/self/status");
    if (!Files.isReadable(status)) {
      return -1;
    }
    for (String line : Files.readAllLines(status)) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("\\D+", ""));
      }
    }
    return -1;
  }
}
