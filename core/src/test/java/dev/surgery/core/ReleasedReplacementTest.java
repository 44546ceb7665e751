package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A replacement whose parameter arrays an earlier surgery freed (the old block of the map it
 * returned: the natural way to "revert") would fail the next step with "Native resource has been
 * released already"; it is refused instead, naming the block path and the parameter, with the
 * model, its values and the trainer as before.
 */
class ReleasedReplacementTest {

  private static final Shape INPUT = new Shape(2, 5);

  /** How the revert hands the freed block back: alone, or inside a new container. */
  static Stream<Named> reverts() {
    return Stream.of(
        new Named("the freed block itself", b -> b),
        new Named("a new container around it", b -> new SequentialBlock().add(b)));
  }

  record Named(String name, Function<Block, Block> wrap) {
    @Override
    public String toString() {
      return name;
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("reverts")
  void revertingToABlockAnEarlierSurgeryFreedIsRefused(Named revert) {
    TinyDense original = new TinyDense(5);
    TinyDense other = new TinyDense(5);
    Fixtures.FieldHolder root = new Fixtures.FieldHolder(other, original);
    try (Model model = TinyModels.model("revert", root);
        Trainer trainer = model.newTrainer(adam())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      SurgeryOptions withTrainer = SurgeryOptions.builder().optTrainers(List.of(trainer)).build();
      Map<BlockMatcher, ReplacementFunction> apply =
          Fixtures.replacing(original, (block, index) -> new TinyDense(5));
      Block replacement = ModuleSurgery.replaceModules(root, apply, withTrainer).get(original);
      assertTrue(
          original.getWeight().getArray().isReleased(), "the first surgery freed the old arrays");
      Fixtures.sumStep(trainer);

      Map<String, float[]> valuesBefore = Fixtures.snapshot(root);
      Set<String> storeBefore = Fixtures.storeIds(trainer);
      Map<String, float[]> stateBefore = ExactnessOracle.optimizerStateValues(trainer);
      // The other block is replaced first, so the refusal must undo a change already made.
      Map<BlockMatcher, ReplacementFunction> back =
          Fixtures.replacing(
              other,
              (block, index) -> new TinyDense(5),
              replacement,
              (block, index) -> revert.wrap().apply(original));
      SurgeryException e =
          assertThrows(
              SurgeryException.class, () -> ModuleSurgery.replaceModules(root, back, withTrainer));

      assertEquals("02second", e.getBlockPath(), e.getMessage());
      assertTrue(e.getMessage().contains("'weight'"), e.getMessage());
      assertTrue(e.getMessage().contains("its array was freed"), e.getMessage());
      assertSame(other, root.first);
      assertSame(replacement, root.second);
      assertSame(replacement, root.getChildren().valueAt(1));
      Map<String, float[]> valuesAfter = Fixtures.snapshot(root);
      Fixtures.assertBitsEqual(valuesBefore, valuesAfter);
      assertEquals(storeBefore, Fixtures.storeIds(trainer));
      Map<String, float[]> stateAfter = ExactnessOracle.optimizerStateValues(trainer);
      Fixtures.assertBitsEqual(stateBefore, stateAfter);
      assertFalse(other.getWeight().getArray().isReleased(), "the kept block's arrays stay");
      Fixtures.sumStep(trainer); // trains on
    }
  }

  private static DefaultTrainingConfig adam() {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
  }
}
