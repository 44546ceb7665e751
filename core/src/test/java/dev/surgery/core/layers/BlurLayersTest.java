package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The blur math, the output shapes and the weights of the BlurPool layers. */
class BlurLayersTest {

  private NDManager manager;

  @BeforeEach
  void setUp() {
    manager = NDManager.newBaseManager();
    manager.getEngine().setRandomSeed(11);
  }

  @AfterEach
  void tearDown() {
    manager.close();
  }

  // ------------------------------------------------------------------ the filter and the blur

  @Test
  void filterIsTheNormalizedOuterProductOfBinomialTaps() {
    float[] taps = {1, 2, 1};
    float[] kernel = BlurFilter.kernel();
    float sum = 0;
    for (int i = 0; i < 3; i++) {
      for (int j = 0; j < 3; j++) {
        assertEquals(taps[i] * taps[j] / 16f, kernel[i * 3 + j], 0f, "tap " + i + "," + j);
        sum += kernel[i * 3 + j];
      }
    }
    assertEquals(1f, sum, 1e-7f);

    NDArray filter = BlurFilter.create(manager, 5, DataType.FLOAT64);
    assertEquals(new Shape(5, 1, 3, 3), filter.getShape());
    assertEquals(DataType.FLOAT64, filter.getDataType());
    for (int c = 0; c < 5; c++) {
      float[] channel = filter.get(c).toType(DataType.FLOAT32, false).toFloatArray();
      assertArrayEquals(kernel, channel, 0f, "channel " + c);
    }
  }

  @Test
  void blurEqualsDirectZeroPaddedFilteringForEveryStride() {
    NDArray x = manager.randomNormal(new Shape(2, 3, 5, 6));
    BlurFilter blur = new BlurFilter();
    for (int s = 1; s <= 3; s++) {
      NDArray y = blur.blur(x, new Shape(s, s));
      float[] expected = directBlur(x, s);
      assertEquals(new Shape(2, 3, (5 - 1) / s + 1, (6 - 1) / s + 1), y.getShape(), "stride " + s);
      assertArrayEquals(expected, y.toFloatArray(), 1e-5f, "stride " + s);
    }
    // A constant image stays constant away from the zero-padded border.
    NDArray ones = manager.ones(new Shape(1, 2, 4, 4));
    NDArray blurredOnes = blur.blur(ones, new Shape(1, 1));
    assertEquals(1f, blurredOnes.get(0, 1, 1, 2).getFloat(), 1e-6f);
    assertEquals(9f / 16f, blurredOnes.get(0, 0, 0, 0).getFloat(), 1e-6f);
  }

  @Test
  void blurDoesNotIncreaseSpreadAndCachesOneFilterPerTypeAndChannels() {
    BlurFilter blur = new BlurFilter();
    NDArray x = manager.randomNormal(new Shape(4, 3, 16, 16));
    NDArray y = blur.blur(x, new Shape(1, 1));
    assertEquals(x.getShape(), y.getShape());
    assertTrue(
        y.sub(y.mean()).square().mean().getFloat() < x.sub(x.mean()).square().mean().getFloat());

    NDArray f1 = blur.filterFor(x);
    assertSame(f1, blur.filterFor(manager.zeros(new Shape(1, 3, 4, 4))));
    NDArray f2 = blur.filterFor(manager.zeros(new Shape(1, 3, 4, 4), DataType.FLOAT64));
    assertEquals(DataType.FLOAT64, f2.getDataType());
    assertEquals(
        new Shape(7, 1, 3, 3), blur.filterFor(manager.zeros(new Shape(1, 7, 4, 4))).getShape());
    // The cached filter outlives the manager of the input it was built for.
    NDArray cached;
    try (NDManager batch = manager.newSubManager()) {
      cached = blur.filterFor(batch.zeros(new Shape(1, 2, 4, 4)));
    }
    assertFalse(cached.isReleased());
    assertSame(cached, blur.filterFor(manager.zeros(new Shape(1, 2, 4, 4))));
    // Every blurring block shares the filters: replacing blocks again allocates nothing new.
    assertSame(cached, new BlurFilter().filterFor(manager.zeros(new Shape(1, 2, 4, 4))));
  }

