package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * One model trained by two trainers of different optimizer kinds in turn (Adam, then Sgd with
 * momentum, each step): a layer frozen by DJL, then moved with {@code replaceParamsInOptimizer} to
 * trainable copies, and another layer moved to new Parameters around its arrays. Against an oracle
 * of the test's own: a copy of every weight, updated by DJL optimizers of the two kinds replayed
 * with the gradients each trainer's step saw; the copies start a fresh optimizer of each kind, the
 * rewrapped layer goes on in the optimizers it had.
 */
class TwoOptimizerKindsOnOneModelTest {

  /** A weight copy and, per trainer, the replayed optimizer and id that update it. */
  private static final class Slot {
    final NDArray weight;
    final Map<Trainer, Optimizer> optimizers = new IdentityHashMap<>();
    final Map<Trainer, String> ids = new IdentityHashMap<>();

    Slot(NDArray weight) {
      this.weight = weight;
    }
  }

  private static int next;

  @Test
  void aRestartAndARewrapUnderTwoTrainersOfDifferentKindsFollowTheirReplayedOptimizers() {
    Kind[] kinds = {Kind.ADAMW, Kind.SGD_MOMENTUM};
    try (Batches data = new Batches(53, 9);
        NDManager manager = NDManager.newBaseManager();
        OptimizerMoveRig rig = OptimizerMoveEdgesTest.rig("s", kinds[0], 21);
        Trainer second =
            rig.model.newTrainer(
                new DefaultTrainingConfig(new GcSafeL2Loss())
                    .optOptimizer(OptimizerMoveEdgesTest.fixed(kinds[1])))) {
      second.initialize(OptimizerMoveRig.INPUT);
      List<Trainer> trainers = List.of(rig.trainer, second);
      Map<Trainer, Optimizer> replay = new IdentityHashMap<>();
      replay.put(rig.trainer, OptimizerMoveEdgesTest.fixed(kinds[0]));
      replay.put(second, OptimizerMoveEdgesTest.fixed(kinds[1]));
      Map<Parameter, Slot> slots = new IdentityHashMap<>();
      for (Parameter p : rig.params()) {
        Slot s = new Slot(manager.create(p.getArray().toFloatArray(), p.getArray().getShape()));
        for (Trainer t : trainers) {
          s.optimizers.put(t, replay.get(t));
          s.ids.put(t, "p" + next++);
        }
        slots.put(p, s);
      }
      for (int k = 0; k < 30; k++) {
        if (k == 6) {
          rig.child(1).freezeParameters(true);
        }
        if (k == 10) {
          Linear frozen = rig.layer(1);
          Linear copy = OptimizerMoveEdgesTest.copy(frozen);
          copy.freezeParameters(false);
          List<Parameter> before = OptimizerMoveRig.params(frozen);
          List<Parameter> after = OptimizerMoveRig.params(copy);
          Linear trained = rig.layer(2);
          Linear rewrapped = OptimizerMoveEdgesTest.rewrap(trained);
          List<Parameter> before2 = OptimizerMoveRig.params(trained);
          List<Parameter> after2 = OptimizerMoveRig.params(rewrapped);
          OptimizerMoveEdgesTest.replaceWithoutTrainer(rig.net, frozen, () -> copy);
          OptimizerMoveEdgesTest.replaceWithoutTrainer(rig.net, trained, () -> rewrapped);
          ModuleSurgery.replaceParamsInOptimizer(
              concat(before, before2), concat(after, after2), trainers);
          for (int i = 0; i < 2; i++) {
            Slot restarted = slots.remove(before.get(i));
            for (Trainer t : trainers) {
              restarted.optimizers.put(
                  t, OptimizerMoveEdgesTest.fixed(t == second ? kinds[1] : kinds[0]));
              restarted.ids.put(t, "p" + next++);
            }
            slots.put(after.get(i), restarted);
            slots.put(after2.get(i), slots.remove(before2.get(i)));
          }
        }
        for (Trainer t : trainers) {
          OptimizerMoveRig.forwardBackward(t, data.get(k));
          Map<Parameter, NDArray> grads = new IdentityHashMap<>();
          for (Parameter p : rig.params()) {
            if (p.requiresGradient()) {
              try (NDArray g = p.getArray().getGradient()) {
                grads.put(p, manager.create(g.toFloatArray(), g.getShape()));
              }
            }
          }
          t.step();
          for (Parameter p : rig.params()) {
            NDArray g = grads.get(p);
            if (g != null) {
              Slot s = slots.get(p);
              s.optimizers.get(t).update(s.ids.get(t), s.weight, g);
              g.close();
            }
          }
          for (Parameter p : rig.params()) {
            assertArrayEquals(
                slots.get(p).weight.toFloatArray(),
                p.getArray().toFloatArray(),
                "step "
                    + k
                    + " ("
                    + (t == second ? "Sgd" : "AdamW")
                    + "): "
                    + p.getName()
                    + " against its replayed optimizers");
          }
        }
      }
    }
  }

  private static List<Parameter> concat(List<Parameter> a, List<Parameter> b) {
    List<Parameter> all = new java.util.ArrayList<>(a);
    all.addAll(b);
    return all;
  }
}
