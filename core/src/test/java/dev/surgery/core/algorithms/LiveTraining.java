package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TrajectoryOracle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;

/** Small models and a live-training harness for the algorithm tests. */
final class LiveTraining {

  private LiveTraining() {}

  /**
   * The built-in algorithms' names, in registration order: the registry is one per JVM, and tests
   * of plugins and of registration in code add algorithms of their own to it.
   *
   * @return the names whose origin is built-in
   */
  static java.util.Set<String> builtinNames() {
    java.util.Set<String> names = new java.util.LinkedHashSet<>();
    Algorithms.origins()
        .forEach(
            (name, origin) -> {
              if ("built-in".equals(origin)) {
                names.add(name);
              }
            });
    return names;
  }

  /** Makes sure the built-ins are registered (Algorithms' static block does it). */
  static void registerBuiltins() {
    if (Algorithms.find(WeightStandardization.NAME).isEmpty()) {
      throw new IllegalStateException("built-in algorithms are not registered");
    }
  }

  static Conv2d conv(int filters, int stride) {
    return TrajectoryOracle.conv(filters, stride);
  }

  /** conv(8) BN relu conv(16, s2) BN relu conv(16) pool flatten linear(4): input (N, 3, 8, 8). */
  static SequentialBlock smallCnn() {
    return new SequentialBlock()
        .add(conv(8, 1))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(conv(16, 2))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(conv(16, 1))
        .add(Pool.globalAvgPool2dBlock())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  /** What a live run saw. */
  static final class Result {
    final List<SurgeryChanges> reports = new ArrayList<>();
    float lossBefore;
    float lossAfter;
  }

  /**
   * Trains {@code net} with Adam for {@code epochs} epochs on generated 4-class data; after each
   * completed epoch listed in {@code surgeryEpochs}, applies {@code algorithm} to the live model
   * and trainer. {@code afterSurgery} runs right after each application. Every application is
   * checked against the trainer right before it ({@link TrainerState}) and for finite values.
   */
  static Result fit(
      Block net,
      Shape sampleShape,
      int epochs,
      List<Integer> surgeryEpochs,
      Algorithm algorithm,
      Consumer<Trainer> afterSurgery)
      throws Exception {
    return fit(net, sampleShape, epochs, surgeryEpochs, algorithm, afterSurgery, t -> {});
  }

  /** Like the other {@code fit}, and runs {@code afterTraining} before the model closes. */
  static Result fit(
      Block net,
      Shape sampleShape,
      int epochs,
      List<Integer> surgeryEpochs,
      Algorithm algorithm,
      Consumer<Trainer> afterSurgery,
      Consumer<Trainer> afterTraining)
      throws Exception {
    Result result = new Result();
    try (Model model = Model.newInstance("live");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      Engine.getInstance().setRandomSeed(3);
      int n = 32;
      NDArray labels = data.arange(n).toType(DataType.INT32, false).mod(4);
      Shape full = new Shape(n).addAll(sampleShape);
      Shape means = new Shape(n).addAll(new Shape(1, 1, 1));
      NDArray images =
          data.randomNormal(full)
              .mul(0.3f)
              .add(labels.toType(DataType.FLOAT32, false).reshape(means).sub(1.5f));
      ArrayDataset dataset =
          new ArrayDataset.Builder()
              .setData(images)
              .optLabels(labels.toType(DataType.FLOAT32, false))
              .setSampling(16, false)
              .build();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
      int[] completed = {0};
      config.addTrainingListeners(
          new TrainingListenerAdapter() {
            @Override
            public void onEpoch(Trainer trainer) {
              completed[0]++;
              if (surgeryEpochs.contains(completed[0])) {
                TrainerState before = TrainerState.of(model.getBlock(), trainer);
                result.reports.add(
                    algorithm.apply(
                        SurgeryContext.live(model.getBlock(), trainer, completed[0], epochs)));
                before.assertSurgeryKeptTheTrainerExact(model.getBlock(), trainer);
                FinitenessGuard.assertFinite(trainer, "after " + algorithm.name());
                afterSurgery.accept(trainer);
              }
            }
          });
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(16).addAll(sampleShape));
        result.lossBefore = TinyData.meanLoss(trainer, dataset);
        EasyTrain.fit(trainer, epochs, dataset, null);
        result.lossAfter = TinyData.meanLoss(trainer, dataset);
        afterTraining.accept(trainer);
      }
    }
    return result;
  }

  /**
   * The trainer right before a live surgery, the oracle for what the surgery may change: a
   * parameter that stays keeps its values, optimizer state and update count bit for bit (its state
   * may only be dropped if it stopped training), a new parameter starts without state or count, and
   * the store holds exactly the model's parameters.
   */
  static final class TrainerState {
    final Map<Parameter, float[]> values = new IdentityHashMap<>();
    final Map<String, float[]> states = new HashMap<>();
    final Map<String, Integer> counts;

    private TrainerState(Map<String, Integer> counts) {
      this.counts = counts;
    }

    static TrainerState of(Block root, Trainer trainer) {
      Optimizer optimizer = DjlTrainers.optimizer(trainer);
      TrainerState s = new TrainerState(new HashMap<>(DjlOptimizers.updateCounts(optimizer)));
      for (Parameter p : root.getParameters().values()) {
        if (p.isInitialized()) {
          s.values.put(p, p.getArray().toFloatArray());
        }
      }
      ExactnessOracle.optimizerStateValues(trainer).forEach(s.states::put);
      return s;
    }

    void assertSurgeryKeptTheTrainerExact(Block root, Trainer trainer) {
      Set<String> ids = new TreeSet<>();
      for (Parameter p : root.getParameters().values()) {
        ids.add(p.getId());
      }
      assertEquals(
          ids,
          new TreeSet<>(DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).keySet()),
          "the store holds exactly the model's parameters");
      Map<String, float[]> now = ExactnessOracle.optimizerStateValues(trainer);
      Map<String, Integer> countsNow = DjlOptimizers.updateCounts(DjlTrainers.optimizer(trainer));
      Set<String> old = new HashSet<>();
      values.keySet().forEach(p -> old.add(p.getId()));
      for (String key : now.keySet()) {
        String id = key.split("/", 3)[1];
        assertTrue(ids.contains(id), "optimizer state for a parameter not in the model: " + key);
        if (!old.contains(id)) {
          fail("a new parameter starts with optimizer state: " + key);
        }
      }
      for (Parameter p : root.getParameters().values()) {
        float[] v = values.get(p);
        if (v == null) {
          assertNull(countsNow.get(p.getId()), "a new parameter starts without update count");
          continue;
        }
        assertArrayEquals(v, p.getArray().toFloatArray(), p.getName() + " keeps its values");
        for (Map.Entry<String, float[]> e : states.entrySet()) {
          if (!e.getKey().split("/", 3)[1].equals(p.getId())) {
            continue;
          }
          float[] after = now.get(e.getKey());
          if (after == null) {
            assertFalse(p.requiresGradient(), e.getKey() + " dropped from a training parameter");
          } else {
            assertArrayEquals(e.getValue(), after, e.getKey() + " kept bit for bit");
          }
        }
        if (p.requiresGradient()) {
          assertEquals(counts.get(p.getId()), countsNow.get(p.getId()), p.getName() + " count");
        }
      }
    }
  }
}
