package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import dev.surgery.core.testing.TinyModels;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class FactorizedLayersTest {

  private NDManager manager;
  private ParameterStore ps;

  @BeforeEach
  void setUp() {
    manager = NDManager.newBaseManager();
    ps = new ParameterStore(manager, false);
    Engine.getInstance().setRandomSeed(8);
  }

  @AfterEach
  void tearDown() {
    manager.close();
  }

  private Conv2d conv(int filters, boolean bias, Shape in) {
    Conv2d conv =
        Conv2d.builder()
            .setKernelShape(new Shape(3, 3))
            .optStride(new Shape(2, 2))
            .optPadding(new Shape(1, 1))
            .setFilters(filters)
            .optBias(bias)
            .build();
    conv.initialize(manager, DataType.FLOAT32, in);
    if (bias) {
      NDArray b = conv.getParameters().get("bias").getArray();
      b.set(manager.randomNormal(b.getShape()).toFloatArray());
    }
    return conv;
  }

  private float[] run(Block block, NDArray x) {
    return block.forward(ps, new NDList(x), false).singletonOrThrow().toFloatArray();
  }

  @Test
  void convAtFullRankComputesTheOriginal() {
    Shape in = new Shape(2, 2, 7, 6);
    Conv2d conv = conv(5, true, in); // fan-in 18, out 5: full rank 5
    NDArray x = manager.randomNormal(in);
    float[] expected = run(conv, x);
    FactorizedConv2d f = FactorizedConv2d.from(conv, 5);
    assertTrue(f.isInitialized());
    NDArray y = f.forward(ps, new NDList(x), false).singletonOrThrow();
    assertEquals(conv.getOutputShapes(new Shape[] {in})[0], y.getShape());
    assertArrayEquals(expected, y.toFloatArray(), 1e-4f);
  }

  /**
   * Factorizing sets every array from the SVD without a draw: the engine's random generator is
   * where it was (the next draw is the one the seed gives first), and the layers keep their own
   * initializers (not the zeros used meanwhile) for a later initialization.
   */
  @Test
  void factorizingDrawsNothingAndKeepsTheLayersInitializers() {
    Shape in = new Shape(2, 2, 7, 6);
    Conv2d conv = conv(5, true, in);
    manager.getEngine().setRandomSeed(3);
    float[] first = manager.randomUniform(0f, 1f, new Shape(8)).toFloatArray();
    manager.getEngine().setRandomSeed(3);
    FactorizedConv2d f = FactorizedConv2d.from(conv, 4);
    assertArrayEquals(first, manager.randomUniform(0f, 1f, new Shape(8)).toFloatArray(), 0f);
    assertEquals(4, f.getRank());
    FactorizedConv2d fresh = FactorizedConv2d.from(conv(5, true, in), 4);
    for (var p : f.getParameters()) {
      if (p.getKey().endsWith("weight")) {
        assertTrue(
            p.getValue().getInitializer() != ai.djl.training.initializer.Initializer.ZEROS,
            p.getKey() + " keeps its own initializer");
        assertEquals(
            fresh.getParameters().get(p.getKey()).getInitializer().getClass(),
            p.getValue().getInitializer().getClass(),
            p.getKey());
      }
    }
  }

  /**
   * A weight the SVD refuses (NaN) fails the factorization, and the two new layers' arrays, made on
   * the weight's manager, are freed: the block never reaches the model, and nothing is left behind.
   */
  @Test
  void aFailedFactorizationLeavesNoArrayOnTheWeightsManager() {
    try (NDManager owner = manager.newSubManager()) {
      Shape in = new Shape(2, 2, 7, 6);
      Conv2d conv = TinyModels.conv3x3(5, 1);
      conv.initialize(owner, DataType.FLOAT32, in);
      NDArray weight = conv.getParameters().get("weight").getArray();
      float[] values = weight.toFloatArray();
      values[7] = Float.NaN;
      weight.set(values);
      int before = owner.getManagedArrays().size();
      assertThrows(IllegalArgumentException.class, () -> FactorizedConv2d.from(conv, 3));
      assertEquals(before, owner.getManagedArrays().size());
    }
  }

  /**
   * A float64 convolution or linear factorizes in double precision: at full rank the two layers
   * compute the original to double resolution (1e-12 of the largest output). The SVD once took the
   * weight's float values and gave float factors: 4e-8 off (an outside numpy probe).
   */
  @Test
  void float64LayersAtFullRankComputeTheOriginalInDoublePrecision() {
    Conv2d conv = TinyModels.conv3x3(5, 1);
    assertFloat64FactorsComputeTheOriginal(
        conv, new Shape(2, 2, 7, 6), () -> FactorizedConv2d.from(conv, 5));
    Linear linear = Linear.builder().setUnits(6).build();
    assertFloat64FactorsComputeTheOriginal(
        linear, new Shape(3, 6), () -> FactorizedLinear.from(linear, 6));
  }

  /**
   * Initializes {@code original} in float64, factorizes it at full rank, and checks that the two
   * layers compute what it computed, in float64, to 1e-12 of the largest output.
   */
  private void assertFloat64FactorsComputeTheOriginal(
      Block original, Shape in, java.util.function.Supplier<Block> factorize) {
    original.initialize(manager, DataType.FLOAT64, in);
    NDArray x = manager.randomNormal(in).toType(DataType.FLOAT64, false);
    double[] expected =
        original.forward(ps, new NDList(x), false).singletonOrThrow().toDoubleArray();
    NDArray y = factorize.get().forward(ps, new NDList(x), false).singletonOrThrow();
    assertEquals(DataType.FLOAT64, y.getDataType());
    assertArrayEquals(expected, y.toDoubleArray(), 1e-12 * largest(expected));
  }

  /**
   * A float64 standardized convolution, alone and blurred, factorizes in double precision too (the
   * standardized weight's SVD and the row scale undone without rounding to float), on the exact
   * path and on the Gram path (64 filters, fan-in 72: the short side is 64). At full rank the two
   * layers compute the original to far below float resolution; rounded to float anywhere on the
   * way, they are about 1e-8 off.
   */
  @Test
  void float64StandardizedConvolutionsAtFullRankComputeTheOriginalInDoublePrecision() {
    Map<String, Function<Conv2d, Conv2d>> kinds = new LinkedHashMap<>();
    kinds.put("standardized", WeightStandardizedConv2d::from);
    kinds.put(
        "blur first, standardized",
        c -> BlurConv2d.fromConv2d(c, true).withWeightStandardization());
    // {input channels, filters}: fan-in 18 and 5 filters (exact path); fan-in 72, 64 filters
    // (Gram).
    int[][] sizes = {{2, 5}, {8, 64}};
    for (int[] size : sizes) {
      Shape in = new Shape(2, size[0], 7, 6);
      for (Map.Entry<String, Function<Conv2d, Conv2d>> kind : kinds.entrySet()) {
        Conv2d conv = TinyModels.conv3x3(size[1], 2);
        conv.initialize(manager, DataType.FLOAT64, in);
        Conv2d original = kind.getValue().apply(conv);
        NDArray x = manager.randomNormal(in).toType(DataType.FLOAT64, false);
        double[] expected =
            original.forward(ps, new NDList(x), false).singletonOrThrow().toDoubleArray();
        FactorizedConv2d f = FactorizedConv2d.from(original, size[1]);
        NDArray y = f.forward(ps, new NDList(x), false).singletonOrThrow();
        String what = kind.getKey() + ", " + size[1] + " filters";
        assertEquals(DataType.FLOAT64, y.getDataType(), what);
        assertArrayEquals(expected, y.toDoubleArray(), 1e-11 * largest(expected), what);
      }
    }
  }

  private static double largest(double[] values) {
    double max = 0;
    for (double v : values) {
      max = Math.max(max, Math.abs(v));
    }
    return max;
  }

  /**
   * Every kind of convolution factorize rebuilds, with a bias, at full rank: the two layers compute
   * what the original computed (the original itself is the oracle). A blur after the convolution
   * blurs the bias too, which shrinks it next to the border; a standardized weight is what the
   * product must reproduce, not the raw one.
   */
  @Test
  void everyKindOfConvolutionAtFullRankComputesTheOriginal() {
    Shape in = new Shape(2, 2, 7, 6);
    Map<String, Function<Conv2d, Conv2d>> kinds = new LinkedHashMap<>();
    kinds.put("plain", c -> c);
    kinds.put("standardized", WeightStandardizedConv2d::from);
    kinds.put("blur first", c -> BlurConv2d.fromConv2d(c, true));
    kinds.put("blur after", c -> BlurConv2d.fromConv2d(c, false));
    kinds.put(
        "blur first, standardized",
        c -> BlurConv2d.fromConv2d(c, true).withWeightStandardization());
    kinds.put(
        "blur after, standardized",
        c -> BlurConv2d.fromConv2d(c, false).withWeightStandardization());
    for (Map.Entry<String, Function<Conv2d, Conv2d>> kind : kinds.entrySet()) {
      Conv2d original = kind.getValue().apply(conv(5, true, in)); // fan-in 18, out 5: rank 5
      NDArray x = manager.randomNormal(in);
      float[] expected = run(original, x);
      FactorizedConv2d f = FactorizedConv2d.from(original, 5);
      assertArrayEquals(expected, run(f, x), 2e-4f, kind.getKey());
    }
  }

  /**
   * A standardized convolution with more filters than inputs per filter, at full rank: the
   * standardized weight's rank is below its fan-in (its rows have zero mean), and the last
   * direction of the SVD is rounding, which must not be blown up by the first layer's
   * standardization.
   */
  @Test
  void standardizedConvolutionWithMoreFiltersThanItsFanInAtFullRankComputesTheOriginal() {
    Shape in = new Shape(2, 1, 7, 6);
    // The rounding direction's size varies with the weights: enough draws to meet a bad one.
    for (int seed = 0; seed < 20; seed++) {
      Engine.getInstance().setRandomSeed(seed);
      WeightStandardizedConv2d original = WeightStandardizedConv2d.from(conv(16, true, in));
      NDArray x = manager.randomNormal(in);
      float[] expected = run(original, x);
      FactorizedConv2d f = FactorizedConv2d.from(original, 9); // fan-in 9: the largest rank
      assertArrayEquals(expected, run(f, x), 2e-4f, "seed " + seed);
      // Zero-mean rows: the standardized weight has rank 8 at most, so one direction is rounding.
      // The first layer standardizes its rows: that one must stay zero, not blown up to unit size
      // (a channel of noise that training would pass on through the second layer).
      float[] first =
          WeightStandardizedConv2d.standardize(f.module0.getParameters().get("weight").getArray())
              .toFloatArray();
      int silent = 0;
      for (int k = 0; k < 9; k++) {
        double norm = 0;
        for (int j = 0; j < 9; j++) {
          norm += (double) first[k * 9 + j] * first[k * 9 + j];
        }
        silent += norm < 1e-6 ? 1 : 0;
      }
      assertEquals(1, silent, "seed " + seed + ": rows of the first layer that carry nothing");
    }
  }

  /**
   * A standardized convolution at rank 1 computes with the best rank-1 approximation of its
   * standardized weight, found here by power iteration in double precision; the 1 x 1 layer is not
   * standardized (one weight per output channel would standardize to zero).
   */
  @Test
  void standardizedConvolutionAtRankOneComputesTheBestRankOneStandardizedWeight() {
    Shape in = new Shape(2, 3, 6, 6);
    WeightStandardizedConv2d original = WeightStandardizedConv2d.from(conv(4, true, in));
    float[] standardized =
        WeightStandardizedConv2d.standardize(original.getParameters().get("weight").getArray())
            .toFloatArray();
    double[] rankOne = bestRankOne(standardized, 4, 27);
    Conv2d oracle = conv(4, true, in);
    float[] oracleWeight = new float[rankOne.length];
    for (int i = 0; i < rankOne.length; i++) {
      oracleWeight[i] = (float) rankOne[i];
    }
    oracle.getParameters().get("weight").getArray().set(oracleWeight);
    oracle
        .getParameters()
        .get("bias")
        .getArray()
        .set(original.getParameters().get("bias").getArray().toFloatArray());
    NDArray x = manager.randomNormal(in);

    FactorizedConv2d f = FactorizedConv2d.from(original, 1);

    assertFalse(AdoptingConv2d.isWeightStandardized(f.getChildren().valueAt(1)));
    assertTrue(AdoptingConv2d.isWeightStandardized(f.getChildren().valueAt(0)));
    float[] expected = run(oracle, x);
    float[] actual = run(f, x);
    assertArrayEquals(expected, actual, 1e-4f);
    assertTrue(Math.abs(actual[0]) + Math.abs(actual[1]) > 0, "not the zero output");
  }

  /** The best rank-1 approximation of a rows x cols matrix, by power iteration on A^T A. */
  private static double[] bestRankOne(float[] a, int rows, int cols) {
    // A random start: the all-ones vector lies in the null space of a standardized weight.
    java.util.Random random = new java.util.Random(11);
    double[] v = new double[cols];
    for (int c = 0; c < cols; c++) {
      v[c] = random.nextGaussian();
    }
    double[] u = new double[rows];
    for (int iteration = 0; iteration < 2000; iteration++) {
      for (int r = 0; r < rows; r++) {
        u[r] = 0;
        for (int c = 0; c < cols; c++) {
          u[r] += a[r * cols + c] * v[c];
        }
      }
      double norm = 0;
      for (int c = 0; c < cols; c++) {
        v[c] = 0;
        for (int r = 0; r < rows; r++) {
          v[c] += a[r * cols + c] * u[r];
        }
        norm += v[c] * v[c];
      }
      norm = Math.sqrt(norm);
      for (int c = 0; c < cols; c++) {
        v[c] /= norm;
      }
    }
    double[] out = new double[rows * cols];
    for (int r = 0; r < rows; r++) {
      double projection = 0;
      for (int c = 0; c < cols; c++) {
        projection += a[r * cols + c] * v[c];
      }
      for (int c = 0; c < cols; c++) {
        out[r * cols + c] = projection * v[c];
      }
    }
    return out;
  }

  @Test
  void convAtLowRankHasTheSvdTailAsWeightError() {
    Shape in = new Shape(1, 3, 5, 5);
    Conv2d conv = conv(6, false, in); // out 6 x fan-in 27
    float[] w = conv.getParameters().get("weight").getArray().toFloatArray();
    TruncatedSvd svd = TruncatedSvd.of(w, 6, 27);
    for (int r = 1; r <= 6; r++) {
      FactorizedConv2d f = FactorizedConv2d.from(conv, r);
      float[] m0 =
          f.getChildren().valueAt(0).getParameters().get("weight").getArray().toFloatArray();
      float[] m1 =
          f.getChildren().valueAt(1).getParameters().get("weight").getArray().toFloatArray();
      assertEquals(r * 27, m0.length);
      assertEquals(6 * r, m1.length);
      double err = 0;
      for (int o = 0; o < 6; o++) {
        for (int j = 0; j < 27; j++) {
          double eff = 0;
          for (int k = 0; k < r; k++) {
            eff += (double) m1[o * r + k] * m0[k * 27 + j];
          }
          err += (w[o * 27 + j] - eff) * (w[o * 27 + j] - eff);
        }
      }
      assertEquals(svd.tailNorm(r), Math.sqrt(err), 1e-4, "rank " + r);
    }
    assertFalse(
        FactorizedConv2d.from(conv, 2).getChildren().valueAt(1).getParameters().contains("bias"));
  }

  @Test
  void linearAtFullRankComputesTheOriginalAndAtLowRankLosesTheTail() {
    Linear linear = Linear.builder().setUnits(4).build();
    Shape in = new Shape(3, 7);
    linear.initialize(manager, DataType.FLOAT32, in);
    linear.getParameters().get("bias").getArray().set(new float[] {1f, -2f, 0.5f, 3f});
    NDArray x = manager.randomNormal(in);
    float[] expected = run(linear, x);
    assertArrayEquals(expected, run(FactorizedLinear.from(linear, 4), x), 1e-4f);

    float[] w = linear.getParameters().get("weight").getArray().toFloatArray();
    TruncatedSvd svd = TruncatedSvd.of(w, 4, 7);
    FactorizedLinear f = FactorizedLinear.from(linear, 2);
    float[] m0 = f.getChildren().valueAt(0).getParameters().get("weight").getArray().toFloatArray();
    float[] m1 = f.getChildren().valueAt(1).getParameters().get("weight").getArray().toFloatArray();
    double err = 0;
    for (int o = 0; o < 4; o++) {
      for (int j = 0; j < 7; j++) {
        double eff = m1[o * 2] * m0[j] + m1[o * 2 + 1] * m0[7 + j];
        err += (w[o * 7 + j] - eff) * (w[o * 7 + j] - eff);
      }
    }
    assertEquals(svd.tailNorm(2), Math.sqrt(err), 1e-4);
    assertArrayEquals(
        new float[] {1f, -2f, 0.5f, 3f},
        f.getChildren().valueAt(1).getParameters().get("bias").getArray().toFloatArray(),
        0f);
  }

  @Test
  void uninitializedOriginalsGiveUninitializedBlocksThatInitialize() {
    Conv2d conv = Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(8).build();
    FactorizedConv2d fc = FactorizedConv2d.from(conv, 2);
    assertFalse(fc.isInitialized());
    fc.initialize(manager, DataType.FLOAT32, new Shape(1, 4, 6, 6));
    assertEquals(new Shape(1, 8, 4, 4), fc.getOutputShapes(new Shape[] {new Shape(1, 4, 6, 6)})[0]);
    FactorizedLinear fl = FactorizedLinear.from(Linear.builder().setUnits(3).build(), 2);
    fl.initialize(manager, DataType.FLOAT32, new Shape(2, 9));
    assertTrue(fl.isInitialized());
  }

  @Test
  void rejectsBadRanksAndGroups() {
    Shape in = new Shape(1, 4, 5, 5);
    assertThrows(
        IllegalArgumentException.class, () -> FactorizedConv2d.from(conv(3, false, in), 4));
    assertThrows(
        IllegalArgumentException.class, () -> FactorizedConv2d.from(conv(3, false, in), 0));
    Conv2d grouped =
        Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(4).optGroups(2).build();
    assertThrows(IllegalArgumentException.class, () -> FactorizedConv2d.from(grouped, 1));
  }
}
