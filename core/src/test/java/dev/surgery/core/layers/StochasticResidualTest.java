package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.util.RandomUtils;
import dev.surgery.core.testing.FreedMemory;
import dev.surgery.core.testing.TinyModels;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class StochasticResidualTest {

  private static final Shape IN = new Shape(6, 2, 4, 4);
  private NDManager manager;
  private ParameterStore ps;

  @BeforeEach
  void setUp() {
    manager = NDManager.newBaseManager();
    ps = new ParameterStore(manager, false);
    Engine.getInstance().setRandomSeed(21);
  }

  @AfterEach
  void tearDown() {
    manager.close();
  }

  private SequentialBlock branch() {
    SequentialBlock branch = new SequentialBlock().add(TinyModels.conv3x3(2, 1));
    branch.initialize(manager, DataType.FLOAT32, IN);
    return branch;
  }

  private float[] run(StochasticResidual block, NDArray x, boolean training) {
    return block.forward(ps, new NDList(x), training).singletonOrThrow().toFloatArray();
  }

  @Test
  void evaluationIsExactlyTheBranch() {
    SequentialBlock branch = branch();
    NDArray x = manager.randomNormal(IN);
    float[] expected = branch.forward(ps, new NDList(x), false).head().toFloatArray();
    for (StochasticResidual.Mode mode : StochasticResidual.Mode.values()) {
      StochasticResidual block = new StochasticResidual(branch, mode, 0.7f);
      assertTrue(
          block.isInitialized(), "wrapping an initialized branch gives an initialized block");
      assertArrayEquals(expected, run(block, x, false), 0f);
    }
  }

  @Test
  void blockModeDropsWholeBatchOrRescalesIt() {
    SequentialBlock branch = branch();
    NDArray x = manager.randomNormal(IN);
    float[] y = branch.forward(ps, new NDList(x), false).head().toFloatArray();
    StochasticResidual block = new StochasticResidual(branch, StochasticResidual.Mode.BLOCK, 0.5f);
    List<Boolean> kept = new ArrayList<>();
    Engine.getInstance().setRandomSeed(21);
    for (int i = 0; i < 40; i++) {
      float[] out = run(block, x, true);
      boolean zero = allZero(out);
      if (!zero) {
        for (int k = 0; k < y.length; k++) {
          assertEquals(2 * y[k], out[k], 1e-5, "kept branch is scaled by 1/(1-p)");
        }
      }
      kept.add(!zero);
    }
    assertTrue(kept.contains(true) && kept.contains(false), kept.toString());

    Engine.getInstance().setRandomSeed(21);
    List<Boolean> again = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      again.add(!allZero(run(block, x, true)));
    }
    assertEquals(kept, again, "same seed, same drops");
  }

  /**
   * In block mode the whole batch is dropped with probability p, not 1 - p: at p = 0.2 over 400
   * seeded passes the dropped count is binomial, 80 +- 8, and stays within four deviations.
   */
  @Test
  void blockModeDropsAtTheRateNotItsComplement() {
    SequentialBlock branch = branch();
    NDArray x = manager.randomNormal(IN);
    StochasticResidual block = new StochasticResidual(branch, StochasticResidual.Mode.BLOCK, 0.2f);
    Engine.getInstance().setRandomSeed(5);
    int passes = 400;
    int dropped = 0;
    for (int i = 0; i < passes; i++) {
      if (allZero(run(block, x, true))) {
        dropped++;
      }
    }
    double mean = passes * 0.2;
    double sd = Math.sqrt(passes * 0.2 * 0.8);
    assertEquals(mean, dropped, 4 * sd, dropped + " of " + passes + " dropped");
  }

  /**
   * A dropped branch gives zeros of the shape the branch gives each input, not of an earlier one.
   */
  @Test
  void aDroppedBranchHasTheOutputShapeOfEachInput() {
    SequentialBlock branch = branch();
    StochasticResidual block = new StochasticResidual(branch, StochasticResidual.Mode.BLOCK, 0.9f);
    Engine.getInstance().setRandomSeed(9);
    for (Shape in : new Shape[] {IN, new Shape(3, 2, 6, 5), IN}) {
      NDArray x = manager.randomNormal(in);
      Shape expected = branch.forward(ps, new NDList(x), false).head().getShape();
      NDArray out = null;
      for (int i = 0; i < 100 && (out == null || !allZero(out.toFloatArray())); i++) {
        out = block.forward(ps, new NDList(x), true).singletonOrThrow();
      }
      assertTrue(allZero(out.toFloatArray()), "dropped at least once in 100 passes at p = 0.9");
      assertEquals(expected, out.getShape(), "input " + in);
    }
  }

  /** Wrapping an uninitialized branch: initializing the wrapper initializes the branch. */
  @Test
  void wrapsAnUninitializedBranchAndInitializesItThroughTheWrapper() {
    Conv2d conv = TinyModels.conv3x3(3, 2);
    StochasticResidual block = new StochasticResidual(conv, StochasticResidual.Mode.SAMPLE, 0.25f);
    assertSame(conv, block.getBranch());
    assertEquals(StochasticResidual.Mode.SAMPLE, block.getMode());
    assertEquals(0.25f, block.getDropRate());
    block.initialize(manager, DataType.FLOAT32, IN);
    assertTrue(conv.isInitialized());
    Shape[] expected = conv.getOutputShapes(new Shape[] {IN});
    assertArrayEquals(expected, block.getOutputShapes(new Shape[] {IN}));
    assertEquals(new Shape(6, 3, 2, 2), expected[0]); // (4 + 2 - 3) / 2 + 1
  }

  /**
   * The kept branch's backward must not depend on memory the JVM may free between forward and
   * backward: a collection there (as happens at any time in training) must not change the gradient.
   */
  @Test
  void keptBranchGradientSurvivesAGarbageCollectionBeforeBackward() throws InterruptedException {
    SequentialBlock branch = branch();
    NDArray x = manager.randomNormal(IN);
    float[] plain = inputGradient(in -> branch.forward(ps, new NDList(in), true), x, false);
    StochasticResidual block = new StochasticResidual(branch, StochasticResidual.Mode.BLOCK, 0.5f);
    int kept = 0;
    for (int i = 0; i < 6; i++) {
      float[] grad = inputGradient(in -> block.forward(ps, new NDList(in), true), x, true);
      if (allZero(grad)) {
        continue; // dropped: no gradient reaches the input
      }
      kept++;
      for (int k = 0; k < plain.length; k++) {
        assertEquals(2 * plain[k], grad[k], 1e-5, "kept branch's gradient is scaled by 1/(1-p)");
      }
    }
    assertTrue(kept > 0, "no pass kept the branch");
  }

  /**
   * Returns d(sum f(x))/dx on a fresh copy of x, with garbage collections between forward and
   * backward when asked to (as may happen at any point of training).
   */
  private static float[] inputGradient(Function<NDArray, NDList> f, NDArray x, boolean collect)
      throws InterruptedException {
    NDArray input = x.duplicate();
    input.setRequiresGradient(true);
    try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
      NDArray out = f.apply(input).singletonOrThrow();
      if (allZero(out.toFloatArray())) {
        return new float[Math.toIntExact(input.size())]; // dropped: the input has no say
      }
      for (int i = 0; collect && i < 3; i++) {
        FreedMemory.collectAndOverwrite();
      }
      collector.backward(out.sum());
      return input.getGradient().toFloatArray();
    }
  }

  /**
   * A half-precision branch keeps its type through sample mode (the mask is drawn in float32 and
   * taken in float16), so the next float16 layer accepts the output, and backward reaches the
   * branch: each sample is the branch's output scaled by {@code 1 / (1 - p)}, or zero.
   */
  @Test
  void sampleModeKeepsAHalfPrecisionBranchInHalfPrecision() {
    Conv2d conv = TinyModels.conv3x3(2, 1);
    conv.initialize(manager, DataType.FLOAT16, IN);
    StochasticResidual block = new StochasticResidual(conv, StochasticResidual.Mode.SAMPLE, 0.5f);
    NDArray x = manager.randomNormal(IN).toType(DataType.FLOAT16, false);
    float[] y =
        conv.forward(ps, new NDList(x), false)
            .head()
            .toType(DataType.FLOAT32, false)
            .toFloatArray();
    x.setRequiresGradient(true);
    NDArray out;
    try (GradientCollector collector = Engine.getInstance().newGradientCollector()) {
      out = block.forward(ps, new NDList(x), true).singletonOrThrow();
      collector.backward(out.sum());
    }
    assertEquals(DataType.FLOAT16, out.getDataType());
    assertEquals(DataType.FLOAT16, x.getGradient().getDataType(), "backward reaches the input");
    float[] values = out.toType(DataType.FLOAT32, false).toFloatArray();
    int per = values.length / (int) IN.get(0);
    for (int s = 0; s < IN.get(0); s++) {
      boolean zero = true;
      boolean scaled = true;
      for (int k = s * per; k < (s + 1) * per; k++) {
        zero &= values[k] == 0f;
        scaled &= Math.abs(values[k] - 2 * y[k]) <= 1e-3 * Math.max(1, Math.abs(y[k]));
      }
      assertTrue(zero || scaled, "sample " + s + " is neither dropped nor the scaled branch");
    }
  }

  /**
   * A double-precision branch kept in training is scaled by {@code 1 / (1 - p)} computed in double,
   * where {@code 1 - p} is exact for the float rate: at p = 0.2f a float {@code 1f - p} rounds to
   * 0.80000001, which left every kept output of a float64 model 1.9e-8 too small (an outside numpy
   * probe of a whole float64 ResNetV1-20 saw 3.5e-8). Block mode divides by it, so a kept output is
   * the branch's output divided by {@code 1.0 - (double) 0.2f}, bit for bit; sample mode multiplies
   * by its reciprocal, so within two ulps.
   */
  /**
   * A float64 branch draws in double against the double rate it is scaled by (a reviewer: drawn as
   * a float on its 2^-24 grid against the double 0.99999999, a branch was kept six times as often
   * as its scaling assumed, and per sample never). The oracles: {@link java.util.Random}'s {@code
   * nextDouble} from the seed of DJL's generator for a block, and the engine's own float64 uniform
   * from the same seed for the samples.
   */
  @Test
  void aFloat64BranchDrawsInDoubleAgainstTheRateItIsScaledBy() {
    Conv2d conv = TinyModels.conv3x3(2, 1);
    conv.initialize(manager, DataType.FLOAT64, IN);
    NDArray x = manager.randomNormal(IN).toType(DataType.FLOAT64, false);
    double rate = 0.3;
    StochasticResidual block = new StochasticResidual(conv, StochasticResidual.Mode.BLOCK, rate);
    RandomUtils.RANDOM.setSeed(7);
    java.util.Random oracle = new java.util.Random(7);
    List<Boolean> dropped = new ArrayList<>();
    List<Boolean> expected = new ArrayList<>();
    for (int pass = 0; pass < 64; pass++) {
      double[] values = block.forward(ps, new NDList(x), true).singletonOrThrow().toDoubleArray();
      dropped.add(values[0] == 0 && values[values.length - 1] == 0);
      expected.add(oracle.nextDouble() < rate);
    }
    assertEquals(expected, dropped);

    StochasticResidual perSample =
        new StochasticResidual(conv, StochasticResidual.Mode.SAMPLE, 0.5);
    Engine.getInstance().setRandomSeed(11);
    double[] values = perSample.forward(ps, new NDList(x), true).singletonOrThrow().toDoubleArray();
    Engine.getInstance().setRandomSeed(11);
    double[] uniform =
        manager
            .randomUniform(0f, 1f, new Shape(IN.get(0), 1, 1, 1), DataType.FLOAT64)
            .toDoubleArray();
    int per = values.length / (int) IN.get(0);
    List<Boolean> keptSamples = new ArrayList<>();
    List<Boolean> expectedSamples = new ArrayList<>();
    for (int sample = 0; sample < IN.get(0); sample++) {
      boolean zero = true;
      for (int k = sample * per; k < (sample + 1) * per; k++) {
        zero &= values[k] == 0;
      }
      keptSamples.add(!zero);
      expectedSamples.add(uniform[sample] + 0.5 >= 1);
    }
    assertEquals(expectedSamples, keptSamples);
  }

  @Test
  void aKeptDoublePrecisionBranchIsScaledByTheExactComplementOfTheRate() {
    Conv2d conv = TinyModels.conv3x3(2, 1);
    conv.initialize(manager, DataType.FLOAT64, IN);
    NDArray x = manager.randomNormal(IN).toType(DataType.FLOAT64, false);
    double[] y = conv.forward(ps, new NDList(x), false).head().toDoubleArray();
    double keep = 1.0 - (double) 0.2f;
    StochasticResidual block = new StochasticResidual(conv, StochasticResidual.Mode.BLOCK, 0.2f);
    int kept = 0;
    for (int pass = 0; pass < 10; pass++) {
      NDArray out = block.forward(ps, new NDList(x), true).singletonOrThrow();
      assertEquals(DataType.FLOAT64, out.getDataType());
      double[] values = out.toDoubleArray();
      if (values[0] == 0 && values[values.length - 1] == 0) {
        continue;
      }
      kept++;
      for (int k = 0; k < y.length; k++) {
        assertEquals(y[k] / keep, values[k], 0.0, "block mode, pass " + pass + ", value " + k);
      }
    }
    assertTrue(kept > 0, "no pass of ten was kept at p = 0.2");

    StochasticResidual perSample =
        new StochasticResidual(conv, StochasticResidual.Mode.SAMPLE, 0.2f);
    double[] values = perSample.forward(ps, new NDList(x), true).singletonOrThrow().toDoubleArray();
    int per = values.length / (int) IN.get(0);
    int keptSamples = 0;
    for (int s = 0; s < IN.get(0); s++) {
      boolean zero = true;
      boolean scaled = true;
      for (int k = s * per; k < (s + 1) * per; k++) {
        zero &= values[k] == 0;
        scaled &= Math.abs(values[k] - y[k] / keep) <= 2 * Math.ulp(y[k] / keep);
      }
      assertTrue(zero || scaled, "sample " + s + " is neither dropped nor y / (1 - p) in double");
      keptSamples += zero ? 0 : 1;
    }
    assertTrue(keptSamples > 0, "no sample of six was kept at p = 0.2");
  }

  /**
   * Sample mode, drop rate 0.25, five seeded batches of 400 samples: every sample's row is either
   * exactly zero (the branch dropped, the unit adds nothing to its shortcut) or exactly the
   * branch's output times 1 / 0.75 (the same float product, bit for bit), every batch has both
   * kinds, and the number dropped over the 2,000 samples is within four standard deviations of the
   * binomial mean (500 +- 77.5).
   */
  @Test
  void sampleModeDropsEachSampleWithTheRateAndScalesTheKeptOnes() {
    SequentialBlock branch = branch();
    int n = 400;
    NDArray x = manager.randomNormal(new Shape(n, 2, 4, 4));
    float[] y = branch.forward(ps, new NDList(x), false).head().toFloatArray();
    int per = y.length / n;
    float scale = 1f / (1f - 0.25f); // documented: a kept branch is scaled by 1 / (1 - p)
    StochasticResidual block =
        new StochasticResidual(branch, StochasticResidual.Mode.SAMPLE, 0.25f);
    Engine.getInstance().setRandomSeed(21);
    int batches = 5;
    int dropped = 0;
    for (int b = 0; b < batches; b++) {
      float[] out = run(block, x, true);
      int droppedHere = 0;
      for (int s = 0; s < n; s++) {
        boolean zero = true;
        boolean scaled = true;
        boolean branchIsZero = true;
        for (int k = s * per; k < (s + 1) * per; k++) {
          zero &= out[k] == 0f;
          scaled &= Float.floatToIntBits(out[k]) == Float.floatToIntBits(y[k] * scale);
          branchIsZero &= y[k] == 0f;
        }
        assertTrue(!branchIsZero, "sample " + s + ": the branch output tells nothing");
        assertTrue(
            zero || scaled,
            "batch " + b + ", sample " + s + " is neither dropped nor the scaled branch");
        if (zero) {
          droppedHere++;
        }
      }
      assertTrue(
          droppedHere > 0 && droppedHere < n,
          "batch " + b + " dropped " + droppedHere + " of " + n + ": not per sample");
      dropped += droppedHere;
    }
    int samples = batches * n;
    double mean = samples * 0.25;
    double bound = 4 * Math.sqrt(samples * 0.25 * 0.75);
    assertEquals(mean, dropped, bound, dropped + " of " + samples + " dropped");
  }

  @Test
  void extremeRates() {
    SequentialBlock branch = branch();
    NDArray x = manager.randomNormal(IN);
    float[] y = branch.forward(ps, new NDList(x), false).head().toFloatArray();
    for (StochasticResidual.Mode mode : StochasticResidual.Mode.values()) {
      assertArrayEquals(y, run(new StochasticResidual(branch, mode, 0f), x, true), 0f);
    }
    // At 1 the branch would never train, yet evaluation would run it at full weight.
    for (float refused : new float[] {1f, 1.1f, -0.1f, Float.NaN}) {
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class,
              () -> new StochasticResidual(branch, StochasticResidual.Mode.BLOCK, refused),
              String.valueOf(refused));
      // The rate as the caller wrote it, not its double (1.100000023841858).
      assertEquals("drop_rate must be in [0, 1), got " + refused, e.getMessage());
    }
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> new StochasticResidual(branch, StochasticResidual.Mode.BLOCK, 1.1));
    assertEquals("drop_rate must be in [0, 1), got 1.1", e.getMessage());
  }

  @Test
  void savesExactlyLikeTheBranch() throws Exception {
    SequentialBlock branch = branch();
    byte[] plain = WeightStandardizedConv2dTest.save(branch);
    StochasticResidual block = new StochasticResidual(branch, StochasticResidual.Mode.BLOCK, 0.3f);
    assertArrayEquals(plain, WeightStandardizedConv2dTest.save(block));

    SequentialBlock fresh =
        new SequentialBlock()
            .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(2).build());
    StochasticResidual loaded = new StochasticResidual(fresh, StochasticResidual.Mode.BLOCK, 0.3f);
    loaded.loadParameters(manager, new DataInputStream(new ByteArrayInputStream(plain)));
    assertTrue(loaded.isInitialized());
    assertArrayEquals(
        branch.getParameters().valueAt(0).getArray().toFloatArray(),
        fresh.getParameters().valueAt(0).getArray().toFloatArray(),
        0f);
  }

  private static boolean allZero(float[] values) {
    for (float v : values) {
      if (v != 0f) {
        return false;
      }
    }
    return true;
  }
}
