package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import dev.surgery.core.Fixtures.FieldHolder;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * What leaves the model is taken from the replaced subtrees, not from the whole tree: a parameter
 * that a kept block still holds must stay registered, keep its optimizer state and keep its array,
 * whether the kept block shares the replaced block's child or the parameter object itself. The
 * expected store contents are written out from the tree's construction, not computed by the engine.
 */
class SharedParametersTest {

  private static final Shape INPUT = new Shape(2, 5);

  /** Adds a bias it shares with another block: weight tying by one Parameter object. */
  static final class TiedBias extends AbstractBlock {
    final Parameter bias;

    TiedBias(Parameter shared) {
      bias = addParameter(shared);
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDArray x = inputs.singletonOrThrow();
      return new NDList(x.add(store.getValue(bias, x.getDevice(), training)));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  @Test
  void aChildSharedWithAKeptParentStaysInTheTrainer() {
    TinyDense shared = new TinyDense(5);
    TinyDense alone = new TinyDense(5);
    FieldHolder inner = new FieldHolder(shared, alone);
    FieldHolder root = new FieldHolder(inner, shared);
    try (Model model = TinyModels.model("shared-child", root);
        Trainer trainer = model.newTrainer(adam())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Map<String, float[]> stateBefore = stateOf(trainer, shared.getWeight(), shared.getBias());
      TinyDense fresh = new TinyDense(5);
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(inner, (block, index) -> fresh);
      ModuleSurgery.replaceModules(
          root, policies, SurgeryOptions.builder().optTrainers(List.of(trainer)).build());

      assertEquals(
          Fixtures.ids(shared.getWeight(), shared.getBias(), fresh.getWeight(), fresh.getBias()),
          Fixtures.storeIds(trainer),
          "the shared child's parameters stay, the dropped child's leave, the new ones join");
      assertFalse(shared.getWeight().getArray().isReleased(), "a kept array is not freed");
      assertFalse(shared.getBias().getArray().isReleased(), "a kept array is not freed");
      assertTrue(alone.getWeight().getArray().isReleased(), "the dropped child's array is freed");
      Map<String, float[]> stateAfter = stateOf(trainer, shared.getWeight(), shared.getBias());
      assertEquals(stateBefore.keySet(), stateAfter.keySet(), "Adam state of the shared child");
      stateBefore.forEach((k, v) -> assertArrayEquals(v, stateAfter.get(k), k));
      Fixtures.sumStep(trainer);
    }
  }

  @Test
  void aParameterObjectAKeptBlockHoldsStaysInTheTrainer() {
    TinyDense replacedDense = new TinyDense(5);
    TiedBias tied = new TiedBias(replacedDense.getBias());
    FieldHolder root = new FieldHolder(replacedDense, tied);
    try (Model model = TinyModels.model("tied-bias", root);
        Trainer trainer = model.newTrainer(adam())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Parameter bias = replacedDense.getBias();
      Map<String, float[]> stateBefore = stateOf(trainer, bias);
      TinyDense fresh = new TinyDense(5);
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(replacedDense, (block, index) -> fresh);
      ModuleSurgery.replaceModules(
          root, policies, SurgeryOptions.builder().optTrainers(List.of(trainer)).build());

      assertEquals(
          Fixtures.ids(bias, fresh.getWeight(), fresh.getBias()),
          Fixtures.storeIds(trainer),
          "the tied bias stays, the replaced weight leaves, the new parameters join");
      assertFalse(bias.getArray().isReleased(), "the tied bias is still in use");
      assertTrue(replacedDense.getWeight().getArray().isReleased(), "the replaced weight is freed");
      Map<String, float[]> stateAfter = stateOf(trainer, bias);
      assertEquals(stateBefore.keySet(), stateAfter.keySet(), "Adam state of the tied bias");
      stateBefore.forEach((k, v) -> assertArrayEquals(v, stateAfter.get(k), k));
      Fixtures.sumStep(trainer);
    }
  }

  @Test
  void aBlockAddedBackByTheReplacementKeepsItsParameters() {
    TinyDense kept = new TinyDense(5);
    TinyDense other = new TinyDense(5);
    FieldHolder inner = new FieldHolder(kept, other);
    FieldHolder root = new FieldHolder(inner, new TinyDense(5));
    try (Model model = TinyModels.model("reused-child", root);
        Trainer trainer = model.newTrainer(adam())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Set<String> before = Fixtures.storeIds(trainer);
      Map<String, float[]> stateBefore = stateOf(trainer, kept.getWeight(), kept.getBias());
      // The replacement reuses one child of the block it replaces and drops the other.
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(inner, (block, index) -> new FieldHolder(kept, tail()));
      Map<Block, Block> done =
          ModuleSurgery.replaceModules(
              root, policies, SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
      TinyDense tail = (TinyDense) ((FieldHolder) done.get(inner)).second;

      Set<String> expected = new TreeSet<>(before);
      expected.remove(other.getWeight().getId());
      expected.remove(other.getBias().getId());
      expected.add(tail.getWeight().getId());
      expected.add(tail.getBias().getId());
      assertEquals(expected, Fixtures.storeIds(trainer));
      assertFalse(kept.getWeight().getArray().isReleased(), "the reused child's array is kept");
      assertTrue(other.getWeight().getArray().isReleased(), "the dropped child's array is freed");
      Map<String, float[]> stateAfter = stateOf(trainer, kept.getWeight(), kept.getBias());
      stateBefore.forEach((k, v) -> assertArrayEquals(v, stateAfter.get(k), k));
      Fixtures.sumStep(trainer);
    }
  }

  private static TinyDense tail() {
    return new TinyDense(5);
  }

  private static DefaultTrainingConfig adam() {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
  }

  /** The optimizer state entries of some parameters, as bitwise copies. */
  private static Map<String, float[]> stateOf(Trainer trainer, Parameter... parameters) {
    Map<String, float[]> all = ExactnessOracle.optimizerStateValues(trainer);
    Map<String, float[]> mine = new LinkedHashMap<>();
    for (Parameter p : parameters) {
      all.forEach(
          (key, value) -> {
            if (key.contains("/" + p.getId() + "/")) {
              mine.put(key, value);
            }
          });
    }
    assertFalse(mine.isEmpty(), "the optimizer holds state for the parameters");
    return mine;
  }
}
