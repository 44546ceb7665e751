package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.ParameterStore;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.Targets;
import dev.surgery.core.layers.AdoptingConv2d;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.FactorizedConv2d;
import dev.surgery.core.layers.FactorizedLinear;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The convolution algorithms compose in either order, and the refused pairs are the no-ops. */
class CompositionTest {

  static final Shape INPUT = new Shape(2, 16, 8, 8);

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  /** conv(16 -> 32, 3x3, stride 2): a target of BlurPool, WS, Factorize and squeeze-excite. */
  static SequentialBlock net(NDManager manager) {
    SequentialBlock net = new SequentialBlock().add(LiveTraining.conv(32, 2));
    Engine.getInstance().setRandomSeed(5);
    net.initialize(manager, DataType.FLOAT32, INPUT);
    return net;
  }

  static float[] forward(Block net, NDArray x) {
    NDList out = net.forward(new ParameterStore(x.getManager(), false), new NDList(x), false);
    return out.singletonOrThrow().toFloatArray();
  }

  static void apply(Block net, Algorithm... algorithms) {
    for (Algorithm a : algorithms) {
      a.apply(SurgeryContext.of(net));
    }
  }

  static String structure(Block net) {
    return BlockPaths.index(net).entrySet().stream()
        .map(e -> e.getValue() + "=" + BlockPaths.typeName(e.getKey()) + standardized(e.getKey()))
        .collect(Collectors.joining(", "));
  }

  static String standardized(Block b) {
    return AdoptingConv2d.isWeightStandardized(b) ? "(ws)" : "";
  }

  /** W' = (W - mean) / sqrt(var + 1e-10) per output channel, in double precision. */
  static float[] standardizeByHand(float[] w, int out) {
    int n = w.length / out;
    float[] r = new float[w.length];
    for (int o = 0; o < out; o++) {
      double mean = 0;
      for (int i = 0; i < n; i++) {
        mean += w[o * n + i];
      }
      mean /= n;
      double var = 0;
      for (int i = 0; i < n; i++) {
        var += Math.pow(w[o * n + i] - mean, 2);
      }
      var /= n;
      for (int i = 0; i < n; i++) {
        r[o * n + i] = (float) ((w[o * n + i] - mean) / Math.sqrt(var + 1e-10));
      }
    }
    return r;
  }

  /**
   * Two BlurPool entries whose order is unknown: blurring from 0 channels covers one from 16, not
   * the other way round, so one order works and the pair is accepted; two alike conflict in both.
   */
  @Test
  void aPairConflictsEitherWayOnlyWhenNeitherOrderComposes() {
    Algorithm fromZero = BlurPool.builder().optMinChannels(0).build();
    Algorithm fromSixteen = BlurPool.builder().optMinChannels(16).build();
    Algorithm alsoFromZero = BlurPool.builder().optMinChannels(0).build();
    List<Algorithm> none = List.of();
    assertNotNull(Composition.conflict(fromZero, fromSixteen, none));
    assertNull(Composition.conflict(fromSixteen, fromZero, none));
    assertNull(Composition.conflictEitherOrder(fromZero, fromSixteen, none));
    assertNull(Composition.conflictEitherOrder(fromSixteen, fromZero, none));
    assertEquals(
        Composition.conflict(fromZero, alsoFromZero, none),
        Composition.conflictEitherOrder(fromZero, alsoFromZero, none));
    assertTrue(
        Composition.conflictEitherOrder(fromZero, alsoFromZero, none)
            .contains("a blurred layer is never blurred again"));
  }

