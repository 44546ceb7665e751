package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A frozen layer made trainable by a new Parameter that {@link
 * ModuleSurgery#replaceParamsInOptimizer} puts in its place (a {@link WeightCopy#into} copy, or a
 * new Parameter around its very array, swapped in after a surgery run without the trainer, as
 * {@code WeightCopy}'s Javadoc shows) has no optimizer state to carry: the promise ("frozen layers
 * made trainable start fresh", README; {@code unfreezeParameters} and a replacement in a surgery
 * with the trainer do so) says it takes a fresh Adam's first step, {@code lr * g sqrt(1 - b2) /
 * (sqrt(1 - b2) |g| + eps)}, the bias correction of its own count 1.
 *
 * <p>The expected step is computed here in double from DJL's formula (Adam.update and the PyTorch
 * engine's adamUpdate kernel), with no weight decay, clipping or rescaling, and a fixed rate, so
 * only the bias-correction count matters; the parameter was frozen before training (no state). The
 * control, {@code unfreezeParameters} on the same model, takes exactly that step.
 */
class FrozenParameterMovedByReplaceParamsInOptimizerTest {

  private static final float LR = 0.01f;
  private static final int STEPS_BEFORE = 30;

  enum Way {
    /** ModuleSurgery.unfreezeParameters: the control. */
    UNFREEZE,
    /** A WeightCopy.into copy, surgery without the trainer, then replaceParamsInOptimizer. */
    COPY_THEN_MOVE,
    /** New Parameters around the same arrays, surgery without the trainer, then the move. */
    REWRAP_THEN_MOVE,
    /** A copy, surgery without the trainer, then updateParamsInOptimizer (a new array: born). */
    COPY_THEN_UPDATE,
    /** New Parameters around the same arrays, surgery without the trainer, then the update. */
    REWRAP_THEN_UPDATE
  }

  @ParameterizedTest
  @EnumSource(Way.class)
  void aFrozenLayerMadeTrainableTakesAFreshAdamsFirstStep(Way way) throws Exception {
    try (Model model = Model.newInstance("frozen-moved");
        NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(3);
      SequentialBlock net =
          new SequentialBlock()
              .add(Linear.builder().setUnits(5).build())
              .add(Linear.builder().setUnits(5).build())
              .add(Linear.builder().setUnits(2).build());
      model.setBlock(net);
      NDArray x = data.randomNormal(new Shape(4, 3));
      NDArray y = data.randomNormal(new Shape(4, 2));
      Optimizer adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(LR)).build();
      try (Trainer trainer =
          model.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(adam))) {
        trainer.initialize(new Shape(4, 3));
        net.getChildren().get(0).getValue().freezeParameters(true); // the program's freeze
        for (int i = 0; i < STEPS_BEFORE; i++) {
          step(trainer, x, y);
        }
        Block old = net.getChildren().get(0).getValue();
        switch (way) {
          case UNFREEZE:
            ModuleSurgery.unfreezeParameters(params(old), List.of(trainer));
            break;
          case COPY_THEN_MOVE:
          case REWRAP_THEN_MOVE:
          case COPY_THEN_UPDATE:
          case REWRAP_THEN_UPDATE:
            List<Parameter> oldParams = params(old);
            Map<Block, Block> replaced =
                ModuleSurgery.replaceModuleClasses(
                    net,
                    Map.of(
                        Linear.class, (b, i) -> b == old ? replacement(way, (Linear) old) : null),
                    null,
                    false,
                    null);
            assertEquals(1, replaced.size());
            List<Parameter> newParams = params(net.getChildren().get(0).getValue());
            if (way == Way.COPY_THEN_MOVE || way == Way.REWRAP_THEN_MOVE) {
              ModuleSurgery.replaceParamsInOptimizer(oldParams, newParams, List.of(trainer));
            } else {
              ModuleSurgery.updateParamsInOptimizer(oldParams, newParams, List.of(trainer));
            }
            break;
          default:
            throw new AssertionError(way);
        }
        Linear trained = (Linear) net.getChildren().get(0).getValue();
        Parameter weight = trained.getParameters().get("weight");
        assertTrue(weight.requiresGradient(), "the layer trains now");
        float[] before = weight.getArray().toFloatArray();
        float[] gradient = forwardBackward(trainer, x, y);
        trainer.step();
        float[] after = weight.getArray().toFloatArray();
        double b1 = 0.9f;
        double b2 = 0.999f;
        double eps = 1e-8f;
        for (int i = 0; i < before.length; i++) {
          double g = gradient[i];
          double fresh = LR * g * Math.sqrt(1 - b2) / (Math.sqrt(1 - b2) * Math.abs(g) + eps);
          double actual = before[i] - after[i];
          double room = 1e-4 * Math.abs(fresh) + 4 * Math.ulp(Math.abs(before[i]));
          if (Math.abs(actual - fresh) > room) {
            int t = STEPS_BEFORE + 1;
            double global =
                (1 - b1)
                    * g
                    * LR
                    * Math.sqrt(1 - Math.pow(b2, t))
                    / (1 - Math.pow(b1, t))
                    / (Math.sqrt(1 - b2) * Math.abs(g) + eps);
            fail(
                String.format(
                    "%s: weight[%d] moved by %.9g; a fresh Adam's first step is %.9g (the bias"
                        + " correction of DJL's global count %d would give %.9g, or of %d if"
                        + " the store's hash order updates it before the others)",
                    way, i, actual, fresh, t, global, t - 1));
          }
        }
      }
    }
  }

  private static Linear replacement(Way way, Linear old) {
    Linear fresh = Linear.builder().setUnits(5).build();
    if (way == Way.COPY_THEN_MOVE || way == Way.COPY_THEN_UPDATE) {
      return WeightCopy.into(fresh, old);
    }
    for (Pair<String, Parameter> p : fresh.getParameters()) {
      p.getValue().setArray(old.getParameters().get(p.getKey()).getArray());
    }
    return fresh;
  }

  private static List<Parameter> params(Block block) {
    List<Parameter> list = new ArrayList<>();
    for (Pair<String, Parameter> p : block.getParameters()) {
      list.add(p.getValue());
    }
    return list;
  }

  private static void step(Trainer trainer, NDArray x, NDArray y) {
    forwardBackward(trainer, x, y);
    trainer.step();
  }

  private static float[] forwardBackward(Trainer trainer, NDArray x, NDArray y) {
    try (GradientCollector collector = trainer.newGradientCollector()) {
      NDArray prediction = trainer.forward(new NDList(x)).singletonOrThrow();
      collector.backward(trainer.getLoss().evaluate(new NDList(y), new NDList(prediction)));
    }
    Block first = ((SequentialBlock) trainer.getModel().getBlock()).getChildren().get(0).getValue();
    Parameter weight = first.getParameters().get("weight");
    if (!weight.requiresGradient()) {
      return null;
    }
    return weight.getArray().getGradient().toFloatArray();
  }
}
