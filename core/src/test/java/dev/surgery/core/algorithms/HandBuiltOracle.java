package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
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
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyModels;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;

/**
 * The control run for a live algorithm: the algorithm operates on a trained subject; the oracle is
 * the post-surgery model built by hand, with a fresh optimizer seeded with the state the surgery
 * should have kept.
 *
 * <p>The subject trains a few steps, then a snapshot of its values, optimizer state and update
 * counts is taken (before the code under test runs), then the algorithm is applied live. The oracle
 * is a second, fresh instance of the pre-surgery architecture that the test turns into the
 * post-surgery one with the layer classes' own constructors ({@code byHand}), without the engine.
 * Every oracle parameter that is a parameter object of that fresh instance is a survivor: it takes
 * the snapshot's value, optimizer state and update count of the subject parameter at the same
 * position before surgery. Every other oracle parameter is born: it takes the subject's value right
 * after the surgery (the algorithm's initial values, e.g. an SVD or a random gate) and no state, as
 * in a fresh optimizer. Then both train the same batches, with the engine's random generators
 * seeded alike before every step (the drops of stochastic depth), and after every step every
 * parameter value, every optimizer-state value and every update count must be bit-identical: the
 * same computation runs on both sides.
 */
final class HandBuiltOracle {

  private HandBuiltOracle() {}

  /** What one comparison needs. */
  static final class Case {
    Supplier<Block> before;
    UnaryOperator<Block> byHand;
    Shape sample;
    int batch = 16;
    OptimizerKind optimizer = OptimizerKind.ADAM;
    Algorithm algorithm;
    int stepsBefore = 3;
    int stepsAfter = 10;
  }

  /**
   * Runs the comparison and returns the algorithm's report.
   *
   * @param c the case
   * @return the surgery's report
   */
  static SurgeryChanges run(Case c) throws Exception {
    Engine.getInstance().setRandomSeed(11);
    try (NDManager data = NDManager.newBaseManager();
        Model subject = TinyModels.model("subject", c.before.get());
        Trainer subjectTrainer = subject.newTrainer(config(c.optimizer))) {
      Shape input = new Shape(c.batch).addAll(c.sample);
      List<NDList> batches = batches(data, input, c.stepsBefore + c.stepsAfter);
      subjectTrainer.initialize(input);
      for (int i = 0; i < c.stepsBefore; i++) {
        step(subjectTrainer, batches.get(i), i);
      }

      // The snapshot: what the surgery must keep, read before the code under test runs.
      List<Parameter> pre = parameters(subject.getBlock());
      Optimizer subjectOptimizer = DjlTrainers.optimizer(subjectTrainer);
      List<NDArray> preValues = new ArrayList<>();
      for (Parameter p : pre) {
        preValues.add(keep(p.getArray(), data));
      }
      Map<String, Map<String, Map<Device, NDArray>>> preStates = new HashMap<>();
      DjlOptimizers.optimizerStates(subjectOptimizer)
          .forEach(
              (field, state) -> {
                Map<String, Map<Device, NDArray>> copy = new HashMap<>();
                state.forEach(
                    (id, perDevice) -> {
                      Map<Device, NDArray> d = new HashMap<>();
                      perDevice.forEach((device, a) -> d.put(device, keep(a, data)));
                      copy.put(id, d);
                    });
                preStates.put(field, copy);
              });
      Map<String, Integer> preCounts = new HashMap<>(DjlOptimizers.updateCounts(subjectOptimizer));
      int preGlobal = DjlOptimizers.globalUpdateCount(subjectOptimizer);
      assertFalse(preStates.isEmpty() && c.optimizer != OptimizerKind.SGD, "state to keep");

      SurgeryChanges report =
          c.algorithm.apply(SurgeryContext.live(subject.getBlock(), subjectTrainer, 1, 2));
      assertFalse(report.isEmpty(), "the algorithm changed something");

      Block fresh = c.before.get();
      List<Parameter> freshParameters = parameters(fresh);
      Block built = c.byHand.apply(fresh);
      try (Model oracle = TinyModels.model("oracle", built);
          Trainer oracleTrainer = oracle.newTrainer(config(c.optimizer))) {
        oracleTrainer.initialize(input);
        assertEquals(built.toString(), subject.getBlock().toString(), "the tree the surgery left");
        List<Parameter> post = parameters(subject.getBlock());
        List<Parameter> mine = parameters(built);
        assertEquals(mine.size(), post.size(), "parameters after the surgery");
        Optimizer oracleOptimizer = DjlTrainers.optimizer(oracleTrainer);
        Map<String, Map<String, Map<Device, NDArray>>> oracleStates =
            DjlOptimizers.optimizerStates(oracleOptimizer);
        int survivors = 0;
        for (int j = 0; j < mine.size(); j++) {
          Parameter o = mine.get(j);
          int from = indexOf(freshParameters, o);
          if (from < 0) {
            post.get(j).getArray().copyTo(o.getArray()); // born: the algorithm's initial values
            continue;
          }
          survivors++;
          preValues.get(from).copyTo(o.getArray());
          String oldId = pre.get(from).getId();
          for (Map.Entry<String, Map<String, Map<Device, NDArray>>> field : preStates.entrySet()) {
            Map<Device, NDArray> kept = field.getValue().get(oldId);
            if (kept != null) {
              Map<Device, NDArray> seeded = new HashMap<>();
              kept.forEach(
                  (device, a) -> {
                    NDArray copy = a.duplicate();
                    copy.detach(); // optimizer state lives outside every manager, as DJL's does
                    seeded.put(device, copy);
                  });
              oracleStates.get(field.getKey()).put(o.getId(), seeded);
            }
          }
          if (preCounts.containsKey(oldId)) {
            DjlOptimizers.updateCounts(oracleOptimizer).put(o.getId(), preCounts.get(oldId));
          }
        }
        assertTrue(survivors > 0, "the hand-built model keeps parameters");
        setGlobalUpdateCount(oracleOptimizer, preGlobal);

        for (int i = c.stepsBefore; i < c.stepsBefore + c.stepsAfter; i++) {
          step(subjectTrainer, batches.get(i), i);
          step(oracleTrainer, batches.get(i), i);
          String when =
              "after step " + (i + 1) + " (" + (i + 1 - c.stepsBefore) + " after surgery)";
          ExactnessOracle.assertTwinsBitIdentical(mine, oracleTrainer, post, subjectTrainer, when);
          // Equal bits could still be NaN on both sides.
          FinitenessGuard.assertFinite(subjectTrainer, when);
          TreeSet<String> ids = new TreeSet<>();
          post.forEach(p -> ids.add(p.getId()));
          assertEquals(
              ids,
              new TreeSet<>(
                  DjlTrainers.storeEntries(DjlTrainers.parameterStore(subjectTrainer)).keySet()),
              "the store holds exactly the model's parameters " + when);
        }
      }
      return report;
    }
  }