  /**
   * A repeat limited to the same targets right after the first can change nothing either (the
   * oracle: applied to a net after the first, it finds nothing to change); with another entry
   * between, or other targets, it is not refused.
   */
  @Test
  void aRepeatWithTheSameTargetsRightAfterConflicts() {
    Algorithm first =
        BlurPool.builder().optMinChannels(0).build().withTargets(Targets.include("01*"));
    Algorithm again =
        BlurPool.builder().optMinChannels(0).build().withTargets(Targets.include("01*"));
    Algorithm elsewhere =
        BlurPool.builder().optMinChannels(0).build().withTargets(Targets.include("02*"));
    Algorithm ws = WeightStandardization.builder().build();
    assertNotNull(Composition.conflict(first, again, List.of()));
    assertNull(Composition.conflict(first, elsewhere, List.of()));
    assertNull(Composition.conflict(first, again, List.of(ws)));
    assertEquals(
        List.of(1), Composition.check(List.of(first, again)).stream().map(c -> c.later()).toList());
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = net(manager);
      assertEquals(1, first.apply(SurgeryContext.of(net)).changes().size());
      // At run time the repeat would stop the surgery: refused when the schedule is read instead.
      SurgeryException e =
          assertThrows(SurgeryException.class, () -> again.apply(SurgeryContext.of(net)));
      assertTrue(e.getMessage().contains("nothing among the included blocks"), e.getMessage());
    }
  }

  /**
   * Weight standardization over every convolution, factorize, then weight standardization again:
   * the factorized layers are new and unstandardized, so the repeat does something (the oracle:
   * applied, it changes layers) and is not refused; without factorize between it is.
   */
  @Test
  void weightStandardizationAgainAfterFactorizeIsAccepted() {
    Algorithm ws = WeightStandardization.builder().build();
    Algorithm again = WeightStandardization.builder().build();
    Algorithm f = Factorize.builder().optMinChannels(16).optLatentChannels(4).build();
    assertNotNull(Composition.conflict(ws, again, List.of()));
    assertNull(Composition.conflict(ws, again, List.of(f)));
    assertEquals(List.of(), Composition.check(List.of(ws, f, again)));
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = net(manager);
      apply(net, ws, f);
      assertFalse(again.apply(SurgeryContext.of(net)).isEmpty(), structure(net));
    }
  }

  @Test
  void blurPoolAndWeightStandardizationGiveTheSameLayerInEitherOrder() {
    try (NDManager manager = NDManager.newBaseManager()) {
      NDArray x = manager.randomNormal(INPUT);
      Algorithm ws = WeightStandardization.builder().build();
      Algorithm bp = BlurPool.builder().build();

      SequentialBlock wsThenBp = net(manager);
      String weightId = wsThenBp.getParameters().get(0).getValue().getId();
      float[] w = wsThenBp.getParameters().get(0).getValue().getArray().toFloatArray();
      apply(wsThenBp, ws, bp);
      SequentialBlock bpThenWs = net(manager);
      apply(bpThenWs, bp, ws);

      assertEquals("=SequentialBlock, 01BlurConv2d=BlurConv2d(ws)", structure(wsThenBp));
      assertEquals(structure(wsThenBp), structure(bpThenWs));
      // The same Parameter objects all along: the trainer's store and optimizer state stay valid.
      assertEquals(weightId, wsThenBp.getParameters().get(0).getValue().getId());

      // Oracle: a plain blurred convolution whose weight holds the standardized values.
      SequentialBlock oracle = net(manager);
      apply(oracle, bp);
      NDArray weight = oracle.getParameters().get(0).getValue().getArray();
      weight.set(standardizeByHand(w, 32));
      float[] expected = forward(oracle, x);
      float[] a = forward(wsThenBp, x);
      float[] b = forward(bpThenWs, x);
      assertArrayEquals(a, b);
      assertArrayEquals(expected, a, 1e-4f);
    }
  }

  /**
   * Factorize keeps what a blurred, standardized convolution computes (the layer tests check the
   * values at full rank): the first layer standardizes, and a blur after the convolution moves
   * after the {@code 1 x 1} layer, with the stride. Applied after factorize, BlurPool and weight
   * standardization pick layers by their own rules instead: the strided first layer is blurred, and
   * both layers are standardized.
   */
  @Test
  void factorizeKeepsBlurAndStandardizationWhereTheyComputeTheSame() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Algorithm ws = WeightStandardization.builder().build();
      Algorithm bp = BlurPool.builder().optBlurFirst(false).build();
      Algorithm f = Factorize.builder().optMinChannels(16).optLatentChannels(4).build();

      SequentialBlock factorizedLast = net(manager);
      apply(factorizedLast, bp, ws, f);
      assertEquals(
          "=SequentialBlock, 01FactorizedConv2d=FactorizedConv2d,"
              + " 01FactorizedConv2d/01WeightStandardizedConv2d=WeightStandardizedConv2d(ws),"
              + " 01FactorizedConv2d/02BlurConv2d=BlurConv2d",
          structure(factorizedLast));
      BlurConv2d blur =
          (BlurConv2d) BlockPaths.resolve(factorizedLast, "01FactorizedConv2d/02BlurConv2d");
      assertFalse(blur.isBlurFirst(), "the blur keeps its order");
      assertEquals(new Shape(2, 2), blur.getStride(), "and takes the stride");

      SequentialBlock factorizedFirst = net(manager);
      apply(factorizedFirst, f, bp, ws);
      assertEquals(
          "=SequentialBlock, 01FactorizedConv2d=FactorizedConv2d,"
              + " 01FactorizedConv2d/01BlurConv2d=BlurConv2d(ws),"
              + " 01FactorizedConv2d/02WeightStandardizedConv2d=WeightStandardizedConv2d(ws)",
          structure(factorizedFirst));
    }
  }

  @Test
  void squeezeExciteGatesAFactorizedConvolutionInEitherOrder() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Algorithm se = SqueezeExcite.builder().optMinChannels(16).optLatentChannels(4).build();
      Algorithm f = Factorize.builder().optMinChannels(16).optLatentChannels(4).build();
      Algorithm ws = WeightStandardization.builder().build();

      SequentialBlock seFirst = net(manager);
      apply(seFirst, ws, se, f);
      SequentialBlock fFirst = net(manager);
      apply(fFirst, ws, f, se);
      String expected =
          "=SequentialBlock, 01SqueezeExciteConv2d=SqueezeExciteConv2d,"
              + " 01SqueezeExciteConv2d/01FactorizedConv2d=FactorizedConv2d,";
      assertTrue(structure(seFirst).startsWith(expected), structure(seFirst));
      assertEquals(
          structure(seFirst).replace("01WeightStandardizedConv2d", "X"),
          structure(fFirst).replace("01WeightStandardizedConv2d", "X"));
      SqueezeExciteConv2d gated = (SqueezeExciteConv2d) seFirst.getChildren().valueAt(0);
      assertTrue(gated.getConv() instanceof FactorizedConv2d);

      // A second squeeze-excite finds nothing left to gate, in the layer or inside it.
      assertTrue(se.apply(SurgeryContext.of(seFirst)).isEmpty());
      assertTrue(se.apply(SurgeryContext.of(fFirst)).isEmpty());
    }
  }

  /**
   * The gate's two linear layers are children like any other: factorize (linears) replaces them
   * inside the gate, and the gate then computes through the factorized layers. Checked against the
   * gate written out by hand from the factors' weights.
   */
  @Test
  void factorizeReplacesTheLinearLayersInsideASqueezeExciteGate() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = net(manager);
      apply(net, SqueezeExcite.builder().optMinChannels(16).optLatentChannels(4).build());
      SurgeryChanges report =
          Factorize.builder()
              .optFactorizeConvs(false)
              .optMinFeatures(4)
              .optLatentFeatures(2)
              .build()
              .apply(SurgeryContext.of(net));

      assertEquals(
          List.of(
              "01SqueezeExciteConv2d/02SqueezeExcite2d/01reduce",
              "01SqueezeExciteConv2d/02SqueezeExcite2d/02expand"),
          report.changes().stream().map(SurgeryChanges.Change::path).toList());
      SqueezeExciteConv2d gated = (SqueezeExciteConv2d) net.getChildren().valueAt(0);
      List<Block> gateLayers = List.copyOf(gated.getGate().getChildren().values());
      assertTrue(gateLayers.stream().allMatch(b -> b instanceof FactorizedLinear), structure(net));

      // Oracle: x * sigmoid(E2 E1 relu(R2 R1 mean(x))), with the factors' own weights.
      NDArray x = manager.randomNormal(INPUT);
      NDArray features =
          gated
              .getConv()
              .forward(new ParameterStore(manager, false), new NDList(x), false)
              .singletonOrThrow();
      float[][] r1 = weights(gateLayers.get(0), 0);
      float[][] r2 = weights(gateLayers.get(0), 1);
      float[][] e1 = weights(gateLayers.get(1), 0);
      float[][] e2 = weights(gateLayers.get(1), 1);
      long[] shape = features.getShape().getShape();
      int n = (int) shape[0];
      int c = (int) shape[1];
      int hw = (int) (shape[2] * shape[3]);
      float[] f = features.toFloatArray();
      float[] expected = new float[f.length];
      for (int i = 0; i < n; i++) {
        double[] mean = new double[c];
        for (int ch = 0; ch < c; ch++) {
          for (int p = 0; p < hw; p++) {
            mean[ch] += f[(i * c + ch) * hw + p];
          }
          mean[ch] /= hw;
        }
        double[] hidden = relu(times(r2, times(r1, mean)));
        double[] gate = times(e2, times(e1, hidden));
        for (int ch = 0; ch < c; ch++) {
          double g = 1 / (1 + Math.exp(-gate[ch]));
          for (int p = 0; p < hw; p++) {
            int at = (i * c + ch) * hw + p;
            expected[at] = (float) (f[at] * g);
          }
        }
      }
      assertArrayEquals(expected, forward(net, x), 1e-5f);
    }
  }

  /** The weight of the {@code layer}-th linear layer of a factorized linear, as rows. */
  private static float[][] weights(Block factorized, int layer) {
    NDArray w = factorized.getChildren().valueAt(layer).getParameters().get("weight").getArray();
    int rows = (int) w.getShape().get(0);
    int cols = (int) w.getShape().get(1);
    float[] flat = w.toFloatArray();
    float[][] m = new float[rows][cols];
    for (int r = 0; r < rows; r++) {
      System.arraycopy(flat, r * cols, m[r], 0, cols);
    }
    return m;
  }

  private static double[] times(float[][] m, double[] v) {
    double[] out = new double[m.length];
    for (int r = 0; r < m.length; r++) {
      for (int k = 0; k < v.length; k++) {
        out[r] += m[r][k] * v[k];
      }
    }
    return out;
  }

  private static double[] relu(double[] v) {
    double[] out = new double[v.length];
    for (int i = 0; i < v.length; i++) {
      out[i] = Math.max(0, v[i]);
    }
    return out;
  }

  /**
   * Issue 19: squeeze-excite matches every Conv2d, and the two layers of a factorized convolution
   * are Conv2d. With {@code min_channels} low enough for those layers to qualify (rank 4 here), it
   * must still gate only the factorized convolution as a whole.
   */
  @Test
  void squeezeExciteNeverGatesTheLayersInsideAFactorizedConvolution() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = net(manager);
      apply(net, Factorize.builder().optMinChannels(16).optLatentChannels(4).build());
      FactorizedConv2d factorized = (FactorizedConv2d) net.getChildren().valueAt(0);
      List<Block> layers = List.copyOf(factorized.getChildren().values());
      NDArray x = manager.randomNormal(INPUT);
      float[] before = forward(factorized, x);

      SurgeryChanges report =
          SqueezeExcite.builder()
              .optMinChannels(1)
              .optLatentChannels(2)
              .build()
              .apply(SurgeryContext.of(net));

      assertEquals(
          List.of("01FactorizedConv2d"),
          report.changes().stream().map(SurgeryChanges.Change::path).toList());
      assertEquals(
          1,
          BlockPaths.index(net).keySet().stream()
              .filter(b -> b instanceof SqueezeExciteConv2d)
              .count(),
          structure(net));
      SqueezeExciteConv2d gated = (SqueezeExciteConv2d) net.getChildren().valueAt(0);
      assertSame(factorized, gated.getConv());
      // The factorized layers are the very same objects, ungated, and compute what they did.
      assertEquals(layers, List.copyOf(factorized.getChildren().values()));
      assertArrayEquals(before, forward(factorized, x));
    }
  }

  @Test
  void aWrapperKeysItsChildAfterWhatItHolds() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = net(manager);
      apply(
          net,
          WeightStandardization.builder().build(),
          SqueezeExcite.builder().optMinChannels(16).build());
      Block conv = BlockPaths.resolve(net, "01SqueezeExciteConv2d/01WeightStandardizedConv2d");
      assertSame(((SqueezeExciteConv2d) net.getChildren().valueAt(0)).getConv(), conv);
      // BlurPool then replaces it inside the wrapper, and the key follows the new class.
      apply(net, BlurPool.builder().build());
      Block blurred = BlockPaths.resolve(net, "01SqueezeExciteConv2d/01BlurConv2d");
      assertTrue(AdoptingConv2d.isWeightStandardized(blurred), structure(net));
    }
  }

  /** What the rule below claims, checked by applying the two: the second changes nothing. */
  @Test
  void aLargerLatentSizeAtTheSameThresholdFactorizesNothingMore() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = net(manager);
      Algorithm quarter = Factorize.builder().optMinChannels(16).optLatentChannels(0.25).build();
      Algorithm half = Factorize.builder().optMinChannels(16).optLatentChannels(0.5).build();
      assertEquals(1, quarter.apply(SurgeryContext.of(net)).changes().size());
      String before = structure(net);
      assertTrue(half.apply(SurgeryContext.of(net)).isEmpty());
      assertEquals(before, structure(net));
      assertTrue(Composition.conflict(quarter, half, List.of()) != null);
    }
  }

  @Test
  void compositionRules() {
    Algorithm bp = BlurPool.builder().build();
    Algorithm bpLower = BlurPool.builder().optMinChannels(8).build();
    Algorithm gbn = GhostBatchNorm.builder().build();
    Algorithm sd = StochasticDepth.builder().build();
    Algorithm ws = WeightStandardization.builder().build();
    Algorithm f = Factorize.builder().build();
    Algorithm se = SqueezeExcite.builder().build();
    Algorithm lf = LayerFreezing.builder().build();

    assertTrue(Composition.conflict(bp, bp, List.of()).contains("change nothing"));
    assertNull(Composition.conflict(bp, bpLower, List.of()));
    assertTrue(Composition.conflict(bpLower, bp, List.of()).contains("change nothing"));
    assertNull(Composition.conflict(gbn, sd, List.of()));
    assertNull(Composition.conflict(se, sd, List.of()));
    assertNull(Composition.conflict(f, sd, List.of()));
    assertTrue(Composition.conflict(sd, sd, List.of()).contains("change nothing"));
    assertNull(Composition.conflict(sd, gbn, List.of()));
    assertNull(Composition.conflict(ws, bp, List.of()));
    assertNull(Composition.conflict(bp, ws, List.of()));
    // Factorize in between leaves new layers to standardize (weightStandardizationAgainAfter...).
    assertNull(Composition.conflict(ws, ws, List.of(f)));
    assertTrue(Composition.conflict(f, f, List.of(bp)) != null);
    // A larger latent size at the same threshold selects only layers factorized already.
    Algorithm quarter = Factorize.builder().optMinChannels(32).optLatentChannels(0.25).build();
    Algorithm half = Factorize.builder().optMinChannels(32).optLatentChannels(0.5).build();
    Algorithm eight = Factorize.builder().optMinChannels(32).optLatentChannels(8).build();
    assertTrue(Composition.conflict(quarter, half, List.of()) != null);
    assertNull(Composition.conflict(half, quarter, List.of()));
    assertNull(Composition.conflict(quarter, eight, List.of()), "a count and a fraction");
    // Gate layers added in between may be factorized by the second factorize.
    assertNull(Composition.conflict(f, f, List.of(se)));
    assertNull(Composition.conflict(lf, lf, List.of()));

    List<Composition.Conflict> found =
        Composition.check(List.of(lf, ws, lf, lf), List.of(1, 1, 1, 2));
    assertEquals(List.of(new Composition.Conflict(0, 2, found.get(0).reason())), found);
    assertEquals(
        Map.of(),
        Composition.check(List.of(sd, ws, bp, se, f, gbn, lf)).stream()
            .collect(Collectors.toMap(c -> c.later(), c -> c.reason())));
  }

  /**
   * Applies {@code earlier}, then each of {@code between}, then {@code later} to a fresh model, and
   * checks the rule against what happened: {@code later} is refused exactly when it changed
   * nothing, and a refusal says so.
   */
  private static void ruleAgreesWithApplying(
      java.util.function.Supplier<Block> model,
      Algorithm earlier,
      List<Algorithm> between,
      Algorithm later,
      boolean laterChanges) {
    String reason = Composition.conflict(earlier, later, between);
    Block net = model.get();
    earlier.apply(SurgeryContext.of(net));
    between.forEach(a -> a.apply(SurgeryContext.of(net)));
    boolean changed = !later.apply(SurgeryContext.of(net)).isEmpty();
    String pair = earlier + " " + between + " " + later + ": " + reason;
    assertEquals(laterChanges, changed, "the oracle's premise, " + pair);
    assertEquals(!changed, reason != null, pair);
    if (reason != null) {
      assertTrue(reason.contains("so it would change nothing"), reason);
    }
  }

  /** An initialized model of the given blocks for input {@code input}, seeded. */
  private static Block initialized(NDManager manager, Shape input, Block... blocks) {
    SequentialBlock net = new SequentialBlock();
    for (Block b : blocks) {
      net.add(b);
    }
    Engine.getInstance().setRandomSeed(5);
    net.initialize(manager, DataType.FLOAT32, input);
    return net;
  }

  /**
   * The rules that set one entry's settings against the other's, each checked by applying the pair:
   * a repeat is refused when, and only when, it changes nothing.
   */
  @Test
  void eachRuleAgreesWithApplyingThePair() {
    try (NDManager manager = NDManager.newBaseManager()) {
      // BlurPool: a strided 16-channel convolution and a max pool.
      java.util.function.Supplier<Block> blurrable =
          () ->
              initialized(
                  manager,
                  INPUT,
                  LiveTraining.conv(16, 2),
                  ai.djl.nn.pooling.Pool.maxPool2dBlock(new Shape(2, 2)));
      Algorithm poolsOnly = BlurPool.builder().optReplaceConvs(false).build();
      Algorithm convsOnly = BlurPool.builder().optReplaceMaxpools(false).build();
      Algorithm both = BlurPool.builder().build();
      ruleAgreesWithApplying(blurrable, poolsOnly, List.of(), both, true);
      ruleAgreesWithApplying(blurrable, convsOnly, List.of(), both, true);
      ruleAgreesWithApplying(blurrable, both, List.of(), poolsOnly, false);
      ruleAgreesWithApplying(blurrable, both, List.of(), convsOnly, false);

      // Weight standardization with another algorithm than factorize between: nothing left.
      java.util.function.Supplier<Block> normalized =
          () ->
              initialized(
                  manager,
                  INPUT,
                  LiveTraining.conv(16, 1),
                  ai.djl.nn.norm.BatchNorm.builder().build());
      Algorithm gbn = GhostBatchNorm.builder().build();
      ruleAgreesWithApplying(
          normalized,
          WeightStandardization.builder().build(),
          List.of(gbn),
          WeightStandardization.builder().build(),
          false);
      ruleAgreesWithApplying(
          normalized, gbn, List.of(), GhostBatchNorm.builder().optGhostBatchSize(4).build(), false);

      // Squeeze-excite: convolutions 16 -> 8 and 8 -> 16 have min(in, out) = 8.
      java.util.function.Supplier<Block> narrow =
          () -> initialized(manager, INPUT, LiveTraining.conv(8, 1), LiveTraining.conv(16, 1));
      Algorithm se16 = SqueezeExcite.builder().optMinChannels(16).optLatentChannels(4).build();
      Algorithm se8 = SqueezeExcite.builder().optMinChannels(8).optLatentChannels(4).build();
      ruleAgreesWithApplying(narrow, se8, List.of(), se8, false);
      ruleAgreesWithApplying(narrow, se16, List.of(), se8, true);

      // Factorize a 1 x 1 convolution 16 -> 16: its largest cheaper rank is ceil(16 * 16 / 32 - 1)
      // = 7, so the fraction 0.5 (8 channels) is refused while the count 1.0 (1 channel) is taken;
      // a latent of exactly 1.0 is a count, as in Composer.
      java.util.function.Supplier<Block> pointwise =
          () ->
              initialized(
                  manager,
                  INPUT,
                  ai.djl.nn.convolutional.Conv2d.builder()
                      .setKernelShape(new Shape(1, 1))
                      .setFilters(16)
                      .build());
      Algorithm half = Factorize.builder().optMinChannels(16).optLatentChannels(0.5).build();
      Algorithm one = Factorize.builder().optMinChannels(16).optLatentChannels(1.0).build();
      Algorithm two = Factorize.builder().optMinChannels(16).optLatentChannels(2.0).build();
      ruleAgreesWithApplying(pointwise, half, List.of(), one, true);
      ruleAgreesWithApplying(pointwise, one, List.of(), two, false);
    }
  }

  /**
   * Layer freezing twice at one epoch: refused when the first froze all the second would, not when
   * the first was limited to some layers (the oracle: applied, the second freezes more).
   */
  @Test
  void layerFreezingAtOneEpochIsRefusedOnlyWhenItFreezesNoMore() {
    Algorithm convsOnly =
        LayerFreezing.builder().build().withTargets(Targets.include("type:Conv2d"));
    Algorithm all = LayerFreezing.builder().build();
    Algorithm again = LayerFreezing.builder().build();
    assertEquals(List.of(), Composition.check(List.of(convsOnly, all), List.of(3, 3)));
    Block net = LiveTraining.smallCnn();
    convsOnly.apply(new SurgeryContext(net, List.of(), 3, 4));
    assertFalse(all.apply(new SurgeryContext(net, List.of(), 3, 4)).isEmpty());

    List<Composition.Conflict> found = Composition.check(List.of(all, again), List.of(3, 3));
    assertEquals(1, found.size());
    assertTrue(found.get(0).reason().contains("so it would change nothing"), found.toString());
    assertTrue(again.apply(new SurgeryContext(net, List.of(), 3, 4)).isEmpty());
  }

  /**
   * Layer freezing twice at one epoch with factorize or squeeze-excite between: those add layers,
   * so the same fraction of the new count may reach a layer the first left trainable (the oracle:
   * the three applied in turn, the second freezing changes something); no refusal then, nor with an
   * unknown entry that may be one of them.
   */
  @Test
  void layerFreezingAtOneEpochMayFreezeMoreAfterAnEntryThatAddsLayers() {
    Algorithm first = LayerFreezing.builder().build();
    Algorithm again = LayerFreezing.builder().build();
    Algorithm factorize =
        Factorize.builder()
            .optMinChannels(16)
            .optLatentChannels(0.25)
            .optFactorizeLinears(false)
            .build();
    Algorithm gates = SqueezeExcite.builder().optMinChannels(16).build();
    // Five layers; at epoch 3 of 4 half of the four before the last freeze: the two with eight
    // input channels, which factorize leaves. Its three splits make eight layers, and half of
    // seven (three) reaches the first of the third convolution's two. The gates' linears add
    // layers too, some within the frozen fraction.
    assertEquals(1, freezesAfterFreezingAndThen(factorize));
    assertTrue(freezesAfterFreezingAndThen(gates) > 0);
    assertEquals(List.of(), Composition.check(List.of(first, factorize, again), List.of(3, 3, 3)));
    assertEquals(List.of(), Composition.check(List.of(first, gates, again), List.of(3, 3, 3)));
    assertEquals(
        List.of(),
        Composition.check(List.of(first, again), List.of(3, 3), (i, j) -> List.of(factorize)),
        "an entry that may run between");
    assertEquals(
        1,
        Composition.check(List.of(first, again), List.of(3, 3), Composition.Unplaced.NONE).size(),
        "none");
    assertThrows(
        NullPointerException.class,
        () -> Composition.check(List.of(first, again), List.of(3, 3), null));
    // An algorithm of the program's own may add layers as factorize does.
    Algorithm plugin = new Renamed("split_convs", factorize);
    assertEquals(1, freezesAfterFreezingAndThen(plugin));
    assertEquals(List.of(), Composition.check(List.of(first, plugin, again), List.of(3, 3, 3)));
    // Weight standardization replaces each layer by one: the count stays, the rule holds.
    Algorithm ws = WeightStandardization.builder().build();
    assertEquals(0, freezesAfterFreezingAndThen(ws));
    assertEquals(1, Composition.check(List.of(first, ws, again), List.of(3, 3, 3)).size());
  }

  /**
   * Layer freezing at one epoch limited to some layers after one on the whole model: its fraction
   * is of its own layers, so it may freeze layers past the whole model's prefix (the oracle:
   * applied after the first, it freezes something); the same limited entry twice freezes no more.
   */
  @Test
  void layerFreezingAtOneEpochOnOtherLayersMayFreezeMore() {
    Algorithm all = LayerFreezing.builder().build();
    Targets lastThree = Targets.include("03Conv2d", "04Conv2d", "05Conv2d");
    Algorithm lastConvs = LayerFreezing.builder().build().withTargets(lastThree);
    Algorithm lastConvsAgain = LayerFreezing.builder().build().withTargets(lastThree);
    assertEquals(List.of(), Composition.check(List.of(all, lastConvs), List.of(3, 3)));
    assertEquals(1, Composition.check(List.of(lastConvs, lastConvsAgain), List.of(3, 3)).size());
    try (NDManager manager = NDManager.newBaseManager()) {
      Block net = convolutions(manager, 8, 8, 8, 8, 8);
      SurgeryContext atThree = new SurgeryContext(net, List.of(), 3, 4);
      // At epoch 3 of 4 half of the layers before the last freeze: of the five, 01 and 02; of
      // the last three, 03.
      assertEquals(
          List.of("01Conv2d", "02Conv2d"),
          all.apply(atThree).changes().stream().map(SurgeryChanges.Change::path).toList());
      assertEquals(
          List.of("03Conv2d"),
          lastConvs.apply(atThree).changes().stream().map(SurgeryChanges.Change::path).toList());
      assertTrue(lastConvsAgain.apply(atThree).isEmpty());
    }
  }

  /**
   * Layer freezing twice at one epoch with ghost batch norm between: a batch norm that neither
   * scales nor centers is no layer (Composer counts PyTorch's parameterless {@code
   * BatchNorm(affine=False)}), nor is the ghost batch norm that replaces it, so the count stays and
   * the second freezes nothing (the oracle: applied in turn); refused.
   */
  @Test
  void layerFreezingAtOneEpochAfterGhostBatchNormOfFixedBatchNormsFreezesNoMore() {
    Algorithm first = LayerFreezing.builder().build();
    Algorithm again = LayerFreezing.builder().build();
    Algorithm ghost = GhostBatchNorm.builder().optGhostBatchSize(1).build();
    try (NDManager manager = NDManager.newBaseManager()) {
      Block net =
          initialized(
              manager,
              new Shape(2, 8, 8, 8),
              LiveTraining.conv(8, 1),
              LiveTraining.conv(8, 1),
              LiveTraining.conv(8, 1),
              LiveTraining.conv(8, 1),
              BatchNorm.builder().optScale(false).optCenter(false).build(),
              BatchNorm.builder().optScale(false).optCenter(false).build(),
              LiveTraining.conv(8, 1));
      SurgeryContext atThree = new SurgeryContext(net, List.of(), 3, 4);
      Map<Block, String> before = LayerFreezing.layers(net);
      assertEquals(5, before.size(), "the fixed batch norms are no layers: " + before.values());
      assertEquals(2, first.apply(atThree).changes().size());
      assertEquals(2, ghost.apply(atThree).changes().size());
      assertEquals(5, LayerFreezing.layers(net).size(), "nor are their ghost batch norms");
      assertTrue(again.apply(atThree).isEmpty());
    }
    assertEquals(1, Composition.check(List.of(first, ghost, again), List.of(3, 3, 3)).size());
  }

  /** A built-in under another name: an algorithm of the program's own doing what it does. */
  private record Renamed(String name, Algorithm algorithm) implements Algorithm {
    @Override
    public Map<String, Object> hyperparameters() {
      return algorithm.hyperparameters();
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      return algorithm.apply(context);
    }
  }

  /**
   * Freezes at epoch 3 of 4, applies {@code between} (which must change the model), and tells how
   * many layers freezing at the same epoch again freezes: the oracle of the same-epoch rule.
   */
  private static int freezesAfterFreezingAndThen(Algorithm between) {
    try (NDManager manager = NDManager.newBaseManager()) {
      Block net = convolutions(manager, 8, 16, 16, 16, 16);
      SurgeryContext atThree = new SurgeryContext(net, List.of(), 3, 4);
      assertEquals(2, LayerFreezing.builder().build().apply(atThree).changes().size());
      assertFalse(between.apply(SurgeryContext.of(net)).isEmpty(), between.toString());
      return LayerFreezing.builder().build().apply(atThree).changes().size();
    }
  }

  /** Initialized 3 x 3 convolutions of the given filters in a row, for input (2, 8, 8, 8). */
  private static Block convolutions(NDManager manager, int... filters) {
    Block[] convs = new Block[filters.length];
    for (int i = 0; i < filters.length; i++) {
      convs[i] = LiveTraining.conv(filters[i], 1);
    }
    return initialized(manager, new Shape(2, 8, 8, 8), convs);
  }
}
