package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.TranslateException;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyModels;
import java.io.IOException;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/** A tiny CNN and generated data for the trainer tests. */
final class TestModels {

  static final int BATCH = 16;
  static final int SAMPLES = 64; // 4 batches per epoch
  static final Shape INPUT = new Shape(BATCH, 3, 8, 8);

  private TestModels() {}

  /** conv(3x3) - BN - ReLU - conv(3x3, stride 2) - ReLU - maxPool(2) - flatten - linear(4). */
  static SequentialBlock cnn() {
    return TinyModels.cnn(4);
  }

  /** Four classes of constant brightness plus noise, as in the core smoke test. */
  static ArrayDataset dataset(NDManager manager, long seed) {
    manager.getEngine().setRandomSeed((int) seed);
    return TinyData.images(manager, SAMPLES, 3, 8, BATCH);
  }

  /**
   * A batch of the test input's shape drawn right after seeding the engine: the same probe at every
   * call with one seed, for outputs compared before and after a save or a load.
   */
  static NDArray probeBatch(NDManager manager, int seed) {
    manager.getEngine().setRandomSeed(seed);
    return manager.randomNormal(INPUT);
  }

  static DefaultTrainingConfig config(TrainingListener... listeners) {
    return new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build())
        .addTrainingListeners(listeners);
  }

  /**
   * Trains the model under the listener with an initialized trainer of its own, closed afterwards:
   * the one training step of most checkpoint tests.
   */
  static void train(Model model, SurgeryListener listener, int epochs, ArrayDataset dataset)
      throws IOException, TranslateException {
    try (Trainer trainer = model.newTrainer(config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, epochs, dataset, null);
    }
  }

  /**
   * One pass over the data as a custom loop that fires no epoch or batch events: forward, backward
   * and step per batch.
   */
  static void trainEpochWithoutEvents(Trainer trainer, ArrayDataset dataset)
      throws IOException, TranslateException {
    for (Batch batch : trainer.iterateDataset(dataset)) {
      try (batch) {
        EasyTrain.trainBatch(trainer, batch);
        trainer.step();
      }
    }
  }

  static Model model(String name) {
    return TinyModels.model(name, cnn());
  }

  /**
   * Saves the test CNN, initialized and untrained, as {@code name} in {@code dir}: a "pretrained"
   * file.
   */
  static void saveInitialized(java.nio.file.Path dir, String name) throws IOException {
    try (Model saved = model(name)) {
      saved.getBlock().initialize(saved.getNDManager(), saved.getDataType(), INPUT);
      saved.save(dir, name);
    }
  }

  /** The types of every block in traversal order, e.g. {@code 01Conv2d=Conv2d, ...}. */
  static String structure(Block root) {
    return BlockPaths.index(root).entrySet().stream()
        .filter(e -> !e.getValue().isEmpty())
        .map(e -> e.getValue() + "=" + BlockPaths.typeName(e.getKey()))
        .collect(Collectors.joining(", "));
  }

  /** How many blocks of a display type the tree holds. */
  static long count(Block root, String type) {
    return BlockPaths.index(root).keySet().stream()
        .filter(b -> BlockPaths.typeName(b).equals(type))
        .count();
  }

  /** Asserts that the trainer's parameter store holds exactly the model's parameters. */
  static void assertStoreMatchesModel(Trainer trainer) {
    Set<String> store =
        new TreeSet<>(DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).keySet());
    Set<String> model =
        trainer.getModel().getBlock().getParameters().values().stream()
            .map(Parameter::getId)
            .collect(Collectors.toCollection(TreeSet::new));
    assertEquals(model, store, "parameter store ids must equal the model's parameter ids");
  }

  /**
   * layer_freezing set to freeze from the start of training: the schedule many freeze tests share,
   * so that their entry's epoch alone says when it runs.
   */
  static Algorithm layerFreezingFromStart() {
    return Algorithms.spec("layer_freezing").create(Map.of("freeze_start", 0.0));
  }

  /**
   * blurpool with {@code min_channels} 0, so that the test CNN's few channels qualify: the entry
   * many record and checkpoint tests schedule.
   */
  static Algorithm blurpool() {
    return Algorithms.spec("blurpool").create(Map.of("min_channels", 0));
  }

  static Map<String, Parameter> parametersByPath(Block root) {
    return root.getParameters().toMap();
  }
}
