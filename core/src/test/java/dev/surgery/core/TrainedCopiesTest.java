package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyModels;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * A trainer that trains on copies of the parameters (as on a device other than the model's, or with
 * several devices) leaves {@code Parameter.getArray()} stale. Surgery must build its replacements
 * from the trained values, the store's copy on the trainer's first device. The store is made to
 * hold copies by reflection, as DJL's own store does for another device.
 */
class TrainedCopiesTest {

  private static final Shape INPUT = new Shape(8, 3, 6, 6);

  private static SequentialBlock net() {
    return new SequentialBlock()
        .add(TinyModels.conv3x3(4, 1))
        .add(Activation.reluBlock())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  @Test
  void aWeightCopyReadsTheTrainedCopyNotTheStaleModelArray() throws Exception {
    SequentialBlock net = net();
    try (Model model = TinyModels.model("copies", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config())) {
      ArrayDataset dataset = trainedOnCopies(trainer, data);
      Conv2d conv = (Conv2d) net.getChildren().valueAt(0);
      Parameter weight = conv.getParameters().get("weight");
      float[] trained = storeCopy(trainer, weight).toFloatArray();
      assertFalse(
          java.util.Arrays.equals(trained, weight.getArray().toFloatArray()),
          "precondition: the model's own array is stale");
      NDArray x = data.randomNormal(INPUT);
      float[] before = evaluate(trainer, x);

      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(Conv2d.class, (block, index) -> Fixtures.copyOf((Conv2d) block));
      ModuleSurgery.replaceModuleClasses(net, policies, List.of(trainer), false, null);

      Conv2d copy = (Conv2d) net.getChildren().valueAt(0);
      assertNotSame(conv, copy);
      Parameter copied = copy.getParameters().get("weight");
      assertArrayEquals(
          trained, copied.getArray().toFloatArray(), "copied from the trained values");
      assertArrayEquals(trained, storeCopy(trainer, copied).toFloatArray());
      assertArrayEquals(before, evaluate(trainer, x), "the trainer computes what it did");
      EasyTrain.fit(trainer, 1, dataset, null);
      assertFalse(
          java.util.Arrays.equals(trained, storeCopy(trainer, copied).toFloatArray()),
          "training goes on with the replacement");
    }
  }

  @Test
  void aRolledBackSurgeryLeavesTheModelArraysAsTheyWere() throws Exception {
    SequentialBlock net = net();
    try (Model model = TinyModels.model("copies-rollback", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config())) {
      trainedOnCopies(trainer, data);
      Map<String, float[]> modelValues = Fixtures.snapshot(net);
      Map<String, float[]> storeValues = new LinkedHashMap<>();
      for (Parameter p : BlockTrees.parametersOf(net)) {
        storeValues.put(p.getId(), storeCopy(trainer, p).toFloatArray());
      }

      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(Conv2d.class, (block, index) -> Fixtures.copyOf((Conv2d) block));
      policies.put(
          Linear.class,
          (block, index) -> {
            throw new IllegalStateException("refused");
          });
      Fixtures.assertClassSurgeryRefused(net, policies, trainer);

      Map<String, float[]> after = Fixtures.snapshot(net);
      assertEquals(modelValues.keySet(), after.keySet());
      modelValues.forEach((id, v) -> assertArrayEquals(v, after.get(id), id));
      for (Parameter p : BlockTrees.parametersOf(net)) {
        assertArrayEquals(storeValues.get(p.getId()), storeCopy(trainer, p).toFloatArray());
      }
    }
  }

  /**
   * The sync keeps the model's previous values for a rollback: once the surgery ends, committed or
   * rolled back, they are freed, so that repeated surgeries (a retried failing one too) leave no
   * array open beyond those the model had.
   */
  @Test
  void theValuesKeptForARollbackAreFreedWhenTheSurgeryEnds() throws Exception {
    SequentialBlock net = net();
    try (Model model = TinyModels.model("copies-open", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config())) {
      trainedOnCopies(trainer, data);
      NDManager owner =
          net.getChildren().valueAt(0).getParameters().get("weight").getArray().getManager();
      Set<NDArray> open = OpenArrays.managedBy(owner);

      // Every block kept: the sync runs all the same, and the surgery commits.
      ModuleSurgery.replaceModuleClasses(
          net,
          Fixtures.replacingClass(Conv2d.class, (block, index) -> null),
          List.of(trainer),
          false,
          null);
      assertEquals(open, OpenArrays.managedBy(owner), "after a committed surgery");

      Fixtures.assertClassSurgeryRefused(
          net,
          Fixtures.replacingClass(
              Conv2d.class,
              (block, index) -> {
                throw new IllegalStateException("refused");
              }),
          trainer);
      assertEquals(open, OpenArrays.managedBy(owner), "after a rolled-back surgery");
    }
  }

  private static DefaultTrainingConfig config() {
    return new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
        .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)).build());
  }

  /** Initializes, makes the store train on copies, and trains one epoch; returns the data. */
  private static ArrayDataset trainedOnCopies(Trainer trainer, NDManager data) throws Exception {
    trainer.initialize(INPUT);
    ParameterStore store = DjlTrainers.parameterStore(trainer);
    for (Parameter p : BlockTrees.parametersOf(trainer.getModel().getBlock())) {
      List<NDArray> mirrors = DjlTrainers.mirrors(DjlTrainers.storeEntries(store).get(p.getId()));
      NDArray main = mirrors.get(0);
      NDArray copy = store.getManager().create(main.getShape(), main.getDataType());
      main.copyTo(copy);
      if (p.requiresGradient()) {
        copy.setRequiresGradient(true);
      }
      mirrors.set(0, copy);
    }
    data.getEngine().setRandomSeed(11);
    ArrayDataset dataset = TinyData.images(data, 32, 3, 6, 8);
    EasyTrain.fit(trainer, 1, dataset, null);
    return dataset;
  }

  private static NDArray storeCopy(Trainer trainer, Parameter p) {
    return DjlTrainers.mirrors(
            DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).get(p.getId()))
        .get(0);
  }

  private static float[] evaluate(Trainer trainer, NDArray x) {
    return trainer.evaluate(new NDList(x)).singletonOrThrow().toFloatArray();
  }
}
