package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A float16 model (the model's data type set before its trainer initializes it): a copy moved with
 * {@code replaceParamsInOptimizer} (state carried), a frozen layer moved to trainable new
 * Parameters around its arrays (fresh), and a layer added by a surgery with the trainer (born),
 * against float16 copies of the weights updated by DJL optimizers replayed with the subject's
 * gradients: bit for bit for 30 steps. The moved state, the stand-in's fresh state and the zeroed
 * gradient stay float16.
 */
class Float16OptimizerMoveTest {

  /** A float16 weight copy, its replayed optimizer and its id there. */
  private record Slot(NDArray weight, Optimizer optimizer, String id) {}

  private static int next;

  /**
   * An optimizer of the kind whose epsilon float16 can hold: DJL's default 1e-8 is 0 there, so a
   * plain DJL Adam writes NaN (0/0) at its first step, with or without surgery.
   */
  static Optimizer half(Kind kind) {
    switch (kind) {
      case ADAM:
        return Optimizer.adam()
            .optLearningRateTracker(Tracker.fixed(0.01f))
            .optEpsilon(1e-3f)
            .build();
      case ADAMW:
        return Optimizer.adamW()
            .optLearningRateTracker(Tracker.fixed(0.01f))
            .optWeightDecays(0.05f)
            .optEpsilon(1e-3f)
            .build();
      default:
        return OptimizerMoveEdgesTest.fixed(kind);
    }
  }

  @ParameterizedTest
  @EnumSource(Kind.class)
  void movesInAFloat16ModelFollowTheirReplayedOptimizers(Kind kind) {
    try (NDManager manager = NDManager.newBaseManager();
        Model model = Model.newInstance("half")) {
      SequentialBlock net = new SequentialBlock();
      net.add(Linear.builder().setUnits(4).build())
          .add(Activation.tanhBlock())
          .add(Linear.builder().setUnits(4).build())
          .add(Activation.tanhBlock())
          .add(Linear.builder().setUnits(2).build());
      model.setBlock(net);
      model.setDataType(DataType.FLOAT16);
      try (Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(half(kind)))) {
        trainer.initialize(new Shape(4, 3));
        List<NDList> batches = new ArrayList<>();
        for (int k = 0; k < 9; k++) {
          batches.add(
              new NDList(
                  manager.randomNormal(new Shape(4, 3)).toType(DataType.FLOAT16, false),
                  manager.randomNormal(new Shape(4, 2)).toType(DataType.FLOAT16, false)));
        }
        Optimizer replay = half(kind);
        Map<Parameter, Slot> slots = new IdentityHashMap<>();
        for (Parameter p : OptimizerMoveRig.params(net)) {
          slots.put(p, follow(manager, p, replay));
        }
        for (int k = 0; k < 30; k++) {
          if (k == 4) {
            net.getChildren().get(2).getValue().freezeParameters(true);
          }
          if (k == 8) {
            Linear first = (Linear) net.getChildren().get(0).getValue();
            Linear copy = OptimizerMoveEdgesTest.copy(first);
            Linear frozen = (Linear) net.getChildren().get(2).getValue();
            Linear trainable = OptimizerMoveEdgesTest.rewrap(frozen);
            List<Parameter> before = new ArrayList<>(OptimizerMoveRig.params(first));
            before.addAll(OptimizerMoveRig.params(frozen));
            List<Parameter> after = new ArrayList<>(OptimizerMoveRig.params(copy));
            after.addAll(OptimizerMoveRig.params(trainable));
            OptimizerMoveEdgesTest.replaceWithoutTrainer(net, first, () -> copy);
            OptimizerMoveEdgesTest.replaceWithoutTrainer(net, frozen, () -> trainable);
            ModuleSurgery.replaceParamsInOptimizer(before, after, List.of(trainer));
            for (int i = 0; i < 4; i++) {
              Slot s = slots.remove(before.get(i));
              slots.put(after.get(i), i < 2 ? s : restart(s, kind));
            }
            Block last = net.getChildren().get(4).getValue();
            ModuleSurgery.replaceModuleClasses(
                net,
                Map.of(
                    Linear.class,
                    (b, i) -> b == last ? Linear.builder().setUnits(2).build() : null),
                List.of(trainer),
                false,
                null);
            Optimizer born = half(kind);
            for (Parameter p : OptimizerMoveRig.params(net.getChildren().get(4).getValue())) {
              assertEquals(DataType.FLOAT16, p.getArray().getDataType());
              slots.put(p, follow(manager, p, born));
            }
          }
          NDList b = batches.get(k % batches.size());
          try (GradientCollector c = trainer.newGradientCollector()) {
            NDArray prediction = trainer.forward(new NDList(b.get(0))).singletonOrThrow();
            c.backward(trainer.getLoss().evaluate(new NDList(b.get(1)), new NDList(prediction)));
          }
          Map<Parameter, NDArray> grads = new IdentityHashMap<>();
          for (Parameter p : OptimizerMoveRig.params(net)) {
            if (p.requiresGradient()) {
              try (NDArray g = p.getArray().getGradient()) {
                grads.put(p, g.duplicate());
              }
            }
          }
          trainer.step();
          for (Parameter p : OptimizerMoveRig.params(net)) {
            Slot s = slots.get(p);
            NDArray g = grads.get(p);
            if (g != null) {
              s.optimizer().update(s.id(), s.weight(), g);
              g.close();
            }
            assertEquals(DataType.FLOAT16, p.getArray().getDataType());
            float[] v = p.getArray().toType(DataType.FLOAT32, true).toFloatArray();
            assertArrayEquals(
                s.weight().toType(DataType.FLOAT32, true).toFloatArray(),
                v,
                "step " + k + ": " + p.getName() + " against its replayed optimizer");
            for (float f : v) {
              assertTrue(Float.isFinite(f), "step " + k + ": finite");
            }
          }
        }
      }
    }
  }

  private static Slot follow(NDManager manager, Parameter p, Optimizer optimizer) {
    NDArray copy = p.getArray().duplicate();
    copy.attach(manager);
    return new Slot(copy, optimizer, "half-" + next++);
  }

  /** The same weight copy, in a fresh optimizer. */
  private static Slot restart(Slot s, Kind kind) {
    return new Slot(s.weight(), half(kind), "half-" + next++);
  }
}
