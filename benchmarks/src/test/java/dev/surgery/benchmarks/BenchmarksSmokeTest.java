package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.Block;
import ai.djl.nn.core.Linear;
import ai.djl.util.Pair;
import dev.surgery.core.layers.BlurConv2d;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Each JMH benchmark method runs once on a small input (no timing: {@code mvn verify} only checks
 * that the benchmarks still run and measure what they say).
 */
class BenchmarksSmokeTest {

  @Test
  void liveCopyBenchmarkReplacesTheStridedConvolutionsAgainAndKeepsTheirWeights() {
    LiveCopyBenchmark bench = new LiveCopyBenchmark();
    bench.setUp();
    try {
      List<ai.djl.ndarray.NDArray> before = new ArrayList<>();
      B1LiveSurgery.collect(bench.model().getBlock(), B1LiveSurgery.STRIDED, before);
      float[] first = before.get(0).toFloatArray();
      assertEquals(before.size(), bench.nativeDuplicate());
      // Each invocation replaces the previous one's copies, which are strided Conv2ds too.
      int replaced = bench.weightsCopied();
      assertTrue(replaced > 0);
      assertEquals(replaced, bench.weightsCopied());
      List<ai.djl.ndarray.NDArray> after = new ArrayList<>();
      B1LiveSurgery.collect(bench.model().getBlock(), B1LiveSurgery.STRIDED, after);
      assertEquals(before.size(), after.size());
      assertTrue(before.get(0).isReleased(), "the replaced arrays are freed");
      org.junit.jupiter.api.Assertions.assertArrayEquals(first, after.get(0).toFloatArray());
    } finally {
      bench.tearDown();
    }
  }

  @Test
  void scaleBenchmarkWalksEveryBlockAndReplacesEveryLinear() {
    SurgeryScaleBenchmark bench = new SurgeryScaleBenchmark();
    bench.blocks = 1000;
    bench.setUp();
    List<Block> before = blocks(B4ScaleAndLeaks.tree(1000));
    long linears = before.stream().filter(b -> b instanceof Linear).count();
    assertEquals(before.size(), bench.plainWalk());
    // Counted, then each replaced once; a second invocation sees a tree of the same shape.
    assertEquals(2 * linears, bench.countAndReplace());
    assertEquals(2 * linears, bench.countAndReplace());
    // The engine alone and its floor, each on replacements built beforehand.
    SurgeryScaleBenchmark.Prebuilt prebuilt = new SurgeryScaleBenchmark.Prebuilt();
    prebuilt.build(bench);
    assertEquals(linears, prebuilt.blocks.size());
    assertEquals(2 * linears, bench.countAndReplacePrebuilt(prebuilt));
    assertTrue(prebuilt.blocks.isEmpty(), "every prebuilt block taken");
    prebuilt.build(bench);
    assertEquals(2 * linears, bench.countAndMinimalPrebuilt(prebuilt));
    assertTrue(prebuilt.blocks.isEmpty(), "every prebuilt block taken");
  }

  @Test
  void blurPoolStepBenchmarkTrainsBothVariants() {
    for (String variant : List.of("plain", "blurpool")) {
      BlurPoolStepBenchmark bench = new BlurPoolStepBenchmark();
      bench.variant = variant;
      bench.batch = 2;
      bench.setUp();
      try {
        assertTrue(Float.isFinite(bench.step()), variant);
        long blurred =
            blocks(benchModel(bench)).stream().filter(BlurConv2d.class::isInstance).count();
        assertEquals(variant.equals("blurpool") ? 4 : 0, blurred, variant);
      } finally {
        bench.tearDown();
      }
    }
  }

  @Test
  void surgeryLogBenchmarkAppliesAtEveryStepAndLogsEachApplication(
      @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
    java.nio.file.Path log = dir.resolve("log.json");
    double[] windows = B7SurgeryLogCost.run(20, 2, 3, log); // epochs of 3 batches
    assertEquals(2, windows.length);
    for (double w : windows) {
      assertTrue(w > 0 && Double.isFinite(w), String.valueOf(w));
    }
    com.google.gson.JsonObject written =
        com.google.gson.JsonParser.parseString(java.nio.file.Files.readString(log))
            .getAsJsonObject();
    assertEquals(20, written.getAsJsonArray("applications").size());
  }

  @Test
  void idleListenerBenchmarkRunsAnEpochWithoutSurgery() {
    ListenerIdleBenchmark bench = new ListenerIdleBenchmark();
    bench.setUp();
    try {
      for (int i = 1; i <= 1025; i++) { // one epoch boundary crossed
        assertEquals(i % 1024, bench.idleListener());
      }
      bench.newTrainer(); // what JMH does before each iteration
      assertEquals(1, bench.noListener());
    } finally {
      bench.tearDown();
    }
  }

  @Test
  void svdComparisonReadsCoresVectorsAndReconstructsTheInput() {
    int rows = 6;
    int cols = 20;
    float[] a = SvdComparison.matrix(rows, cols, 1);
    SvdComparison.Result svd = SvdComparison.handWritten(a, rows, cols);
    // The reconstruction oracle: U diag(s) V^T against the input, entry by entry.
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        double sum = 0;
        for (int k = 0; k < svd.s().length; k++) {
          sum += svd.u().get(i, k) * svd.s()[k] * svd.v().get(j, k);
        }
        assertEquals(a[i * cols + j], sum, 1e-9, i + "," + j);
      }
    }
    SvdComparison.main(new String[] {"--runs", "1", "--shapes", "5x12"});
  }

  private static Block benchModel(BlurPoolStepBenchmark bench) {
    return bench.block();
  }

  /** Every block below the root, breadth first (the oracle for the walk). */
  private static List<Block> blocks(Block root) {
    Set<Block> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    List<Block> out = new ArrayList<>();
    ArrayDeque<Block> queue = new ArrayDeque<>(List.of(root));
    while (!queue.isEmpty()) {
      for (Pair<String, Block> child : queue.poll().getChildren()) {
        if (seen.add(child.getValue())) {
          out.add(child.getValue());
          queue.add(child.getValue());
        }
      }
    }
    return out;
  }
}
