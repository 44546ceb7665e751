package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.Dropout;
import ai.djl.nn.pooling.Pool;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlShapes;
import org.junit.jupiter.api.Test;

/** The hidden configuration of DJL blocks, read back exactly. */
class BlockInspectorTest {

  @Test
  void maxPoolArgumentsAreRecoveredFromTheLambda() {
    PoolSettings s =
        BlockInspector.poolSettings(
                Pool.maxPool2dBlock(new Shape(3, 3), new Shape(2, 2), new Shape(1, 1), true))
            .orElseThrow();
    assertEquals("maxPool2d", s.name());
    assertEquals(new Shape(3, 3), s.kernelShape());
    assertEquals(new Shape(2, 2), s.stride());
    assertEquals(new Shape(1, 1), s.padding());
    assertTrue(s.ceilMode());
    assertNull(s.countIncludePad());

    PoolSettings defaults =
        BlockInspector.poolSettings(Pool.maxPool2dBlock(new Shape(2, 2))).orElseThrow();
    assertEquals(new Shape(2, 2), defaults.stride(), "stride defaults to the kernel");
    assertEquals(new Shape(0, 0), defaults.padding());
    assertFalse(defaults.ceilMode());
  }

  @Test
  void avgPoolArgumentsIncludeCountIncludePad() {
    PoolSettings s =
        BlockInspector.poolSettings(
                Pool.avgPool2dBlock(
                    new Shape(5, 5), new Shape(3, 3), new Shape(2, 2), false, false))
            .orElseThrow();
    assertEquals("avgPool2d", s.name());
    assertEquals(new Shape(5, 5), s.kernelShape());
    assertEquals(new Shape(3, 3), s.stride());
    assertEquals(new Shape(2, 2), s.padding());
    assertFalse(s.ceilMode());
    assertEquals(Boolean.FALSE, s.countIncludePad());
  }

  @Test
  void nonPoolBlocksHaveNoPoolSettings() {
    assertTrue(BlockInspector.poolSettings(Activation.reluBlock()).isEmpty());
    assertTrue(BlockInspector.poolSettings(Pool.globalAvgPool2dBlock()).isEmpty());
    assertTrue(BlockInspector.poolSettings(Linear.builder().setUnits(2).build()).isEmpty());
  }

  @Test
  void batchNormDropoutAndLinearSettings() {
    BatchNorm bn =
        BatchNorm.builder().optAxis(2).optEpsilon(2e-5f).optMomentum(0.8f).optCenter(false).build();
    DjlInternals.BatchNormSettings s = BlockInspector.batchNorm(bn);
    assertEquals(2, s.axis());
    assertEquals(2e-5f, s.epsilon());
    assertEquals(0.8f, s.momentum());
    assertFalse(s.center());
    assertTrue(s.scale());

    assertEquals(0.3f, BlockInspector.dropoutRate(Dropout.builder().optRate(0.3f).build()));
    Linear linear = Linear.builder().setUnits(7).optBias(false).build();
    assertEquals(7, BlockInspector.linearUnits(linear));
    assertFalse(BlockInspector.linearHasBias(linear));
    assertTrue(BlockInspector.linearHasBias(Linear.builder().setUnits(1).build()));
  }

  @Test
  void convolutionInputChannelsAreKnownAfterInitialization() {
    Conv2d conv =
        Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(8).optGroups(2).build();
    assertEquals(-1, BlockInspector.inputChannels(conv));
    try (NDManager manager = NDManager.newBaseManager()) {
      conv.initialize(manager, DataType.FLOAT32, new Shape(1, 6, 5, 5));
      assertEquals(6, BlockInspector.inputChannels(conv));
    }
  }

  /**
   * Before initialization the weight's declared shape tells the input channels (times the groups),
   * else the input shapes the convolution recorded (a checkpoint's replay records them before any
   * array exists), else nothing: -1.
   */
  @Test
  void convolutionInputChannelsComeFromADeclaredWeightShapeOrTheRecordedInput() {
    Conv2d declared =
        Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(8).optGroups(2).build();
    declared.getParameters().get("weight").setShape(new Shape(8, 3, 3, 3));
    assertEquals(6, BlockInspector.inputChannels(declared), "3 per group, 2 groups");

    Conv2d recorded =
        Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(8).optGroups(2).build();
    DjlShapes.setRecordedInputShapes(recorded, new Shape[] {new Shape(1, 6, 5, 5)});
    assertEquals(6, BlockInspector.inputChannels(recorded));

    Conv2d none = Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(8).build();
    DjlShapes.setRecordedInputShapes(none, new Shape[0]);
    assertEquals(-1, BlockInspector.inputChannels(none), "no input recorded");
  }

  /**
   * Whether a block was initialized (its input shapes recorded), not whether every array is there:
   * a checkpoint's replay records the shapes before any array exists, where DJL's isInitialized
   * answers false. A block that is not one of DJL's is asked isInitialized.
   */
  @Test
  void wasInitializedTellsWhetherTheBlockWasInitializedNotWhetherArraysAreThere() {
    Linear fresh = Linear.builder().setUnits(2).build();
    assertFalse(BlockInspector.wasInitialized(fresh));
    Linear replayed = Linear.builder().setUnits(2).build();
    DjlShapes.setRecordedInputShapes(replayed, new Shape[] {new Shape(1, 3)});
    assertFalse(replayed.isInitialized(), "DJL: its arrays are missing");
    assertTrue(BlockInspector.wasInitialized(replayed));
    try (NDManager manager = NDManager.newBaseManager()) {
      fresh.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
      assertTrue(BlockInspector.wasInitialized(fresh));
    }
    for (boolean answer : new boolean[] {false, true}) {
      Block foreign = Fixtures.foreignBlock("isInitialized", answer);
      assertEquals(answer, BlockInspector.wasInitialized(foreign));
    }
  }

  /** A tree holding a freed array is found out, naming the first such block's path. */
  @Test
  void firstFreedParameterNamesTheBlockHoldingAFreedArray() {
    Linear first = Linear.builder().setUnits(2).build();
    Linear second = Linear.builder().setUnits(2).build();
    SequentialBlock root = new SequentialBlock().add(first).add(second);
    try (NDManager manager = NDManager.newBaseManager()) {
      root.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
      assertTrue(BlockInspector.firstFreedParameter(BlockPaths.index(root)).isEmpty());
      Parameter weight = second.getParameters().get("weight");
      weight.getArray().close();
      BlockInspector.FreedParameter freed =
          BlockInspector.firstFreedParameter(BlockPaths.index(root)).orElseThrow();
      assertSame(weight, freed.parameter());
      assertEquals(root.getChildren().keyAt(1), freed.blockPath());
    }
  }
}
