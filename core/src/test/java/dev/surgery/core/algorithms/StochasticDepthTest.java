package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.ParameterStore;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.Targets;
import dev.surgery.core.layers.BatchNormLayer;
import dev.surgery.core.layers.ConvolutionLayer;
import dev.surgery.core.layers.StochasticResidual;
import dev.surgery.core.testing.PassThroughBlock;
import dev.surgery.core.testing.TinyModels;
import dev.surgery.core.testing.TrajectoryOracle;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class StochasticDepthTest {

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  private static List<StochasticResidual> wrappers(Block root) {
    List<StochasticResidual> list = new ArrayList<>();
    for (Block b : BlockPaths.index(root).keySet()) {
      if (b instanceof StochasticResidual s) {
        list.add(s);
      }
    }
    return list;
  }

  @Test
  void wrapsTheResidualBranchOfEveryResNetUnitWithTheLinearSchedule() {
    Block net = TinyModels.resNet20();
    List<Block> branches = StochasticDepth.residualBranches(net);
    assertEquals(9, branches.size(), "ResNet20 has 3 stages of 3 units");
    List<ParallelBlock> units = new ArrayList<>();
    for (Block b : BlockPaths.index(net).keySet()) {
      if (b instanceof ParallelBlock p) {
        units.add(p);
      }
    }
    SurgeryChanges report =
        StochasticDepth.builder().optDropRate(0.3).build().apply(SurgeryContext.of(net));
    assertEquals(Map.of("SequentialBlock->StochasticResidual", 9), report.countsByType());
    List<StochasticResidual> wrapped = wrappers(net);
    for (int i = 0; i < 9; i++) {
      assertSame(branches.get(i), wrapped.get(i).getBranch());
      assertEquals(0.3f * (i + 1) / 9, wrapped.get(i).getDropRate(), 1e-6);
      assertEquals(StochasticResidual.Mode.BLOCK, wrapped.get(i).getMode());
      // The unit (and with it its merge function) is the same object, now holding the wrapper.
      assertSame(wrapped.get(i), units.get(i).getChildren().valueAt(0));
    }
    assertTrue(
        StochasticDepth.builder().build().apply(SurgeryContext.of(net)).isEmpty(), "idempotent");
    assertEquals(0, StochasticDepth.residualBranches(net).size());
  }

  /**
   * A first entry limited to units 3 to 5, then one over the whole model: each unit gets the rate
   * Composer's linear rule gives it by its depth among all 9 units, whichever entry wrapped it (a
   * second entry spread its rates over the 6 units left: 0.15, 0.30, ..., not monotone in depth).
   */
  @Test
  void aSecondEntryGivesEachUnitTheRateOfItsDepthAmongAllUnits() {
    Block net = TinyModels.resNet20();
    List<Block> branches = StochasticDepth.residualBranches(net);
    Map<Block, String> paths = BlockPaths.index(net);
    List<String> middle =
        List.of(paths.get(branches.get(2)), paths.get(branches.get(3)), paths.get(branches.get(4)));
    StochasticDepth.builder()
        .optDropRate(0.9)
        .build()
        .withTargets(Targets.of(middle, List.of()))
        .apply(SurgeryContext.of(net));
    assertEquals(3, wrappers(net).size());
    StochasticDepth.builder().optDropRate(0.9).build().apply(SurgeryContext.of(net));
    List<StochasticResidual> wrapped = wrappers(net);
    assertEquals(9, wrapped.size());
    for (int i = 0; i < 9; i++) {
      assertSame(branches.get(i), wrapped.get(i).getBranch());
      assertEquals(0.9f * (i + 1) / 9, wrapped.get(i).getDropRate(), 1e-6, "unit " + (i + 1));
    }
  }

  /** A convolution layer stochastic depth has never heard of, marked as one. */
  private static final class MarkedConv extends PassThroughBlock implements ConvolutionLayer {}

  /** A batch norm stochastic depth has never heard of, marked as one. */
  private static final class MarkedNorm extends PassThroughBlock implements BatchNormLayer {}

  /** A residual unit shaped like ResNetV1's: branch, then a projection shortcut of two blocks. */
  private static ParallelBlock unit(Block branchConv, Block shortcutConv, Block shortcutNorm) {
    return new ParallelBlock(
        list -> new NDList(list.get(0).singletonOrThrow().add(list.get(1).singletonOrThrow())),
        List.of(
            new SequentialBlock().add(branchConv),
            new SequentialBlock().add(shortcutConv).add(shortcutNorm)));
  }

  @Test
  void aLayerMarkedAsConvolutionOrBatchNormJoinsAResidualUnit() {
    // Marked layers count as what they mark, in the branch and in the projection shortcut.
    ParallelBlock marked = unit(new MarkedConv(), new MarkedConv(), new MarkedNorm());
    assertEquals(
        List.of(marked.getChildren().valueAt(0)),
        StochasticDepth.residualBranches(new SequentialBlock().add(marked)));
    // Without the marker the same blocks are no convolution and no batch norm: no unit.
    Block plain = new SequentialBlock().add(Blocks.identityBlock());
    ParallelBlock unmarked =
        unit(new MarkedConv(), new SequentialBlock().add(plain), BatchNorm.builder().build());
    assertEquals(List.of(), StochasticDepth.residualBranches(new SequentialBlock().add(unmarked)));
  }

  @Test
  void uniformSampleModeAndNoOtherParallelBlocks() {
    Block net = TinyModels.resNet20();
    StochasticDepth.builder()
        .optStochasticMethod("sample")
        .optDropDistribution("uniform")
        .optDropRate(0.1)
        .build()
        .apply(SurgeryContext.of(net));
    for (StochasticResidual s : wrappers(net)) {
      assertEquals(0.1f, s.getDropRate(), 1e-7);
      assertEquals(StochasticResidual.Mode.SAMPLE, s.getMode());
    }
    // A model without residual units is left alone.
    assertTrue(
        StochasticDepth.builder()
            .build()
            .apply(SurgeryContext.of(LiveTraining.smallCnn()))
            .isEmpty());
  }

  @Test
  void initializedModelEvaluatesExactlyAsBeforeAndKeepsParameters() {
    Block net = TinyModels.resNet20();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 1, 28, 28));
      NDArray x = manager.randomNormal(new Shape(2, 1, 28, 28));
      float[] before =
          net.forward(new ParameterStore(manager, false), new NDList(x), false)
              .head()
              .toFloatArray();
      List<Parameter> params = WeightStandardizationTest.parameters(net);
      SurgeryChanges report = StochasticDepth.builder().build().apply(SurgeryContext.of(net));
      assertEquals(report.parametersBefore(), report.parametersAfter());
      assertTrue(net.isInitialized());
      List<Parameter> after = WeightStandardizationTest.parameters(net);
      for (int i = 0; i < params.size(); i++) {
        assertSame(params.get(i), after.get(i));
      }
      float[] now =
          net.forward(new ParameterStore(manager, false), new NDList(x), false)
              .head()
              .toFloatArray();
      assertArrayEquals(before, now, 0f);
    }
  }

  @Test
  void aRateJustBelowOneStaysBelowOneInTheLayer() {
    // 0.99999999 passes as a double but is 1 as a float: the layer's draws keep it below 1.
    StochasticDepth sd = StochasticDepth.builder().optDropRate(0.99999999).build();
    assertEquals(0.99999999, sd.rateOf(0, 1));
    StochasticResidual layer =
        new StochasticResidual(
            TinyModels.conv3x3(2, 1), StochasticResidual.Mode.BLOCK, sd.rateOf(0, 1));
    assertEquals(Math.nextDown(1f), layer.getDropRate());
  }

  /**
   * A kept branch of a float64 model is scaled by {@code 1 / (1 - p)} of the rate as written, in
   * double precision (docs/algorithms.md): an outside probe gave {@code drop_rate: 0.2} and found
   * every kept output 3.7e-9 too large, scaled by {@code 1 / (1 - 0.2f)}, since the rate reached
   * the layer as a float. The oracle is the branch's own output divided by {@code 1 - p_i} in Java
   * double, with {@code p_i = (i + 1) / 9 * 0.2} the linear schedule's rate of unit {@code i}.
   */
  @Test
  void aKeptFloat64BranchIsScaledByTheComplementOfTheRateAsWritten() {
    ai.djl.engine.Engine.getInstance().setRandomSeed(5);
    try (NDManager manager = NDManager.newBaseManager()) {
      Block net = TinyModels.resNet20();
      Shape in = new Shape(2, 1, 28, 28);
      net.initialize(manager, DataType.FLOAT64, in);
      StochasticDepth.builder().optDropRate(0.2).build().apply(SurgeryContext.of(net));
      List<StochasticResidual> wrapped = wrappers(net);
      assertEquals(9, wrapped.size());
      ParameterStore ps = new ParameterStore(manager, false);
      int kept = 0;
      for (int i : new int[] {0, 4, 8}) {
        StochasticResidual layer = wrapped.get(i);
        NDList input =
            new NDList(
                manager
                    .randomNormal(layer.getBranch().getInputShapes()[0])
                    .toType(DataType.FLOAT64, false));
        double[] y = layer.getBranch().forward(ps, input, true).head().toDoubleArray();
        double keep = 1.0 - 0.2 * (i + 1) / 9; // the rate in the order the schedule reads it
        for (int pass = 0; pass < 20; pass++) {
          NDArray out = layer.forward(ps, input, true).singletonOrThrow();
          assertEquals(DataType.FLOAT64, out.getDataType());
          double[] values = out.toDoubleArray();
          boolean dropped = true;
          for (double v : values) {
            dropped &= v == 0;
          }
          if (dropped) {
            continue;
          }
          kept++;
          for (int k = 0; k < y.length; k++) {
            assertEquals(y[k] / keep, values[k], 0.0, "unit " + i + ", value " + k);
          }
        }
      }
      assertTrue(kept > 0, "no pass was kept");
    }
  }

  @Test
  void invalidValuesAreRefused() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> StochasticDepth.builder().optDropRate(1.5).build());
    assertTrue(e.getMessage().startsWith("drop_rate must be in [0, 1), got 1.5"), e.getMessage());
    // 1 would leave the branch untrained while evaluation runs it at full weight.
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> StochasticDepth.builder().optDropRate(1.0).build());
    assertTrue(e.getMessage().startsWith("drop_rate must be in [0, 1), got 1.0"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> Algorithms.spec(StochasticDepth.NAME).create(Map.of("drop_rate", 1)));
    assertTrue(e.getMessage().contains("drop_rate must be in [0, 1), got 1"), e.getMessage());
    assertEquals(
        Math.nextDown(1.0),
        StochasticDepth.builder()
            .optDropRate(Math.nextDown(1.0))
            .build()
            .hyperparameters()
            .get("drop_rate"),
        "just below 1 is still valid");
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> StochasticDepth.builder().optStochasticMethod("layer").build());
    assertTrue(e.getMessage().contains("stochastic_method") && e.getMessage().contains("'layer'"));
    assertThrows(
        IllegalArgumentException.class,
        () -> StochasticDepth.builder().optDropDistribution("cubic").build());
    assertThrows(
        IllegalArgumentException.class,
        () ->
            Algorithms.spec(StochasticDepth.NAME)
                .create(Map.of("target_layer_name", "ResNetBottleneck")));
    assertEquals(
        0.2,
        Algorithms.spec(StochasticDepth.NAME).create(Map.of()).hyperparameters().get("drop_rate"));
  }

  /** conv(4) BN ReLU, two residual units, global average pool, linear(4): input (N, 3, 8, 8). */
  private static Block tinyResNet() {
    return new SequentialBlock()
        .add(LiveTraining.conv(4, 1))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(TrajectoryOracle.residualUnit(4))
        .add(TrajectoryOracle.residualUnit(4))
        .add(Pool.globalAvgPool2dBlock())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  /**
   * Live, after three Adam steps, in both modes: the subject equals the model built by hand with
   * each residual branch wrapped at the linear schedule's rate (drop_rate 0.5 over two units: 0.25
   * and 0.5) and a fresh Adam seeded with the moments, bit for bit over six more steps in which
   * both draw the same drops (the engine's generators seeded alike before every step).
   */
  @ParameterizedTest
  @EnumSource(StochasticResidual.Mode.class)
  void liveApplicationTrainsExactlyLikeTheModelBuiltByHand(StochasticResidual.Mode mode)
      throws Exception {
    HandBuiltOracle.Case c = new HandBuiltOracle.Case();
    c.before = StochasticDepthTest::tinyResNet;
    c.sample = new Shape(3, 8, 8);
    c.stepsAfter = 6;
    c.algorithm =
        StochasticDepth.builder()
            .optDropRate(0.5)
            .optStochasticMethod(mode.name().toLowerCase(java.util.Locale.ROOT))
            .build();
    c.byHand =
        fresh -> {
          SequentialBlock built = new SequentialBlock();
          int unit = 0;
          for (Block b : fresh.getChildren().values()) {
            if (b instanceof ParallelBlock p) {
              float rate = 0.25f * ++unit;
              Block wrapped = new StochasticResidual(p.getChildren().valueAt(0), mode, rate);
              built.add(
                  new ParallelBlock(
                      TrajectoryOracle::addAndRelu, List.of(wrapped, p.getChildren().valueAt(1))));
            } else {
              built.add(b);
            }
          }
          return built;
        };
    SurgeryChanges report = HandBuiltOracle.run(c);
    assertEquals(Map.of("SequentialBlock->StochasticResidual", 2), report.countsByType());
  }

  /**
   * The reported setting: applied right after {@code Trainer.initialize}, SGD with momentum,
   * several epochs. Everything stays finite after every batch (the guard). Whether the surgery
   * trains the right model is {@code liveApplicationTrainsExactlyLikeTheModelBuiltByHand}'s.
   */
  @Test
  void appliedRightAfterInitializeTrainsFinitelyInBothModes() throws Exception {
    int epochs = 3;
    int perEpoch = SeededTraining.SAMPLES / SeededTraining.BATCH;
    for (String method : List.of("block", "sample")) {
      SeededTraining.Result result =
          SeededTraining.run(
              TinyModels::resNet20,
              new Shape(1, 28, 28),
              StochasticDepth.builder().optStochasticMethod(method).build(),
              0,
              epochs,
              5);
      assertEquals(9, result.report().changes().size());
      // Every batch's loss was recorded and every value stayed finite (the guard, per batch).
      assertEquals(epochs * perEpoch, result.losses.size());
    }
  }
}
