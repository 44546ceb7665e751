package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.OpenArrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * What a rolled-back surgery frees: the arrays of the replacements it received and nobody else
 * uses, every one of them (a retried failing surgery must not pile them up), and never those of a
 * block another given trainer's model still uses.
 */
class RollbackReleaseTest {

  private static Linear linear() {
    return Linear.builder().setUnits(4).build();
  }

  /**
   * A replacement function shares model B's layer into model A (which the engine allows), then a
   * later policy fails: B's layer must come out of the rollback intact, trainable, with its values.
   */
  @Test
  void aRollbackLeavesTheArraysOfAnotherModelsBlockAlone() {
    withAnotherModel(
        2,
        (ra, b1, options) -> {
          Block a1 = ra.getChildren().valueAt(0);
          Block a2 = ra.getChildren().valueAt(1);
          Map<BlockMatcher, ReplacementFunction> policies =
              Fixtures.replacing(
                  a1,
                  (block, index) -> b1,
                  a2,
                  (block, index) -> {
                    throw new IllegalStateException("planted");
                  });
          assertThrows(
              SurgeryException.class, () -> ModuleSurgery.replaceModules(ra, policies, options));
          assertSame(a1, ra.getChildren().get(0).getValue(), "model A is as it was");
        });
  }

  /**
   * A plan whose function returns another model's block, with that model's trainer among the
   * plan's: the plan freed that block's arrays when it undid itself (it ran without trainers), and
   * the other model could not train. Only read, the trainers still keep what their models use.
   */
  @Test
  void aPlanLeavesTheArraysOfAnotherModelsBlockAlone() {
    withAnotherModel(
        1,
        (ra, b1, options) -> {
          Block a1 = ra.getChildren().valueAt(0);
          Map<BlockMatcher, ReplacementFunction> policies =
              Map.of((block, path) -> block == a1, (block, index) -> b1);
          SurgeryPlan plan = ModuleSurgery.plan(ra, policies, options);
          assertEquals(1, plan.steps().size());
          assertSame(a1, ra.getChildren().get(0).getValue(), "model A is as it was");
        });
  }

  /** What a case does with model A, whose function hands it model B's layer. */
  private interface WithModelB {
    void check(SequentialBlock a, Linear b1, SurgeryOptions bothTrainers);
  }

  /**
   * Model A of {@code layersInA} linear layers and model B of one, each initialized with a trainer;
   * after the case, model B's layer holds the very arrays it had, with their values, and B runs.
   */
  private static void withAnotherModel(int layersInA, WithModelB body) {
    try (Model ma = Model.newInstance("a");
        Model mb = Model.newInstance("b")) {
      SequentialBlock ra = new SequentialBlock();
      for (int i = 0; i < layersInA; i++) {
        ra.add(linear());
      }
      ma.setBlock(ra);
      Linear b1 = linear();
      mb.setBlock(new SequentialBlock().add(b1));
      try (Trainer ta = ma.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()));
          Trainer tb = mb.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()))) {
        ta.initialize(new Shape(2, 4));
        tb.initialize(new Shape(2, 4));
        NDArray weight = b1.getParameters().get("weight").getArray();
        float[] before = weight.toFloatArray();
        body.check(ra, b1, SurgeryOptions.builder().optTrainers(List.of(ta, tb)).build());
        assertSame(weight, b1.getParameters().get("weight").getArray());
        assertFalse(weight.isReleased(), "model B's layer lost its arrays");
        assertArrayEquals(before, weight.toFloatArray());
        NDList out = tb.forward(new NDList(mb.getNDManager().ones(new Shape(2, 4))));
        assertEquals(new Shape(2, 4), out.singletonOrThrow().getShape());
      }
    }
  }

  /**
   * Two policies return a weight copy for the same block: the second is refused, and the arrays of
   * both copies are freed by the rollback, attempt after attempt (each left two arrays behind).
   */
  @Test
  void aReplacementRefusedAsASecondPolicysIsFreedToo() {
    try (Model model = Model.newInstance("two-policies")) {
      Linear layer = linear();
      SequentialBlock root = new SequentialBlock().add(layer);
      model.setBlock(root);
      try (Trainer trainer = model.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()))) {
        trainer.initialize(new Shape(2, 4));
        Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(
            BlockMatcher.ofClass(Linear.class), (block, index) -> WeightCopy.into(linear(), block));
        policies.put(
            (block, path) -> block instanceof Linear,
            (block, index) -> WeightCopy.into(linear(), block));
        SurgeryOptions options = SurgeryOptions.builder().optTrainers(List.of(trainer)).build();
        int open = OpenArrays.managedBy(model.getNDManager()).size();
        for (int attempt = 0; attempt < 3; attempt++) {
          SurgeryException e =
              assertThrows(
                  SurgeryException.class,
                  () -> ModuleSurgery.replaceModules(root, policies, options));
          assertTrue(e.getMessage().contains("two policies replace the same"), e.getMessage());
          assertEquals(
              open,
              OpenArrays.managedBy(model.getNDManager()).size(),
              "open arrays after attempt " + attempt);
        }
        Block first = root.getChildren().get(0).getValue();
        assertSame(layer, first);
      }
    }
  }
}
