package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.initializer.Initializer;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.training.initializer.TruncatedNormalInitializer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import ai.djl.util.RandomUtils;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.algorithms.WeightStandardization;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.BlurPool2d;
import dev.surgery.core.layers.WeightStandardizedConv2d;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.PlanAssertions;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link Algorithm#plan} for the seven built-in algorithms on a training ResNetV1 (20 layers,
 * 1x28x28, Adam after one step): the plan changes nothing (structure, parameter values, store,
 * optimizer state), and the apply that follows does exactly what it said: the same blocks, types
 * and parameter counts, and the parameters that really left and joined the model (compared by
 * identity before and after) have the shapes the plan listed.
 */
class PlanTest {

  static Stream<Arguments> algorithms() {
    return Stream.of(
        Arguments.of("blurpool", BlurPool.builder().build()),
        Arguments.of("factorize", Factorize.builder().optMinChannels(16).build()),
        Arguments.of("ghost_batchnorm", GhostBatchNorm.builder().build()),
        Arguments.of("layer_freezing", LayerFreezing.builder().build()),
        Arguments.of(
            "squeeze_excite",
            SqueezeExcite.builder().optMinChannels(16).optLatentChannels(0.25).build()),
        Arguments.of("stochastic_depth", StochasticDepth.builder().build()),
        Arguments.of("weight_standardization", WeightStandardization.builder().build()),
        Arguments.of(
            "blurpool limited to unit 08",
            BlurPool.builder().build().withTargets(Targets.include("08ParallelBlock"))));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("algorithms")
  void planChangesNothingAndEqualsTheApply(String name, Algorithm algorithm) throws Exception {
    Block resnet = TinyModels.resNet20();
    DefaultTrainingConfig config =
        new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
            .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
    try (Model model = TinyModels.model("plan-" + name, resnet);
        Trainer trainer = model.newTrainer(config);
        NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(7);
      trainer.initialize(new Shape(4, 1, 28, 28));
      NDArray x = data.randomNormal(new Shape(4, 1, 28, 28));
      NDArray y = data.create(new float[] {0, 1, 2, 3});
      try (GradientCollector gc = trainer.newGradientCollector()) {
        NDList out = trainer.forward(new NDList(x));
        gc.backward(trainer.getLoss().evaluate(new NDList(y), out));
      }
      trainer.step();

      SurgeryContext context = SurgeryContext.live(resnet, trainer, 2, 2);
      List<String> structure = structure(resnet);
      Map<String, float[]> values = Fixtures.snapshot(resnet);
      Set<String> store = Fixtures.storeIds(trainer);
      Map<String, Set<String>> stateKeys = Fixtures.stateKeys(trainer);
      Map<String, float[]> state = ExactnessOracle.optimizerStateValues(trainer);
      Map<String, Boolean> trainable = trainable(resnet);
      Set<Parameter> before = parameters(resnet);

      data.getEngine().setRandomSeed(11);
      SurgeryPlan plan = algorithm.plan(context);
      assertFalse(plan.isEmpty(), "the algorithm should change something on ResNetV1");
      float[] afterPlan = data.randomUniform(0, 1, new Shape(8)).toFloatArray();
      float hostAfterPlan = RandomUtils.nextFloat();
      assertArrayEquals(
          drawAfterSeed(data, 11),
          afterPlan,
          "the plan left the engine's random generator where it was");
      // drawAfterSeed has just seeded DJL's host generator too (Engine.setRandomSeed seeds both).
      assertEquals(
          RandomUtils.nextFloat(), hostAfterPlan, "and DJL's host generator (the same seed)");

      // nothing changed
      assertEquals(structure, structure(resnet));
      assertSameValues(values, Fixtures.snapshot(resnet));
      assertEquals(store, Fixtures.storeIds(trainer));
      assertEquals(stateKeys, Fixtures.stateKeys(trainer));
      assertSameValues(state, ExactnessOracle.optimizerStateValues(trainer));
      assertEquals(trainable, trainable(resnet));
      // the model still trains as before: a forward pass works on the untouched tree
      trainer.forward(new NDList(x)).close();

      SurgeryChanges report = algorithm.apply(context);
      if (!(algorithm instanceof LayerFreezing)) {
        assertNotEquals(structure, structure(resnet), "the apply replaced blocks");
      }
      PlanAssertions.assertAppliedAsPlanned(plan, report);

      Set<Parameter> after = parameters(resnet);
      assertEquals(shapesOnlyIn(before, after), plannedShapes(plan, true));
      assertEquals(shapesOnlyIn(after, before), plannedShapes(plan, false));
    }
  }

  /** Initializers a user's new layer may carry, by name. */
  static Stream<Arguments> initializers() {
    Initializer attaching =
        (manager, shape, dataType) -> {
          // Draws in a sub-manager and attaches the result to the one given, as DJL's truncated
          // normal does: the plan's stand-in manager cannot be attached to.
          NDManager sub = manager.newSubManager();
          NDArray array = sub.randomNormal(0, 0.1f, shape, dataType);
          array.attach(manager);
          sub.close();
          return array;
        };
    Initializer permuting =
        (manager, shape, dataType) ->
            manager
                .randomPermutation(shape.size())
                .toType(dataType, false)
                .reshape(shape)
                .div(manager.create((float) shape.size()).toType(dataType, false));
    return Stream.of(
        Arguments.of("Xavier (the layer's own)", null),
        Arguments.of("a user's permutation", permuting),
        Arguments.of("truncated normal", new TruncatedNormalInitializer(0.02f)),
        Arguments.of("normal", new NormalInitializer(0.05f)),
        Arguments.of("a user's attaching to the manager given", attaching));
  }

  /**
   * A plan of a replacement the engine initializes (a new layer from a user's function) draws
   * nothing from the engine's random generator, whatever the layer's initializer: the program's
   * next draws (data, dropout, the apply's own initialization) are what they would be without the
   * plan, and the apply that follows succeeds as planned.
   */
  @ParameterizedTest(name = "{0}")
  @MethodSource("initializers")
  void aPlanOfNewLayersLeavesTheRandomGeneratorWhereItWas(String name, Initializer initializer) {
    SequentialBlock net =
        new SequentialBlock()
            .add(Linear.builder().setUnits(6).build())
            .add(Linear.builder().setUnits(3).build());
    try (Model model = TinyModels.model("plan-rng", net);
        NDManager data = NDManager.newBaseManager()) {
      net.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(2, 4));
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.ofClass(Linear.class),
          (block, index) -> {
            Linear fresh = Linear.builder().setUnits(index == 0 ? 6 : 3).build();
            if (initializer != null) {
              fresh.getParameters().get("weight").setInitializer(initializer);
            }
            return fresh;
          });
      data.getEngine().setRandomSeed(5);
      SurgeryPlan plan = ModuleSurgery.plan(net, policies, SurgeryOptions.defaults());
      assertEquals(2, plan.steps().size());
      float[] afterPlan = data.randomUniform(0, 1, new Shape(8)).toFloatArray();
      assertArrayEquals(drawAfterSeed(data, 5), afterPlan);
      assertEquals(
          2, ModuleSurgery.replaceModules(net, policies, SurgeryOptions.defaults()).size());
    }
  }

  /**
   * A model with a lambda that draws (noise added to its input): counting multiply-accumulates for
   * an input shape followed the shapes through DJL's {@code LambdaBlock.getOutputShapes}, which
   * runs the lambda on zeros, and so moved the program's random generator (a dry run then trained
   * other bits). For the input the model was initialized with, the recorded shapes are read.
   */
  @Test
  void countingMacsRunsNoLambdaOfAModelInitializedWithThatInput() {
    SequentialBlock net =
        new SequentialBlock()
            .add(TinyModels.conv3x3(4, 1))
            .add(
                new LambdaBlock(
                    list ->
                        new NDList(
                            list.head()
                                .add(
                                    list.head()
                                        .getManager()
                                        .randomNormal(list.head().getShape())))))
            .add(TinyModels.conv3x3(4, 2))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(2).build());
    try (NDManager data = NDManager.newBaseManager()) {
      net.initialize(data, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      Algorithm blurPool = BlurPool.builder().optMinChannels(0).build();
      data.getEngine().setRandomSeed(3);
      SurgeryPlan plan = blurPool.plan(SurgeryContext.of(net), new Shape(1, 3, 8, 8));
      float[] afterPlan = data.randomUniform(0, 1, new Shape(8)).toFloatArray();
      assertArrayEquals(drawAfterSeed(data, 3), afterPlan, "the lambda drew nothing");
      // and the counts are there: the strided conv after the lambda, 4 x 4 x 4 x 4 x 9 before
      SurgeryPlan.Step step = plan.steps().get(0);
      assertEquals(4L * 4 * 4 * 4 * 9, step.macsBefore());
    }
  }

  /**
   * A plan of a model that is not initialized: its parameters have no shapes, so the totals are
   * unknown (an apply reports them so), not "0 -> 0 (+0)" for a surgery that adds parameters.
   */
  @Test
  void aPlanOfAModelNotInitializedGivesUnknownTotals() {
    Block resnet = TinyModels.resNet20();
    SurgeryPlan plan =
        SqueezeExcite.builder().optMinChannels(0).build().plan(SurgeryContext.of(resnet));
    assertFalse(plan.isEmpty());
    assertFalse(plan.parametersKnown());
    assertEquals(SurgeryPlan.UNKNOWN_PARAMETERS, plan.parametersBefore());
    assertTrue(plan.toTable("se").contains("parameters: unknown ("), plan.toTable("se"));
  }

  /**
   * A linear layer of new {@code Parameter}s built around given arrays (no shapes of their own).
   */
  static final class Rewrapped extends AbstractBlock {
    private final Parameter weight;
    private final Parameter bias;

    Rewrapped(NDArray w, NDArray b) {
      weight =
          addParameter(
              Parameter.builder()
                  .setName("weight")
                  .setType(Parameter.Type.WEIGHT)
                  .optArray(w)
                  .build());
      bias =
          addParameter(
              Parameter.builder().setName("bias").setType(Parameter.Type.BIAS).optArray(b).build());
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList in, boolean training, PairList<String, Object> params) {
      NDArray x = in.singletonOrThrow();
      return Linear.linear(
          x,
          store.getValue(weight, x.getDevice(), training),
          store.getValue(bias, x.getDevice(), training));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] in) {
      return new Shape[] {new Shape(in[0].get(0), weight.getArray().getShape().get(0))};
    }
  }

  /**
   * New {@code Parameter}s around the very same arrays (a documented use): DJL gives such a
   * parameter no shape, and the plan counted its values as 0 and printed {@code weight(?)}, a model
   * that "lost" them. The arrays' shapes count.
   */
  @Test
  void newParametersAroundTheSameArraysCountTheirArrays() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Linear linear = Linear.builder().setUnits(3).build();
      SequentialBlock net = new SequentialBlock().add(linear);
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 5));
      Map<BlockMatcher, ReplacementFunction> policies =
          Map.of(
              BlockMatcher.ofClass(Linear.class),
              (block, index) ->
                  new Rewrapped(
                      block.getParameters().get("weight").getArray(),
                      block.getParameters().get("bias").getArray()));
      SurgeryPlan plan = ModuleSurgery.plan(net, policies, SurgeryOptions.defaults());
      assertEquals(18, plan.parametersBefore());
      assertEquals(18, plan.parametersAfter());
      assertEquals(new Shape(3, 5), plan.steps().get(0).added().get(0).shape());
    }
  }

  /**
   * Under recursion a replacement's new convolution is replaced again, by a standardized one that
   * adopts its parameters or by another new one: the parameters that join the model are listed
   * once, and the plan counts as many fresh optimizer states as the trainer gets. They were listed
   * at both steps (the wrapper of the first step holds the second step's replacement): twice as
   * many fresh states.
   */
  @ParameterizedTest(name = "adopting={0}")
  @ValueSource(booleans = {true, false})
  void parametersAReplacementOfAReplacementBringsJoinOnce(boolean adopting) throws Exception {
    Conv2d strided = TinyModels.conv3x3(4, 2);
    SequentialBlock net = recursionNet(strided);
    try (Model model = TinyModels.model("recursion", net);
        Trainer trainer = trainedOnce(model)) {
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          (block, path) -> block == strided,
          (block, index) ->
              new SequentialBlock().add(BlurPool2d.of(2)).add(TinyModels.conv3x3(4, 1)));
      policies.put(
          (block, path) ->
              block.getClass() == Conv2d.class
                  && block != strided
                  && ((Conv2d) block).getKernelShape().get(0) == 3,
          (block, index) ->
              adopting
                  ? WeightStandardizedConv2d.from((Conv2d) block)
                  : Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(4).build());
      SurgeryOptions options = recursingWith(trainer);
      SurgeryPlan plan = ModuleSurgery.plan(net, policies, options);
      int added = 0;
      for (SurgeryPlan.Step step : plan.steps()) {
        added += step.added().size();
      }
      String table = plan.toTable("recursion");
      assertEquals(2, plan.steps().size(), table);
      assertEquals(2, added, table); // the weight and bias that join the model
      assertEquals(2, plan.stateCounts().get(SurgeryPlan.StateFate.FRESH), table);
      Set<String> storeBefore = Fixtures.storeIds(trainer);
      ModuleSurgery.replaceModules(net, policies, options);
      Set<String> joined = new java.util.HashSet<>(Fixtures.storeIds(trainer));
      joined.removeAll(storeBefore);
      assertEquals(2, joined.size(), "the trainer's new entries");
    }
  }

  /**
   * The mirror case: a parameter the model had, held by a replacement that a later step replaces
   * again, leaves or stays once. It was listed at both steps: "4 moved" where the trainer moved 2,
   * "4 dropped" where it dropped 2 (a reviewer's case).
   */
  @ParameterizedTest(name = "adopting={0}")
  @ValueSource(booleans = {true, false})
  void parametersTheModelHadLeaveOrStayOnce(boolean adopting) throws Exception {
    Conv2d strided = TinyModels.conv3x3(4, 2);
    SequentialBlock net = recursionNet(strided);
    try (Model model = TinyModels.model("recursion-had", net);
        Trainer trainer = trainedOnce(model)) {
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          (block, path) -> block == strided,
          (block, index) ->
              new SequentialBlock().add(WeightStandardizedConv2d.from((Conv2d) block)));
      policies.put(
          (block, path) -> block instanceof WeightStandardizedConv2d,
          (block, index) ->
              adopting ? BlurConv2d.fromConv2d((Conv2d) block, true) : TinyModels.conv3x3(4, 2));
      SurgeryOptions options = recursingWith(trainer);
      SurgeryPlan plan = ModuleSurgery.plan(net, policies, options);
      String table = plan.toTable("recursion");
      Map<SurgeryPlan.StateFate, Integer> counts = plan.stateCounts();
      if (adopting) {
        assertEquals(2, counts.get(SurgeryPlan.StateFate.MOVED), table);
        assertEquals(0, counts.get(SurgeryPlan.StateFate.DROPPED), table);
      } else {
        assertEquals(2, counts.get(SurgeryPlan.StateFate.DROPPED), table);
        assertEquals(2, counts.get(SurgeryPlan.StateFate.FRESH), table);
      }
      Set<String> storeBefore = Fixtures.storeIds(trainer);
      ModuleSurgery.replaceModules(net, policies, options);
      Set<String> left = new java.util.HashSet<>(storeBefore);
      left.removeAll(Fixtures.storeIds(trainer));
      assertEquals(adopting ? 0 : 2, left.size(), "the trainer's entries that left");
    }
  }

  /** A trainer of the recursion cases' model, initialized and one step in. */
  private static Trainer trainedOnce(Model model) {
    Trainer trainer = model.newTrainer(adam());
    trainer.initialize(new Shape(2, 2, 8, 8));
    Fixtures.sumStep(trainer);
    return trainer;
  }

  /** Surgery with recursion on replacements, following the trainer. */
  private static SurgeryOptions recursingWith(Trainer trainer) {
    return SurgeryOptions.builder()
        .optRecurseOnReplacements(true)
        .optTrainers(List.of(trainer))
        .build();
  }

  /** The strided convolution, then a linear head: the model the recursion cases replace in. */
  private static SequentialBlock recursionNet(Conv2d strided) {
    return new SequentialBlock()
        .add(strided)
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(2).build());
  }

  private static DefaultTrainingConfig adam() {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
  }

  /** What the engine's generator gives first after a seed. */
  private static float[] drawAfterSeed(NDManager data, int seed) {
    data.getEngine().setRandomSeed(seed);
    return data.randomUniform(0, 1, new Shape(8)).toFloatArray();
  }

  /** Layer freezing without the planned number of epochs: plan and apply refuse alike. */
  @Test
  void aPlanThatWouldFailFailsTheSameWay() {
    Algorithm algorithm = LayerFreezing.builder().build();
    Block resnet = TinyModels.resNet20();
    SurgeryException planned =
        assertThrows(SurgeryException.class, () -> algorithm.plan(SurgeryContext.of(resnet)));
    SurgeryException applied =
        assertThrows(SurgeryException.class, () -> algorithm.apply(SurgeryContext.of(resnet)));
    assertEquals(applied.getMessage(), planned.getMessage());
  }

  private static List<String> structure(Block root) {
    List<String> out = new ArrayList<>();
    BlockPaths.index(root).forEach((b, p) -> out.add(p + "=" + b.getClass().getName()));
    return out;
  }

  private static Map<String, Boolean> trainable(Block root) {
    Map<String, Boolean> out = new java.util.TreeMap<>();
    for (Parameter p : BlockTrees.parametersOf(root)) {
      out.put(p.getId(), p.requiresGradient());
    }
    return out;
  }

  private static Set<Parameter> parameters(Block root) {
    Set<Parameter> out = Collections.newSetFromMap(new IdentityHashMap<>());
    out.addAll(BlockTrees.parametersOf(root));
    return out;
  }

  /** Sorted shapes of the parameters in {@code a} and not in {@code b}. */
  private static List<String> shapesOnlyIn(Set<Parameter> a, Set<Parameter> b) {
    List<String> out = new ArrayList<>();
    for (Parameter p : a) {
      if (!b.contains(p)) {
        out.add(String.valueOf(p.getShape()));
      }
    }
    Collections.sort(out);
    return out;
  }

  private static List<String> plannedShapes(SurgeryPlan plan, boolean removed) {
    List<String> out = new ArrayList<>();
    for (SurgeryPlan.Step s : plan.steps()) {
      for (SurgeryPlan.PlannedParameter p : removed ? s.removed() : s.added()) {
        out.add(String.valueOf(p.shape()));
      }
    }
    Collections.sort(out);
    return out;
  }

  private static void assertSameValues(Map<String, float[]> expected, Map<String, float[]> actual) {
    assertEquals(expected.keySet(), actual.keySet());
    for (Map.Entry<String, float[]> e : expected.entrySet()) {
      assertArrayEquals(e.getValue(), actual.get(e.getKey()), e.getKey());
    }
  }
}
