package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.StochasticResidual;
import dev.surgery.core.testing.TinyModels;
import dev.surgery.core.testing.TrajectoryOracle;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * From an outside probe of blocks held at two places: a shared block is one block, counted and
 * matched at its first place in traversal order (as {@code BlockPaths.index} lists it), and changed
 * at every place by one replacement. Pins what docs/algorithms.md, the user guide and
 * trainer-integration/README.md now say of the rules that count layers and of path matchers.
 */
class SharedBlockCountingTest {

  private static List<String> paths(SurgeryChanges changes) {
    return changes.changes().stream().map(SurgeryChanges.Change::path).toList();
  }

  @Test
  void aPathGlobSelectsASharedBlockByItsFirstPathAndReplacesItAtEveryPlace() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      ReplacementFunction blur = (block, index) -> BlurConv2d.fromConv2d((Conv2d) block, true);
      // The later place names nothing: the block is asked about once, with its first path.
      SequentialBlock net = stridedTwice();
      net.initialize(manager, DataType.FLOAT32, new Shape(1, 1, 16, 16));
      policies.put(BlockMatcher.pathGlob("04Conv2d"), blur);
      assertTrue(ModuleSurgery.replaceModules(net, policies, SurgeryOptions.defaults()).isEmpty());
      assertSame(Conv2d.class, net.getChildren().valueAt(3).getClass());
      policies.clear();
      policies.put(BlockMatcher.pathGlob("02Conv2d"), blur);
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(net, policies, SurgeryOptions.defaults());
      assertEquals(1, replaced.size());
      Block one = net.getChildren().valueAt(1);
      assertTrue(one instanceof BlurConv2d);
      assertSame(one, net.getChildren().valueAt(3), "one replacement at both places");
    }
  }

  /** stem, S (stride 2), relu, S: S is held twice by one parent. */
  private static SequentialBlock stridedTwice() {
    Conv2d shared = TinyModels.conv3x3(4, 2);
    return new SequentialBlock()
        .add(TinyModels.conv3x3(4, 1))
        .add(shared)
        .add(Activation::relu)
        .add(shared);
  }

  @Test
  void layerFreezingCountsASharedOutputLayerAtItsFirstPlace() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Linear tied = Linear.builder().setUnits(4).build();
      Linear middle = Linear.builder().setUnits(4).build();
      SequentialBlock net =
          new SequentialBlock()
              .add(Blocks.batchFlattenBlock())
              .add(Linear.builder().setUnits(4).build())
              .add(tied)
              .add(Activation::relu)
              .add(middle)
              .add(tied);
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 4));
      SurgeryChanges changes =
          LayerFreezing.builder()
              .optFreezeStart(0)
              .optFreezeLevel(1)
              .build()
              .apply(new SurgeryContext(net, List.of(), 2, 2));
      // Three layers (the tied one once, at 03Linear): the first two freeze, 05Linear trains.
      assertEquals(List.of("02Linear", "03Linear"), paths(changes));
      assertFalse(tied.getParameters().values().stream().anyMatch(Parameter::requiresGradient));
      assertTrue(middle.getParameters().values().stream().allMatch(Parameter::requiresGradient));
    }
  }

  @Test
  void weightStandardizationCountsASharedLastConvolutionAtItsFirstPlace() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Conv2d tied = TinyModels.conv3x3(4, 1);
      Conv2d middle = TinyModels.conv3x3(4, 1);
      SequentialBlock net =
          new SequentialBlock()
              .add(TinyModels.conv3x3(4, 1))
              .add(tied)
              .add(Activation::relu)
              .add(middle)
              .add(BatchNorm.builder().build())
              .add(tied);
      net.initialize(manager, DataType.FLOAT32, new Shape(1, 1, 8, 8));
      SurgeryChanges changes =
          WeightStandardization.builder()
              .optNLastLayersIgnore(1)
              .build()
              .apply(SurgeryContext.of(net));
      // Convolutions 01, 02 (tied) and 04: the last one counted is 04, which stays plain.
      assertEquals(List.of("01Conv2d", "02Conv2d"), paths(changes));
      assertSame(Conv2d.class, net.getChildren().valueAt(3).getClass());
      assertSame(net.getChildren().valueAt(1), net.getChildren().valueAt(5));
    }
  }

  @Test
  void stochasticDepthGivesAUnitHeldTwiceOneWrapperAndTheRateOfItsFirstPlace() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Block u = TrajectoryOracle.residualUnit(4);
      Block v = TrajectoryOracle.residualUnit(4);
      SequentialBlock net =
          new SequentialBlock().add(TinyModels.conv3x3(4, 1)).add(u).add(v).add(u);
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 1, 6, 6));
      SurgeryChanges changes =
          StochasticDepth.builder().optDropRate(0.5).build().apply(SurgeryContext.of(net));
      assertEquals(2, changes.changes().size(), changes.changes().toString());
      assertSame(net.getChildren().valueAt(1), net.getChildren().valueAt(3));
      StochasticResidual first = (StochasticResidual) u.getChildren().valueAt(0);
      StochasticResidual second = (StochasticResidual) v.getChildren().valueAt(0);
      assertEquals(0.25f, first.getDropRate());
      assertEquals(0.5f, second.getDropRate());
    }
  }

  /**
   * A residual branch three units share is wrapped once, at the rate of its first unit (0.2 of 0.2,
   * 0.4, 0.6): the last unit's rate (0.6) overwrote the first's before.
   */
  @Test
  void aBranchSharedByThreeUnitsGetsOneWrapperAtTheRateOfItsFirstUnit() {
    try (NDManager manager = NDManager.newBaseManager()) {
      ParallelBlock template = TrajectoryOracle.residualUnit(4);
      Block branch = template.getChildren().valueAt(0);
      List<ParallelBlock> units = new java.util.ArrayList<>();
      SequentialBlock net = new SequentialBlock().add(TinyModels.conv3x3(4, 1));
      for (int i = 0; i < 3; i++) {
        ParallelBlock unit =
            new ParallelBlock(
                TrajectoryOracle::addAndRelu,
                Arrays.asList(branch, new SequentialBlock().add(Blocks.identityBlock())));
        units.add(unit);
        net.add(unit);
      }
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 1, 6, 6));
      SurgeryChanges changes =
          StochasticDepth.builder().optDropRate(0.6).build().apply(SurgeryContext.of(net));
      assertEquals(List.of("02ParallelBlock/01SequentialBlock"), paths(changes));
      StochasticResidual wrapper = (StochasticResidual) units.get(0).getChildren().valueAt(0);
      assertSame(wrapper, units.get(1).getChildren().valueAt(0));
      assertSame(wrapper, units.get(2).getChildren().valueAt(0));
      assertEquals(0.2f, wrapper.getDropRate(), 1e-7f);
    }
  }

  /**
   * A residual branch also run on its own elsewhere (tied) is left unwrapped, with a warning: the
   * one wrapper would go to both places, and at the plain one a dropped branch is zeros in place of
   * the block's output (18 of 20 training forwards at drop_rate 0.9 before). Another unit is
   * wrapped.
   */
  @Test
  void aBranchAlsoHeldOutsideAUnitIsLeftUnwrappedWithAWarning() {
    try (NDManager manager = NDManager.newBaseManager()) {
      ParallelBlock tiedUnit = TrajectoryOracle.residualUnit(4);
      Block branch = tiedUnit.getChildren().valueAt(0);
      ParallelBlock other = TrajectoryOracle.residualUnit(4);
      SequentialBlock net =
          new SequentialBlock().add(TinyModels.conv3x3(4, 1)).add(tiedUnit).add(branch).add(other);
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 1, 6, 6));
      SurgeryChanges changes =
          StochasticDepth.builder().optDropRate(0.9).build().apply(SurgeryContext.of(net));
      assertEquals(List.of("04ParallelBlock/01SequentialBlock"), paths(changes));
      assertSame(branch, tiedUnit.getChildren().valueAt(0));
      assertSame(branch, net.getChildren().valueAt(2));
      assertTrue(other.getChildren().valueAt(0) instanceof StochasticResidual);
      assertEquals(0.9f, ((StochasticResidual) other.getChildren().valueAt(0)).getDropRate());
      assertEquals(
          List.of(
              "stochastic_depth: the residual branch 02ParallelBlock/01SequentialBlock is also held"
                  + " at 03SequentialBlock, where it is no residual unit's branch; it is left"
                  + " unwrapped, since one block changes at every place and dropped there it would"
                  + " put zeros in place of its output"),
          changes.warnings());
    }
  }
}
