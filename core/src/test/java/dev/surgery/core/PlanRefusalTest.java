package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.initializer.XavierInitializer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A plan says what an apply would do at the edges too: where the apply refuses a surgery, the plan
 * refuses it with the same error, rather than describing a surgery that will never happen; where
 * the apply has to find a manager for a replacement, the plan finds the same.
 */
class PlanRefusalTest {

  /**
   * A block added to a trained model after its trainer initialized it has no arrays and no input
   * shapes; replacing it with a new block leaves the new block's parameters without arrays (nothing
   * tells their shapes), and the live trainer cannot take a parameter without an array.
   */
  @Test
  void aReplacementTheTrainerCannotTakeIsRefusedByThePlanAsByTheApply() {
    SequentialBlock net = new SequentialBlock().add(Linear.builder().setUnits(4).build());
    try (Model model = Model.newInstance("plan-refusal")) {
      model.setBlock(net);
      try (Trainer trainer = trainedOneStep(model)) {
        Linear late = Linear.builder().setUnits(3).build();
        net.add(late); // after initialization: no arrays, no input shapes
        Map<BlockMatcher, ReplacementFunction> policies =
            Fixtures.replacing(late, (block, index) -> Linear.builder().setUnits(3).build());
        SurgeryOptions options = SurgeryOptions.builder().optTrainers(List.of(trainer)).build();

        SurgeryException planned =
            assertThrows(SurgeryException.class, () -> ModuleSurgery.plan(net, policies, options));
        SurgeryException applied =
            assertThrows(
                SurgeryException.class, () -> ModuleSurgery.replaceModules(net, policies, options));

        assertTrue(
            applied.getMessage().contains("is not initialized, so the trainer cannot update it"),
            applied.getMessage());
        assertEquals(applied.getMessage(), planned.getMessage());
        assertEquals(applied.getBlockPath(), planned.getBlockPath());
        // The refusal names the replaced block by its path in the tree (its key under the root).
        assertEquals(net.getChildren().get(1).getKey(), applied.getBlockPath());
        Block last = net.getChildren().get(1).getValue();
        assertSame(late, last, "both rolled back");
      }
    }
  }

  /**
   * A replacement the engine cannot initialize (a parameter without an initializer, or with one
   * that refuses its shape): the apply fails, and the plan, which initializes without random draws,
   * fails the same way rather than describing a surgery that will never happen.
   */
  @ParameterizedTest(name = "no initializer: {0}")
  @ValueSource(booleans = {true, false})
  void aReplacementThatCannotBeInitializedIsRefusedByThePlanAsByTheApply(boolean none) {
    SequentialBlock net = new SequentialBlock().add(Linear.builder().setUnits(4).build());
    try (Model model = Model.newInstance("plan-uninitializable")) {
      model.setBlock(net);
      net.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(2, 3));
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.ofClass(Linear.class),
          (block, index) -> {
            Linear fresh = Linear.builder().setUnits(4).build();
            if (none) {
              fresh.getParameters().get("weight").setInitializer(null);
            } else {
              fresh.getParameters().get("bias").setInitializer(new XavierInitializer());
            }
            return fresh;
          });
      SurgeryException planned =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.plan(net, policies, SurgeryOptions.defaults()));
      SurgeryException applied =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(net, policies, SurgeryOptions.defaults()));
      assertTrue(applied.getMessage().contains("failed to initialize"), applied.getMessage());
      assertEquals(applied.getMessage(), planned.getMessage());
    }
  }

  /**
   * A replacement with parameters for a block without any (an identity lambda) has no array of the
   * old block to take its manager from; the plan, which is given no trainer so as never to touch
   * one, takes it from the model's other arrays and plans what the apply then does: two fresh
   * parameters of the shapes the apply gives them, the trainer untouched meanwhile.
   */
  @Test
  void aReplacementWithoutAnArrayToFollowIsPlannedOnTheTrainersModelAsApplied() {
    SequentialBlock net =
        new SequentialBlock()
            .add(Linear.builder().setUnits(4).build())
            .add(ai.djl.nn.Blocks.identityBlock())
            .add(Linear.builder().setUnits(3).build());
    try (Model model = Model.newInstance("plan-anchorless")) {
      model.setBlock(net);
      try (Trainer trainer = trainedOneStep(model)) {
        Block identity = net.getChildren().get(1).getValue();
        Map<BlockMatcher, ReplacementFunction> policies =
            Fixtures.replacing(identity, (block, index) -> Linear.builder().setUnits(4).build());
        SurgeryOptions options = SurgeryOptions.builder().optTrainers(List.of(trainer)).build();
        java.util.Set<String> storeBefore = Fixtures.storeIds(trainer);

        SurgeryPlan plan = ModuleSurgery.plan(net, policies, options);

        assertSame(identity, net.getChildren().get(1).getValue(), "the plan changed nothing");
        assertEquals(storeBefore, Fixtures.storeIds(trainer), "nor the trainer");
        assertEquals(1, plan.steps().size());
        List<SurgeryPlan.PlannedParameter> added = plan.steps().get(0).added();
        assertEquals(2, added.size(), "the new Linear's weight and bias");
        Map<Block, Block> replaced = ModuleSurgery.replaceModules(net, policies, options);
        Linear fresh = (Linear) replaced.get(identity);
        for (SurgeryPlan.PlannedParameter p : added) {
          assertEquals(SurgeryPlan.StateFate.FRESH, p.state(), p.name());
          assertEquals(
              fresh.getParameters().get(p.name()).getArray().getShape(), p.shape(), p.name());
        }
        assertTrue(
            Fixtures.storeIds(trainer).contains(fresh.getParameters().get("weight").getId()));
        Fixtures.sumStep(trainer);
      }
    }
  }

  /** A trainer on the model, initialized for (2, 5) inputs and one SGD step in. */
  private static Trainer trainedOneStep(Model model) {
    DefaultTrainingConfig config =
        new DefaultTrainingConfig(new GcSafeL2Loss())
            .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)).build());
    Trainer trainer = model.newTrainer(config);
    trainer.initialize(new Shape(2, 5));
    Fixtures.sumStep(trainer);
    return trainer;
  }
}
