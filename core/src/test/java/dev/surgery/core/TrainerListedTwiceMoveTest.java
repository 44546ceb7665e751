package dev.surgery.core;

import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The same trainer given twice to {@code replaceParamsInOptimizer} (a collection gathered from
 * several places) must move each parameter once. Under learning rates by parameter id, the second
 * pass over the trainer wrote the moved-away parameter's own id as the new one's first id: from the
 * second generation of copies on, the layer was asked with an id the tracker never saw and trained
 * at its default rate (0.0005 for 0.007), off the twin without surgery.
 */
class TrainerListedTwiceMoveTest {

  static void rates(OptimizerMoveRig rig, Map<String, Float> rates) {
    List<Parameter> ps = rig.params();
    for (int i = 0; i < ps.size(); i++) {
      rates.put(ps.get(i).getId(), 0.003f + 0.004f * (i % 4));
    }
  }

  @ParameterizedTest
  @EnumSource(Kind.class)
  void aTrainerListedTwiceMovesEachParameterOnce(Kind kind) {
    Map<String, Float> subjectRates = new ConcurrentHashMap<>();
    Map<String, Float> twinRates = new ConcurrentHashMap<>();
    try (Batches data = new Batches(55, 9);
        OptimizerMoveRig subject =
            new OptimizerMoveRig(
                "s", kind.build(OptimizerMoveRig.ratesById(subjectRates, 0.0005f), 0), 25);
        OptimizerMoveRig twin =
            new OptimizerMoveRig(
                "t", kind.build(OptimizerMoveRig.ratesById(twinRates, 0.0005f), 0), 25)) {
      rates(subject, subjectRates);
      rates(twin, twinRates);
      for (int k = 0; k < 24; k++) {
        if (k == 4 || k == 8) {
          // A copy of layer 1 moved with the trainer listed twice, two generations.
          Linear old = subject.layer(1);
          Linear copy = OptimizerMoveEdgesTest.copy(old);
          List<Parameter> before = OptimizerMoveRig.params(old);
          OptimizerMoveEdgesTest.replaceWithoutTrainer(subject.net, old, () -> copy);
          ModuleSurgery.replaceParamsInOptimizer(
              before, OptimizerMoveRig.params(copy), List.of(subject.trainer, subject.trainer));
        }
        OptimizerMoveRig.stepTwins(subject, twin, data.get(k), "step " + k);
      }
    }
  }
}