  @Test
  void oneChannelIsAFilterAndNoChannelsOrTooManyAreRefused() {
    NDArray one = BlurFilter.create(manager, 1, DataType.FLOAT32);
    assertEquals(new Shape(1, 1, 3, 3), one.getShape());
    assertArrayEquals(BlurFilter.kernel(), one.toFloatArray(), 0f);
    assertThrows(
        IllegalArgumentException.class, () -> BlurFilter.create(manager, 0, DataType.FLOAT32));
    // 9 values per channel must fit one Java array.
    assertThrows(
        IllegalArgumentException.class,
        () -> BlurFilter.create(manager, Integer.MAX_VALUE / 9 + 1, DataType.FLOAT32));
  }

  @Test
  void aFilterOfAnotherTypeLeavesOnlyItselfOnItsManager() {
    try (NDManager owner = manager.newSubManager()) {
      NDArray filter = BlurFilter.create(owner, 4, DataType.FLOAT64);
      // The float32 array it was cast from is closed, not left on the manager until it closes.
      assertEquals(1, owner.getManagedArrays().size());
      assertSame(filter, owner.getManagedArrays().get(0));
    }
  }

  /**
   * A cached filter that was released (closed by whoever held it, or with its engine's memory) is
   * built again, not handed out released; the new one outlives the manager of the input that asked
   * for it and holds the [1,2,1] x [1,2,1] / 16 taps in every channel.
   */
  @Test
  void aReleasedCachedFilterIsBuiltAgainOutsideTheInputsManager() {
    BlurFilter blur = new BlurFilter();
    Shape shape = new Shape(1, 29, 5, 5); // a channel count no other test caches
    NDArray old = blur.filterFor(manager.zeros(shape));
    old.close();
    NDArray rebuilt;
    NDArray x;
    try (NDManager batch = manager.newSubManager()) {
      rebuilt = blur.filterFor(batch.zeros(shape));
    }
    assertFalse(rebuilt.isReleased());
    assertEquals(new Shape(29, 1, 3, 3), rebuilt.getShape());
    float[] kernel = BlurFilter.kernel();
    float[] values = rebuilt.toFloatArray();
    for (int i = 0; i < values.length; i++) {
      assertEquals(kernel[i % 9], values[i], 0f, "value " + i);
    }
    assertSame(rebuilt, blur.filterFor(manager.zeros(shape)));
    x = manager.randomNormal(shape);
    assertArrayEquals(directBlur(x, 1), blur.blur(x, new Shape(1, 1)).toFloatArray(), 1e-5f);
  }

  /**
   * {@code outputLength} is PyTorch's Conv2d output size, {@code floor((L + 2p - dilation (k - 1) -
   * 1) / s) + 1} with k = 3 and dilation 1, and the native depthwise convolution agrees with it.
   */
  @Test
  void outputLengthIsTheConvolutionFormulaOfPyTorch() {
    NDArray filter = BlurFilter.create(manager, 1, DataType.FLOAT32);
    for (int length = 1; length <= 9; length++) {
      for (int stride = 1; stride <= 3; stride++) {
        for (int padding = 0; padding <= 2; padding++) {
          if (length + 2 * padding < 3) {
            continue; // no output at all: PyTorch refuses it
          }
          long expected = (long) Math.floor((length + 2.0 * padding - 2 - 1) / stride) + 1;
          String where = "L " + length + ", s " + stride + ", p " + padding;
          assertEquals(expected, BlurFilter.outputLength(length, stride, padding), where);
          Shape out =
              BlurFilter.blurWith(
                      manager.zeros(new Shape(1, 1, length, 4)),
                      filter,
                      new Shape(stride, 1),
                      new Shape(padding, 1))
                  .getShape();
          assertEquals(expected, out.get(2), where);
        }
      }
    }
    assertThrows(IllegalArgumentException.class, () -> BlurFilter.outputLength(5, 0, 1));
    assertThrows(IllegalArgumentException.class, () -> BlurFilter.outputLength(5, 1, -1));
  }

  // ------------------------------------------------------------------ output shapes

  @Test
  void blurPool2dSubsamplesToCeilOfLengthOverStride() {
    for (long[] hw : new long[][] {{1, 1}, {3, 7}, {4, 4}, {5, 6}, {8, 8}}) {
      for (int s = 1; s <= 3; s++) {
        BlurPool2d block = BlurPool2d.of(s);
        Shape in = new Shape(2, 3, hw[0], hw[1]);
        Shape out = forward(block, manager.randomNormal(in)).getShape();
        Shape expected = new Shape(2, 3, ceilDiv(hw[0], s), ceilDiv(hw[1], s));
        assertEquals(expected, out, "input " + in + " stride " + s);
        assertEquals(expected, block.getOutputShapes(new Shape[] {in})[0]);
        assertTrue(block.getParameters().isEmpty());
      }
    }
    assertThrows(IllegalArgumentException.class, () -> BlurPool2d.of(0));
    assertThrows(IllegalArgumentException.class, () -> new BlurPool2d(new Shape(2)));
  }

