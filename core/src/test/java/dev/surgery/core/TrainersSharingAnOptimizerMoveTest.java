package dev.surgery.core;

import ai.djl.ndarray.NDList;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Two trainers of one model made with one optimizer object (an evaluator made from the training
 * config: DJL hands both the config's optimizer), both given to {@code replaceParamsInOptimizer}:
 * the second trainer's pass over the shared optimizer found the old id's first-id mark gone (the
 * first pass took it) and wrote the old parameter's own id as the new one's first id. Under rates
 * by parameter id, a second generation of copies then trained at the tracker's default rate (0.0005
 * for 0.007), off the twin without surgery.
 */
class TrainersSharingAnOptimizerMoveTest {

  @ParameterizedTest
  @EnumSource(Kind.class)
  void anEvaluatorSharingTheOptimizerLeavesTheMovedLayersRateAsItWas(Kind kind) {
    Map<String, Float> subjectRates = new ConcurrentHashMap<>();
    Map<String, Float> twinRates = new ConcurrentHashMap<>();
    Optimizer shared = kind.build(OptimizerMoveRig.ratesById(subjectRates, 0.0005f), 0);
    try (Batches data = new Batches(59, 9);
        OptimizerMoveRig subject = new OptimizerMoveRig("s", shared, 29);
        OptimizerMoveRig twin =
            new OptimizerMoveRig(
                "t", kind.build(OptimizerMoveRig.ratesById(twinRates, 0.0005f), 0), 29);
        Trainer evaluator =
            subject.model.newTrainer(
                new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(shared))) {
      evaluator.initialize(OptimizerMoveRig.INPUT);
      TrainerListedTwiceMoveTest.rates(subject, subjectRates);
      TrainerListedTwiceMoveTest.rates(twin, twinRates);
      for (int k = 0; k < 24; k++) {
        if (k == 3 || k == 6) {
          // Two generations of copies of layer 1, moved in both trainers.
          Linear old = subject.layer(1);
          Linear copy = OptimizerMoveEdgesTest.copy(old);
          List<Parameter> before = OptimizerMoveRig.params(old);
          OptimizerMoveEdgesTest.replaceWithoutTrainer(subject.net, old, () -> copy);
          ModuleSurgery.replaceParamsInOptimizer(
              before, OptimizerMoveRig.params(copy), List.of(subject.trainer, evaluator));
        }
        evaluator.forward(new NDList(data.get(k).x())).close();
        OptimizerMoveRig.stepTwins(subject, twin, data.get(k), "step " + k);
      }
    }
  }
}
