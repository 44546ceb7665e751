package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.testing.PendingGradients;
import dev.surgery.core.testing.TrajectoryOracle;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * An outside probe's hand-written gradient-accumulation loop (backward on {@code k} batches, one
 * {@code trainer.step()}) with surgeries at chosen batches, inside an accumulation window, and the
 * twins it is compared with bit for bit. Each run is made alone (the engine's random generator is
 * reset at its start), so that stochastic depth draws the same in a run and its twin.
 *
 * <p>Twins: (1) the same run without surgery, for surgeries that keep the function and every
 * parameter (adopting, rewrapping, a refused surgery); (2) the "set-aside" twin: the same surgery
 * at the same batch, but with every pending gradient taken out (copied, then zeroed in place) just
 * before it and added back right after it (before the next backward, so that the sums are formed in
 * the same order) to the arrays that are still in the model and train. In the twin the surgery
 * meets no pending gradient (the documented exact case), and the gradient arithmetic is the test's
 * own: survivors keep their pending gradient exactly once, parameters that left take theirs away,
 * born ones start without.
 */
final class GradientAccumulationRig {

  static final int BATCH = 8;
  static final Shape INPUT = new Shape(BATCH, 3, 8, 8);

  /** The seven built-in algorithms by name, in the order the runs of each one alone take them. */
  static final List<String> BUILT_IN_ALGORITHMS =
      List.of(
          "blurpool",
          "weight_standardization",
          "ghost_batchnorm",
          "squeeze_excite",
          "factorize",
          "stochastic_depth",
          "layer_freezing");

  private GradientAccumulationRig() {}

  /** A surgery made at a batch. */
  @FunctionalInterface
  interface Hook {
    void at(Trainer trainer, Block root) throws Exception;
  }

  /** A surgery after the {@code afterBatch}-th backward (1-based, over the whole run). */
  record At(int afterBatch, Hook hook) {}

  /** What a run saw. */
  static final class Result {
    final List<List<float[]>> afterSteps = new ArrayList<>();
    final List<String> names = new ArrayList<>();
  }

  /**
   * Runs one training.
   *
   * @param name model name
   * @param net the block (built fresh per run)
   * @param optimizer the optimizer (built fresh per run)
   * @param seed engine seed and data seed
   * @param k batches per step
   * @param steps optimizer steps
   * @param surgeries the surgeries
   * @param setAside whether to take pending gradients out around each surgery (twin 2)
   */
  static Result run(
      String name,
      Supplier<Block> net,
      Supplier<Optimizer> optimizer,
      long seed,
      int k,
      int steps,
      List<At> surgeries,
      boolean setAside)
      throws Exception {
    Result result = new Result();
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed((int) seed);
      Block root = net.get();
      model.setBlock(root);
      List<NDList[]> batches = TrajectoryOracle.batches(data, seed, 7, BATCH, DataType.FLOAT32);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(optimizer.get());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(INPUT);
        int batch = 0;
        while (result.afterSteps.size() < steps) {
          TrajectoryOracle.forwardBackward(trainer, batches.get(batch % batches.size()));
          batch++;
          for (At at : surgeries) {
            if (at.afterBatch() == batch) {
              Map<NDArray, float[]> aside = setAside ? PendingGradients.takeOut(root) : null;
              at.hook().at(trainer, root);
              if (aside != null) {
                // Back before the next backward, so that the sums are formed in the same order.
                PendingGradients.putBack(root, aside, data);
              }
            }
          }
          if (batch % k == 0) {
            trainer.step();
            result.afterSteps.add(snapshot(root));
          }
        }
        if (result.names.isEmpty()) {
          root.getParameters().forEach(p -> result.names.add(p.getKey()));
        }
      }
    }
    return result;
  }

  static List<float[]> snapshot(Block root) {
    List<float[]> list = new ArrayList<>();
    for (Parameter p : root.getParameters().values()) {
      list.add(p.getArray().toFloatArray());
    }
    return list;
  }

  /** Asserts two runs bit for bit after every step. */
  static void assertSameBits(String what, Result expected, Result actual) {
    assertEquals(expected.afterSteps.size(), actual.afterSteps.size(), what + ": steps");
    assertEquals(expected.names, actual.names, what + ": parameter names");
    for (int s = 0; s < expected.afterSteps.size(); s++) {
      List<float[]> e = expected.afterSteps.get(s);
      List<float[]> a = actual.afterSteps.get(s);
      for (int i = 0; i < e.size(); i++) {
        float[] x = e.get(i);
        float[] y = a.get(i);
        assertEquals(x.length, y.length, what + ": size of " + expected.names.get(i));
        for (int j = 0; j < x.length; j++) {
          if (Float.floatToIntBits(x[j]) != Float.floatToIntBits(y[j])) {
            fail(
                String.format(
                    "%s: after step %d, %s[%d]: twin %.9g, with surgery %.9g",
                    what, s + 1, expected.names.get(i), j, x[j], y[j]));
          }
        }
      }
    }
  }

  /** Whether two runs differ anywhere. */
  static boolean differ(Result a, Result b) {
    for (int s = 0; s < a.afterSteps.size(); s++) {
      for (int i = 0; i < a.afterSteps.get(s).size(); i++) {
        float[] x = a.afterSteps.get(s).get(i);
        float[] y = b.afterSteps.get(s).get(i);
        for (int j = 0; j < x.length; j++) {
          if (Float.floatToIntBits(x[j]) != Float.floatToIntBits(y[j])) {
            return true;
          }
        }
      }
    }
    return false;
  }
}
