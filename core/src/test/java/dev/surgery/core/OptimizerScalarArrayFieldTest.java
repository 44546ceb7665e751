package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Adam;
import ai.djl.training.tracker.Tracker;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * From a review of 1106c19e (fixed): an optimizer is refused at any state move when one of its
 * classes declares a field whose type mentions NDArray and is not a state map, whatever it holds. A
 * subclass of DJL's Adam with an optional gradient-scale scalar (one array for all parameters, here
 * never even set: null) is not per-parameter state, yet every surgery with its trainer is refused.
 * Expected: the surgery goes on (the check should look at what the field holds, and a single array
 * shared by all parameters is no state to move).
 */
class OptimizerScalarArrayFieldTest {

  static final class ScaledAdam extends Adam {
    NDArray gradScale; // optional, one scalar for all parameters; null: no scaling

    ScaledAdam() {
      super(Adam.builder().optLearningRateTracker(Tracker.fixed(0.01f)));
    }

    @Override
    public void update(String parameterId, NDArray weight, NDArray grad) {
      super.update(parameterId, weight, gradScale == null ? grad : grad.mul(gradScale));
    }
  }

  @Test
  void anAdamSubclassWithAnUnsetScalarArrayFieldCanBeOperatedOn() {
    try (Model model = Model.newInstance("probe");
        NDManager data = NDManager.newBaseManager()) {
      SequentialBlock net =
          new SequentialBlock()
              .add(Linear.builder().setUnits(6).build())
              .add(Linear.builder().setUnits(3).build());
      model.setBlock(net);
      NDArray x = data.randomNormal(new Shape(8, 4));
      NDArray y = data.randomInteger(0, 3, new Shape(8), DataType.INT64);
      try (Trainer trainer = Fixtures.probeTrainer(model, new ScaledAdam())) {
        Fixtures.lossStep(trainer, x, y);
        Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(BlockMatcher.ofClass(Linear.class), (old, i) -> Fixtures.linearCopyOf(old));
        Map<Block, Block> replaced =
            assertDoesNotThrow(
                () ->
                    ModuleSurgery.replaceModules(
                        net,
                        policies,
                        SurgeryOptions.builder().optTrainers(List.of(trainer)).build()));
        org.junit.jupiter.api.Assertions.assertEquals(2, replaced.size());
      }
    }
  }
}
