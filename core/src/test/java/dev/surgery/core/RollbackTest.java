package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
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
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** A failure at any point of a live surgery leaves model, store and optimizer state as before. */
class RollbackTest {

  @AfterEach
  void removeFaults() {
    Faults.install(null);
  }

  private static Conv2d conv(int stride) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optStride(new Shape(stride, stride))
        .optPadding(new Shape(1, 1))
        .setFilters(4)
        .build();
  }

  @ParameterizedTest(name = "fault at {0}")
  @ValueSource(strings = {"initialize", "trainer.remove", "trainer.add", "shape"})
  void faultDuringLiveSurgeryIsRolledBack(String point) throws Exception {
    SequentialBlock net =
        new SequentialBlock()
            .add(conv(2))
            .add(Activation.reluBlock())
            .add(conv(2))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(4).build());
    try (Model model = Fixtures.model("fault-" + point, net);
        NDManager data = NDManager.newBaseManager()) {
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(8, 3, 8, 8));
        EasyTrain.fit(trainer, 1, Fixtures.images(data, 16, 3, 8, 8), null);
        String structure = net.toString();
        Map<String, float[]> values = Fixtures.snapshot(net);
        Set<String> storeIds = Fixtures.storeIds(trainer);
        Map<String, float[]> state = Fixtures.stateValues(trainer);

        AtomicInteger hits = new AtomicInteger();
        Faults.install(
            name -> {
              if (name.equals(point) && hits.incrementAndGet() == 2) {
                throw new IllegalStateException("injected fault at " + name);
              }
            });
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
                        net, policies, List.of(trainer), false, null));
        assertTrue(
            e.getMessage().contains(point.equals("shape") ? "output shapes" : "injected"),
            e.getMessage());

        assertEquals(structure, net.toString());
        Map<String, float[]> after = Fixtures.snapshot(net);
        assertEquals(values.keySet(), after.keySet());
        values.forEach((id, v) -> assertArrayEquals(v, after.get(id), "parameter " + id));
        assertEquals(storeIds, Fixtures.storeIds(trainer));
        Map<String, float[]> stateAfter = Fixtures.stateValues(trainer);
        assertEquals(state.keySet(), stateAfter.keySet());
        state.forEach((k, v) -> assertArrayEquals(v, stateAfter.get(k), "state " + k));

        Faults.install(null);
        EasyTrain.fit(trainer, 1, Fixtures.images(data, 16, 3, 8, 8), null);
        Fixtures.snapshot(net).values().forEach(v -> assertTrue(Float.isFinite(v[0])));
      }
    }
  }

  /** A parent that hides its children (like a TorchScript block) cannot be changed in place. */
  @Test
  void parentWithoutLiveChildrenIsReportedByPath() {
    Linear hidden = Linear.builder().setUnits(2).build();
    SequentialBlock root = new SequentialBlock().add(new OpaqueBlock(hidden));
    String before = root.toString();
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(Linear.class, (block, index) -> Linear.builder().setUnits(2).build());
    SurgeryException e =
        assertThrows(
            SurgeryException.class, () -> ModuleSurgery.replaceModuleClasses(root, policies));
    assertEquals("01OpaqueBlock", e.getBlockPath());
    assertTrue(e.getMessage().contains("keeps its children to itself"), e.getMessage());
    assertEquals(before, root.toString());
  }

  /** A block outside DJL's AbstractBlock hierarchy: it lists a child but keeps it to itself. */
  static final class OpaqueBlock extends AbstractBaseBlock {
    private final Block inner;

    OpaqueBlock(Block inner) {
      this.inner = inner;
    }

    @Override
    public BlockList getChildren() {
      BlockList list = new BlockList();
      list.add("01inner", inner);
      return list;
    }

    @Override
    public ParameterList getDirectParameters() {
      return new ParameterList();
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return inner.forward(store, inputs, training);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
      return inner.getOutputShapes(inputShapes);
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      inner.initialize(manager, dataType, shapes);
    }
  }
}
