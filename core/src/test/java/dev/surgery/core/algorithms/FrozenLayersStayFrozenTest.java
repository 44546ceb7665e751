package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
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
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.layers.FactorizedConv2d;
import dev.surgery.core.layers.FactorizedLinear;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.TinyData;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Layer freezing promises that layers are never unfrozen: an algorithm that later replaces a frozen
 * layer (Factorize with new weights, squeeze-excite with a new gate, and those that adopt the
 * layer's own parameters) must leave the replacement frozen, and the trainer must register its new
 * parameters without ever updating them. The oracle is the model's own positions: {@link
 * LiveTraining#smallCnn} holds its layers at fixed indices of a {@link SequentialBlock}, so
 * whatever an algorithm put at a frozen layer's index must be frozen, and whatever it put at a
 * trainable one must train.
 */
class FrozenLayersStayFrozenTest {

  /** Indices of smallCnn's layers that freezing at 4 of 5 epochs freezes: conv, BN, conv, BN. */
  private static final int[] FROZEN = {0, 1, 3, 4};

  /** Indices of its layers left trainable: the last convolution and the linear head. */
  private static final int[] TRAINABLE = {6, 9};

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  /** Every parameter under the layer at {@code index} of the sequential model. */
  private static List<Parameter> parametersAt(Block net, int index) {
    return new ArrayList<>(net.getChildren().valueAt(index).getParameters().values());
  }

  /** Parameters an optimizer updates (batch norm's running statistics change in forward). */
  private static boolean learnable(Parameter p) {
    return p.getType() != Parameter.Type.RUNNING_MEAN && p.getType() != Parameter.Type.RUNNING_VAR;
  }

  private static Trainer adamTrainer(Model model) {
    return model.newTrainer(
        new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
            .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build()));
  }

  private static void train(Trainer trainer, ArrayDataset data) throws Exception {
    for (Batch batch : trainer.iterateDataset(data)) {
      try (batch) {
        EasyTrain.trainBatch(trainer, batch);
        trainer.step();
      }
    }
  }

  private static Map<Parameter, float[]> values(List<Parameter> parameters) {
    Map<Parameter, float[]> values = new IdentityHashMap<>();
    for (Parameter p : parameters) {
      values.put(p, p.getArray().toFloatArray());
    }
    return values;
  }

  /** Ids the optimizer holds state arrays or an update count for. */
  private static Set<String> idsWithOptimizerState(Trainer trainer) {
    Set<String> ids =
        new TreeSet<>(DjlOptimizers.updateCounts(DjlTrainers.optimizer(trainer)).keySet());
    for (String key : ExactnessOracle.optimizerStateValues(trainer).keySet()) {
      ids.add(key.split("/", 3)[1]);
    }
    return ids;
  }

  private static void assertFrozenWhereFrozenBefore(Block net, String after) {
    for (int i : FROZEN) {
      for (Parameter p : parametersAt(net, i)) {
        assertFalse(
            p.requiresGradient(),
            "after " + after + ": " + p.getName() + " of the frozen layer at index " + i);
      }
    }
    for (int i : TRAINABLE) {
      for (Parameter p : parametersAt(net, i)) {
        assertTrue(
            p.requiresGradient(),
            "after " + after + ": " + p.getName() + " of the trainable layer at index " + i);
      }
    }
  }

  /**
   * Layer freezing, then every replacing algorithm that applies to a plain CNN: Factorize (new
   * weights for frozen and trainable convolutions and the head), squeeze-excite (a new gate on a
   * frozen plain convolution, on a frozen factorized one and on a trainable one), ghost batch norm,
   * BlurPool and weight standardization (adopted parameters), with Factorize and squeeze-excite in
   * either order (squeeze-excite first gates the frozen convolutions, which Factorize then
   * factorizes inside their wrappers). Whatever stands at a frozen layer's place afterwards is
   * frozen, is registered with the trainer but has no optimizer state, and training leaves its
   * values bit for bit; the rest trains. Unfreezing a parameter that was born frozen lets it train
   * again.
   */
  @ParameterizedTest(name = "factorize before squeeze-excite: {0}")
  @ValueSource(booleans = {true, false})
  void replacementsOfFrozenLayersStayFrozenAndTheRestTrains(boolean factorizeFirst)
      throws Exception {
    SequentialBlock net = LiveTraining.smallCnn();
    try (Model model = Model.newInstance("frozen");
        NDManager manager = NDManager.newBaseManager()) {
      model.setBlock(net);
      Engine.getInstance().setRandomSeed(5);
      ArrayDataset data = TinyData.images(manager, 32, 3, 8, 16);
      try (Trainer trainer = adamTrainer(model)) {
        trainer.initialize(new Shape(16, 3, 8, 8));
        train(trainer, data);
        Algorithm factorize = Factorize.builder().optMinChannels(8).optMinFeatures(4).build();
        Algorithm squeezeExcite =
            SqueezeExcite.builder().optMinChannels(3).optLatentChannels(4).build();
        // Either way round, so that each of the two is the first to meet the frozen layers.
        Algorithm[] schedule = {
          LayerFreezing.builder().optFreezeStart(0.0).build(),
          factorizeFirst ? factorize : squeezeExcite,
          factorizeFirst ? squeezeExcite : factorize,
          GhostBatchNorm.builder().optGhostBatchSize(8).build(),
          BlurPool.builder().optMinChannels(0).build(),
          WeightStandardization.builder().build()
        };
        for (Algorithm algorithm : schedule) {
          SurgeryChanges changes =
              algorithm.apply(SurgeryContext.live(net, trainer, 4, 5)); // t = 0.8: 4 of 6 layers
          assertFalse(changes.isEmpty(), algorithm.name() + " changed something");
          assertFrozenWhereFrozenBefore(net, algorithm.name());
        }
        assertTrue(
            net.getChildren().valueAt(3) instanceof SqueezeExciteConv2d se
                && se.getConv() instanceof FactorizedConv2d,
            "a frozen conv was factorized and gated");
        assertTrue(net.getChildren().valueAt(9) instanceof FactorizedLinear, "the head factorized");

        List<Parameter> frozen = new ArrayList<>();
        for (int i : FROZEN) {
          parametersAt(net, i).stream()
              .filter(FrozenLayersStayFrozenTest::learnable)
              .forEach(frozen::add);
        }
        List<Parameter> trainable = new ArrayList<>();
        for (int i : TRAINABLE) {
          trainable.addAll(parametersAt(net, i));
        }
        Map<Parameter, float[]> frozenBefore = values(frozen);
        Map<Parameter, float[]> trainableBefore = values(trainable);
        train(trainer, data);
        train(trainer, data);

        Set<String> inStore =
            DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).keySet();
        Set<String> withState = idsWithOptimizerState(trainer);
        for (Parameter p : frozen) {
          ExactnessOracle.assertBitsEqual(
              frozenBefore.get(p), p.getArray().toFloatArray(), "frozen " + p.getName());
          assertTrue(inStore.contains(p.getId()), p.getName() + " registered with the trainer");
          assertFalse(withState.contains(p.getId()), p.getName() + " has no optimizer state");
        }
        for (Parameter p : trainable) {
          assertFalse(
              java.util.Arrays.equals(trainableBefore.get(p), p.getArray().toFloatArray()),
              "trainable " + p.getName() + " trains");
          assertTrue(withState.contains(p.getId()), p.getName() + " has optimizer state");
        }

        // The engine's rule for a frozen parameter applies to one born frozen: unfrozen, it trains.
        List<Parameter> gate =
            new ArrayList<>(
                ((SqueezeExciteConv2d) net.getChildren().valueAt(3))
                    .getGate()
                    .getParameters()
                    .values());
        Map<Parameter, float[]> gateBefore = values(gate);
        ModuleSurgery.unfreezeParameters(gate, List.of(trainer));
        train(trainer, data);
        for (Parameter p : gate) {
          assertTrue(p.requiresGradient());
          assertFalse(
              java.util.Arrays.equals(gateBefore.get(p), p.getArray().toFloatArray()),
              "unfrozen gate " + p.getName() + " trains");
          assertTrue(idsWithOptimizerState(trainer).contains(p.getId()));
        }
      }
    }
  }

  /**
   * A plan made after freezing tells what the apply does: the new weights of a frozen layer's
   * replacement start with no optimizer state ({@code NONE}, not {@code FRESH}), those of a
   * trainable layer's start fresh; and the plan leaves the model as it was.
   */
  @Test
  void aPlanAfterFreezingSaysTheNewWeightsOfAFrozenLayerGetNoState() throws Exception {
    SequentialBlock net = LiveTraining.smallCnn();
    try (Model model = Model.newInstance("frozen-plan");
        NDManager manager = NDManager.newBaseManager()) {
      model.setBlock(net);
      Engine.getInstance().setRandomSeed(5);
      ArrayDataset data = TinyData.images(manager, 16, 3, 8, 16);
      try (Trainer trainer = adamTrainer(model)) {
        trainer.initialize(new Shape(16, 3, 8, 8));
        train(trainer, data);
        SurgeryContext context = SurgeryContext.live(net, trainer, 4, 5);
        LayerFreezing.builder().optFreezeStart(0.0).build().apply(context);
        Map<Parameter, Boolean> trainsBefore = new IdentityHashMap<>();
        net.getParameters().values().forEach(p -> trainsBefore.put(p, p.requiresGradient()));

        SurgeryPlan plan = Factorize.builder().optMinChannels(8).build().plan(context);
        Map<String, List<SurgeryPlan.StateFate>> added = new java.util.LinkedHashMap<>();
        for (SurgeryPlan.Step step : plan.steps()) {
          added.put(
              step.path(), step.added().stream().map(SurgeryPlan.PlannedParameter::state).toList());
        }
        assertEquals(
            Map.of(
                "04Conv2d",
                    List.of(
                        SurgeryPlan.StateFate.NONE,
                        SurgeryPlan.StateFate.NONE,
                        SurgeryPlan.StateFate.NONE),
                "07Conv2d",
                    List.of(
                        SurgeryPlan.StateFate.FRESH,
                        SurgeryPlan.StateFate.FRESH,
                        SurgeryPlan.StateFate.FRESH)),
            added);
        Map<Parameter, Boolean> trainsAfter = new IdentityHashMap<>();
        net.getParameters().values().forEach(p -> trainsAfter.put(p, p.requiresGradient()));
        assertEquals(trainsBefore, trainsAfter, "the plan froze or unfroze nothing");
      }
    }
  }

  /**
   * The other order: layer freezing after Factorize counts the two layers of a factorized
   * convolution as two layers, as Composer counts the two modules of its factorized convolution
   * (leaf modules with parameters), and freezes each as a whole.
   */
  @Test
  void freezingAfterFactorizeCountsBothFactorizedLayersAsComposerDoes() {
    SequentialBlock net = LiveTraining.smallCnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      net.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(2, 3, 8, 8));
      Factorize.builder().optMinChannels(8).build().apply(SurgeryContext.of(net));
      assertEquals(
          List.of(
              "01Conv2d",
              "02BatchNorm",
              "04FactorizedConv2d/01Conv2d",
              "04FactorizedConv2d/02Conv2d",
              "05BatchNorm",
              "07FactorizedConv2d/01Conv2d",
              "07FactorizedConv2d/02Conv2d",
              "10Linear"),
          new ArrayList<>(LayerFreezing.layers(net).values()));
      // t = 3/6 with start 0: floor(0.5 * 7) = 3 layers, the boundary inside the first factorized
      // convolution: its k x k layer frozen, its 1 x 1 layer trainable, as in Composer.
      SurgeryChanges changes =
          LayerFreezing.builder()
              .optFreezeStart(0.0)
              .build()
              .apply(new SurgeryContext(net, List.of(), 3, 6));
      assertEquals(
          List.of("01Conv2d", "02BatchNorm", "04FactorizedConv2d/01Conv2d"),
          changes.changes().stream().map(SurgeryChanges.Change::path).toList());
      List<Boolean> frozen = new ArrayList<>();
      for (Block layer : LayerFreezing.layers(net).keySet()) {
        boolean all = true;
        boolean none = true;
        for (Parameter p : layer.getDirectParameters().values()) {
          if (learnable(p)) {
            all &= !p.requiresGradient();
            none &= p.requiresGradient();
          }
        }
        assertTrue(all || none, "a layer is frozen as a whole or not at all");
        frozen.add(all);
      }
      assertEquals(List.of(true, true, true, false, false, false, false, false), frozen);
    }
  }

  /** Replaces DJL's ReLU lambdas by Linear blocks of 4 units (for 4 inputs: the same shape). */
  private static final class ReluToLinear extends AbstractSurgeryAlgorithm {
    static final AlgorithmSpec SPEC =
        AlgorithmSpec.of("relu_to_linear_probe", List.of(), ReluToLinear::new);

    private ReluToLinear(HyperParameterValues values) {
      super(values);
    }

    @Override
    protected java.util.LinkedHashMap<
            dev.surgery.core.BlockMatcher, dev.surgery.core.ReplacementFunction>
        policies(SurgeryContext context) {
      return policy(
          dev.surgery.core.BlockMatcher.lambdaNamed("ReLU"),
          (block, index) -> ai.djl.nn.core.Linear.builder().setUnits(4).build());
    }
  }

  /**
   * A block without parameters is not a frozen layer, even after a frozen one: its replacement's
   * new parameters train.
   */
  @Test
  void theReplacementOfABlockWithoutParametersTrains() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net =
          new SequentialBlock()
              .add(ai.djl.nn.core.Linear.builder().setUnits(4).build())
              .add(ai.djl.nn.Activation.reluBlock())
              .add(ai.djl.nn.core.Linear.builder().setUnits(2).build());
      net.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(2, 3));
      ModuleSurgery.freezeParameters(net.getChildren().valueAt(0).getParameters().values(), null);
      SurgeryChanges changes = ReluToLinear.SPEC.create(Map.of()).apply(SurgeryContext.of(net));
      assertEquals(1, changes.changes().size());
      List<Parameter> added = net.getChildren().valueAt(1).getParameters().values();
      assertFalse(added.isEmpty());
      assertTrue(added.stream().allMatch(Parameter::requiresGradient), added.toString());
    }
  }
}
