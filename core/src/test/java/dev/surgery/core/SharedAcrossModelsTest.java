package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.Fixtures.FieldHolder;
import dev.surgery.core.SurgeryPlan.PlannedParameter;
import dev.surgery.core.SurgeryPlan.StateFate;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A block two models share leaves only the model the surgery changes: when the other model's
 * trainer is among the trainers passed, its parameters stay registered there with their optimizer
 * state, and their arrays are not freed. The same holds within one model when the surgery's root is
 * a subtree and the replaced block is also used outside it. Expected store contents are written out
 * from the trees' construction.
 */
class SharedAcrossModelsTest {

  private static final Shape INPUT = new Shape(2, 5);

  @ParameterizedTest(name = "other model's trainer passed {0}")
  @ValueSource(strings = {"last", "first"})
  void aBlockSharedWithAnotherModelStaysInThatModelsTrainer(String order) {
    TinyDense shared = new TinyDense(5);
    TinyDense onlyA = new TinyDense(5);
    TinyDense onlyB = new TinyDense(5);
    FieldHolder rootA = new FieldHolder(shared, onlyA);
    FieldHolder rootB = new FieldHolder(shared, onlyB);
    withTwoModels(
        rootA,
        rootB,
        (trainerA, trainerB) -> {
          Set<String> storeB = Fixtures.storeIds(trainerB);
          assertEquals(ids(shared, onlyB), storeB);
          Map<String, float[]> stateB = ExactnessOracle.optimizerStateValues(trainerB);
          Map<String, float[]> valuesB = Fixtures.snapshot(rootB);

          TinyDense fresh = new TinyDense(5);
          Map<BlockMatcher, ReplacementFunction> policies =
              Fixtures.replacing(shared, (block, index) -> fresh);
          List<Trainer> trainers =
              order.equals("last") ? List.of(trainerA, trainerB) : List.of(trainerB, trainerA);
          ModuleSurgery.replaceModules(rootA, policies, keeping(trainers));

          assertSame(fresh, rootA.first);
          assertSame(shared, rootB.first, "model B is not changed");
          assertEquals(ids(fresh, onlyA), Fixtures.storeIds(trainerA), "A: old out, new in");
          assertEquals(
              storeB, Fixtures.storeIds(trainerB), "B keeps the shared block, gets nothing");
          assertFalse(shared.getWeight().getArray().isReleased(), "B still uses the array");
          assertFalse(shared.getBias().getArray().isReleased(), "B still uses the array");
          Fixtures.assertBitsEqual(stateB, ExactnessOracle.optimizerStateValues(trainerB));
          Fixtures.assertBitsEqual(valuesB, Fixtures.snapshot(rootB));
          Fixtures.sumStep(trainerB);
          Fixtures.sumStep(trainerA);
        });
  }

  @Test
  void parametersASurgeryOnlyAddsDoNotJoinAnotherModelsTrainer() {
    TinyDense shared = new TinyDense(5);
    Block activation = Activation.tanhBlock();
    FieldHolder rootA = new FieldHolder(shared, activation);
    FieldHolder rootB = new FieldHolder(shared, new TinyDense(5));
    withTwoModels(
        rootA,
        rootB,
        (trainerA, trainerB) -> {
          Set<String> storeA = Fixtures.storeIds(trainerA);
          Set<String> storeB = Fixtures.storeIds(trainerB);
          TinyDense fresh = new TinyDense(5);
          Map<BlockMatcher, ReplacementFunction> policies =
              Fixtures.replacing(activation, (block, index) -> fresh);
          ModuleSurgery.replaceModules(rootA, policies, keeping(List.of(trainerA, trainerB)));

          storeA.addAll(ids(fresh));
          assertEquals(
              storeA, Fixtures.storeIds(trainerA), "model A's trainer trains the new layer");
          assertEquals(storeB, Fixtures.storeIds(trainerB), "model B has no such layer");
          Fixtures.sumStep(trainerA);
          Fixtures.sumStep(trainerB);
        });
  }

  @Test
  void aSharedBlockReplacedByOneWithoutParametersStaysInTheOtherModelsTrainer() {
    // Nothing joins model A: the other model is still walked for what it keeps.
    TinyDense shared = new TinyDense(5);
    TinyDense onlyA = new TinyDense(5);
    FieldHolder rootA = new FieldHolder(shared, onlyA);
    FieldHolder rootB = new FieldHolder(shared, new TinyDense(5));
    withTwoModels(
        rootA,
        rootB,
        (trainerA, trainerB) -> {
          Set<String> storeB = Fixtures.storeIds(trainerB);
          Map<String, float[]> stateB = ExactnessOracle.optimizerStateValues(trainerB);
          Map<BlockMatcher, ReplacementFunction> policies =
              Fixtures.replacing(shared, (block, index) -> Activation.tanhBlock());
          ModuleSurgery.replaceModules(rootA, policies, keeping(List.of(trainerA, trainerB)));

          assertEquals(ids(onlyA), Fixtures.storeIds(trainerA), "A: the shared block left");
          assertEquals(storeB, Fixtures.storeIds(trainerB), "B keeps the shared block");
          assertFalse(shared.getWeight().getArray().isReleased(), "B still uses the array");
          Fixtures.assertBitsEqual(stateB, ExactnessOracle.optimizerStateValues(trainerB));
          Fixtures.sumStep(trainerB);
          Fixtures.sumStep(trainerA);
        });
  }