  @Test
  void blurConv2dKeepsTheConvolutionOutputShape() {
    int cases = 0;
    for (long[] hw : new long[][] {{3, 3}, {3, 7}, {4, 4}, {5, 6}, {8, 8}}) {
      for (long[] k : new long[][] {{1, 1}, {1, 3}, {3, 3}}) {
        for (int s = 1; s <= 3; s++) {
          for (int p = 0; p <= 1; p++) {
            for (boolean blurFirst : new boolean[] {true, false}) {
              Conv2d conv =
                  Conv2d.builder()
                      .setKernelShape(new Shape(k))
                      .optStride(new Shape(s, s))
                      .optPadding(new Shape(p, p))
                      .setFilters(4)
                      .build();
              Shape in = new Shape(2, 3, hw[0], hw[1]);
              conv.initialize(manager, DataType.FLOAT32, in);
              NDArray x = manager.randomNormal(in);
              Shape expected = forward(conv, x).getShape();
              BlurConv2d blurConv = BlurConv2d.fromConv2d(conv, blurFirst);
              String what = "input " + in + " kernel " + new Shape(k) + " s" + s + " p" + p;
              assertEquals(expected, forward(blurConv, x).getShape(), what + " " + blurFirst);
              assertEquals(expected, blurConv.getOutputShapes(new Shape[] {in})[0], what);
              cases++;
            }
          }
        }
      }
    }
    assertEquals(180, cases);
  }

  @Test
  void blurMaxPool2dKeepsTheMaxPoolOutputShapeInFloorAndCeilMode() {
    int cases = 0;
    for (long[] hw : new long[][] {{3, 3}, {3, 7}, {4, 4}, {5, 6}, {8, 9}}) {
      for (long[] k : new long[][] {{1, 1}, {1, 3}, {2, 2}, {3, 3}}) {
        for (int s = 1; s <= 3; s++) {
          for (int p = 0; p <= 1; p++) {
            if (2 * p > Math.min(k[0], k[1])) {
              continue; // PyTorch allows padding up to half the window only
            }
            for (boolean ceil : new boolean[] {false, true}) {
              Shape kernel = new Shape(k);
              Block pool = Pool.maxPool2dBlock(kernel, new Shape(s, s), new Shape(p, p), ceil);
              Shape in = new Shape(1, 2, hw[0], hw[1]);
              NDArray x = manager.randomNormal(in);
              Shape expected = forward(pool, x).getShape();
              BlurMaxPool2d blurPool = BlurMaxPool2d.fromMaxPool2d(pool);
              String what = in + " kernel " + kernel + " s" + s + " p" + p + " ceil " + ceil;
              assertEquals(expected, forward(blurPool, x).getShape(), what);
              assertEquals(expected, blurPool.getOutputShapes(new Shape[] {in})[0], what);
              cases++;
            }
          }
        }
      }
    }
    assertTrue(cases > 150, "cases " + cases);
  }

