package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.algorithms.WeightStandardization;
import dev.surgery.core.layers.BlurMaxPool2d;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The multiply-accumulate counts of {@link SurgeryPlan} against hand-computed formulas: a
 * convolution costs {@code out_h * out_w * out_c * in_c * k_h * k_w / groups} per sample, a linear
 * layer {@code in * out}, a blur {@code 9} per output value; types without a formula stay unknown.
 */
class MacCountTest {

  /** 3x16x16 -> conv 3x3 16 -> BN -> conv 3x3/2 32 -> flatten -> linear 64 -> linear 10. */
  private static SequentialBlock tinyCnn() {
    return new SequentialBlock()
        .add(sameSize3x3(16))
        .add(BatchNorm.builder().build())
        .add(TinyModels.conv3x3(32, 2))
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(64).build())
        .add(Linear.builder().setUnits(10).build());
  }

  /** A 3x3 convolution with padding 1: the map keeps its size. */
  private static Conv2d sameSize3x3(int filters) {
    return TinyModels.conv3x3(filters, 1);
  }

  private static SurgeryPlan plan(Algorithm algorithm, Shape input) {
    SequentialBlock net = tinyCnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 16, 16));
      return algorithm.plan(SurgeryContext.of(net), input);
    }
  }

  private static final long STRIDED_CONV = 8L * 8 * 32 * 16 * 3 * 3; // 8x8 out, 32 <- 16, 3x3

  @Test
  void blurFirstAddsTheBlurOfTheInput() {
    SurgeryPlan plan = plan(BlurPool.builder().optBlurFirst(true).build(), new Shape(1, 3, 16, 16));
    assertEquals(1, plan.steps().size());
    SurgeryPlan.Step step = plan.steps().get(0);
    assertEquals("Conv2d", step.oldType());
    assertEquals(STRIDED_CONV, step.macsBefore());
    // a stride-1 3x3 blur of the 16x16x16 input, then the same strided convolution
    assertEquals(STRIDED_CONV + 16L * 16 * 16 * 9, step.macsAfter());
    assertEquals(16L * 16 * 16 * 9, plan.macsChange());
    assertTrue(plan.toTable("blurpool").contains("MACs 294912 -> 331776"), plan.toTable(""));
  }

  @Test
  void blurFirstBeforeAOneByOneConvolutionCountsOnlyWhereItReads() {
    // 16x16x16 -> 1x1/2 conv 32 (a downsampling shortcut): the blur runs at the stride.
    SequentialBlock net =
        new SequentialBlock()
            .add(sameSize3x3(16))
            .add(
                Conv2d.builder()
                    .setKernelShape(new Shape(1, 1))
                    .optStride(new Shape(2, 2))
                    .setFilters(32)
                    .build());
    SurgeryPlan plan;
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 16, 16));
      plan =
          BlurPool.builder()
              .optBlurFirst(true)
              .build()
              .plan(SurgeryContext.of(net), new Shape(1, 3, 16, 16));
    }
    assertEquals(1, plan.steps().size());
    SurgeryPlan.Step step = plan.steps().get(0);
    long conv = 8L * 8 * 32 * 16; // 8x8 out, 32 <- 16, 1x1
    assertEquals(conv, step.macsBefore());
    // the blur of the 16 input channels at the 8x8 positions the stride reads
    assertEquals(conv + 8L * 8 * 16 * 9, step.macsAfter());
  }

  @Test
  void blurAfterRunsTheConvolutionDenseThenBlursItsOutput() {
    SurgeryPlan plan =
        plan(BlurPool.builder().optBlurFirst(false).build(), new Shape(1, 3, 16, 16));
    SurgeryPlan.Step step = plan.steps().get(0);
    assertEquals(STRIDED_CONV, step.macsBefore());
    assertEquals(16L * 16 * 32 * 16 * 9 + 8L * 8 * 32 * 9, step.macsAfter());
  }

  @Test
  void factorizeCountsBothLayers() {
    Algorithm factorize =
        Factorize.builder()
            .optMinChannels(8)
            .optLatentChannels(4)
            .optMinFeatures(16)
            .optLatentFeatures(8)
            .build();
    SurgeryPlan plan = plan(factorize, new Shape(1, 3, 16, 16));
    List<String> types = new ArrayList<>();
    for (SurgeryPlan.Step s : plan.steps()) {
      types.add(s.oldType() + " -> " + s.newType());
    }
    assertEquals(List.of("Conv2d -> FactorizedConv2d", "Linear -> FactorizedLinear"), types);
    SurgeryPlan.Step conv = plan.steps().get(0);
    assertEquals(STRIDED_CONV, conv.macsBefore());
    // 3x3/2 conv 16 -> 4, then 1x1 conv 4 -> 32, both on the 8x8 output
    assertEquals(8L * 8 * 4 * 16 * 9 + 8L * 8 * 32 * 4, conv.macsAfter());
    SurgeryPlan.Step linear = plan.steps().get(1);
    assertEquals(2048L * 64, linear.macsBefore());
    assertEquals(2048L * 8 + 8L * 64, linear.macsAfter());
  }

  @Test
  void squeezeExciteAddsTheGate() {
    SurgeryPlan plan =
        plan(
            SqueezeExcite.builder().optMinChannels(16).optLatentChannels(8).build(),
            new Shape(1, 3, 16, 16));
    assertEquals(1, plan.steps().size());
    SurgeryPlan.Step step = plan.steps().get(0);
    assertEquals(STRIDED_CONV, step.macsBefore());
    assertEquals(STRIDED_CONV + 2L * 32 * 8, step.macsAfter());
  }

  /**
   * A layer held at two places runs twice per sample: its step counts both runs (hand count), also
   * where the second place is inside a nested sequence.
   */
  @Test
  void aLayerHeldTwiceIsCountedAtBothPlaces() {
    Conv2d shared = sameSize3x3(8);
    SequentialBlock net = new SequentialBlock().add(sameSize3x3(8)).add(shared).add(shared);
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      SurgeryPlan plan =
          SqueezeExcite.builder()
              .optMinChannels(8)
              .optLatentChannels(2)
              .build()
              .plan(SurgeryContext.of(net), new Shape(1, 3, 8, 8));
      long conv = 8L * 8 * 8 * 8 * 3 * 3; // 8x8 out, 8 <- 8, 3x3
      long gate = 2L * 8 * 2; // 8 -> 2 -> 8
      SurgeryPlan.Step step =
          plan.steps().stream().filter(s -> s.path().equals("02Conv2d")).findFirst().orElseThrow();
      assertEquals(2 * conv, step.macsBefore());
      assertEquals(2 * (conv + gate), step.macsAfter());
    }
    LambdaBlock identity = new LambdaBlock(x -> x);
    Conv2d twice = sameSize3x3(3);
    SequentialBlock hidden =
        new SequentialBlock().add(twice).add(new SequentialBlock().add(identity).add(twice));
    try (NDManager manager = NDManager.newBaseManager()) {
      hidden.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      SurgeryPlan plan =
          WeightStandardization.builder()
              .optNLastLayersIgnore(0)
              .build()
              .plan(SurgeryContext.of(hidden), new Shape(1, 3, 8, 8));
      assertEquals(2L * 8 * 8 * 3 * 3 * 9, plan.steps().get(0).macsBefore());
    }
  }

  @Test
  void weightStandardizationKeepsTheCostAndTheBatchDoesNotCount() {
    SurgeryPlan plan = plan(WeightStandardization.builder().build(), new Shape(5, 3, 16, 16));
    List<Long> before = new ArrayList<>();
    for (SurgeryPlan.Step s : plan.steps()) {
      before.add(s.macsBefore());
      assertEquals(s.macsBefore(), s.macsAfter(), s.path());
    }
    // 16x16 out, 16 <- 3, 3x3 (WeightStandardization leaves the last layer alone by default)
    assertTrue(before.contains(16L * 16 * 16 * 3 * 9), before.toString());
  }

  @Test
  void typesWithoutAFormulaAreUnknownNeverAGuess() {
    SurgeryPlan plan = plan(GhostBatchNorm.builder().build(), new Shape(1, 3, 16, 16));
    assertEquals(1, plan.steps().size());
    assertNull(plan.steps().get(0).macsBefore());
    assertNull(plan.steps().get(0).macsAfter());
    assertNull(plan.macsChange());
    assertTrue(plan.toTable("ghost").contains("MACs unknown -> unknown"), plan.toTable(""));
    assertTrue(plan.toTable("ghost").contains(": unknown"), plan.toTable(""));
  }

  @Test
  void withoutAnInputShapeTheCountsAreUnknownAndNotShown() {
    SequentialBlock net = tinyCnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 16, 16));
      SurgeryPlan plan = BlurPool.builder().build().plan(SurgeryContext.of(net));
      assertNull(plan.inputShape());
      assertNull(plan.steps().get(0).macsBefore());
      assertNull(plan.macsChange());
      assertTrue(!plan.toTable("blurpool").contains("MACs"), plan.toTable(""));
    }
  }

  /**
   * On ResNetV1 the shapes reach every convolution through its sequential and parallel blocks; the
   * oracle is the formula on the input shapes DJL recorded when it initialized the model.
   */
  @Test
  void resnetCountsEveryReplacedConvolutionFromTheShapesDjlRecorded() {
    Block resnet = TinyModels.resNet20();
    try (NDManager manager = NDManager.newBaseManager()) {
      resnet.initialize(manager, DataType.FLOAT32, new Shape(4, 1, 28, 28));
      Map<Block, String> paths = BlockPaths.index(resnet);
      SurgeryPlan plan =
          BlurPool.builder()
              .optBlurFirst(true)
              .build()
              .plan(SurgeryContext.of(resnet), new Shape(1, 1, 28, 28));
      assertTrue(plan.steps().size() > 1);
      int checked = 0;
      int shortcuts = 0;
      for (Map.Entry<Block, String> e : paths.entrySet()) {
        if (!(e.getKey() instanceof Conv2d conv)) {
          continue;
        }
        SurgeryPlan.Step step = step(plan, BlockPaths.display(e.getValue()));
        if (step == null) {
          continue;
        }
        Shape in = conv.getInputShapes()[0];
        Shape out = conv.getOutputShapes(new Shape[] {in})[0];
        Shape k = conv.getKernelShape();
        long formula =
            out.get(2)
                * out.get(3)
                * out.get(1)
                * in.get(1)
                * k.get(0)
                * k.get(1)
                / conv.getGroups();
        assertEquals(formula, step.macsBefore(), step.path());
        assertNotNull(step.macsAfter(), step.path());
        // The blur runs over the input, or for a 1 x 1 shortcut only over the positions its
        // stride reads: the convolution's output grid.
        boolean pointwise =
            k.get(0) == 1 && k.get(1) == 1 && conv.getPadding().equals(new Shape(0, 0));
        long blurred = pointwise ? out.get(2) * out.get(3) : in.get(2) * in.get(3);
        assertEquals(in.get(1) * blurred * 9, step.macsChange(), step.path());
        checked++;
        shortcuts += pointwise ? 1 : 0;
      }
      assertEquals(plan.steps().size(), checked);
      assertTrue(shortcuts > 0, "the 1 x 1 shortcuts are among the blurred convolutions");
    }
  }

  private static SurgeryPlan.Step step(SurgeryPlan plan, String path) {
    for (SurgeryPlan.Step s : plan.steps()) {
      if (s.path().equals(path)) {
        return s;
      }
    }
    return null;
  }

  /**
   * A block held at two places of one sequence records only its last input: read as the output of
   * the block before it, both places got the second one's shape (a reviewer's case).
   */
  @Test
  void aBlockAtTwoPlacesCountsEachPlacesOwnInput() {
    Conv2d shared = TinyModels.conv3x3(4, 1);
    SequentialBlock net =
        new SequentialBlock()
            .add(TinyModels.conv3x3(4, 1))
            .add(shared)
            .add(ai.djl.nn.pooling.Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(shared);
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      MacCounter.Reached reached = MacCounter.inputShapes(net, new Shape[] {new Shape(1, 3, 8, 8)});
      // 8 x 8 x 4 x 4 x 9 at the first place, 4 x 4 x 4 x 4 x 9 at the second
      assertEquals(9216L + 2304L, MacCounter.macsAtEveryPlace(shared, reached, shared));
    }
  }

  /**
   * After a surgery that changed shapes, the blocks after it keep the input shapes they recorded
   * before: counts follow the shapes the model computes now.
   */
  @Test
  void aShapeChangingSurgeryLeavesNoStaleCount() {
    Conv2d first = TinyModels.conv3x3(4, 1);
    Conv2d second = TinyModels.conv3x3(4, 1);
    SequentialBlock net = new SequentialBlock().add(first).add(Blocks.identityBlock()).add(second);
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      ModuleSurgery.replaceModules(
          net,
          Map.of((block, path) -> block == first, (block, index) -> TinyModels.conv3x3(4, 2)),
          SurgeryOptions.builder().optAllowShapeChange(true).build());
      MacCounter.Reached reached = MacCounter.inputShapes(net, new Shape[] {new Shape(1, 3, 8, 8)});
      // the second convolution now sees 4 x 4
      assertEquals(2304L, MacCounter.macsAtEveryPlace(second, reached, second));
    }
  }

  /** The cost of 3 x 3 convolutions with padding 1 on an 8 x 8 map: 8 x 8 x out x in x 9. */
  private static long conv8x8(long out, long in) {
    return 8L * 8 * out * in * 9;
  }

  /**
   * The model input reaches the branches of a parallel block that was never initialized, as it
   * reaches a sequence's children; below another composite only the input shapes its children
   * recorded when it was initialized with this very input are used, and another input leaves them
   * unknown rather than counted on stale shapes.
   */
  @Test
  void parallelBranchesGetTheInputAndOtherCompositesOnlyTheirRecordedOne() {
    Conv2d branch = sameSize3x3(4);
    ParallelBlock parallel =
        new ParallelBlock(list -> list.get(0), List.of(branch, sameSize3x3(2)));
    MacCounter.Reached fresh =
        MacCounter.inputShapes(parallel, new Shape[] {new Shape(1, 3, 8, 8)});
    assertEquals(conv8x8(4, 3), MacCounter.macsAtEveryPlace(branch, fresh, branch));

    Conv2d first = sameSize3x3(4);
    Conv2d second = sameSize3x3(4);
    Fixtures.FieldHolder holder = new Fixtures.FieldHolder(first, second);
    try (NDManager manager = NDManager.newBaseManager()) {
      holder.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      MacCounter.Reached same = MacCounter.inputShapes(holder, new Shape[] {new Shape(1, 3, 8, 8)});
      assertEquals(conv8x8(4, 3), MacCounter.macsAtEveryPlace(first, same, first));
      assertEquals(conv8x8(4, 4), MacCounter.macsAtEveryPlace(second, same, second));
      MacCounter.Reached other =
          MacCounter.inputShapes(holder, new Shape[] {new Shape(1, 3, 16, 16)});
      assertNull(MacCounter.macsAtEveryPlace(first, other, first));
      assertNull(MacCounter.macsAtEveryPlace(second, other, second));
    }

    // Children initialized on their own below a composite that never was: their shapes may not be
    // this input's, so they stay unknown.
    Conv2d alone = sameSize3x3(4);
    Fixtures.FieldHolder never = new Fixtures.FieldHolder(alone, sameSize3x3(4));
    try (NDManager manager = NDManager.newBaseManager()) {
      alone.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      MacCounter.Reached reached =
          MacCounter.inputShapes(never, new Shape[] {new Shape(1, 3, 8, 8)});
      assertNull(MacCounter.macsAtEveryPlace(alone, reached, alone));
    }
  }

  /** A grouped convolution's filters each read in_c / groups channels. */
  @Test
  void aGroupedConvolutionReadsItsGroupsChannelsOnly() {
    Conv2d grouped =
        Conv2d.builder()
            .setKernelShape(new Shape(3, 3))
            .optPadding(new Shape(1, 1))
            .setFilters(8)
            .optGroups(2)
            .build();
    assertEquals(conv8x8(8, 4 / 2), MacCounter.macs(grouped, new Shape[] {new Shape(1, 4, 8, 8)}));
  }

  /**
   * The blur after a max pool runs on the pooled map: 9 per output value. Unknown, never 0: no
   * input, several inputs, an input the block refuses, a type without a formula at a place reached.
   */
  @Test
  void theBlurOfAPoolIsCountedOnItsOutputAndWhatCannotBeCountedIsUnknown() {
    BlurMaxPool2d pool =
        new BlurMaxPool2d(new Shape(2, 2), new Shape(2, 2), new Shape(0, 0), false);
    assertEquals(4L * 4 * 4 * 9, MacCounter.macs(pool, new Shape[] {new Shape(1, 4, 8, 8)}));

    Conv2d conv = sameSize3x3(4);
    assertNull(MacCounter.macs(conv, null));
    Shape map = new Shape(1, 3, 8, 8);
    assertNull(MacCounter.macs(conv, new Shape[] {map, map}));
    assertNull(MacCounter.macs(conv, new Shape[] {new Shape(1, 3)}), "no map to convolve");

    SequentialBlock net = tinyCnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 16, 16));
      MacCounter.Reached reached =
          MacCounter.inputShapes(net, new Shape[] {new Shape(1, 3, 16, 16)});
      Block norm = net.getChildren().valueAt(1);
      assertNull(MacCounter.macsAtEveryPlace(norm, reached, norm));
    }
  }

  /**
   * A max pool takes maxima and multiplies nothing: 0, not unknown, so that a blurpool plan on a
   * model with one has a total (an outside probe: the pool's step said {@code MACs unknown -> 4608}
   * and the plan's total was unknown, though every other count was known).
   */
  @Test
  void aMaxPoolCountsNothingSoABlurpoolPlanOnAModelWithOneHasATotal() {
    SequentialBlock net =
        new SequentialBlock()
            .add(sameSize3x3(16))
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(TinyModels.conv3x3(32, 2))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(10).build());
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 16, 16));
      SurgeryPlan plan =
          BlurPool.builder().build().plan(SurgeryContext.of(net), new Shape(1, 3, 16, 16));
      Map<String, SurgeryPlan.Step> steps = new java.util.HashMap<>();
      plan.steps().forEach(s -> steps.put(s.oldType(), s));
      assertEquals(Set.of("maxPool2d", "Conv2d"), steps.keySet(), plan.toTable(""));
      // The pool: 16x16x16 -> 8x8x16; BlurMaxPool2d adds a 3x3 blur of its 8x8x16 output.
      long poolBlur = 8L * 8 * 16 * 9;
      assertEquals(0L, steps.get("maxPool2d").macsBefore());
      assertEquals(poolBlur, steps.get("maxPool2d").macsAfter());
      // The strided convolution on the pooled map: 4x4x32 out of 16 channels, 3x3; blurred first
      // at stride 1 on its 8x8x16 input.
      long conv = 4L * 4 * 32 * 16 * 9;
      assertEquals(conv, steps.get("Conv2d").macsBefore());
      assertEquals(conv + 8L * 8 * 16 * 9, steps.get("Conv2d").macsAfter());
      assertEquals(poolBlur + 8L * 8 * 16 * 9, plan.macsChange(), plan.toTable(""));
      assertEquals(
          0L, MacCounter.macs(Pool.globalMaxPool2dBlock(), new Shape[] {new Shape(1, 4, 8, 8)}));
      assertNull(
          MacCounter.macs(
              Pool.avgPool2dBlock(new Shape(2, 2)), new Shape[] {new Shape(1, 4, 8, 8)}),
          "an average pool is not a max pool");
    }
  }
}