  @Test
  void thePlanSaysTheOtherModelKeepsTheState() {
    TinyDense shared = new TinyDense(5);
    FieldHolder rootA = new FieldHolder(shared, new TinyDense(5));
    FieldHolder rootB = new FieldHolder(shared, new TinyDense(5));
    withTwoModels(
        rootA,
        rootB,
        (trainerA, trainerB) -> {
          Map<BlockMatcher, ReplacementFunction> policies =
              Fixtures.replacing(shared, (block, index) -> new TinyDense(5));

          // Model A's trainer drops the state; model B's, passed alone, keeps it: nothing is
          // dropped.
          assertEquals(
              List.of(StateFate.DROPPED, StateFate.DROPPED),
              removedFates(rootA, policies, List.of(trainerA, trainerB)));
          assertEquals(
              List.of(StateFate.NONE, StateFate.NONE),
              removedFates(rootA, policies, List.of(trainerB)));
          // And the apply does what the plan said: B's store is untouched.
          Set<String> storeB = Fixtures.storeIds(trainerB);
          ModuleSurgery.replaceModules(rootA, policies, keeping(List.of(trainerB)));
          assertEquals(storeB, Fixtures.storeIds(trainerB));
          assertFalse(shared.getWeight().getArray().isReleased());
          Fixtures.sumStep(trainerB);
        });
  }

  @Test
  void aSubtreeSurgeryKeepsABlockTheRestOfTheModelStillUses() {
    TinyDense shared = new TinyDense(5);
    TinyDense inSubtree = new TinyDense(5);
    FieldHolder subtree = new FieldHolder(shared, inSubtree);
    FieldHolder root = new FieldHolder(subtree, shared);
    try (Model model = TinyModels.model("subtree", root);
        Trainer trainer = model.newTrainer(adam())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Map<String, float[]> stateBefore = ExactnessOracle.optimizerStateValues(trainer);
      TinyDense fresh = new TinyDense(5);
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(shared, (block, index) -> fresh);
      ModuleSurgery.replaceModules(subtree, policies, keeping(List.of(trainer)));

      assertSame(fresh, subtree.first);
      assertSame(shared, root.second, "outside the surgery's root the block stays");
      assertEquals(ids(shared, inSubtree, fresh), Fixtures.storeIds(trainer));
      assertFalse(shared.getWeight().getArray().isReleased(), "the model still uses the array");
      Map<String, float[]> stateAfter = ExactnessOracle.optimizerStateValues(trainer);
      for (Parameter p : List.of(shared.getWeight(), shared.getBias())) {
        stateBefore.forEach(
            (k, v) -> {
              if (k.contains("/" + p.getId() + "/")) {
                ExactnessOracle.assertBitsEqual(v, stateAfter.get(k), k);
              }
            });
      }
      Fixtures.sumStep(trainer);
    }
  }

  @Test
  void aSubtreeSurgeryStillFreesWhatLeftTheWholeModel() {
    TinyDense replaced = new TinyDense(5);
    FieldHolder subtree = new FieldHolder(replaced, new TinyDense(5));
    TinyDense outside = new TinyDense(5);
    FieldHolder root = new FieldHolder(subtree, outside);
    try (Model model = TinyModels.model("subtree-free", root);
        Trainer trainer = model.newTrainer(adam())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Set<String> expected = Fixtures.storeIds(trainer);
      expected.removeAll(ids(replaced));
      TinyDense fresh = new TinyDense(5);
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(replaced, (block, index) -> fresh);
      ModuleSurgery.replaceModules(subtree, policies, keeping(List.of(trainer)));

      expected.addAll(ids(fresh));
      assertEquals(expected, Fixtures.storeIds(trainer));
      assertTrue(replaced.getWeight().getArray().isReleased(), "it left the model: freed");
      Fixtures.sumStep(trainer);
    }
  }

  private static List<StateFate> removedFates(
      Block root, Map<BlockMatcher, ReplacementFunction> policies, List<Trainer> trainers) {
    SurgeryPlan plan = ModuleSurgery.plan(root, policies, keeping(trainers));
    assertEquals(1, plan.steps().size());
    return plan.steps().get(0).removed().stream().map(PlannedParameter::state).toList();
  }

  private static Set<String> ids(TinyDense... blocks) {
    Set<String> ids = new TreeSet<>();
    for (TinyDense b : blocks) {
      ids.add(b.getWeight().getId());
      ids.add(b.getBias().getId());
    }
    return ids;
  }

  private static DefaultTrainingConfig adam() {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
  }

  /**
   * Runs {@code test} with an Adam trainer of each of two models, one over {@code rootA} and one
   * over {@code rootB}: both initialized for {@link #INPUT} and given one sum step, A first.
   */
  private static void withTwoModels(Block rootA, Block rootB, BiConsumer<Trainer, Trainer> test) {
    try (Model modelA = TinyModels.model("a", rootA);
        Model modelB = TinyModels.model("b", rootB);
        Trainer trainerA = modelA.newTrainer(adam());
        Trainer trainerB = modelB.newTrainer(adam())) {
      trainerA.initialize(INPUT);
      trainerB.initialize(INPUT);
      Fixtures.sumStep(trainerA);
      Fixtures.sumStep(trainerB);
      test.accept(trainerA, trainerB);
    }
  }

  /** Options that keep {@code trainers} in step with the surgery. */
  private static SurgeryOptions keeping(List<Trainer> trainers) {
    return SurgeryOptions.builder().optTrainers(trainers).build();
  }
}