  @Test
  void blurMaxPool2dReadsThePoolArguments() {
    BlurMaxPool2d block =
        BlurMaxPool2d.fromMaxPool2d(
            Pool.maxPool2dBlock(new Shape(3, 3), new Shape(2, 2), new Shape(1, 1), true));
    assertEquals(new Shape(3, 3), block.getKernelShape());
    assertEquals(new Shape(2, 2), block.getStride());
    assertEquals(new Shape(1, 1), block.getPadding());
    assertTrue(block.isCeilMode());
    assertEquals(
        new Shape(2, 2),
        BlurMaxPool2d.fromMaxPool2d(Pool.maxPool2dBlock(new Shape(2, 2))).getStride());
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> BlurMaxPool2d.fromMaxPool2d(Pool.avgPool2dBlock(new Shape(2, 2))));
    assertTrue(e.getMessage().contains("maxPool2d"), e.getMessage());
  }

  @Test
  void blurMaxPool2dIsMaxPoolThenStridedBlur() {
    NDArray x = manager.randomNormal(new Shape(2, 3, 7, 8));
    BlurMaxPool2d block =
        new BlurMaxPool2d(new Shape(3, 3), new Shape(2, 2), new Shape(1, 1), false);
    NDArray dense = Pool.maxPool2d(x, new Shape(3, 3), new Shape(1, 1), new Shape(1, 1), false);
    float[] expected = directBlur(dense, 2);
    assertArrayEquals(expected, forward(block, x).toFloatArray(), 1e-5f);
  }

  @Test
  void ceilModeBlursTheZeroExtendedPooledMap() {
    // 7 rows, window 2, stride 2: floor mode gives 3 rows, ceil mode 4 (a last partial window);
    // 6 columns give 3 outputs in both modes.
    NDArray x = manager.randomNormal(new Shape(1, 2, 7, 6));
    NDArray dense = Pool.maxPool2d(x, new Shape(2, 2), new Shape(1, 1), new Shape(0, 0), false);
    assertEquals(new Shape(1, 2, 6, 5), dense.getShape());
    BlurMaxPool2d block =
        new BlurMaxPool2d(new Shape(2, 2), new Shape(2, 2), new Shape(0, 0), true);
    NDArray extended = dense.concat(manager.zeros(new Shape(1, 2, 1, 5)), 2);
    NDArray actual = forward(block, x);
    assertEquals(new Shape(1, 2, 4, 3), actual.getShape());
    assertArrayEquals(directBlur(extended, 2), actual.toFloatArray(), 1e-5f);

    // the same along the columns: transpose the input, and the output is the transposed output
    NDArray xt = x.transpose(0, 1, 3, 2);
    NDArray actualT = forward(block, xt);
    assertEquals(new Shape(1, 2, 3, 4), actualT.getShape());
    assertArrayEquals(actual.transpose(0, 1, 3, 2).toFloatArray(), actualT.toFloatArray(), 1e-5f);
  }

  // ------------------------------------------------------------------ BlurConv2d numerics

  @Test
  void blurFirstEqualsConvolutionOfTheBlurredInput() {
    Conv2d conv = stridedConv(true);
    NDArray x = manager.randomNormal(new Shape(2, 4, 9, 8));
    conv.initialize(manager, DataType.FLOAT32, x.getShape());
    NDArray weight = conv.getParameters().get("weight").getArray();
    NDArray bias = conv.getParameters().get("bias").getArray();

    NDArray blurred = manager.create(directBlur(x, 1), x.getShape());
    NDArray expected =
        Conv2d.conv2d(
                blurred, weight, bias, conv.getStride(), conv.getPadding(), conv.getDilation())
            .singletonOrThrow();
    NDArray actual = forward(BlurConv2d.fromConv2d(conv, true), x);
    assertEquals(expected.getShape(), actual.getShape());
    assertArrayEquals(expected.toFloatArray(), actual.toFloatArray(), 1e-5f);
    // and it is not the plain convolution
    assertFalse(forward(conv, x).allClose(actual, 1e-3, 1e-3, false));
  }

  @Test
  void pointwiseBlurFirstEqualsBlurringEverywhereForwardAndBackward() {
    // A 1 x 1 strided convolution (ResNet's downsampling shortcut) blurs only where its stride
    // lands; values and input gradients must be those of blurring every position first. Padding p
    // moves the positions read to i * s - p, which a strided blur does not produce, so a padded
    // 1 x 1 convolution (on either axis) must keep blurring everywhere.
    // {stride h, stride w, padding h, padding w, dilation, groups, weight standardized}
    int[][] cases = {
      {2, 2, 0, 0, 1, 1, 0},
      {3, 3, 0, 0, 1, 1, 0},
      {2, 1, 0, 0, 1, 1, 0},
      {1, 2, 0, 0, 1, 1, 0},
      {2, 2, 1, 1, 1, 1, 0},
      {2, 2, 0, 1, 1, 1, 0},
      {2, 2, 0, 0, 2, 1, 0},
      {2, 2, 0, 0, 1, 2, 0},
      {2, 2, 0, 0, 1, 1, 1}
    };
    for (int[] c : cases) {
      Conv2d conv =
          Conv2d.builder()
              .setKernelShape(new Shape(1, 1))
              .optStride(new Shape(c[0], c[1]))
              .optPadding(new Shape(c[2], c[3]))
              .optDilation(new Shape(c[4], c[4]))
              .optGroups(c[5])
              .setFilters(4)
              .build();
      NDArray x = manager.randomNormal(new Shape(2, 4, 9, 8));
      conv.initialize(manager, DataType.FLOAT32, x.getShape());
      NDArray stored = conv.getParameters().get("weight").getArray();
      NDArray bias = conv.getParameters().get("bias").getArray();
      boolean standardized = c[6] == 1;
      NDArray weight = standardized ? WeightStandardizedConv2d.standardize(stored) : stored;
      BlurConv2d blurConv = BlurConv2d.fromConv2d(conv, true);
      if (standardized) {
        blurConv = blurConv.withWeightStandardization();
      }
      String label = java.util.Arrays.toString(c);
      boolean pointwise = c[2] == 0 && c[3] == 0;
      assertEquals(pointwise ? conv.getStride() : new Shape(1, 1), blurConv.getBlurStride(), label);

      // The definition: a stride-1 blur, then the convolution at its own stride.
      java.util.function.UnaryOperator<NDArray> convolve =
          blurred ->
              Conv2d.conv2d(
                      blurred,
                      weight,
                      bias,
                      conv.getStride(),
                      conv.getPadding(),
                      conv.getDilation(),
                      conv.getGroups())
                  .singletonOrThrow();
      NDArray expected = convolve.apply(manager.create(directBlur(x, 1), x.getShape()));
      NDArray actual = forward(blurConv, x);
      assertEquals(expected.getShape(), actual.getShape(), label);
      assertArrayEquals(expected.toFloatArray(), actual.toFloatArray(), 1e-5f, label);

      // The oracle's gradient: autograd through the definition, against a random upstream
      // gradient.
      NDArray upstream = manager.randomNormal(expected.getShape());
      NDArray oracleX = x.duplicate();
      NDArray ourX = x.duplicate();
      oracleX.setRequiresGradient(true);
      ourX.setRequiresGradient(true);
      try (GradientCollector collector = manager.getEngine().newGradientCollector()) {
        NDArray definition =
            convolve.apply(
                BlurFilter.blurWith(
                    oracleX,
                    BlurFilter.create(manager, 4, DataType.FLOAT32),
                    new Shape(1, 1),
                    BlurFilter.SAME_PADDING));
        collector.backward(definition.mul(upstream).sum());
      }
      try (GradientCollector collector = manager.getEngine().newGradientCollector()) {
        collector.backward(forward(blurConv, ourX).mul(upstream).sum());
      }
      assertArrayEquals(
          oracleX.getGradient().toFloatArray(), ourX.getGradient().toFloatArray(), 1e-5f, label);
    }
    // After the convolution, the blur always runs at the convolution's stride.
    Conv2d last =
        Conv2d.builder()
            .setKernelShape(new Shape(1, 1))
            .optStride(new Shape(2, 2))
            .setFilters(4)
            .build();
    assertEquals(new Shape(2, 2), BlurConv2d.fromConv2d(last, false).getBlurStride());
  }

  @Test
  void blurLastEqualsStridedBlurOfTheDenseConvolution() {
    Conv2d conv = stridedConv(false);
    NDArray x = manager.randomNormal(new Shape(2, 4, 9, 8));
    conv.initialize(manager, DataType.FLOAT32, x.getShape());
    NDArray weight = conv.getParameters().get("weight").getArray();
    NDArray dense =
        Conv2d.conv2d(x, weight, null, new Shape(1, 1), conv.getPadding(), conv.getDilation())
            .singletonOrThrow();
    float[] expected = directBlur(dense, 2);
    NDArray actual = forward(BlurConv2d.fromConv2d(conv, false), x);
    assertArrayEquals(expected, actual.toFloatArray(), 1e-5f);
  }

  @Test
  void fromConv2dAdoptsTheConvolutionsParameterObjectsAndConfiguration() {
    Conv2d conv =
        Conv2d.builder()
            .setKernelShape(new Shape(3, 3))
            .optStride(new Shape(2, 1))
            .optPadding(new Shape(1, 0))
            .optDilation(new Shape(1, 2))
            .optGroups(2)
            .setFilters(6)
            .build();
    Shape in = new Shape(1, 4, 9, 9);
    conv.initialize(manager, DataType.FLOAT32, in);
    BlurConv2d blurConv = BlurConv2d.fromConv2d(conv, true);
    assertSame(conv.getParameters().get("weight"), blurConv.getParameters().get("weight"));
    assertSame(conv.getParameters().get("bias"), blurConv.getParameters().get("bias"));
    assertEquals(conv.getParameters().keys(), blurConv.getParameters().keys());
    assertTrue(blurConv.isInitialized());
    assertArrayEquals(conv.getInputShapes(), blurConv.getInputShapes());
    assertEquals(conv.getStride(), blurConv.getStride());
    assertEquals(conv.getPadding(), blurConv.getPadding());
    assertEquals(conv.getDilation(), blurConv.getDilation());
    assertEquals(conv.getGroups(), blurConv.getGroups());
    assertEquals(conv.getFilters(), blurConv.getFilters());
    assertTrue(blurConv.isBlurFirst());
    assertTrue(blurConv.toString().startsWith("BlurConv2d"), blurConv.toString());

    Conv2d noBias =
        Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(2).optBias(false).build();
    BlurConv2d fresh = BlurConv2d.fromConv2d(noBias, false);
    assertFalse(fresh.isInitialized());
    assertEquals(List.of("weight"), fresh.getParameters().keys());
    assertSame(noBias.getParameters().get("weight"), fresh.getParameters().get("weight"));
    fresh.initialize(manager, DataType.FLOAT32, new Shape(1, 3, 4, 4));
    assertEquals(new Shape(2, 3, 1, 1), noBias.getParameters().get("weight").getShape());
  }

  @Test
  void builderMakesAnUninitializedBlurConv() {
    BlurConv2d block =
        BlurConv2d.blurBuilder()
            .setKernelShape(new Shape(3, 3))
            .setFilters(5)
            .optStride(new Shape(2, 2))
            .optPadding(new Shape(1, 1))
            .optBlurFirst(false)
            .build();
    assertFalse(block.isBlurFirst());
    block.initialize(manager, DataType.FLOAT32, new Shape(1, 2, 6, 6));
    assertEquals(
        new Shape(1, 5, 3, 3), forward(block, manager.ones(new Shape(1, 2, 6, 6))).getShape());
    assertThrows(
        IllegalArgumentException.class,
        () -> BlurConv2d.blurBuilder().setKernelShape(new Shape(3, 3)).build());
  }

  // ------------------------------------------------------------------ helpers

  private Conv2d stridedConv(boolean bias) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optStride(new Shape(2, 2))
        .optPadding(new Shape(1, 1))
        .setFilters(3)
        .optBias(bias)
        .build();
  }

  private NDArray forward(Block block, NDArray x) {
    if (!block.isInitialized()) {
      block.initialize(manager, DataType.FLOAT32, x.getShape());
    }
    return block
        .forward(new ParameterStore(manager, false), new NDList(x), false)
        .singletonOrThrow();
  }

  private static long ceilDiv(long a, long b) {
    return (a + b - 1) / b;
  }

  /**
   * Blurs an NCHW array the slow way: each output is the 3 x 3 weighted sum around its input
   * position, with values outside the image taken as zero.
   */
  static float[] directBlur(NDArray x, int stride) {
    long[] s = x.getShape().getShape();
    float[] in = x.toType(DataType.FLOAT32, false).toFloatArray();
    float[][] k = {{1, 2, 1}, {2, 4, 2}, {1, 2, 1}};
    int n = (int) s[0];
    int c = (int) s[1];
    int h = (int) s[2];
    int w = (int) s[3];
    int oh = (h - 1) / stride + 1;
    int ow = (w - 1) / stride + 1;
    List<Float> out = new ArrayList<>();
    for (int b = 0; b < n; b++) {
      for (int ch = 0; ch < c; ch++) {
        for (int i = 0; i < oh; i++) {
          for (int j = 0; j < ow; j++) {
            float sum = 0;
            for (int a = 0; a < 3; a++) {
              for (int d = 0; d < 3; d++) {
                int r = i * stride + a - 1;
                int q = j * stride + d - 1;
                if (r >= 0 && r < h && q >= 0 && q < w) {
                  sum += k[a][d] / 16f * in[((b * c + ch) * h + r) * w + q];
                }
              }
            }
            out.add(sum);
          }
        }
      }
    }
    float[] result = new float[out.size()];
    for (int i = 0; i < result.length; i++) {
      result[i] = out.get(i);
    }
    return result;
  }
}
