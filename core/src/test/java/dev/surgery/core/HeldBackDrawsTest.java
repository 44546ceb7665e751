package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.initializer.Initializer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The random draws of the fresh layers a surgery places are held back to its end: a surgery that
 * fails before has drawn nothing from the engine's generator (the oracle: the generator's next draw
 * after seeding it again), and one that succeeds gives its fresh layers the values that
 * initializing the same blocks by hand, in the engine's order, gives them (a custom initializer
 * between two of DJL's keeps its place among the draws), in the store's copies too.
 */
class HeldBackDrawsTest {

  private static final Shape INPUT = new Shape(8, 3, 6, 6);
  private static final int SEED = 4242;

  /** Conv2d, ReLU, Conv2d, flatten, Linear: three layers with weights drawn by Xavier. */
  private static SequentialBlock net() {
    return new SequentialBlock()
        .add(conv())
        .add(Activation.reluBlock())
        .add(conv())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  private static Conv2d conv() {
    return TinyModels.conv3x3(4, 1);
  }

  /** Draws from the engine through the manager, as DJL's own do, but is none of DJL's classes. */
  private static final Initializer CUSTOM =
      (manager, shape, type) -> manager.randomUniform(-0.5f, 0.5f, shape, type);

  @Test
  void aSurgeryThatFailsAfterPlacingFreshLayersHasDrawnNothing() throws Exception {
    SequentialBlock net = net();
    try (Model model = TinyModels.model("held-back-failed", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config())) {
      train(trainer, data);
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(Conv2d.class, (block, index) -> conv());
      // Placed after both convolutions (each drawn by Xavier), then refused: 5 outputs, not 4.
      policies.put(Linear.class, (block, index) -> Linear.builder().setUnits(5).build());
      Engine.getInstance().setRandomSeed(SEED);
      SurgeryException refused = Fixtures.assertClassSurgeryRefused(net, policies, trainer);
      assertTrue(refused.getMessage().contains("changes the output shapes"), refused.getMessage());
      assertGeneratorUnmoved(data);
    }
  }

  /**
   * A layer of the program's own class that overrides none of the initialization methods (only
   * {@code prepare}, as DJL's layers do) is held back as DJL's are: a refusal after placing it has
   * drawn nothing.
   */
  @Test
  void aProgramsOwnPlainLayerIsHeldBackToo() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = new SequentialBlock().add(new TinyDense(5)).add(new TinyDense(3));
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 5));
      // The first is placed (drawn by NormalInitializer), then the second is refused: 4 outputs.
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              TinyDense.class, (block, index) -> new TinyDense(index == 0 ? 5 : 4));
      Engine.getInstance().setRandomSeed(SEED);
      SurgeryException refused =
          assertThrows(
              SurgeryException.class, () -> ModuleSurgery.replaceModuleClasses(net, policies));
      assertTrue(refused.getMessage().contains("changes the output shapes"), refused.getMessage());
      assertGeneratorUnmoved(manager);
    }
  }

  @Test
  void aSurgeryThatFailsOnAnInjectedFaultAfterTheTrainerUpdateHasDrawnNothing() throws Exception {
    SequentialBlock net = net();
    try (Model model = TinyModels.model("held-back-fault", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config())) {
      train(trainer, data);
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(Conv2d.class, (block, index) -> conv());
      // The first held-back draw is the last chance to fail: a failure there has drawn nothing.
      Faults throwAtDraw =
          point -> {
            if (point.equals("draw")) {
              throw new IllegalStateException("injected at " + point);
            }
          };
      Engine.getInstance().setRandomSeed(SEED);
      SurgeryException failed =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModuleClasses(
                      net, policies, List.of(trainer), false, null, throwAtDraw));
      assertTrue(String.valueOf(failed.getCause()).contains("injected at draw"), failed.toString());
      assertGeneratorUnmoved(data);
    }
  }

  @Test
  void freshLayersGetTheValuesDrawingThemByHandInTheSameOrderGives() throws Exception {
    SequentialBlock net = net();
    try (Model model = TinyModels.model("held-back-values", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config())) {
      ArrayDataset dataset = train(trainer, data);
      // The oracle: the three replacements initialized by hand, in the tree's order, from SEED.
      List<Block> byHand = replacements();
      Engine.getInstance().setRandomSeed(SEED);
      Shape[][] shapes = inputShapesOf(net, 0, 2, 4);
      for (int i = 0; i < byHand.size(); i++) {
        byHand.get(i).initialize(model.getNDManager(), DataType.FLOAT32, shapes[i]);
      }
      float[] drawAfterByHand = Fixtures.nextDraw(data);

      List<Block> fresh = replacements();
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(Conv2d.class, (block, index) -> fresh.get(index));
      policies.put(Linear.class, (block, index) -> fresh.get(2));
      Engine.getInstance().setRandomSeed(SEED);
      ModuleSurgery.replaceModuleClasses(net, policies, List.of(trainer), false, null);
      assertArrayEquals(drawAfterByHand, Fixtures.nextDraw(data), "the generator moved as by hand");
      for (int i = 0; i < fresh.size(); i++) {
        Fixtures.assertSameValues(byHand.get(i), fresh.get(i), "replacement " + i);
        for (Parameter p : fresh.get(i).getParameters().values()) {
          assertEquals(p.requiresGradient(), p.getArray().hasGradient(), p.getName());
        }
      }
      EasyTrain.fit(trainer, 1, dataset, null);
      for (Parameter p : BlockTrees.parametersOf(net)) {
        assertTrue(isFinite(p.getArray()), p.getName() + " trains on");
      }
    }
  }

  @Test
  void aStoreThatTrainsOnCopiesGetsTheDrawnValuesInItsCopies() throws Exception {
    SequentialBlock net = net();
    try (Model model = TinyModels.model("held-back-copies", net);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config())) {
      ArrayDataset dataset = train(trainer, data);
      // A store that keeps the born parameters on copies, as it does on another device: at the
      // draw point (before the first held-back draw) each new entry's array is swapped for a copy
      // of the placed zeros, as DJL's store makes one.
      ParameterStore store = DjlTrainers.parameterStore(trainer);
      java.util.Set<String> known =
          new java.util.HashSet<>(DjlTrainers.storeEntries(store).keySet());
      Faults copyBornArrays =
          point -> {
            if (!point.equals("draw")) {
              return;
            }
            for (Map.Entry<String, Object> e : DjlTrainers.storeEntries(store).entrySet()) {
              List<NDArray> mirrors = DjlTrainers.mirrors(e.getValue());
              if (known.add(e.getKey())) {
                NDArray placed = mirrors.get(0);
                NDArray copy = placed.duplicate(); // toDevice to its own device gives a view
                copy.attach(store.getManager());
                copy.setRequiresGradient(true);
                mirrors.set(0, copy);
              }
            }
          };
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Linear.class, (block, index) -> Linear.builder().setUnits(4).build());
      ModuleSurgery.replaceModuleClasses(
          net, policies, List.of(trainer), false, null, copyBornArrays);
      Parameter weight = net.getChildren().valueAt(4).getParameters().get("weight");
      List<NDArray> mirrors =
          DjlTrainers.mirrors(DjlTrainers.storeEntries(store).get(weight.getId()));
      assertEquals(1, mirrors.size());
      NDArray stored = mirrors.get(0);
      assertFalse(stored == weight.getArray(), "precondition: the store holds a copy");
      float[] drawn = weight.getArray().toFloatArray();
      assertFalse(allZero(drawn), "drawn, not the placed zeros");
      assertArrayEquals(drawn, stored.toFloatArray(), "the copy holds the drawn values");
      assertTrue(stored.hasGradient(), "the copy trains");
      EasyTrain.fit(trainer, 1, dataset, null);
      assertFalse(
          java.util.Arrays.equals(drawn, stored.toFloatArray()), "training updates the copy");
      // A copy, not a view of the model's array (toDevice to its own device gives a view): the
      // store trained its copy, and the model's own array holds the drawn values until a sync.
      assertArrayEquals(drawn, weight.getArray().toFloatArray(), "the copy is its own array");
    }
  }

  /** Fresh replacements: a convolution drawn by Xavier, one drawn by CUSTOM, a Linear (Xavier). */
  private static List<Block> replacements() {
    Conv2d second = conv();
    second.setInitializer(CUSTOM, Parameter.Type.WEIGHT);
    List<Block> blocks = new ArrayList<>();
    blocks.add(conv());
    blocks.add(second);
    blocks.add(Linear.builder().setUnits(4).build());
    return blocks;
  }

  /** The input shapes of the children at these indices, from the recorded shapes. */
  private static Shape[][] inputShapesOf(SequentialBlock net, int... indices) {
    Shape[][] shapes = new Shape[indices.length][];
    for (int i = 0; i < indices.length; i++) {
      shapes[i] = DjlShapes.recordedInputShapes(net.getChildren().valueAt(indices[i]));
    }
    return shapes;
  }

  private static DefaultTrainingConfig config() {
    return new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
  }

  private static ArrayDataset train(Trainer trainer, NDManager data) throws Exception {
    trainer.initialize(INPUT);
    Engine.getInstance().setRandomSeed(11);
    ArrayDataset dataset = TinyData.images(data, 32, 3, 6, 8);
    EasyTrain.fit(trainer, 1, dataset, null);
    return dataset;
  }

  /** The generator's next draw is its first after seeding it with SEED, as before the attempt. */
  private static void assertGeneratorUnmoved(NDManager data) {
    float[] afterAttempt = Fixtures.nextDraw(data);
    Engine.getInstance().setRandomSeed(SEED);
    float[] fromSeed = Fixtures.nextDraw(data);
    assertArrayEquals(fromSeed, afterAttempt, "the failed surgery drew from the generator");
  }

  private static boolean allZero(float[] values) {
    for (float v : values) {
      if (v != 0) {
        return false;
      }
    }
    return true;
  }

  private static boolean isFinite(NDArray array) {
    for (float v : array.toFloatArray()) {
      if (!Float.isFinite(v)) {
        return false;
      }
    }
    return true;
  }
}
