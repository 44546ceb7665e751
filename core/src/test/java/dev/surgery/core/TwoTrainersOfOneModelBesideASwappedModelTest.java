package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import dev.surgery.core.OptimizerMoveEdgesTest.TwoModels;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A block shared by two models, model 2 swapped to its own block, model 1 moved before its swap (as
 * {@link SharedBlockReplacedInBothModelsTest} does), where model 1 has two trainers holding the old
 * parameters (its training trainer and an evaluator made on the same model). Only one model uses
 * the old parameters, so which trainer keeps them can be told (model 2's, whose model uses
 * neither): the move must go through, not be refused as "used by the models of 2 given trainers (a
 * block shared between models)" because two trainers of one model were counted as two models. Both
 * models then train exactly as their twins for 30 steps.
 */
class TwoTrainersOfOneModelBesideASwappedModelTest {

  @ParameterizedTest
  @EnumSource(Kind.class)
  void twoTrainersOfTheModelUsingTheOldParametersCountAsOneModel(Kind kind) {
    try (Batches data = new Batches(31, 9);
        TwoModels subject = new TwoModels(kind, 18);
        TwoModels twin = new TwoModels(kind, 18);
        Trainer evaluator =
            subject.m1.newTrainer(
                new DefaultTrainingConfig(new GcSafeL2Loss())
                    .optOptimizer(OptimizerMoveEdgesTest.fixed(kind)))) {
      evaluator.initialize(OptimizerMoveRig.INPUT);
      for (int k = 0; k < 30; k++) {
        if (k == 8) {
          Block shared = subject.shared1();
          List<Parameter> old = OptimizerMoveRig.params(shared);
          assertTrue(TrainerSurgery.holds(evaluator, old.get(0)), "the evaluator holds them");
          OptimizerMoveEdgesTest.replaceWithoutTrainer(
              subject.n2, shared, () -> OptimizerMoveEdgesTest.rewrap((Linear) shared));
          List<Parameter> in2 = OptimizerMoveRig.params(subject.n2.getChildren().get(0).getValue());
          Linear for1 = OptimizerMoveEdgesTest.rewrap((Linear) shared);
          List<Parameter> in1 = OptimizerMoveRig.params(for1);
          List<Trainer> all = List.of(subject.t1, evaluator, subject.t2);
          ModuleSurgery.replaceParamsInOptimizer(old, in1, all);
          for (Parameter p : in1) {
            assertFalse(
                TrainerSurgery.holds(subject.t2, p),
                "model 2's trainer holds a parameter of model 1's replacement");
            assertTrue(TrainerSurgery.holds(evaluator, p), "model 1's evaluator moved");
          }
          OptimizerMoveEdgesTest.replaceWithoutTrainer(subject.n1, shared, () -> for1);
          ModuleSurgery.replaceParamsInOptimizer(old, in2, all);
        }
        subject.step(data, k);
        twin.step(data, k);
        TwoModels.assertSame(subject, twin, "step " + k);
      }
    }
  }
}
