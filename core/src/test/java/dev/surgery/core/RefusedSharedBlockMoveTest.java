package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.surgery.core.OptimizerMoveEdgesTest.TwoModels;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A {@code replaceParamsInOptimizer} call refused at its last pair because the shared block's
 * models both still use it ("swap first"), after earlier pairs moved a weight of model 1 to one of
 * another shape (a born mark, the stand-in optimizer installed), rewrapped another and made a
 * frozen one trainable: both trainers' internals are as before, bit for bit, and both models train
 * on as their twins.
 */
class RefusedSharedBlockMoveTest {

  @ParameterizedTest
  @EnumSource(Kind.class)
  void aMoveRefusedAtTheSharedBlockChangesNothingInEitherTrainer(Kind kind) {
    try (Batches data = new Batches(57, 9);
        TwoModels subject = new TwoModels(kind, 27);
        TwoModels twin = new TwoModels(kind, 27)) {
      for (int k = 0; k < 24; k++) {
        if (k == 3) {
          subject.n1.getChildren().get(4).getValue().freezeParameters(true);
          twin.n1.getChildren().get(4).getValue().freezeParameters(true);
        }
        if (k == 7) {
          Linear first = (Linear) subject.n1.getChildren().get(0).getValue();
          Linear last = (Linear) subject.n1.getChildren().get(4).getValue();
          Block shared = subject.shared1();
          NDArray w = first.getParameters().get("weight").getArray();
          Parameter wider =
              RefusedOptimizerMoveTest.around(w.getManager().zeros(new Shape(5, 3)), "w", true);
          Linear lastTrainable = OptimizerMoveEdgesTest.rewrap(last);
          List<Parameter> before = new ArrayList<>();
          List<Parameter> after = new ArrayList<>();
          before.add(first.getParameters().get("weight"));
          after.add(wider);
          before.add(first.getParameters().get("bias"));
          after.add(
              RefusedOptimizerMoveTest.around(
                  first.getParameters().get("bias").getArray(), "bias", true));
          before.addAll(OptimizerMoveRig.params(last));
          after.addAll(OptimizerMoveRig.params(lastTrainable));
          before.addAll(OptimizerMoveRig.params(shared));
          after.addAll(OptimizerMoveRig.params(OptimizerMoveEdgesTest.rewrap((Linear) shared)));
          List<Parameter> all = new ArrayList<>(OptimizerMoveRig.params(subject.n1));
          all.addAll(OptimizerMoveRig.params(subject.n2));
          all.addAll(after);
          Map<String, Object> t1 = OptimizerMoveRig.snapshot(subject.t1, all);
          Map<String, Object> t2 = OptimizerMoveRig.snapshot(subject.t2, all);
          IllegalArgumentException e =
              assertThrows(
                  IllegalArgumentException.class,
                  () ->
                      ModuleSurgery.replaceParamsInOptimizer(
                          before, after, List.of(subject.t1, subject.t2)));
          assertTrue(e.getMessage().contains("none uses its replacement yet"), e.getMessage());
          assertEquals(t1, OptimizerMoveRig.snapshot(subject.t1, all), "trainer 1's internals");
          assertEquals(t2, OptimizerMoveRig.snapshot(subject.t2, all), "trainer 2's internals");
        }
        subject.step(data, k);
        twin.step(data, k);
        TwoModels.assertSame(subject, twin, "step " + k);
      }
    }
  }
}
