package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertFalse;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.surgery.core.OptimizerMoveEdgesTest.TwoModels;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A block shared by two models, replaced in each model by its own new block (both swapped first, as
 * the recipe of running the surgeries without the trainers and then moving each old block to the
 * block that replaced it does), each move given both trainers. A trainer whose model uses neither
 * the old parameter nor the new one must not take the new one: it used to, so the first move
 * registered model 1's parameters in model 2's trainer, and the second move was refused ("not held
 * by any given trainer").
 */
class SharedBlockReplacedInBothModelsTest {

  @ParameterizedTest
  @EnumSource(Kind.class)
  void eachModelsTrainerTakesOnlyTheParametersOfItsOwnReplacement(Kind kind) {
    try (Batches data = new Batches(29, 9);
        TwoModels subject = new TwoModels(kind, 17);
        TwoModels twin = new TwoModels(kind, 17)) {
      for (int k = 0; k < 30; k++) {
        if (k == 8) {
          Block shared = subject.shared1();
          List<Parameter> old = OptimizerMoveRig.params(shared);
          // New Parameters around the shared arrays, one block per model: both models go on
          // training the same arrays, each trainer with its own state, exactly as the twin.
          OptimizerMoveEdgesTest.replaceWithoutTrainer(
              subject.n1, shared, () -> OptimizerMoveEdgesTest.rewrap((Linear) shared));
          OptimizerMoveEdgesTest.replaceWithoutTrainer(
              subject.n2, shared, () -> OptimizerMoveEdgesTest.rewrap((Linear) shared));
          assertFalse(old.get(0).getArray().isReleased(), "the rewraps keep the arrays");
          List<Parameter> in1 = OptimizerMoveRig.params(subject.shared1());
          List<Parameter> in2 = OptimizerMoveRig.params(subject.n2.getChildren().get(0).getValue());
          ModuleSurgery.replaceParamsInOptimizer(old, in1, List.of(subject.t1, subject.t2));
          for (Parameter p : in1) {
            assertFalse(
                TrainerSurgery.holds(subject.t2, p),
                "model 2's trainer holds a parameter of model 1's replacement");
          }
          ModuleSurgery.replaceParamsInOptimizer(old, in2, List.of(subject.t1, subject.t2));
        }
        subject.step(data, k);
        twin.step(data, k);
        TwoModels.assertSame(subject, twin, "step " + k);
      }
    }
  }

  /**
   * The same, with model 1 swapped after its move ("the blocks may be swapped in the model before
   * or after this call"): model 2, swapped already, uses neither the old parameters nor model 1's
   * new ones, and its trainer must keep the old ones for the move of its own replacement.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void aModelSwappedToItsOwnBlockKeepsTheOldParametersWhileTheOtherMovesBeforeItsSwap(Kind kind) {
    try (Batches data = new Batches(31, 9);
        TwoModels subject = new TwoModels(kind, 18);
        TwoModels twin = new TwoModels(kind, 18)) {
      for (int k = 0; k < 30; k++) {
        if (k == 8) {
          Block shared = subject.shared1();
          List<Parameter> old = OptimizerMoveRig.params(shared);
          OptimizerMoveEdgesTest.replaceWithoutTrainer(
              subject.n2, shared, () -> OptimizerMoveEdgesTest.rewrap((Linear) shared));
          List<Parameter> in2 = OptimizerMoveRig.params(subject.n2.getChildren().get(0).getValue());
          Linear for1 = OptimizerMoveEdgesTest.rewrap((Linear) shared);
          List<Parameter> in1 = OptimizerMoveRig.params(for1);
          ModuleSurgery.replaceParamsInOptimizer(old, in1, List.of(subject.t1, subject.t2));
          for (Parameter p : in1) {
            assertFalse(
                TrainerSurgery.holds(subject.t2, p),
                "model 2's trainer holds a parameter of model 1's replacement");
          }
          OptimizerMoveEdgesTest.replaceWithoutTrainer(subject.n1, shared, () -> for1);
          ModuleSurgery.replaceParamsInOptimizer(old, in2, List.of(subject.t1, subject.t2));
        }
        subject.step(data, k);
        twin.step(data, k);
        TwoModels.assertSame(subject, twin, "step " + k);
      }
    }
  }
}
