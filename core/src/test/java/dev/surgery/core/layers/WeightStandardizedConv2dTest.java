package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class WeightStandardizedConv2dTest {

  private NDManager manager;

  @BeforeEach
  void setUp() {
    manager = NDManager.newBaseManager();
    Engine.getInstance().setRandomSeed(11);
  }

  @AfterEach
  void tearDown() {
    manager.close();
  }

  private Conv2d conv(int filters, int groups, boolean bias) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optPadding(new Shape(1, 1))
        .optStride(new Shape(2, 1))
        .setFilters(filters)
        .optGroups(groups)
        .optBias(bias)
        .build();
  }

  /** Standardizes (out, fanIn) rows in double precision. */
  private static float[] standardizeDirect(float[] w, int out) {
    int fan = w.length / out;
    float[] res = new float[w.length];
    for (int o = 0; o < out; o++) {
      double mean = 0;
      for (int i = 0; i < fan; i++) {
        mean += w[o * fan + i];
      }
      mean /= fan;
      double var = 0;
      for (int i = 0; i < fan; i++) {
        double d = w[o * fan + i] - mean;
        var += d * d;
      }
      var /= fan;
      for (int i = 0; i < fan; i++) {
        res[o * fan + i] = (float) ((w[o * fan + i] - mean) / Math.sqrt(var + 1e-10));
      }
    }
    return res;
  }

  @Test
  void forwardLeavesNothingOnTheModelsManager() {
    try (NDManager model = NDManager.newBaseManager()) {
      Conv2d conv = Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).build();
      conv.initialize(model, DataType.FLOAT32, new Shape(2, 3, 6, 6));
      WeightStandardizedConv2d ws = WeightStandardizedConv2d.from(conv);
      int before = model.getManagedArrays().size();
      for (int i = 0; i < 5; i++) {
        try (NDManager batch = model.newSubManager()) {
          ws.forward(
              new ParameterStore(batch, false),
              new NDList(batch.ones(new Shape(2, 3, 6, 6))),
              true);
        }
      }
      assertEquals(
          before,
          model.getManagedArrays().size(),
          "per-batch arrays must not accumulate on the model's manager");
    }
  }

  @Test
  void standardizeMatchesDirectComputation() {
    NDArray w = manager.randomNormal(new Shape(4, 3, 2, 2)).mul(3).add(1.5f);
    float[] expected = standardizeDirect(w.toFloatArray(), 4);
    assertArrayEquals(expected, WeightStandardizedConv2d.standardize(w).toFloatArray(), 1e-5f);
  }

  /**
   * In float32, a constant filter standardizes to exactly zero, whatever its value and fan-in
   * (float32's rounded mean once made 100.1 come out near +-0.84 and 12345.678 near +-1), and a
   * nearly constant one matches the double-precision formula.
   */
  @Test
  void constantFiltersStandardizeToZero() {
    float[] constants = {0.1f, 1.1f, 10.1f, 100.1f, 1000.1f, 12345.678f, -3.3f};
    for (Shape shape : new Shape[] {new Shape(4, 64, 3, 3), new Shape(3, 3, 3, 3)}) {
      int out = (int) shape.get(0);
      int fan = (int) (shape.size() / out);
      for (float c : constants) {
        float[] values = new float[(int) shape.size()];
        java.util.Arrays.fill(values, c);
        // The last filter: constant but for one weight a few float steps above.
        values[values.length - 1] = Math.nextUp(Math.nextUp(c));
        NDArray w = manager.create(values, shape);
        float[] actual = WeightStandardizedConv2d.standardize(w).toFloatArray();
        float[] expected = standardizeDirect(values, out);
        for (int i = 0; i < (out - 1) * fan; i++) {
          assertEquals(0f, actual[i], 0f, "constant " + c + ", " + shape + ", element " + i);
        }
        assertArrayEquals(expected, actual, 1e-4f, "constant " + c + ", " + shape);
      }
    }
  }

  /**
   * A float64 filter standardizes with 1e-10 in double precision, as the formula reads: where the
   * variance is near 1e-10 (weights of standard deviation 1e-5 and 3e-6) the float constant
   * 1.0000000134e-10 moved every value by up to 6.7e-9 of itself (an outside numpy probe: 5.4e-9
   * off an exact oracle). Against the formula in double precision, to 1e-13.
   */
  @Test
  void doublePrecisionFiltersUseTheDoublePrecisionEpsilon() {
    java.util.Random random = new java.util.Random(4);
    for (double scale : new double[] {1e-5, 3e-6, 1.0}) {
      int out = 3;
      int fan = 18;
      double[] w = new double[out * fan];
      for (int i = 0; i < w.length; i++) {
        w[i] = scale * (random.nextGaussian() + (i < fan ? 0 : 50));
      }
      double[] actual =
          WeightStandardizedConv2d.standardize(manager.create(w, new Shape(out, 2, 3, 3)))
              .toDoubleArray();
      for (int o = 0; o < out; o++) {
        double mean = 0;
        for (int i = 0; i < fan; i++) {
          mean += w[o * fan + i] / fan;
        }
        double var = 0;
        for (int i = 0; i < fan; i++) {
          var += (w[o * fan + i] - mean) * (w[o * fan + i] - mean) / fan;
        }
        for (int i = 0; i < fan; i++) {
          double expected = (w[o * fan + i] - mean) / Math.sqrt(var + 1e-10);
          assertEquals(
              expected,
              actual[o * fan + i],
              1e-13,
              "scale " + scale + ", element " + (o * fan + i));
        }
      }
    }
  }

  /**
   * Filters whose sums, differences or squares pass the type's largest value (float16 weights of
   * +-40,000 and +-60,000, float32 of +-1.5e38, a constant 3.8e37) give the formula's values: a
   * first version of the constant-filter fix shifted each filter by its first weight, and the
   * difference overflowed to NaN (a reviewer), as the sum of a mean still did before each filter
   * was brought to unit range.
   */
  @Test
  void filtersSpanningMoreThanTheLargestValueStayFinite() {
    float[] wide = {40000f, -40000f, 40000f, -40000f, 40000f, -40000f, 40000f, -40000f};
    NDArray half = manager.create(wide, new Shape(2, 1, 2, 2)).toType(DataType.FLOAT16, false);
    float[] halfOut =
        WeightStandardizedConv2d.standardize(half).toType(DataType.FLOAT32, false).toFloatArray();
    assertArrayEquals(standardizeDirect(wide, 2), halfOut, 5e-3f);

    // A reviewer: odd fan-ins, so the mean is not 0, and sums that overflow.
    float[] odd = new float[9];
    for (int i = 0; i < odd.length; i++) {
      odd[i] = i % 2 == 0 ? 60000f : -60000f;
    }
    NDArray oddHalf = manager.create(odd, new Shape(1, 1, 3, 3)).toType(DataType.FLOAT16, false);
    assertArrayEquals(
        standardizeDirect(odd, 1),
        WeightStandardizedConv2d.standardize(oddHalf)
            .toType(DataType.FLOAT32, false)
            .toFloatArray(),
        5e-3f);

    float[] huge = {1.5e38f, -1.5e38f, 1.5e38f, -1.5e38f, 1.5e38f, -1.5e38f, 1e38f, 3e38f, -3e38f};
    assertArrayEquals(
        standardizeDirect(huge, 1),
        WeightStandardizedConv2d.standardize(manager.create(huge, new Shape(1, 1, 3, 3)))
            .toFloatArray(),
        1e-5f);
    float[] constant = new float[9];
    java.util.Arrays.fill(constant, 3.8e37f);
    float[] out =
        WeightStandardizedConv2d.standardize(manager.create(constant, new Shape(1, 1, 3, 3)))
            .toFloatArray();
    for (float v : out) {
      assertEquals(0f, v, 0f, java.util.Arrays.toString(out));
    }
  }

  /**
   * In float16, where 1e-10 is zero, a constant filter (variance zero) standardizes to zero as in
   * float32, not to 0/0; a filter of spread weights matches the double-precision formula to
   * float16's resolution.
   */
  @Test
  void halfPrecisionConstantFilterStandardizesToZero() {
    float[] values = new float[2 * 27];
    java.util.Arrays.fill(values, 0, 27, 0.3f); // filter 0: constant
    for (int i = 27; i < values.length; i++) {
      values[i] = (i % 7) * 0.25f - 0.5f;
    }
    NDArray w = manager.create(values, new Shape(2, 3, 3, 3)).toType(DataType.FLOAT16, false);
    float[] actual =
        WeightStandardizedConv2d.standardize(w).toType(DataType.FLOAT32, false).toFloatArray();
    float[] expected = standardizeDirect(w.toType(DataType.FLOAT32, false).toFloatArray(), 2);
    for (int i = 0; i < actual.length; i++) {
      assertTrue(Float.isFinite(actual[i]), "element " + i + " is " + actual[i]);
    }
    assertArrayEquals(
        java.util.Arrays.copyOf(expected, 27), java.util.Arrays.copyOf(actual, 27), 0f);
    assertArrayEquals(expected, actual, 5e-3f);
  }

  /**
   * In float16, a filter reaching the largest half value (65504, whose log2 rounds up to 16 in
   * float16) matches the double-precision formula: the power of two it is first divided by is taken
   * in float32, 2^15, not 2^16 (infinite in float16, which would zero the filter).
   */
  @Test
  void halfPrecisionFilterAtTheLargestHalfValueStandardizes() {
    float[] values = {65504f, -65504f, 0f, 32768f, -1024f, 16384f, 8f, -40000f};
    NDArray w = manager.create(values, new Shape(1, 2, 2, 2)).toType(DataType.FLOAT16, false);
    float[] actual =
        WeightStandardizedConv2d.standardize(w).toType(DataType.FLOAT32, false).toFloatArray();
    float[] expected = standardizeDirect(w.toType(DataType.FLOAT32, false).toFloatArray(), 1);
    assertArrayEquals(expected, actual, 5e-3f);
  }

  /**
   * In float16, small filters (std 0.01, and one nearly constant) train: the gradient through the
   * standardization is finite and matches the float32 gradient of the same weights to float16's
   * resolution (the variance's backward alone would overflow float16 without the scaling).
   */
  @Test
  void halfPrecisionSmallFiltersHaveTheFloat32Gradient() {
    float[] values =
        manager.randomNormal(0f, 0.01f, new Shape(3, 2, 3, 3), DataType.FLOAT32).toFloatArray();
    java.util.Arrays.fill(values, 0, 18, 0.1f); // filter 0: nearly constant
    values[5] = 0.11f;
    float[] upstream = manager.randomNormal(new Shape(3, 2, 3, 3)).toFloatArray();
    float[] half = standardizeGradient(values, upstream, DataType.FLOAT16);
    float[] full = standardizeGradient(values, upstream, DataType.FLOAT32);
    float largest = 0;
    for (float g : full) {
      largest = Math.max(largest, Math.abs(g));
    }
    for (int i = 0; i < half.length; i++) {
      assertTrue(Float.isFinite(half[i]), "element " + i + " is " + half[i]);
      assertEquals(full[i], half[i], 2e-2f * largest, "element " + i);
    }
  }

  /** d(sum(standardize(w) * upstream))/dw, computed in the given type, returned in float32. */
  private float[] standardizeGradient(float[] values, float[] upstream, DataType type) {
    NDArray w = manager.create(values, new Shape(3, 2, 3, 3)).toType(type, false);
    NDArray g = manager.create(upstream, new Shape(3, 2, 3, 3)).toType(type, false);
    w.setRequiresGradient(true);
    try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
      collector.backward(WeightStandardizedConv2d.standardize(w).mul(g).sum());
    }
    return w.getGradient().toType(DataType.FLOAT32, false).toFloatArray();
  }

  @Test
  void forwardUsesStandardizedWeightAndKeepsParameters() {
    Conv2d original = conv(4, 2, true);
    Shape in = new Shape(2, 4, 6, 5);
    original.initialize(manager, DataType.FLOAT32, in);
    original.getParameters().get("bias").getArray().set(new float[] {0.5f, -1f, 2f, 0.25f});
    float[] weightBefore = original.getParameters().get("weight").getArray().toFloatArray();

    WeightStandardizedConv2d ws = WeightStandardizedConv2d.from(original);
    assertSame(original.getParameters().get("weight"), ws.getParameters().get("weight"));
    assertSame(original.getParameters().get("bias"), ws.getParameters().get("bias"));
    assertTrue(ws.isInitialized(), "adopting initialized parameters gives an initialized block");
    assertArrayEquals(original.getInputShapes(), ws.getInputShapes());
    // Standardizing again would standardize twice: it is already the standardized convolution.
    assertSame(ws, ws.withWeightStandardization());

    NDArray x = manager.randomNormal(in);
    ParameterStore ps = new ParameterStore(manager, false);
    NDArray actual = ws.forward(ps, new NDList(x), false).singletonOrThrow();

    Conv2d reference = conv(4, 2, true);
    reference.initialize(manager, DataType.FLOAT32, in);
    reference.getParameters().get("weight").getArray().set(standardizeDirect(weightBefore, 4));
    reference
        .getParameters()
        .get("bias")
        .getArray()
        .set(original.getParameters().get("bias").getArray().toFloatArray());
    NDArray expected = reference.forward(ps, new NDList(x), false).singletonOrThrow();
    assertEquals(expected.getShape(), actual.getShape());
    assertArrayEquals(expected.toFloatArray(), actual.toFloatArray(), 1e-4f);
    // The stored weight itself is untouched: only the forward pass sees the standardized one.
    assertArrayEquals(
        weightBefore, original.getParameters().get("weight").getArray().toFloatArray(), 0f);
  }

  @Test
  void gradientIgnoresShiftAndScaleOfEachFilter() {
    Conv2d original = conv(3, 1, false);
    Shape in = new Shape(2, 2, 5, 5);
    original.initialize(manager, DataType.FLOAT32, in);
    WeightStandardizedConv2d ws = WeightStandardizedConv2d.from(original);
    NDArray x = manager.randomNormal(in);
    NDArray w = ws.getParameters().get("weight").getArray();
    try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
      NDArray y = ws.forward(new ParameterStore(manager, false), new NDList(x), true).head();
      gc.backward(y.mul(y).sum());
    }
    float[] grad = w.getGradient().toFloatArray();
    float[] weight = w.toFloatArray();
    int fan = grad.length / 3;
    boolean anyNonZero = false;
    for (int o = 0; o < 3; o++) {
      double sum = 0;
      double dot = 0;
      double norm = 0;
      for (int i = 0; i < fan; i++) {
        sum += grad[o * fan + i];
        dot += grad[o * fan + i] * weight[o * fan + i];
        norm += Math.abs(grad[o * fan + i]);
        anyNonZero |= grad[o * fan + i] != 0;
      }
      // The output does not change when a filter is shifted or scaled, so neither direction has
      // a gradient component.
      assertEquals(0, sum / norm, 1e-4, "shift component of filter " + o);
      double shifted = 0;
      for (int i = 0; i < fan; i++) {
        shifted += weight[o * fan + i];
      }
      double mean = shifted / fan;
      assertEquals(0, (dot - mean * sum) / norm, 1e-3, "scale component of filter " + o);
    }
    assertTrue(anyNonZero);
  }

  /**
   * The weight gradient is the derivative of the formula itself, {@code dL/dW = (g - mean(g)) / s -
   * c mean(g c) / s^3} per filter ({@code c = W - mean(W)}, {@code s = sqrt(var(W) + 1e-10)},
   * {@code g = dL/dW'}), for an ordinary filter and for the ones the forward pass rescales first
   * (an offset of 3000, a spread of 1e-4, where the epsilon is 1 % of the variance, and a constant
   * one): the rescaling and the constant first mean carry no gradient and change none. The test
   * above checks only that the gradient has no shift or scale component, on ordinary weights; this
   * one checks its values (an outside probe's numpy gradient agreed to 2.9e-7 relative).
   */
  @Test
  void weightGradientIsTheDerivativeOfTheFormula() {
    // A 3 x 3 kernel on 3 x 3 inputs without padding: each output is one dot product, so
    // dL/dW'[o] = sum_n G[n][o] x[n] in the weight's own (c, kh, kw) order.
    int n = 3;
    int in = 2;
    int out = 4;
    int fan = in * 9;
    Conv2d conv = Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(out).build();
    conv.initialize(manager, DataType.FLOAT32, new Shape(n, in, 3, 3));
    Random random = new Random(3);
    float[] w = new float[out * fan];
    for (int i = 0; i < fan; i++) {
      w[i] = (float) (0.5 * random.nextGaussian());
      w[fan + i] = (float) (3000 + 100 * random.nextGaussian());
      w[2 * fan + i] = (float) (1e-4 * random.nextGaussian());
      w[3 * fan + i] = 0.37f;
    }
    float[] x = new float[n * fan];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) random.nextGaussian();
    }
    float[] coefficients = new float[n * out];
    for (int i = 0; i < coefficients.length; i++) {
      coefficients[i] = (float) random.nextGaussian();
    }
    conv.getParameters().get("weight").getArray().set(w);
    WeightStandardizedConv2d ws = WeightStandardizedConv2d.from(conv);
    NDArray weight = ws.getParameters().get("weight").getArray();
    try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
      NDArray y =
          ws.forward(
                  new ParameterStore(manager, false),
                  new NDList(manager.create(x, new Shape(n, in, 3, 3))),
                  true)
              .head();
      gc.backward(y.mul(manager.create(coefficients, new Shape(n, out, 1, 1))).sum());
    }
    float[] actual = weight.getGradient().toFloatArray();
    for (int o = 0; o < out; o++) {
      double[] g = new double[fan];
      for (int k = 0; k < fan; k++) {
        for (int s = 0; s < n; s++) {
          g[k] += (double) coefficients[s * out + o] * x[s * fan + k];
        }
      }
      double mean = 0;
      double meanG = 0;
      for (int k = 0; k < fan; k++) {
        mean += w[o * fan + k];
        meanG += g[k];
      }
      mean /= fan;
      meanG /= fan;
      double var = 0;
      double meanGc = 0;
      for (int k = 0; k < fan; k++) {
        double c = w[o * fan + k] - mean;
        var += c * c;
        meanGc += g[k] * c;
      }
      var /= fan;
      meanGc /= fan;
      double s = Math.sqrt(var + 1e-10);
      double largest = 0;
      double[] expected = new double[fan];
      for (int k = 0; k < fan; k++) {
        double c = w[o * fan + k] - mean;
        expected[k] = (g[k] - meanG) / s - c * meanGc / (s * s * s);
        largest = Math.max(largest, Math.abs(expected[k]));
      }
      assertTrue(largest > 0, "filter " + o + " has a gradient");
      for (int k = 0; k < fan; k++) {
        assertEquals(
            expected[k], actual[o * fan + k], 1e-4 * largest, "dL/dW of filter " + o + " at " + k);
      }
    }
  }

  @Test
  void checkpointLayoutIsThatOfTheConvolutionWithItsOwnVersion() throws Exception {
    Conv2d original = conv(4, 1, true);
    original.initialize(manager, DataType.FLOAT32, new Shape(1, 3, 6, 6));
    byte[] plain = save(original);
    WeightStandardizedConv2d ws = WeightStandardizedConv2d.from(original);
    byte[] standardized = save(ws);
    // the same bytes but the version: a plain Conv2d refuses the standardized weights
    assertEquals(3, plain[0]);
    assertEquals(LayerVersions.WEIGHT_STANDARDIZED_CONV, standardized[0]);
    assertArrayEquals(
        Arrays.copyOfRange(plain, 1, plain.length),
        Arrays.copyOfRange(standardized, 1, standardized.length));
    Conv2d other = conv(4, 1, true);
    MalformedModelException refused =
        assertThrows(
            MalformedModelException.class,
            () ->
                other.loadParameters(
                    manager, new DataInputStream(new ByteArrayInputStream(standardized))));
    assertEquals("Unsupported encoding version: 85", refused.getMessage());

    // And a fresh uninitialized standardized conv loads a plain conv's bytes (pretrained weights).
    WeightStandardizedConv2d fresh = WeightStandardizedConv2d.from(conv(4, 1, true));
    fresh.loadParameters(manager, new DataInputStream(new ByteArrayInputStream(plain)));
    assertArrayEquals(
        original.getParameters().get("weight").getArray().toFloatArray(),
        fresh.getParameters().get("weight").getArray().toFloatArray(),
        0f);
  }

  @Test
  void uninitializedConvGivesUninitializedReplacementThatInitializesNormally() {
    Conv2d original = conv(4, 1, false);
    WeightStandardizedConv2d ws = WeightStandardizedConv2d.from(original);
    assertFalse(ws.isInitialized());
    ws.initialize(manager, DataType.FLOAT32, new Shape(1, 3, 6, 6));
    assertEquals(new Shape(4, 3, 3, 3), ws.getParameters().get("weight").getArray().getShape());
    assertSame(original.getParameters().get("weight"), ws.getParameters().get("weight"));
  }

  static byte[] save(ai.djl.nn.Block block) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (DataOutputStream os = new DataOutputStream(bytes)) {
      block.saveParameters(os);
    }
    return bytes.toByteArray();
  }
}
