package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.nn.Parameter;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@code replaceParamsInOptimizer} refuses "an old parameter listed twice", changing nothing. One
 * listed twice, kept in place at one position and given a new parameter at the other (a tied
 * parameter whose one use is replaced), was let through: the parameter that stays in the model lost
 * its store entry and optimizer state to the new one, so it was registered again, fresh, at the
 * next forward (off the twin from the next step). A parameter cannot both stay and move: such lists
 * are refused, and a parameter kept at every position it is listed at is still let through.
 */
class KeptAndMovedParameterRefusedTest {

  @ParameterizedTest
  @EnumSource(Kind.class)
  void aParameterKeptAtOnePositionAndMovedAtAnotherIsRefusedAndNothingChanges(Kind kind) {
    try (Batches data = new Batches(51, 9);
        OptimizerMoveRig subject = OptimizerMoveEdgesTest.rig("s", kind, 19);
        OptimizerMoveRig twin = OptimizerMoveEdgesTest.rig("t", kind, 19)) {
      for (int k = 0; k < 24; k++) {
        if (k == 6) {
          List<Parameter> all = subject.params();
          Parameter weight = subject.layer(1).getParameters().get("weight");
          Parameter copy =
              OptimizerMoveEdgesTest.copy(subject.layer(1)).getParameters().get("weight");
          Map<String, Object> before = OptimizerMoveRig.snapshot(subject.trainer, all);
          for (boolean keptFirst : new boolean[] {true, false}) {
            List<Parameter> oldParams = List.of(weight, weight);
            List<Parameter> newParams = keptFirst ? List.of(weight, copy) : List.of(copy, weight);
            IllegalArgumentException e =
                assertThrows(
                    IllegalArgumentException.class,
                    () ->
                        ModuleSurgery.replaceParamsInOptimizer(
                            oldParams, newParams, List.of(subject.trainer)));
            assertEquals(
                before,
                OptimizerMoveRig.snapshot(subject.trainer, all),
                "internals after the refusal: " + e.getMessage());
          }
          // Kept at every position it is listed at: nothing moves, nothing is refused.
          List<Parameter> twice = new ArrayList<>(all);
          twice.add(weight);
          ModuleSurgery.replaceParamsInOptimizer(twice, twice, List.of(subject.trainer));
          assertEquals(before, OptimizerMoveRig.snapshot(subject.trainer, all), "a no-op");
        }
        OptimizerMoveRig.stepTwins(subject, twin, data.get(k), "step " + k);
      }
    }
  }
}
