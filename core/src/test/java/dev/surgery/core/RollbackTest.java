package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParameterList;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.util.PairList;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** A failure at any point of a live surgery leaves model, store and optimizer state as before. */
class RollbackTest {

  private static Conv2d conv(int stride) {
    return TinyModels.conv3x3(4, stride);
  }

  static Stream<Arguments> faults() {
    List<Arguments> cases = new ArrayList<>();
    for (String point : List.of("initialize", "trainer.remove", "trainer.add", "shape")) {
      for (OptimizerKind kind : ROLLBACK_OPTIMIZERS) {
        cases.add(Arguments.of(point, kind));
      }
    }
    return cases.stream();
  }

  /** The optimizers every rollback test runs under: moments, momentum, decoupled decay. */
  static final List<OptimizerKind> ROLLBACK_OPTIMIZERS =
      List.of(OptimizerKind.ADAM, OptimizerKind.SGD_MOMENTUM, OptimizerKind.ADAMW);

  /**
   * A fault at each point of a live surgery: afterwards the subject equals its snapshot and a
   * control twin that never saw a surgery, and an epoch more keeps it equal to the control, bit for
   * bit.
   */
  @ParameterizedTest(name = "fault at {0} under {1}")
  @MethodSource("faults")
  void faultDuringLiveSurgeryIsRolledBack(String point, OptimizerKind kind) throws Exception {
    Supplier<Block> build =
        () ->
            new SequentialBlock()
                .add(conv(2))
                .add(Activation.reluBlock())
                .add(conv(2))
                .add(Blocks.batchFlattenBlock())
                .add(Linear.builder().setUnits(4).build());
    try (ControlTwin twin = new ControlTwin("fault-" + point, build, kind, new Shape(8, 3, 8, 8));
        NDManager data = NDManager.newBaseManager()) {
      Block net = twin.subjectRoot;
      Trainer trainer = twin.subjectTrainer;
      ArrayDataset images = TinyData.images(data, 16, 3, 8, 8);
      twin.fit(images);
      WeightCopyFaultTest.BeforeState before = WeightCopyFaultTest.BeforeState.of(net, trainer);

      AtomicInteger hits = new AtomicInteger();
      Faults faults =
          name -> {
            if (name.equals(point) && hits.incrementAndGet() == 2) {
              throw new IllegalStateException("injected fault at " + name);
            }
          };
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          Conv2d.class,
          (block, index) -> {
            if (point.equals("shape")) {
              return index == 1 ? conv(1) : Fixtures.copyOf((Conv2d) block);
            }
            // fresh (uninitialized) convs exercise placement; copies exercise the trainer
            return point.equals("initialize") ? conv(2) : Fixtures.copyOf((Conv2d) block);
          });
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModuleClasses(
                      net, policies, List.of(trainer), false, null, faults));
      assertTrue(
          e.getMessage().contains(point.equals("shape") ? "output shapes" : "injected"),
          e.getMessage());
      // "shape" is no fault point: the second replacement's own output shape is the failure.
      assertEquals(
          point.equals("shape") ? 0 : 2, hits.get(), "the fault fired on pass 2 of " + point);

      before.assertUnchanged(net, trainer);
      twin.assertSubjectIsTheControl("after the rolled-back surgery");
      twin.fit(images);
      twin.assertSubjectIsTheControl("after an epoch more");
    }
  }

  /**
   * A parent outside DJL's AbstractBlock that lists a child from a place the engine cannot write (a
   * thread-local here; a TorchScript block's children are out of reach too): refused by the path,
   * the tree as it was. One that keeps its child in a field is written there ({@code
   * ListedChildrenTest}).
   */
  @Test
  void parentWhoseListTheEngineCannotReachIsReportedByPath() {
    Linear hidden = Linear.builder().setUnits(2).build();
    OpaqueBlock opaque = new OpaqueBlock(hidden);
    SequentialBlock root = new SequentialBlock().add(opaque);
    String before = root.toString();
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(Linear.class, (block, index) -> Linear.builder().setUnits(2).build());
    SurgeryException e =
        assertThrows(
            SurgeryException.class, () -> ModuleSurgery.replaceModuleClasses(root, policies));
    assertEquals("01OpaqueBlock/01inner", e.getBlockPath());
    assertTrue(
        e.getMessage().contains("is not an ai.djl.nn.AbstractBlock")
            && e.getMessage().contains("still lists the old block"),
        e.getMessage());
    assertEquals(before, root.toString());
    assertSame(hidden, opaque.inner.get());
  }

  /** A block outside DJL's AbstractBlock hierarchy: it lists a child it keeps out of reach. */
  static final class OpaqueBlock extends AbstractBaseBlock {
    private final ThreadLocal<Block> inner = new ThreadLocal<>();

    OpaqueBlock(Block inner) {
      this.inner.set(inner);
    }

    @Override
    public BlockList getChildren() {
      BlockList list = new BlockList();
      list.add("01inner", inner.get());
      return list;
    }

    @Override
    public ParameterList getDirectParameters() {
      return new ParameterList();
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return inner.get().forward(store, inputs, training);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
      return inner.get().getOutputShapes(inputShapes);
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      inner.get().initialize(manager, dataType, shapes);
    }
  }

  /**
   * A replacement function that closed the old block's arrays (which the engine frees itself when
   * the surgery commits) and a later failure: the rollback puts the old block back, which cannot
   * run any more, and the refusal says so, naming the parameter and the block, beside the failure
   * itself. Without the close, no such note.
   */
  @ParameterizedTest(name = "function closes the old arrays: {0}")
  @org.junit.jupiter.params.provider.ValueSource(booleans = {true, false})
  void aFunctionThatFreedTheOldArraysIsNamedByTheRefusal(boolean closesOld) {
    SequentialBlock net =
        new SequentialBlock()
            .add(Linear.builder().setUnits(4).build())
            .add(Linear.builder().setUnits(2).build());
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
      AtomicInteger calls = new AtomicInteger();
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Map.of(
              Linear.class,
              (block, index) -> {
                if (calls.incrementAndGet() == 2) {
                  throw new IllegalStateException("planted in the second call");
                }
                long units = block.getParameters().get("weight").getArray().getShape().get(0);
                Block copy = WeightCopy.into(Linear.builder().setUnits(units).build(), block);
                if (closesOld) {
                  block.getParameters().values().forEach(p -> p.getArray().close());
                }
                return copy;
              });
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModuleClasses(net, policies, null, false, null));
      assertTrue(e.getMessage().contains("planted in the second call"), e.getMessage());
      // The note is added to the refusal's own message: its path is named once, in front.
      assertEquals("02Linear", e.getBlockPath());
      assertTrue(
          e.getMessage()
              .startsWith(
                  "at 02Linear: replacement function of policy Linear failed: planted in the"
                      + " second call"),
          e.getMessage());
      assertEquals(
          closesOld,
          e.getMessage()
              .contains(
                  "after the rollback, parameter 'weight' of 01Linear has no array: it was freed"),
          e.getMessage());
    }
  }
}
