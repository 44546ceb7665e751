package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.StandardError;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class GhostBatchNormBlockTest {

  private static final Shape IN = new Shape(12, 3, 4, 4);

  /** The batch norms' scale and shift, per channel: not 1 and 0, so tests see them applied. */
  private static final float[] GAMMA = {1f, 2f, 0.5f};

  private static final float[] BETA = {0f, -1f, 3f};
  private NDManager manager;

  @BeforeEach
  void setUp() {
    manager = NDManager.newBaseManager();
    Engine.getInstance().setRandomSeed(5);
  }

  @AfterEach
  void tearDown() {
    manager.close();
  }

  private BatchNorm batchNorm(Shape in) {
    BatchNorm bn = BatchNorm.builder().optEpsilon(1e-5f).optMomentum(0.8f).build();
    bn.initialize(manager, DataType.FLOAT32, in);
    // Non-trivial scale and shift, so the test sees that they are applied.
    bn.getParameters().get("gamma").getArray().set(GAMMA);
    bn.getParameters().get("beta").getArray().set(BETA);
    return bn;
  }

  @Test
  void chunksFollowTorchChunk() {
    assertArrayEquals(new long[] {4, 8}, GhostBatchNormBlock.chunkBounds(12, 5));
    assertArrayEquals(new long[] {6}, GhostBatchNormBlock.chunkBounds(12, 6));
    assertArrayEquals(new long[] {3, 6, 9}, GhostBatchNormBlock.chunkBounds(10, 3));
    assertArrayEquals(new long[0], GhostBatchNormBlock.chunkBounds(12, 12));
    assertArrayEquals(new long[0], GhostBatchNormBlock.chunkBounds(7, 32));
    assertEquals(11, GhostBatchNormBlock.chunkBounds(12, 1).length);
    // One value per channel: torch.chunk's chunks, a last chunk of one sample joining the one
    // before it (8 in chunks of 3 is 3, 3, 2: kept; 7 is 3, 3, 1: the 1 joins), at least two.
    assertArrayEquals(new long[] {3, 6}, GhostBatchNormBlock.chunkBounds(8, 3, 1));
    assertArrayEquals(new long[] {3}, GhostBatchNormBlock.chunkBounds(7, 3, 1));
    assertArrayEquals(new long[0], GhostBatchNormBlock.chunkBounds(3, 4, 1));
    assertArrayEquals(new long[0], GhostBatchNormBlock.chunkBounds(2, 1, 1));
    assertArrayEquals(new long[] {4, 8}, GhostBatchNormBlock.chunkBounds(12, 5, 2));
  }

  /** Values per channel in a sample: the product of the axes but the batch and the channel's. */
  @Test
  void valuesPerSampleMultiplyEveryAxisButBatchAndChannel() {
    assertEquals(8, GhostBatchNormBlock.valuesPerSample(new Shape(5, 3, 4, 2), 1));
    assertEquals(8, GhostBatchNormBlock.valuesPerSample(new Shape(5, 3, 4, 2), -3));
    assertEquals(12, GhostBatchNormBlock.valuesPerSample(new Shape(5, 3, 4, 2), -1));
    assertEquals(1, GhostBatchNormBlock.valuesPerSample(new Shape(5, 3), -1));
  }

  /**
   * A first training batch no larger than the ghost size (DJL's examples train batches of 32, the
   * default ghost size) makes the replacement plain batch norm: warned of once, not for a larger
   * batch, nor for a smaller batch after the first (an epoch's last), nor in evaluation.
   */
  @Test
  void aFirstTrainingBatchNoLargerThanTheGhostSizeIsWarnedOfOnce() {
    NDArray x = manager.randomNormal(IN);
    GhostBatchNormBlock.forgetOneChunkWarning();
    GhostBatchNormBlock chunked = GhostBatchNormBlock.from(batchNorm(IN), 5);
    GhostBatchNormBlock evaluated = GhostBatchNormBlock.from(batchNorm(IN), 32);
    String quiet =
        StandardError.of(
            () -> {
              chunked.forward(new ParameterStore(manager, false), new NDList(x), true);
              // a smaller batch after the first: an epoch's last batch, not the batch size
              chunked.forward(new ParameterStore(manager, false), new NDList(x.get("0:3")), true);
              evaluated.forward(new ParameterStore(manager, false), new NDList(x), false);
            });
    assertTrue(!quiet.contains("Ghost batch norm"), quiet);
    GhostBatchNormBlock oneChunk = GhostBatchNormBlock.from(batchNorm(IN), 32);
    GhostBatchNormBlock another = GhostBatchNormBlock.from(batchNorm(IN), 12);
    String warned =
        StandardError.of(
            () -> {
              oneChunk.forward(new ParameterStore(manager, false), new NDList(x), true);
              another.forward(new ParameterStore(manager, false), new NDList(x), true);
            });
    assertEquals(
        1,
        warned.lines().filter(l -> l.contains("WARN") && l.contains("Ghost batch norm")).count(),
        warned);
    assertTrue(
        warned.contains(
            "a training batch of 12 samples is no larger than ghost_batch_size 32, so each batch is"
                + " one chunk"),
        warned);
    // A batch exactly the ghost size is one chunk too.
    GhostBatchNormBlock.forgetOneChunkWarning();
    GhostBatchNormBlock equal = GhostBatchNormBlock.from(batchNorm(IN), 12);
    String atTheSize =
        StandardError.of(
            () -> equal.forward(new ParameterStore(manager, false), new NDList(x), true));
    assertTrue(atTheSize.contains("a training batch of 12 samples is no larger"), atTheSize);
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 2, 3, 5})
  void eachChunkIsNormalizedByItsOwnStatistics(int ghost) {
    BatchNorm bn = batchNorm(IN);
    GhostBatchNormBlock gbn = GhostBatchNormBlock.from(bn, ghost);
    NDArray x = manager.randomNormal(IN).mul(2).add(manager.arange(12f).reshape(12, 1, 1, 1));
    float[] out =
        gbn.forward(new ParameterStore(manager, false), new NDList(x), true)
            .singletonOrThrow()
            .toFloatArray();
    long[] bounds = GhostBatchNormBlock.chunkBounds(12, ghost);
    long start = 0;
    for (int c = 0; c <= bounds.length; c++) {
      long end = c < bounds.length ? bounds[c] : 12;
      for (int ch = 0; ch < 3; ch++) {
        double sum = 0;
        double sq = 0;
        int n = 0;
        for (long s = start; s < end; s++) {
          for (int i = 0; i < 16; i++) {
            double v = (out[(int) (s * 48 + ch * 16 + i)] - BETA[ch]) / GAMMA[ch];
            sum += v;
            sq += v * v;
            n++;
          }
        }
        double mean = sum / n;
        assertEquals(0, mean, 1e-4, "chunk " + c + " channel " + ch + " mean");
        assertEquals(1, sq / n - mean * mean, 2e-3, "chunk " + c + " channel " + ch + " var");
      }
      start = end;
    }
  }

  /**
   * Where a sample holds one value per channel, a chunk of one sample cannot be normalized in
   * training (PyTorch refuses it, and a job died at its first step after the surgery): chunks are
   * then at least two samples, each normalized by its own statistics, against a hand computation.
   */
  @ParameterizedTest
  @ValueSource(strings = {"5,3,1,1;2", "7,3;3", "5,3,1,1;1", "7,3,1,1;4"})
  void samplesOfOneValuePerChannelAreNeverAChunkAlone(String spec) {
    String[] parts = spec.split(";");
    long[] dims = java.util.Arrays.stream(parts[0].split(",")).mapToLong(Long::parseLong).toArray();
    Shape in = new Shape(dims);
    int ghost = Integer.parseInt(parts[1]);
    long batch = dims[0];
    long[] bounds = GhostBatchNormBlock.chunkBounds(batch, ghost, 1);
    long previous = 0;
    for (long b : bounds) {
      assertTrue(b - previous >= 2, spec + ": a chunk of one sample at " + previous);
      previous = b;
    }
    assertTrue(batch - previous >= 2, spec + ": a last chunk of one sample");
    assertEquals(1, GhostBatchNormBlock.valuesPerSample(in, 1));

    BatchNorm bn = batchNorm(in);
    GhostBatchNormBlock gbn = GhostBatchNormBlock.from(bn, ghost);
    long[] offsetShape = new long[dims.length];
    java.util.Arrays.fill(offsetShape, 1);
    offsetShape[0] = batch;
    NDArray x =
        manager
            .randomNormal(in)
            .mul(2)
            .add(manager.arange((float) batch).reshape(new Shape(offsetShape)));
    float[] data = x.toFloatArray();
    float[] out =
        gbn.forward(new ParameterStore(manager, false), new NDList(x), true)
            .singletonOrThrow()
            .toFloatArray();
    long start = 0;
    for (int c = 0; c <= bounds.length; c++) {
      long end = c < bounds.length ? bounds[c] : batch;
      for (int ch = 0; ch < 3; ch++) {
        double sum = 0;
        double sq = 0;
        for (long s = start; s < end; s++) {
          double v = data[(int) (s * 3 + ch)];
          sum += v;
          sq += v * v;
        }
        double mean = sum / (end - start);
        double var = sq / (end - start) - mean * mean;
        for (long s = start; s < end; s++) {
          double expected =
              (data[(int) (s * 3 + ch)] - mean) / Math.sqrt(var + 1e-5) * GAMMA[ch] + BETA[ch];
          assertEquals(
              expected, out[(int) (s * 3 + ch)], 1e-4, spec + " sample " + s + " channel " + ch);
        }
      }
      start = end;
    }
  }

  @Test
  void runningStatisticsTakeOneSpreadUpdatePerChunk() {
    BatchNorm bn = batchNorm(IN);
    GhostBatchNormBlock gbn = GhostBatchNormBlock.from(bn, 5); // chunks of 4, 4, 4
    NDArray x = manager.randomNormal(IN).add(manager.arange(12f).reshape(12, 1, 1, 1));
    float[] data = x.toFloatArray();
    gbn.forward(new ParameterStore(manager, false), new NDList(x), true);
    assertRunningStatistics(bn, data, 0.8);
  }

  /**
   * The same through a {@link Trainer} after a live application, as in training: the trainer's
   * parameter store must hand the layer the running statistics themselves, not copies, or the
   * updates of a training step are lost and evaluation normalizes with stale statistics.
   */
  @Test
  void runningStatisticsMoveWithTrainingStepsInsideATrainer() {
    SequentialBlock net =
        new SequentialBlock()
            .add(BatchNorm.builder().optEpsilon(1e-5f).optMomentum(0.8f).build())
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(2).build());
    try (Model model = Model.newInstance("ghost-trainer")) {
      model.setBlock(net);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(new GcSafeL2Loss())
              .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)).build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(IN);
        BatchNorm bn = (BatchNorm) net.getChildren().get(0).getValue();
        GhostBatchNorm.builder()
            .optGhostBatchSize(5)
            .build()
            .apply(SurgeryContext.live(net, trainer, 0, 0));
        assertTrue(net.getChildren().get(0).getValue() instanceof GhostBatchNormBlock);
        NDArray x = manager.randomNormal(IN).add(manager.arange(12f).reshape(12, 1, 1, 1));
        float[] data = x.toFloatArray();
        try (GradientCollector collector = trainer.newGradientCollector()) {
          NDList out = trainer.forward(new NDList(x));
          collector.backward(out.head().square().sum());
        }
        trainer.step();
        assertRunningStatistics(bn, data, 0.8);
      }
    }
  }

  /** Checks the running statistics after one training pass of {@code data} from (0, 1). */
  private static void assertRunningStatistics(BatchNorm bn, float[] data, double momentum) {
    double keep = 1 - (1 - momentum) / 3; // DJL momentum spread over three chunks of 4
    double[] mean = {0, 0, 0};
    double[] var = {1, 1, 1};
    for (int chunk = 0; chunk < 3; chunk++) {
      for (int ch = 0; ch < 3; ch++) {
        double sum = 0;
        double sq = 0;
        int n = 0;
        for (int s = chunk * 4; s < chunk * 4 + 4; s++) {
          for (int i = 0; i < 16; i++) {
            double v = data[s * 48 + ch * 16 + i];
            sum += v;
            sq += v * v;
            n++;
          }
        }
        double m = sum / n;
        double unbiased = (sq - n * m * m) / (n - 1);
        mean[ch] = keep * mean[ch] + (1 - keep) * m;
        var[ch] = keep * var[ch] + (1 - keep) * unbiased;
      }
    }
    float[] runningMean = bn.getParameters().get("runningMean").getArray().toFloatArray();
    float[] runningVar = bn.getParameters().get("runningVar").getArray().toFloatArray();
    for (int ch = 0; ch < 3; ch++) {
      assertEquals(mean[ch], runningMean[ch], 1e-4, "running mean " + ch);
      assertEquals(var[ch], runningVar[ch], 1e-3, "running var " + ch);
    }
  }

  @Test
  void evaluationEqualsTheBatchNorm() {
    BatchNorm bn = batchNorm(IN);
    bn.getParameters().get("runningMean").getArray().set(new float[] {0.5f, -2f, 1f});
    bn.getParameters().get("runningVar").getArray().set(new float[] {2f, 0.5f, 1.5f});
    NDArray x = manager.randomNormal(IN);
    ParameterStore ps = new ParameterStore(manager, false);
    float[] expected = bn.forward(ps, new NDList(x), false).singletonOrThrow().toFloatArray();
    GhostBatchNormBlock gbn = GhostBatchNormBlock.from(bn, 2);
    assertArrayEquals(
        expected, gbn.forward(ps, new NDList(x), false).singletonOrThrow().toFloatArray(), 0f);
  }

  @Test
  void batchNoLargerThanGhostSizeIsPlainBatchNorm() {
    BatchNorm reference = batchNorm(IN);
    NDArray x = manager.randomNormal(IN);
    ParameterStore ps = new ParameterStore(manager, false);
    float[] expected = reference.forward(ps, new NDList(x), true).singletonOrThrow().toFloatArray();
    GhostBatchNormBlock gbn = GhostBatchNormBlock.from(batchNorm(IN), 32);
    assertArrayEquals(
        expected, gbn.forward(ps, new NDList(x), true).singletonOrThrow().toFloatArray(), 1e-6f);
  }

  @Test
  void keepsParametersAndCheckpointLayout() throws Exception {
    BatchNorm bn = batchNorm(IN);
    byte[] plain = WeightStandardizedConv2dTest.save(bn);
    GhostBatchNormBlock gbn = GhostBatchNormBlock.from(bn, 4);
    for (String name : new String[] {"gamma", "beta", "runningMean", "runningVar"}) {
      assertSame(bn.getParameters().get(name), gbn.getParameters().get(name), name);
    }
    assertTrue(gbn.isInitialized());
    assertArrayEquals(plain, WeightStandardizedConv2dTest.save(gbn));

    GhostBatchNormBlock fresh =
        GhostBatchNormBlock.from(BatchNorm.builder().optMomentum(0.8f).build(), 4);
    fresh.loadParameters(manager, new DataInputStream(new ByteArrayInputStream(plain)));
    Parameter gamma = fresh.getParameters().get("gamma");
    assertArrayEquals(new float[] {1f, 2f, 0.5f}, gamma.getArray().toFloatArray(), 0f);
  }

  @Test
  void uninitializedBatchNormInitializesThroughTheReplacement() {
    BatchNorm bn = BatchNorm.builder().build();
    GhostBatchNormBlock gbn = GhostBatchNormBlock.from(bn, 4);
    gbn.initialize(manager, DataType.FLOAT32, new Shape(8, 5, 2, 2));
    assertEquals(new Shape(5), bn.getParameters().get("gamma").getArray().getShape());
    // The shapes it was initialized with are recorded, as any block records them.
    assertArrayEquals(new Shape[] {new Shape(8, 5, 2, 2)}, gbn.getInputShapes());
    assertEquals(4, gbn.getGhostBatchSize());
  }

  /** Version 1 metadata (no input shapes, then the channels) still loads; an unknown one fails. */
  @Test
  void loadsVersionOneMetadataAndRefusesUnknownVersions() throws Exception {
    GhostBatchNormBlock gbn = GhostBatchNormBlock.from(BatchNorm.builder().build(), 4);
    java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
    new java.io.DataOutputStream(bytes).writeLong(5);
    gbn.loadMetadata((byte) 1, new DataInputStream(new ByteArrayInputStream(bytes.toByteArray())));
    gbn.prepare(new Shape[] {new Shape(8, 5, 2, 2)});
    assertEquals(new Shape(5), gbn.getParameters().get("gamma").getShape());
    assertThrows(
        ai.djl.MalformedModelException.class,
        () ->
            gbn.loadMetadata(
                (byte) 3, new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()))));
  }

  @Test
  void rejectsGhostSizeBelowOne() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> GhostBatchNormBlock.from(BatchNorm.builder().build(), 0));
    assertTrue(e.getMessage().contains("ghost_batch_size") && e.getMessage().contains("0"));
  }
}
