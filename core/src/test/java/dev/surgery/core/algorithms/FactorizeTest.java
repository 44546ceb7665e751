package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.layers.FactorizedConv2d;
import dev.surgery.core.layers.FactorizedLinear;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyModels;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class FactorizeTest {

  private static final Shape IN = new Shape(2, 3, 8, 8);

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  private static Factorize.Builder small() {
    return Factorize.builder()
        .optMinChannels(8)
        .optLatentChannels(0.5)
        .optMinFeatures(4)
        .optLatentFeatures(0.5);
  }

  /**
   * DJL's {@code Linear.loadMetadata} records a loaded layer's input as the shape without its
   * feature axis ({@code (2)} for inputs of {@code (2, 4)}): a factorization of a loaded linear
   * layer whose input width differs from the batch size failed ("The NDArray size is: 16, but
   * buffer size is: 8", an outside probe, on a squeeze-excite gate after a checkpoint load). Loaded
   * layers report the inputs they take, and factorize as the trained ones do.
   */
  @Test
  void linearLayersLoadedFromAFileReportTheirInputsAndFactorize(@TempDir Path dir)
      throws Exception {
    Shape input = new Shape(2, 6);
    NDArray x;
    float[] trainedOut;
    try (Model trained = Model.newInstance("lin")) {
      trained.setBlock(mlp());
      trained.getBlock().initialize(trained.getNDManager(), DataType.FLOAT32, input);
      x = trained.getNDManager().randomNormal(input);
      trainedOut = forward(trained.getBlock(), x);
      trained.save(dir, "lin");
      try (Model loaded = Model.newInstance("lin")) {
        loaded.setBlock(mlp());
        loaded.load(dir, "lin");
        List<Block> layers = loaded.getBlock().getChildren().values();
        assertEquals(
            List.of(input, new Shape(2, 16), new Shape(2, 8)),
            layers.stream().map(b -> DjlShapes.recordedInputShapes(b)[0]).toList());
        ExactnessOracle.assertBitsEqual(
            trainedOut, forward(loaded.getBlock(), x.duplicate()), "loaded as saved");
        // 6 -> 16 at rank 3 and 16 -> 8 at rank 4; 8 -> 3 is below min_features.
        SurgeryChanges report =
            Factorize.builder()
                .optMinFeatures(4)
                .optLatentFeatures(0.5)
                .build()
                .apply(SurgeryContext.of(loaded.getBlock()));
        assertEquals(
            List.of("01Linear", "02Linear"),
            report.changes().stream().map(SurgeryChanges.Change::path).toList());
        assertEquals(new Shape(2, 3), loadedOutputShape(loaded.getBlock(), x));
      }
    }
  }

  /**
   * A loaded linear layer (a pretrained head) placed into another model: the surgery's check of its
   * arrays ran DJL's beforeInitialize on it and left new objects in its fields, so it reported its
   * inputs without their features again, and a later factorize broke the model (a reviewer). Its
   * fields are put back; it keeps reporting the inputs it takes, and factorizes.
   */
  @Test
  void aLoadedLayerPlacedInAnotherModelKeepsItsInputsAndFactorizes(@TempDir Path dir)
      throws Exception {
    Shape input = new Shape(2, 6);
    try (Model trained = Model.newInstance("head");
        Model loaded = Model.newInstance("head");
        Model live = Model.newInstance("live")) {
      trained.setBlock(twoLayers());
      trained.getBlock().initialize(trained.getNDManager(), DataType.FLOAT32, input);
      trained.save(dir, "head");
      loaded.setBlock(twoLayers());
      loaded.load(dir, "head");
      Block head = loaded.getBlock().getChildren().valueAt(1);
      assertEquals(new Shape(2, 16), DjlShapes.recordedInputShapes(head)[0]);
      live.setBlock(twoLayers());
      live.getBlock().initialize(live.getNDManager(), DataType.FLOAT32, input);
      Map<dev.surgery.core.BlockMatcher, dev.surgery.core.ReplacementFunction> policies =
          new java.util.LinkedHashMap<>();
      policies.put((block, path) -> path.equals("02Linear"), (block, index) -> head);
      dev.surgery.core.ModuleSurgery.replaceModules(
          live.getBlock(), policies, dev.surgery.core.SurgeryOptions.defaults());
      assertEquals(new Shape(2, 16), DjlShapes.recordedInputShapes(head)[0], "after placing");
      Factorize.builder()
          .optMinFeatures(2)
          .optLatentFeatures(0.5)
          .build()
          .apply(SurgeryContext.of(live.getBlock()));
      NDArray x = live.getNDManager().randomNormal(input);
      assertEquals(new Shape(2, 3), loadedOutputShape(live.getBlock(), x));
    }
  }

  private static SequentialBlock twoLayers() {
    return new SequentialBlock()
        .add(Linear.builder().setUnits(16).build())
        .add(Linear.builder().setUnits(3).build());
  }

  private static SequentialBlock mlp() {
    return new SequentialBlock()
        .add(Linear.builder().setUnits(16).build())
        .add(Linear.builder().setUnits(8).build())
        .add(Linear.builder().setUnits(3).build());
  }

  private static float[] forward(Block block, NDArray x) {
    return block
        .forward(new ParameterStore(x.getManager(), false), new NDList(x), false)
        .head()
        .toFloatArray();
  }

  private static Shape loadedOutputShape(Block block, NDArray x) {
    return block
        .forward(new ParameterStore(x.getManager(), false), new NDList(x), false)
        .head()
        .getShape();
  }

  @Test
  void composersSizeRules() {
    assertEquals(255, Factorize.maxRank(512, 512));
    assertEquals(230, Factorize.maxRank(256 * 9, 256));
    assertEquals(1, Factorize.latentSize(0.01, 16, 32));
    assertEquals(4, Factorize.latentSize(0.25, 16, 32));
    assertEquals(1, Factorize.latentSize(1.0, 16, 32), "1.0 means one channel");
    assertEquals(24, Factorize.latentSize(24.7, 16, 32));
  }

  @Test
  void factorizesOnlyWhereItLowersTheCost() {
    // smallCnn: conv 3->8 (fan-in 27), conv 8->16 (72, max rank 13), conv 16->16 (144, max rank
    // 14), linear 16->4 (max rank 3).
    SequentialBlock net = LiveTraining.smallCnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, IN);
      NDArray x = manager.randomNormal(IN);
      Shape out =
          net.forward(new ParameterStore(manager, false), new NDList(x), false).head().getShape();
      Factorize algorithm = small().build();
      SurgeryChanges report = algorithm.apply(SurgeryContext.of(net));
      assertEquals(
          List.of("04Conv2d", "07Conv2d", "10Linear"),
          report.changes().stream().map(SurgeryChanges.Change::path).toList());
      assertEquals(4, ((FactorizedConv2d) BlockPaths.resolve(net, "04FactorizedConv2d")).getRank());
      assertEquals(8, ((FactorizedConv2d) BlockPaths.resolve(net, "07FactorizedConv2d")).getRank());
      assertEquals(2, ((FactorizedLinear) BlockPaths.resolve(net, "10FactorizedLinear")).getRank());
      // 16*72 -> 4*72 + 16*4; 16*144 -> 8*144 + 16*8; 4*16 -> 2*16 + 4*2 (biases unchanged).
      long saved = (16 * 72 - 4 * 72 - 16 * 4) + (16 * 144 - 8 * 144 - 16 * 8) + (64 - 32 - 8);
      assertEquals(saved, report.parametersBefore() - report.parametersAfter());
      assertTrue(net.isInitialized());
      assertEquals(
          out,
          net.forward(new ParameterStore(manager, false), new NDList(x), false).head().getShape());
      assertTrue(algorithm.apply(SurgeryContext.of(net)).isEmpty(), "idempotent");
    }
  }

  /**
   * Filters that are all equal (a constant initializer) make the weight rank 1 and its Gram matrix
   * constant, on which the eigen-solver of the Gram path (both sides >= 64) once returned NaN: the
   * factorized layers must be finite and multiply back to that weight, the oracle here, exactly up
   * to float rounding.
   */
  @ParameterizedTest
  @ValueSource(ints = {96, 256})
  void identicalFiltersFactorizeToFiniteFactorsThatReproduceTheWeight(int filters) {
    SequentialBlock net =
        new SequentialBlock().add(TinyModels.conv3x3(64, 1)).add(TinyModels.conv3x3(filters, 1));
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, IN);
      NDArray weight = BlockPaths.resolve(net, "02Conv2d").getParameters().get("weight").getArray();
      float[] w = new float[filters * 576];
      java.util.Arrays.fill(w, 0.01f);
      weight.set(w);
      SurgeryChanges report =
          Factorize.builder()
              .optMinChannels(64)
              .optLatentChannels(0.25)
              .build()
              .apply(SurgeryContext.of(net));
      assertEquals(
          List.of("02Conv2d"), report.changes().stream().map(SurgeryChanges.Change::path).toList());
      FactorizedConv2d f = (FactorizedConv2d) BlockPaths.resolve(net, "02FactorizedConv2d");
      int r = f.getRank();
      float[] m0 =
          f.getChildren().valueAt(0).getParameters().get("weight").getArray().toFloatArray();
      float[] m1 =
          f.getChildren().valueAt(1).getParameters().get("weight").getArray().toFloatArray();
      for (float x : m0) {
        assertTrue(Float.isFinite(x), "module0 holds " + x);
      }
      for (float x : m1) {
        assertTrue(Float.isFinite(x), "module1 holds " + x);
      }
      for (int o = 0; o < filters; o++) {
        for (int j = 0; j < 576; j++) {
          double eff = 0;
          for (int k = 0; k < r; k++) {
            eff += (double) m1[o * r + k] * m0[k * 576 + j];
          }
          assertEquals(0.01, eff, 1e-6, "weight " + o + "," + j);
        }
      }
    }
  }

  @Test
  void breakEvenRankIsTheLimit() {
    SequentialBlock net = LiveTraining.smallCnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, IN);
      SurgeryChanges report =
          small()
              .optLatentChannels(14)
              .optFactorizeLinears(false)
              .build()
              .apply(SurgeryContext.of(net));
      assertEquals(
          List.of("07Conv2d"), report.changes().stream().map(SurgeryChanges.Change::path).toList());
    }
  }

  @Test
  void uninitializedModelIsRefusedWithoutChange() {
    SequentialBlock net = LiveTraining.smallCnn();
    Factorize algorithm = small().build();
    assertTrue(algorithm.needsInitializedModel());
    SurgeryException e =
        assertThrows(SurgeryException.class, () -> algorithm.apply(SurgeryContext.of(net)));
    assertEquals("01Conv2d", e.getBlockPath());
    assertEquals(
        0,
        BlockPaths.index(net).keySet().stream().filter(FactorizedConv2d.class::isInstance).count());
  }

  @Test
  void invalidValuesAreRefused() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class, () -> Factorize.builder().optMinChannels(0).build());
    assertTrue(e.getMessage().contains("min_channels") && e.getMessage().contains(">= 1"));
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> Factorize.builder().optLatentFeatures(-0.5).build());
    assertTrue(e.getMessage().contains("latent_features") && e.getMessage().contains("-0.5"));
    assertThrows(
        IllegalArgumentException.class,
        () -> Algorithms.spec(Factorize.NAME).create(Map.of("factorize_convs", "yes")));
    assertEquals(
        512,
        Algorithms.spec(Factorize.NAME).create(Map.of()).hyperparameters().get("min_features"));
  }

  /**
   * Live, after three steps of SGD with momentum: the subject equals the model built by hand with
   * the same factorized layers (ranks 4, 8 and 2) starting from the values the factorization
   * computed, a fresh optimizer for them, and the untouched layers' momentum kept, bit for bit over
   * four more steps.
   */
  @Test
  void liveFactorizationTrainsExactlyLikeTheModelBuiltByHand() throws Exception {
    HandBuiltOracle.Case c = new HandBuiltOracle.Case();
    c.before = LiveTraining::smallCnn;
    c.sample = new Shape(3, 8, 8);
    c.optimizer = OptimizerKind.SGD_MOMENTUM;
    c.algorithm = small().build();
    c.byHand =
        fresh -> {
          SequentialBlock built = new SequentialBlock();
          List<Block> blocks = fresh.getChildren().values();
          for (int i = 0; i < blocks.size(); i++) {
            Block b = blocks.get(i);
            built.add(
                i == 3
                    ? FactorizedConv2d.from((Conv2d) b, 4)
                    : i == 6
                        ? FactorizedConv2d.from((Conv2d) b, 8)
                        : i == 9 ? FactorizedLinear.from((Linear) b, 2) : b);
          }
          return built;
        };
    SurgeryChanges report = HandBuiltOracle.run(c);
    assertEquals(3, report.changes().size());
  }

  /** Linear 16 -> 16 on 16 inputs, initialized when {@code manager} is given. */
  private static SequentialBlock linear16(NDManager manager) {
    SequentialBlock net = new SequentialBlock().add(Linear.builder().setUnits(16).build());
    if (manager != null) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 16));
    }
    return net;
  }

  private static int factorizedLinears(NDManager manager, int minFeatures, double latent) {
    return Factorize.builder()
        .optFactorizeConvs(false)
        .optMinFeatures(minFeatures)
        .optLatentFeatures(latent)
        .build()
        .apply(SurgeryContext.of(linear16(manager)))
        .changes()
        .size();
  }

  /**
   * Composer's rule for a Linear 16 -> 16 at its edges: min(in, out) = 16 reaches min_features 16
   * but not 17, and the largest cheaper rank is ceil(16 * 16 / (16 + 16) - 1) = 7, so a latent size
   * of 7 is taken and 8 is not.
   */
  @Test
  void aLinearAtTheThresholdsIsFactorizedAsComposerDecides() {
    try (NDManager manager = NDManager.newBaseManager()) {
      assertEquals(1, factorizedLinears(manager, 16, 7));
      assertEquals(0, factorizedLinears(manager, 17, 7));
      assertEquals(0, factorizedLinears(manager, 16, 8));
    }
  }

  /**
   * The input size decides: an uninitialized linear layer is refused, naming it, rather than left
   * as it is without a word; either kind alone needs an initialized model.
   */
  @Test
  void anUninitializedLinearIsRefused() {
    Factorize linearsOnly = Factorize.builder().optFactorizeConvs(false).optMinFeatures(1).build();
    SurgeryException e =
        assertThrows(
            SurgeryException.class, () -> linearsOnly.apply(SurgeryContext.of(linear16(null))));
    assertTrue(e.getMessage().contains("needs the input size"), e.getMessage());
    assertTrue(linearsOnly.needsInitializedModel());
    assertTrue(Factorize.builder().optFactorizeLinears(false).build().needsInitializedModel());
  }
}
