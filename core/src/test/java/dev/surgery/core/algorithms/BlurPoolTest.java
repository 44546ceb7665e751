package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
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
import ai.djl.nn.pooling.Pool;
import ai.djl.training.ParameterStore;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.BlurMaxPool2d;
import dev.surgery.core.testing.TinyModels;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * BlurPool's match rules, weights, idempotency and hyperparameter validation on Composer's test
 * model: conv1 32 -> 8 with stride 2 (replaced), conv2 8 -> 32 with stride 2 (fewer than 16 input
 * channels: kept), conv3 with stride 1 (kept), a max pool (replaced) and an average pool (kept).
 */
class BlurPoolTest {

  private static final Shape INPUT = new Shape(2, 32, 16, 16);

  private NDManager manager;
  private SequentialBlock net;
  private Conv2d conv1;
  private Conv2d conv2;
  private Conv2d conv3;
  private Block maxPool;
  private Block avgPool;

  @BeforeEach
  void setUp() {
    manager = NDManager.newBaseManager();
    manager.getEngine().setRandomSeed(5);
    setUpNetwork();
  }

  private void setUpNetwork() {
    conv1 = TinyModels.conv3x3(8, 2);
    conv2 = TinyModels.conv3x3(32, 2);
    conv3 = TinyModels.conv3x3(32, 1);
    maxPool = Pool.maxPool2dBlock(new Shape(2, 2));
    avgPool = Pool.avgPool2dBlock(new Shape(2, 2));
    net =
        new SequentialBlock()
            .add(conv1)
            .add(Activation.reluBlock())
            .add(conv2)
            .add(conv3)
            .add(maxPool)
            .add(avgPool)
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(4).build());
  }

  @AfterEach
  void tearDown() {
    manager.close();
  }

  private void initialize() {
    net.initialize(manager, DataType.FLOAT32, INPUT);
  }

  private Block child(int i) {
    return net.getChildren().get(i).getValue();
  }

  @Test
  void defaultsReplaceTheWideStridedConvAndTheMaxPoolOnly() {
    initialize();
    NDArray x = manager.randomNormal(INPUT);
    Shape outBefore = forward(x).getShape();
    String conv1Path = BlockPaths.pathOf(net, conv1);
    String poolPath = BlockPaths.pathOf(net, maxPool);
    NDArray conv1Weight = conv1.getParameters().get("weight").getArray();
    float[] weightValues = conv1Weight.toFloatArray();
    // By hand: conv 32->8, 8->32 and 32->32 (3 x 3, with bias), then linear 32->4.
    long scalars = (8 * 32 * 9 + 8) + (32 * 8 * 9 + 32) + (32 * 32 * 9 + 32) + (32 * 4 + 4);

    SurgeryChanges report = BlurPool.builder().build().apply(SurgeryContext.of(net));

    assertEquals("blurpool", report.algorithm());
    assertEquals(
        List.of(
            new SurgeryChanges.Change(conv1Path, "Conv2d", "BlurConv2d"),
            new SurgeryChanges.Change(poolPath, "maxPool2d", "BlurMaxPool2d")),
        report.changes().stream().sorted((a, b) -> a.path().compareTo(b.path())).toList());
    assertEquals(scalars, report.parametersBefore());
    assertEquals(scalars, report.parametersAfter());

    BlurConv2d blurConv = assertInstanceOf(BlurConv2d.class, child(0));
    assertTrue(blurConv.isBlurFirst());
    assertSame(conv1.getParameters().get("weight"), blurConv.getParameters().get("weight"));
    assertSame(conv1Weight, blurConv.getParameters().get("weight").getArray());
    assertArrayEquals(
        weightValues, blurConv.getParameters().get("weight").getArray().toFloatArray(), 0f);
    assertSame(conv2, child(2), "conv2 has 8 < 16 input channels");
    assertSame(conv3, child(3), "conv3 has stride 1");
    assertInstanceOf(BlurMaxPool2d.class, child(4));
    assertSame(avgPool, child(5), "average pools are not blurred");

    assertEquals(outBefore, forward(x).getShape());
    String tree = net.toString();
    assertTrue(tree.contains("BlurConv2d") && tree.contains("BlurMaxPool2d"), tree);
  }

  /**
   * The blurred layers against a direct computation in plain Java loops: the filter {@code [1,2,1]
   * x [1,2,1] / 16} per channel with zero padding 1 (as {@code BlurFilter} documents), the
   * convolution with the adopted weight and bias, the dense 2 x 2 max pool.
   */
  @Test
  void blurredLayersComputeWhatTheDirectLoopsCompute() {
    initialize();
    BlurPool.builder().build().apply(SurgeryContext.of(net));
    BlurConv2d blurConv = assertInstanceOf(BlurConv2d.class, child(0));
    float[] weight = blurConv.getParameters().get("weight").getArray().toFloatArray();
    float[] bias = blurConv.getParameters().get("bias").getArray().toFloatArray();

    // blur first (stride 1), then the 3 x 3 convolution with stride 2 and padding 1
    NDArray x = manager.randomNormal(INPUT);
    int n = 2;
    int c = 32;
    float[] blurred = blurByHand(x.toFloatArray(), n, c, 16, 16, 1);
    float[] expected = convByHand(blurred, n, c, 16, 16, weight, bias, 8, 2);
    assertClose(expected, forward(child(0), x), "BlurConv2d (blur first)");

    // the max pool: dense 2 x 2 maximum (stride 1, 4 x 4 -> 3 x 3), then the blur with stride 2
    NDArray z = manager.randomNormal(new Shape(n, c, 4, 4));
    float[] zs = z.toFloatArray();
    float[] pooled = new float[n * c * 3 * 3];
    for (int i = 0; i < n * c; i++) {
      for (int r = 0; r < 3; r++) {
        for (int q = 0; q < 3; q++) {
          float m = Float.NEGATIVE_INFINITY;
          for (int dr = 0; dr < 2; dr++) {
            for (int dq = 0; dq < 2; dq++) {
              m = Math.max(m, zs[i * 16 + (r + dr) * 4 + q + dq]);
            }
          }
          pooled[i * 9 + r * 3 + q] = m;
        }
      }
    }
    assertClose(blurByHand(pooled, n, c, 3, 3, 2), forward(child(4), z), "BlurMaxPool2d");
  }

  /** Depthwise [1,2,1] x [1,2,1] / 16 with zero padding 1, output ((h - 1) / s + 1)^2. */
  private static float[] blurByHand(float[] in, int n, int c, int h, int w, int stride) {
    float[] taps = {1, 2, 1};
    int oh = (h - 1) / stride + 1;
    int ow = (w - 1) / stride + 1;
    float[] out = new float[n * c * oh * ow];
    for (int i = 0; i < n * c; i++) {
      for (int r = 0; r < oh; r++) {
        for (int q = 0; q < ow; q++) {
          double sum = 0;
          for (int a = 0; a < 3; a++) {
            for (int b = 0; b < 3; b++) {
              int rr = r * stride + a - 1;
              int qq = q * stride + b - 1;
              if (rr >= 0 && rr < h && qq >= 0 && qq < w) {
                sum += taps[a] * taps[b] / 16.0 * in[(i * h + rr) * w + qq];
              }
            }
          }
          out[(i * oh + r) * ow + q] = (float) sum;
        }
      }
    }
    return out;
  }

  /** A 3 x 3 convolution with padding 1 and bias, weight (f, c, 3, 3). */
  private static float[] convByHand(
      float[] in, int n, int c, int h, int w, float[] weight, float[] bias, int f, int stride) {
    int oh = (h + 2 - 3) / stride + 1;
    int ow = (w + 2 - 3) / stride + 1;
    float[] out = new float[n * f * oh * ow];
    for (int s = 0; s < n; s++) {
      for (int o = 0; o < f; o++) {
        for (int r = 0; r < oh; r++) {
          for (int q = 0; q < ow; q++) {
            double sum = bias[o];
            for (int k = 0; k < c; k++) {
              for (int a = 0; a < 3; a++) {
                for (int b = 0; b < 3; b++) {
                  int rr = r * stride + a - 1;
                  int qq = q * stride + b - 1;
                  if (rr >= 0 && rr < h && qq >= 0 && qq < w) {
                    sum +=
                        (double) weight[((o * c + k) * 3 + a) * 3 + b]
                            * in[((s * c + k) * h + rr) * w + qq];
                  }
                }
              }
            }
            out[((s * f + o) * oh + r) * ow + q] = (float) sum;
          }
        }
      }
    }
    return out;
  }

  private float[] forward(Block block, NDArray x) {
    return block
        .forward(new ParameterStore(manager, false), new NDList(x), false)
        .singletonOrThrow()
        .toFloatArray();
  }

  /** Float sums in another order: within 1e-5 absolute plus 1e-5 relative. */
  private static void assertClose(float[] expected, float[] actual, String what) {
    assertEquals(expected.length, actual.length, what + " size");
    for (int i = 0; i < expected.length; i++) {
      double tolerance = 1e-5 + 1e-5 * Math.abs(expected[i]);
      assertEquals(expected[i], actual[i], tolerance, what + " element " + i);
    }
  }

  @Test
  void flagsSelectWhatIsReplaced() {
    initialize();
    BlurPool convsOnly = BlurPool.builder().optReplaceMaxpools(false).optBlurFirst(false).build();
    assertEquals(1, convsOnly.apply(SurgeryContext.of(net)).changes().size());
    assertFalse(assertInstanceOf(BlurConv2d.class, child(0)).isBlurFirst());
    assertSame(maxPool, child(4));

    BlurPool poolsOnly = BlurPool.builder().optReplaceConvs(false).build();
    assertFalse(poolsOnly.needsInitializedModel());
    SurgeryChanges report = poolsOnly.apply(SurgeryContext.of(net));
    assertEquals(
        List.of("BlurMaxPool2d"), report.changes().stream().map(c -> c.newType()).toList());
    assertInstanceOf(BlurMaxPool2d.class, child(4));
  }

  @Test
  void minChannelsDecidesWhichStridedConvsAreReplaced() {
    initialize();
    SurgeryChanges none =
        BlurPool.builder()
            .optMinChannels(64)
            .optReplaceMaxpools(false)
            .build()
            .apply(SurgeryContext.of(net));
    assertTrue(none.isEmpty());
    assertSame(conv1, child(0));

    SurgeryChanges all =
        BlurPool.builder()
            .optMinChannels(0)
            .optReplaceMaxpools(false)
            .build()
            .apply(SurgeryContext.of(net));
    assertEquals(Map.of("Conv2d->BlurConv2d", 2), all.countsByType());
    assertInstanceOf(BlurConv2d.class, child(0));
    assertInstanceOf(BlurConv2d.class, child(2));
    assertSame(conv3, child(3));
  }

  @Test
  void applyingTwiceChangesNothingTheSecondTime() {
    initialize();
    BlurPool blurPool = BlurPool.builder().optMinChannels(0).build();
    assertEquals(3, blurPool.apply(SurgeryContext.of(net)).changes().size());
    List<Block> after = List.copyOf(net.getChildren().values());
    String tree = net.toString();

    SurgeryChanges second = blurPool.apply(SurgeryContext.of(net));
    assertTrue(second.isEmpty(), second.changes().toString());
    assertEquals(after, List.copyOf(net.getChildren().values()));
    assertEquals(tree, net.toString());
  }

  @Test
  void uninitializedModelIsRefusedWhenMinChannelsNeedsShapes() {
    BlurPool blurPool = BlurPool.builder().build();
    assertTrue(blurPool.needsInitializedModel());
    SurgeryException e =
        assertThrows(SurgeryException.class, () -> blurPool.apply(SurgeryContext.of(net)));
    assertEquals("01Conv2d", e.getBlockPath());
    assertTrue(e.getMessage().contains("min_channels=16"), e.getMessage());
    assertSame(conv1, child(0));
    assertSame(maxPool, child(4));
  }

  @Test
  void uninitializedModelIsBlurredWhenMinChannelsIsZero() {
    BlurPool blurPool = BlurPool.builder().optMinChannels(0).build();
    assertFalse(blurPool.needsInitializedModel());
    SurgeryChanges report = blurPool.apply(SurgeryContext.of(net));
    assertEquals(
        Map.of("Conv2d->BlurConv2d", 2, "maxPool2d->BlurMaxPool2d", 1), report.countsByType());
    assertEquals(SurgeryChanges.UNKNOWN_PARAMETERS, report.parametersBefore()); // no shapes yet
    initialize();
    assertEquals(new Shape(2, 4), forward(manager.randomNormal(INPUT)).getShape());
    assertEquals(new Shape(8, 32, 3, 3), child(0).getParameters().get("weight").getShape());
  }

  @Test
  void invalidHyperparametersAreRejectedWithNameValueAndRange() {
    AlgorithmSpec spec = Algorithms.spec("blurpool");
    assertNotNull(spec, "blurpool must be registered");
    assertSame(BlurPool.SPEC, spec);

    IllegalArgumentException negative =
        assertThrows(IllegalArgumentException.class, () -> spec.create(Map.of("min_channels", -1)));
    assertMessage(negative, "min_channels", "-1", ">= 0");
    IllegalArgumentException notBoolean =
        assertThrows(
            IllegalArgumentException.class, () -> spec.create(Map.of("blur_first", "yes")));
    assertMessage(notBoolean, "blur_first", "yes", "true or false");
    IllegalArgumentException notInt =
        assertThrows(
            IllegalArgumentException.class, () -> spec.create(Map.of("min_channels", 2.5)));
    assertMessage(notInt, "min_channels", "2.5", "integer");
    IllegalArgumentException unknown =
        assertThrows(IllegalArgumentException.class, () -> spec.create(Map.of("min_channel", 3)));
    assertMessage(unknown, "min_channel", "min_channels");
    Map<String, Object> nothing = new HashMap<>();
    nothing.put("replace_convs", false);
    nothing.put("replace_maxpools", false);
    IllegalArgumentException both =
        assertThrows(IllegalArgumentException.class, () -> spec.create(nothing));
    assertMessage(both, "replace_convs", "replace_maxpools", "false");
    IllegalArgumentException builder =
        assertThrows(IllegalArgumentException.class, () -> BlurPool.builder().optMinChannels(-3));
    assertMessage(builder, "min_channels", "-3", ">= 0");
    IllegalArgumentException tooBig =
        assertThrows(
            IllegalArgumentException.class,
            () -> BlurPool.fromConfig(Map.of("min_channels", 1L << 40)));
    assertMessage(tooBig, "min_channels", String.valueOf(1L << 40));
  }

  @Test
  void configNamesDefaultsAndValues() {
    Algorithm defaults = Algorithms.spec("blurpool").create(Map.of());
    assertEquals("blurpool", defaults.name());
    assertEquals(
        List.of("replace_convs", "replace_maxpools", "blur_first", "min_channels"),
        List.copyOf(defaults.hyperparameters().keySet()));
    assertEquals(List.of(true, true, true, 16), List.copyOf(defaults.hyperparameters().values()));

    BlurPool custom =
        (BlurPool)
            Algorithms.spec("blurpool")
                .create(Map.of("blur_first", false, "min_channels", 3, "replace_maxpools", false));
    assertFalse(custom.isBlurFirst());
    assertFalse(custom.isReplaceMaxpools());
    assertTrue(custom.isReplaceConvs());
    assertEquals(3, custom.getMinChannels());
    assertEquals(
        "blurpool{replace_convs=true, replace_maxpools=false, blur_first=false, min_channels=3}",
        custom.toString());
  }

  @Test
  void replayedOnTheUninitializedArchitectureACheckpointLoadsIntoTheBlurredModel(@TempDir Path dir)
      throws Exception {
    initialize();
    BlurPool blurPool = BlurPool.builder().optMinChannels(0).build();
    try (Model saved = Model.newInstance("net")) {
      saved.setBlock(net);
      saved.save(dir, "net");
    }
    blurPool.apply(SurgeryContext.of(net));
    NDArray x = manager.randomNormal(INPUT);
    NDArray expected = forward(x);

    // a fresh copy of the original architecture, blurred before anything is initialized
    BlurPoolTest fresh = new BlurPoolTest();
    fresh.manager = manager;
    fresh.setUpNetwork();
    SurgeryChanges replay = blurPool.apply(SurgeryContext.of(fresh.net));
    assertEquals(3, replay.changes().size());
    try (Model loaded = Model.newInstance("net")) {
      loaded.setBlock(fresh.net);
      loaded.load(dir, "net");
      assertTrue(expected.allClose(fresh.forward(x), 1e-5, 1e-5, false));
    }
  }

  @Test
  void sameModelSameResult() {
    initialize();
    BlurPoolTest other = new BlurPoolTest();
    other.manager = manager;
    other.setUpNetwork();
    other.initialize();
    BlurPool blurPool = BlurPool.builder().optMinChannels(0).optBlurFirst(false).build();
    SurgeryChanges a = blurPool.apply(SurgeryContext.of(net));
    SurgeryChanges b = blurPool.apply(SurgeryContext.of(other.net));
    assertEquals(a.changes(), b.changes());
    assertEquals(net.toString(), other.net.toString());
  }

  @Test
  void parameterScalarsCountSharedParametersOnceAndUnknownShapesAsZero() {
    Block shared = Linear.builder().setUnits(3).build();
    SequentialBlock twice = new SequentialBlock().add(shared).add(shared);
    assertEquals(0, AbstractSurgeryAlgorithm.countParameterScalars(twice));
    twice.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
    assertEquals(4, twice.getParameters().size(), "DJL lists the shared weight and bias twice");
    assertEquals(3 * 3 + 3, AbstractSurgeryAlgorithm.countParameterScalars(twice));
  }

  private static void assertMessage(Exception e, String... parts) {
    for (String part : parts) {
      assertTrue(e.getMessage().contains(part), "'" + part + "' missing in: " + e.getMessage());
    }
  }

  private NDArray forward(NDArray x) {
    return net.forward(new ParameterStore(manager, false), new NDList(x), false).singletonOrThrow();
  }

  /** The getters tell the settings given, through the builder and through a config map. */
  @Test
  void theSettingsReadBackAsGiven() {
    BlurPool convsOnly =
        BlurPool.builder().optReplaceMaxpools(false).optBlurFirst(false).optMinChannels(3).build();
    assertEquals(
        List.of(true, false, false, 3),
        List.of(
            convsOnly.isReplaceConvs(),
            convsOnly.isReplaceMaxpools(),
            convsOnly.isBlurFirst(),
            convsOnly.getMinChannels()));
    BlurPool poolsOnly = BlurPool.fromConfig(Map.of("replace_convs", false, "min_channels", 8));
    assertEquals(
        List.of(false, true, true, 8),
        List.of(
            poolsOnly.isReplaceConvs(),
            poolsOnly.isReplaceMaxpools(),
            poolsOnly.isBlurFirst(),
            poolsOnly.getMinChannels()));
  }
}
