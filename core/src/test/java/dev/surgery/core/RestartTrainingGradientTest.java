package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.GradientCollector;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.SharedArrayMoveTest.TiedModel;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@code TrainerSurgery.restartTraining} sets to zero the gradient a frozen wrapper's arrays kept
 * taking: exact zeros whatever the sum held, undone by a rollback, and never a tied trainable
 * parameter's pending gradient (a second reviewer's checks; a first version subtracted the gradient
 * from itself, unjournaled).
 */
class RestartTrainingGradientTest {

  static final float LR = 0.01f;

  /**
   * A trainable layer moved to frozen wrappers of its arrays (the arrays keep taking gradients, no
   * update zeroes them), whose gathered gradient overflowed while frozen (float32 here by two large
   * backward passes; in float16 a few hundred frozen steps reach 65504), then unfrozen: {@code
   * subi} makes inf - inf = NaN, so the first update writes NaN into the weight, where the twin
   * frozen by DJL (and DJL's own zeroing after an update, {@code JniUtils.zeroGrad}, a {@code
   * zero_}) gives finite values.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void anOverflowedGradientOfAFrozenWrapperIsZeroedToZeroNotNaN(Kind kind) {
    try (Batches data = new Batches(34, 9);
        OptimizerMoveRig subject = OptimizerMoveRig.atFixedRate("s", kind, LR, 24);
        OptimizerMoveRig twin = OptimizerMoveRig.atFixedRate("t", kind, LR, 24)) {
      for (int k = 0; k < 18; k++) {
        if (k == 8) {
          List<Parameter> before = OptimizerMoveRig.params(subject.child(1));
          Linear old = subject.layer(1);
          OptimizerMoveEdgesTest.replaceWithoutTrainer(
              subject, 1, () -> OptimizerMoveRig.frozenWrapperOf(old));
          List<Parameter> after = OptimizerMoveRig.params(subject.child(1));
          assertFalse(after.get(0).requiresGradient());
          ModuleSurgery.replaceParamsInOptimizer(before, after, List.of(subject.trainer));
          twin.child(1).freezeParameters(true);
        }
        if (k == 10) {
          // The frozen wrapper's array gathers a gradient that overflows (only it is touched).
          NDArray w = subject.layer(1).getParameters().get("weight").getArray();
          NDManager m = w.getManager();
          try (NDArray big = m.full(w.getShape(), 2e38f)) {
            for (int pass = 0; pass < 2; pass++) {
              try (GradientCollector c = subject.trainer.newGradientCollector()) {
                c.backward(w.mul(big).sum());
              }
            }
          }
        }
        if (k == 13) {
          subject.unfreezeChild(1);
          twin.unfreezeChild(1);
        }
        OptimizerMoveRig.stepTwins(subject, twin, data.get(k), "step " + k);
      }
    }
  }

  /**
   * Inside an accumulation window, a call refused at its second pair ("not held by any given
   * trainer"; "nothing is changed then") whose first pair made a frozen tie of a trainable layer's
   * weight trainable: restartTraining zeroed the shared array's pending gradient and the rollback
   * does not restore it, so the trainable layer's next step misses the window's first backward.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void aRefusedMoveLeavesATrainableLayersPendingGradientAsItWas(Kind kind) {
    try (Batches data = new Batches(43, 6);
        TiedModel subject = new TiedModel(kind, 9);
        TiedModel twin = new TiedModel(kind, 9)) {
      for (int k = 0; k < 3; k++) {
        subject.step(data.get(k));
        twin.step(data.get(k));
      }
      OptimizerMoveRig.forwardBackward(subject.trainer, data.get(3));
      OptimizerMoveRig.forwardBackward(twin.trainer, data.get(3));
      float[] pending = subject.weight0().getArray().getGradient().toFloatArray();
      Parameter tie = subject.reader().tied;
      Parameter trainableTie =
          RefusedOptimizerMoveTest.around(subject.weight0().getArray(), "tied", true);
      NDManager m = subject.model.getNDManager();
      Parameter stranger = RefusedOptimizerMoveTest.around(m.zeros(new Shape(2, 2)), "s", true);
      Parameter stranger2 = RefusedOptimizerMoveTest.around(m.zeros(new Shape(2, 2)), "t", true);
      assertThrows(
          IllegalStateException.class,
          () ->
              ModuleSurgery.replaceParamsInOptimizer(
                  List.of(tie, stranger),
                  List.of(trainableTie, stranger2),
                  List.of(subject.trainer)));
      assertArrayEquals(
          pending,
          subject.weight0().getArray().getGradient().toFloatArray(),
          "the trainable layer's pending gradient after the refused call");
      OptimizerMoveRig.forwardBackward(subject.trainer, data.get(4));
      OptimizerMoveRig.forwardBackward(twin.trainer, data.get(4));
      subject.trainer.step();
      twin.trainer.step();
      SharedArrayMoveTest.assertSame(subject, twin, "the step after the refused call");
    }
  }
}
