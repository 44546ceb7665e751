package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.OptimizerMoveRig.Shadow;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@code updateParamsInOptimizer} registers added parameters in "the trainers that held removed
 * ones (all trainers when nothing was removed)". A removed parameter that a new {@code Parameter}
 * around its array takes over was removed too: the added parameters beside it join its trainer
 * only. They used to join every given trainer when every removed parameter was taken over, so the
 * trainer of another model updated them at its own steps (AdamW's and Sgd's weight decay with no
 * gradient: off the oracle from the first step after).
 */
class BornBesideRewrappedParametersTest {

  @ParameterizedTest
  @EnumSource(Kind.class)
  void aBornParameterBesideRewrapsJoinsOnlyTheTrainerThatHeldTheRewrappedOnes(Kind kind) {
    try (Batches data = new Batches(19, 9);
        OptimizerMoveRig subject = OptimizerMoveEdgesTest.rig("s", kind, 13);
        OptimizerMoveRig other = OptimizerMoveEdgesTest.rig("o", kind, 14);
        Shadow shadow =
            OptimizerMoveEdgesTest.shadowOf(subject, OptimizerMoveEdgesTest.fixed(kind));
        Shadow otherShadow =
            OptimizerMoveEdgesTest.shadowOf(other, OptimizerMoveEdgesTest.fixed(kind))) {
      int k = 0;
      for (; k < 5; k++) {
        shadow.step(subject, data.get(k), "subject, step " + k);
        otherShadow.step(other, data.get(k), "other model, step " + k);
      }
      // Layer 2 becomes [new Parameters around its arrays, a fresh Linear]: every removed
      // parameter is taken over, and two are added.
      List<Parameter> before = subject.params();
      Block l2 = subject.child(2);
      ModuleSurgery.replaceModuleClasses(
          subject.net,
          Map.of(
              Linear.class,
              (b, i) ->
                  b == l2
                      ? new SequentialBlock()
                          .add(OptimizerMoveEdgesTest.rewrap((Linear) b))
                          .add(Linear.builder().setUnits(4).build())
                      : null),
          null,
          false,
          null);
      List<Parameter> after = subject.params();
      assertEquals(before.size() + 2, after.size());
      ModuleSurgery.updateParamsInOptimizer(before, after, List.of(subject.trainer, other.trainer));
      for (Parameter born : after.subList(6, 8)) {
        assertTrue(TrainerSurgery.holds(subject.trainer, born), "the subject's trainer holds it");
        assertFalse(
            TrainerSurgery.holds(other.trainer, born),
            "the other model's trainer, which held none of the removed parameters, holds it");
      }
      shadow.carry(before.get(4), after.get(4));
      shadow.carry(before.get(5), after.get(5));
      Optimizer fresh = OptimizerMoveEdgesTest.fixed(kind);
      shadow.follow(after.get(6), fresh);
      shadow.follow(after.get(7), fresh);
      for (; k < 30; k++) {
        shadow.step(subject, data.get(k), "subject, step " + k);
        otherShadow.step(other, data.get(k), "other model, step " + k);
      }
    }
  }
}