  private static DefaultTrainingConfig config(OptimizerKind kind) {
    return new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(kind.create());
  }

  /** Generated 4-class batches: class k has mean k - 1.5, noise 0.5. */
  private static List<NDList> batches(NDManager data, Shape input, int count) {
    List<NDList> batches = new ArrayList<>();
    long n = input.get(0);
    for (int i = 0; i < count; i++) {
      NDArray labels = data.arange(n).add(i).toType(DataType.INT32, false).mod(4);
      NDArray means =
          labels
              .toType(DataType.FLOAT32, false)
              .sub(1.5f)
              .reshape(new Shape(n).addAll(new Shape(1, 1, 1).slice(0, input.dimension() - 1)));
      NDArray x = data.randomNormal(input).mul(0.5f).add(means);
      batches.add(new NDList(x, labels.toType(DataType.FLOAT32, false)));
    }
    return batches;
  }

  /** One training step; the engine's generators are seeded by the step's number first. */
  private static void step(Trainer trainer, NDList batch, int number) {
    Engine.getInstance().setRandomSeed(1000 + number);
    try (GradientCollector collector = trainer.newGradientCollector()) {
      NDList out = trainer.forward(new NDList(batch.get(0)));
      NDArray loss = trainer.getLoss().evaluate(new NDList(batch.get(1)), out);
      collector.backward(loss);
    }
    trainer.step();
  }

  static List<Parameter> parameters(Block root) {
    return new ArrayList<>(root.getParameters().values());
  }

  private static int indexOf(List<Parameter> list, Parameter p) {
    Map<Parameter, Integer> index = new IdentityHashMap<>();
    for (int i = 0; i < list.size(); i++) {
      index.putIfAbsent(list.get(i), i);
    }
    return index.getOrDefault(p, -1);
  }

  private static NDArray keep(NDArray a, NDManager manager) {
    NDArray copy = a.duplicate();
    copy.attach(manager);
    return copy;
  }

  private static void setGlobalUpdateCount(Optimizer optimizer, int count) {
    try {
      Field f = Optimizer.class.getDeclaredField("numUpdate");
      f.setAccessible(true);
      f.setInt(optimizer, count);
    } catch (ReflectiveOperationException e) {
      throw new AssertionError("cannot seed the oracle's global update count", e);
    }
  }
}
