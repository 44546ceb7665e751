package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.ResNetV1;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.Fixtures.Dense;
import dev.surgery.core.internal.DjlInternals;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Surgery on models that are training: the trainer's store and optimizer state stay exact. */
class LiveSurgeryTest {

  static Stream<Arguments> optimizers() {
    return Stream.of(
        Arguments.of(
            "adam", Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.005f)).build()),
        Arguments.of(
            "sgd-momentum",
            Optimizer.sgd()
                .setLearningRateTracker(Tracker.fixed(0.02f))
                .optMomentum(0.9f)
                .build()));
  }

  /**
   * Replaces every strided Conv2d of a training ResNetV1 with a weight-copying twin after epoch 1.
   */
  @ParameterizedTest(name = "{0}")
  @MethodSource("optimizers")
  void resNetStridedConvsReplacedAfterEpochOneKeepTraining(String name, Optimizer optimizer)
      throws Exception {
    Block resnet =
        ResNetV1.builder()
            .setImageShape(new Shape(1, 28, 28))
            .setNumLayers(20)
            .setOutSize(4)
            .build();
    try (Model model = Fixtures.model("resnet-" + name, resnet);
        NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(3);
      ArrayDataset dataset = Fixtures.images(data, 32, 1, 28, 8);
      List<NDArray> removedArrays = new ArrayList<>();
      Map<Block, Block> replaced = new LinkedHashMap<>();
      float[] lossAtSurgery = new float[1];
      TrainingListenerAdapter surgeon =
          new TrainingListenerAdapter() {
            @Override
            public void onEpoch(Trainer trainer) {
              if (!replaced.isEmpty()) {
                return;
              }
              lossAtSurgery[0] = meanLoss(trainer, dataset);
              for (Parameter p : TreeSurgery.parametersOf(resnet)) {
                removedArrays.add(p.getArray());
              }
              DjlInternals.optimizerStates(DjlInternals.optimizer(trainer))
                  .values()
                  .forEach(s -> s.values().forEach(m -> removedArrays.addAll(m.values())));
              Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
              policies.put(
                  Conv2d.class,
                  (block, index) -> {
                    Conv2d conv = (Conv2d) block;
                    return conv.getStride().get(0) > 1 ? Fixtures.copyOf(conv) : null;
                  });
              replaced.putAll(
                  ModuleSurgery.replaceModuleClasses(
                      resnet, policies, List.of(trainer), false, null));
            }
          };
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(optimizer)
              .addTrainingListeners(surgeon);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(8, 1, 28, 28));
        EasyTrain.fit(trainer, 1, dataset, null);

        assertEquals(4, replaced.size(), "ResNet20 at 28x28 has four stride-2 convolutions");
        Set<String> modelIds = Fixtures.modelIds(resnet);
        assertEquals(modelIds, Fixtures.storeIds(trainer));
        for (Set<String> keys : Fixtures.stateKeys(trainer).values()) {
          assertTrue(modelIds.containsAll(keys), "optimizer state only for live parameters");
        }
        // Arrays of the replaced convolutions and their optimizer state were freed; the rest live.
        Set<Parameter> live = TreeSurgery.parametersOf(resnet);
        int released = 0;
        for (NDArray array : removedArrays) {
          boolean owned = live.stream().anyMatch(p -> p.getArray() == array);
          boolean stateOfLive =
              DjlInternals.optimizerStates(DjlInternals.optimizer(trainer)).values().stream()
                  .anyMatch(
                      s ->
                          s.values().stream()
                              .anyMatch(m -> m.values().stream().anyMatch(v -> v == array)));
          if (!owned && !stateOfLive) {
            assertTrue(array.isReleased(), "a removed array must be released");
            released++;
          }
        }
        assertTrue(released >= 4, "at least the four old weights were released, got " + released);
        for (Block old : replaced.keySet()) {
          assertFalse(TreeSurgery.parametersOf(resnet).containsAll(old.getParameters().values()));
        }

        EasyTrain.fit(trainer, 2, dataset, null);
        float after = meanLoss(trainer, dataset);
        assertTrue(Float.isFinite(after), "loss must stay finite");
        assertTrue(after < 3 * lossAtSurgery[0] + 1, "loss must not explode: " + after);
      }
    }
  }

  /** Rule 6: a parameter born mid-training takes the first step a fresh Adam would take. */
  @Test
  void adamFirstUpdateOfNewParameterIsTheLearningRate() {
    float lr = 1e-3f;
    Dense dense = new Dense(6);
    SequentialBlock net = new SequentialBlock().add(dense);
    try (Model model = Fixtures.model("adam-birth", net)) {
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.l2Loss())
              .optOptimizer(
                  Optimizer.adam()
                      .optLearningRateTracker(Tracker.fixed(lr))
                      .optBeginNumUpdate(1000)
                      .build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(4, 5));
        for (int i = 0; i < 5; i++) {
          sumStep(trainer);
        }
        Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(Dense.class, (block, index) -> new Dense(6));
        Dense born =
            (Dense)
                ModuleSurgery.replaceModuleClasses(net, policies, List.of(trainer), false, null)
                    .get(dense);
        float[] before = born.weight.getArray().toFloatArray();
        sumStep(trainer);
        float[] afterStep = born.weight.getArray().toFloatArray();
        double meanDelta = 0;
        for (int i = 0; i < before.length; i++) {
          meanDelta += Math.abs(afterStep[i] - before[i]) / before.length;
        }
        assertEquals(lr, meanDelta, 0.1 * lr, "first Adam step of a new parameter");
        assertEquals(
            1005, DjlInternals.birthAwareOptimizer(trainer, false).birthOf(born.weight.getId()));
      }
    }
  }

  @Test
  void replaceParamsInOptimizerMovesStateWhenShapesMatch() {
    Dense dense = new Dense(3);
    try (Model model = Fixtures.model("move", new SequentialBlock().add(dense));
        NDManager manager = NDManager.newBaseManager()) {
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(Optimizer.adam().build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(2, 4));
        sumStep(trainer);
        Parameter old = dense.weight;
        Map<Device, NDArray> means = stateOf(trainer, "Adam.means", old.getId());
        Parameter same = copyParameter(old, old.getArray().duplicate());
        Parameter other = copyParameter(dense.bias, manager.zeros(new Shape(7)));
        other.getArray().attach(model.getNDManager());
        NDArray oldBiasMean = stateOf(trainer, "Adam.means", dense.bias.getId()).get(Device.cpu());

        assertThrows(
            IllegalArgumentException.class,
            () ->
                ModuleSurgery.replaceParamsInOptimizer(List.of(old), List.of(), List.of(trainer)));
        Parameter stranger = copyParameter(old, old.getArray().duplicate());
        IllegalStateException e =
            assertThrows(
                IllegalStateException.class,
                () ->
                    ModuleSurgery.replaceParamsInOptimizer(
                        List.of(stranger), List.of(same), List.of(trainer)));
        assertTrue(e.getMessage().contains(stranger.getId()), e.getMessage());
        assertFalse(Fixtures.storeIds(trainer).contains(same.getId()), "nothing changed");

        ModuleSurgery.replaceParamsInOptimizer(
            List.of(old, dense.bias), List.of(same, other), List.of(trainer));
        Set<String> ids = Fixtures.storeIds(trainer);
        assertTrue(ids.contains(same.getId()) && ids.contains(other.getId()));
        assertFalse(ids.contains(old.getId()) || ids.contains(dense.bias.getId()));
        assertSame(means, stateOf(trainer, "Adam.means", same.getId()), "state moved whole");
        assertNull(stateOf(trainer, "Adam.means", other.getId()), "new shape starts fresh");
        assertTrue(oldBiasMean.isReleased(), "state of a differently shaped parameter is closed");
        assertEquals(
            1, DjlInternals.updateCounts(DjlInternals.optimizer(trainer)).get(same.getId()));
      }
    }
  }

  @Test
  void test_update_params_in_optimizer() {
    SequentialBlock m1 = new SequentialBlock();
    SequentialBlock m2 = new SequentialBlock();
    for (int i = 0; i < 4; i++) {
      m1.add(new Dense(4));
      m2.add(new Dense(4));
    }
    try (Model model = Fixtures.model("m1", m1);
        Model other = Fixtures.model("m2", m2)) {
      m2.initialize(other.getNDManager(), other.getDataType(), new Shape(2, 4));
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(Optimizer.adam().build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(2, 4));
        sumStep(trainer);
        ModuleSurgery.updateParamsInOptimizer(
            TreeSurgery.parametersOf(m1), TreeSurgery.parametersOf(m2), List.of(trainer));
        assertEquals(Fixtures.modelIds(m2), Fixtures.storeIds(trainer));
        for (Set<String> keys : Fixtures.stateKeys(trainer).values()) {
          assertTrue(keys.isEmpty(), "state of removed parameters dropped");
        }

        Parameter uninitialized = new Dense(2).weight;
        IllegalStateException e =
            assertThrows(
                IllegalStateException.class,
                () ->
                    ModuleSurgery.updateParamsInOptimizer(
                        List.of(), List.of(uninitialized), List.of(trainer)));
        assertTrue(e.getMessage().contains("not initialized"), e.getMessage());
        assertEquals(Fixtures.modelIds(m2), Fixtures.storeIds(trainer), "nothing changed");

        // Defect 8: a removed parameter no trainer registered (never used forward) is skipped.
        Set<String> storeBefore = Fixtures.storeIds(trainer);
        ModuleSurgery.updateParamsInOptimizer(
            List.of(TreeSurgery.parametersOf(m1).iterator().next()), List.of(), List.of(trainer));
        assertEquals(storeBefore, Fixtures.storeIds(trainer));
      }
    }
  }

  /**
   * Composer's optimizer_surgery_state fixture: fc1 and fc2 are referenced from a sequential child
   * and from fields of the model; the policy copies each weight into a new parameter and keeps the
   * same bias object. Returns {model, trainer, old weights, old biases, new blocks}.
   */
  private static void withOptimizerSurgeryState(OptimizerSurgeryCheck check) {
    Dense fc1 = new Dense(8);
    Dense fc2 = new Dense(3);
    Fixtures.FieldHolder root = new Fixtures.FieldHolder(fc1, fc2);
    try (Model model = Fixtures.model("optimizer-surgery", root)) {
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.l2Loss())
              .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)).build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(2, 5));
        sumStep(trainer);
        Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(Dense.class, (block, index) -> new Dense((Dense) block));
        Map<Block, Block> replaced =
            ModuleSurgery.replaceModuleClasses(root, policies, List.of(trainer), false, null);
        check.run(
            trainer,
            List.of(fc1, fc2),
            List.of((Dense) replaced.get(fc1), (Dense) replaced.get(fc2)));
        assertSame(replaced.get(fc1), root.first, "field updated");
        assertSame(replaced.get(fc2), root.second, "field updated");
        sumStep(trainer);
      }
    }
  }

  private interface OptimizerSurgeryCheck {
    void run(Trainer trainer, List<Dense> old, List<Dense> made);
  }

  @Test
  void test_no_duplicate_params() {
    withOptimizerSurgeryState(
        (trainer, old, made) -> {
          List<String> ids =
              new ArrayList<>(
                  DjlInternals.storeEntries(DjlInternals.parameterStore(trainer)).keySet());
          assertEquals(Set.copyOf(ids).size(), ids.size());
          assertEquals(4, ids.size(), "two new weights and the two kept biases");
        });
  }

  @Test
  void test_params_removed() {
    withOptimizerSurgeryState(
        (trainer, old, made) -> {
          for (Dense d : old) {
            assertFalse(Fixtures.storeIds(trainer).contains(d.weight.getId()));
          }
        });
  }

  @Test
  void test_new_params_added() {
    withOptimizerSurgeryState(
        (trainer, old, made) -> {
          for (Dense d : made) {
            assertTrue(Fixtures.storeIds(trainer).contains(d.weight.getId()));
            assertTrue(Fixtures.storeIds(trainer).contains(d.bias.getId()));
          }
        });
  }

  @Test
  void test_params_kept() {
    withOptimizerSurgeryState(
        (trainer, old, made) -> {
          for (int i = 0; i < old.size(); i++) {
            assertSame(old.get(i).bias, made.get(i).bias, "the bias object is kept");
            assertTrue(Fixtures.storeIds(trainer).contains(old.get(i).bias.getId()));
            assertFalse(old.get(i).bias.getArray().isReleased(), "a kept array is not freed");
          }
        });
  }

  @Test
  void frozenReplacementParametersAreNotUpdatedAndGetNoState() {
    Dense dense = new Dense(3);
    try (Model model = Fixtures.model("frozen", new SequentialBlock().add(dense))) {
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(Optimizer.adam().build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(2, 4));
        sumStep(trainer);
        Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(
            Dense.class,
            (block, index) -> {
              Dense frozen = new Dense((Dense) block);
              frozen.weight.freeze(true);
              return frozen;
            });
        Dense frozen =
            (Dense)
                ModuleSurgery.replaceModuleClasses(
                        model.getBlock(), policies, List.of(trainer), false, null)
                    .get(dense);
        float[] before = frozen.weight.getArray().toFloatArray();
        sumStep(trainer);
        org.junit.jupiter.api.Assertions.assertArrayEquals(
            before, frozen.weight.getArray().toFloatArray(), "frozen weight must not move");
        for (Set<String> keys : Fixtures.stateKeys(trainer).values()) {
          assertFalse(keys.contains(frozen.weight.getId()), "no optimizer state for frozen");
          assertTrue(keys.contains(frozen.bias.getId()), "the kept bias trains on");
        }
      }
    }
  }

  @Test
  void everyTrainerOfTheModelFollowsTheSurgery() {
    Dense dense = new Dense(3);
    try (Model model = Fixtures.model("two-trainers", new SequentialBlock().add(dense))) {
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.l2Loss())
              .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)).build());
      try (Trainer first = model.newTrainer(config);
          Trainer second = model.newTrainer(config)) {
        first.initialize(new Shape(2, 4));
        second.initialize(new Shape(2, 4));
        Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(Dense.class, (block, index) -> new Dense((Dense) block));
        ModuleSurgery.replaceModuleClasses(
            model.getBlock(), policies, List.of(first, second), false, null);
        Set<String> ids = Fixtures.modelIds(model.getBlock());
        assertEquals(ids, Fixtures.storeIds(first));
        assertEquals(ids, Fixtures.storeIds(second));
        sumStep(first);
        sumStep(second);
      }
    }
  }

  private static Parameter copyParameter(Parameter like, NDArray array) {
    return Parameter.builder()
        .setName(like.getName())
        .setType(like.getType())
        .optArray(array)
        .build();
  }

  private static Map<Device, NDArray> stateOf(Trainer trainer, String field, String id) {
    return DjlInternals.optimizerStates(DjlInternals.optimizer(trainer)).get(field).get(id);
  }

  /**
   * One step whose loss is the sum of the outputs on an all-ones batch: gradients keep one sign.
   */
  private static void sumStep(Trainer trainer) {
    Shape input = trainer.getModel().getBlock().getInputShapes()[0];
    try (NDManager scratch = trainer.getManager().newSubManager()) {
      NDArray ones = scratch.ones(input);
      try (GradientCollector collector = trainer.newGradientCollector()) {
        NDList out = trainer.forward(new NDList(ones));
        collector.backward(out.singletonOrThrow().sum());
      }
      trainer.step();
    }
  }

  static float meanLoss(Trainer trainer, ArrayDataset dataset) {
    float sum = 0;
    int n = 0;
    try {
      for (Batch batch : trainer.iterateDataset(dataset)) {
        try (batch) {
          NDList predictions = trainer.evaluate(batch.getData());
          sum += trainer.getLoss().evaluate(batch.getLabels(), predictions).getFloat();
          n++;
        }
      }
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
    return sum / n;
  }
}
