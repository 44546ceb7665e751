package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * One surgery that wraps a block (a wrapper holding it and a fresh layer) and replaces a layer
 * inside that block: when placement reached the wrapper, the block it wraps held the inner
 * replacement, not placed yet, and placement took that for a structural surgery (an original
 * without arrays), so the wrapper's fresh layer was never initialized: an initialized model came
 * out of a surgery that reported success with a parameter without an array. The oracle: the final
 * wrapper initialized by hand from the same seed (placement initializes the wrapper, and through
 * the block it wraps the inner replacement, first).
 */
class WrappedHolderPlacementTest {

  private static final int SEED = 5150;
  private static final Shape INPUT = new Shape(4, 5);

  /** A sequence of the program's own class, so that a policy can tell it from the root. */
  static final class Holder extends SequentialBlock {}

  private static Linear linear(int units) {
    return Linear.builder().setUnits(units).build();
  }

  private static SequentialBlock net() {
    return new SequentialBlock()
        .add(new Holder().add(linear(6)))
        .add(Activation.reluBlock())
        .add(linear(3));
  }

  private static Map<Class<? extends Block>, ReplacementFunction> policies(List<String> calls) {
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Holder.class,
        (block, index) -> {
          calls.add("wrap the holder");
          return new SequentialBlock().add(block).add(linear(6));
        });
    policies.put(
        Linear.class,
        (block, index) -> {
          if (index != 0) {
            return null; // the head
          }
          calls.add("replace its layer");
          return linear(6);
        });
    return policies;
  }

  /** {@link #net()}, initialized from seed 1. */
  private static SequentialBlock initializedNet(NDManager manager) {
    SequentialBlock net = net();
    Engine.getInstance().setRandomSeed(1);
    net.initialize(manager, DataType.FLOAT32, INPUT);
    return net;
  }

  /** The surgery without a trainer, from SEED; the generator's next draw after it. */
  private static float[] replaceFromSeed(
      Block net, Map<Class<? extends Block>, ReplacementFunction> policies, NDManager manager) {
    Engine.getInstance().setRandomSeed(SEED);
    ModuleSurgery.replaceModuleClasses(net, policies, List.of(), false, null);
    return Fixtures.nextDraw(manager);
  }

  private static void assertEveryParameterHasAnArray(Block net) {
    for (Parameter p : BlockTrees.parametersOf(net)) {
      assertTrue(p.isInitialized(), p.getName() + " has an array after the surgery");
    }
  }

  /** The final wrapper built and initialized by hand from SEED; the generator's next draw. */
  private static float[] byHand(NDManager manager, List<Block> wrapper) {
    Engine.getInstance().setRandomSeed(SEED);
    Block block = new SequentialBlock().add(new Holder().add(linear(6))).add(linear(6));
    block.initialize(manager, DataType.FLOAT32, INPUT);
    wrapper.add(block);
    return Fixtures.nextDraw(manager);
  }

  @Test
  void withoutATrainerEveryFreshLayerIsInitializedAsByHand() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = initializedNet(manager);
      List<String> calls = new ArrayList<>();
      float[] after = replaceFromSeed(net, policies(calls), manager);
      assertEquals(List.of("wrap the holder", "replace its layer"), calls);
      assertEveryParameterHasAnArray(net);
      List<Block> wrapper = new ArrayList<>();
      assertArrayEquals(byHand(manager, wrapper), after, "the generator, as by hand");
      assertSameValues(wrapper.get(0), net.getChildren().valueAt(0));
      net.forward(
              new ai.djl.training.ParameterStore(manager, false),
              new NDList(manager.ones(INPUT)),
              false)
          .close();
    }
  }

  @Test
  void withATrainerTheModelTrainsOnAsWithTheWrapperBuiltByHand() {
    DefaultTrainingConfig config =
        new DefaultTrainingConfig(new GcSafeL2Loss())
            .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
    try (Model model = TinyModels.model("wrapped-holder", net());
        Trainer trainer = model.newTrainer(config);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed(1);
      trainer.initialize(INPUT);
      List<String> calls = new ArrayList<>();
      // The plan of the same surgery says so too, and draws nothing.
      Map<BlockMatcher, ReplacementFunction> matchers = new LinkedHashMap<>();
      policies(new ArrayList<>())
          .forEach((type, function) -> matchers.put(BlockMatcher.ofClass(type), function));
      Engine.getInstance().setRandomSeed(SEED);
      SurgeryPlan plan =
          ModuleSurgery.plan(
              model.getBlock(),
              matchers,
              SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
      assertEquals(2, plan.steps().size(), plan.toTable("plan"));
      float[] afterPlan = Fixtures.nextDraw(data);
      Engine.getInstance().setRandomSeed(SEED);
      assertArrayEquals(Fixtures.nextDraw(data), afterPlan, "the plan drew");
      Engine.getInstance().setRandomSeed(SEED);
      ModuleSurgery.replaceModuleClasses(
          model.getBlock(), policies(calls), List.of(trainer), false, null);
      float[] after = Fixtures.nextDraw(data);
      List<Block> wrapper = new ArrayList<>();
      assertArrayEquals(byHand(data, wrapper), after, "the generator, as by hand");
      SequentialBlock net = (SequentialBlock) model.getBlock();
      assertSameValues(wrapper.get(0), net.getChildren().valueAt(0));
      Engine.getInstance().setRandomSeed(7);
      NDArray x = data.randomNormal(INPUT);
      NDArray y = data.randomNormal(new Shape(4, 3));
      try (GradientCollector collector = trainer.newGradientCollector()) {
        NDList prediction = trainer.forward(new NDList(x));
        collector.backward(trainer.getLoss().evaluate(new NDList(y), prediction));
      }
      trainer.step();
    }
  }

  /**
   * The same with a new holder that takes over the old holder's layer (not the holder itself): the
   * layer's replacement is written into both holders, and the new holder's fresh layer is placed.
   */
  @Test
  void aNewHolderThatTakesOverTheReplacedLayer() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = initializedNet(manager);
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          Holder.class,
          (block, index) ->
              new SequentialBlock().add(block.getChildren().valueAt(0)).add(linear(6)));
      policies.put(Linear.class, (block, index) -> index == 0 ? linear(6) : null);
      float[] after = replaceFromSeed(net, policies, manager);
      assertEveryParameterHasAnArray(net);
      Engine.getInstance().setRandomSeed(SEED);
      Block byHand = new SequentialBlock().add(linear(6)).add(linear(6));
      byHand.initialize(manager, DataType.FLOAT32, INPUT);
      assertArrayEquals(Fixtures.nextDraw(manager), after, "the generator, as by hand");
      assertSameValues(byHand, net.getChildren().valueAt(0));
    }
  }

  /**
   * A wrapper whose fresh layer comes before the block it wraps: the inner replacement is still
   * placed first (at its own place, for the shapes of the layer it replaces), then the wrapper; by
   * hand in that order, the values and the generator are the same.
   */
  @Test
  void theInnerReplacementIsPlacedBeforeItsWrapperWhereverTheWrapperPutsItsFreshLayer() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = initializedNet(manager);
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(Holder.class, (block, index) -> new SequentialBlock().add(linear(5)).add(block));
      policies.put(Linear.class, (block, index) -> index == 0 ? linear(6) : null);
      float[] after = replaceFromSeed(net, policies, manager);

      Engine.getInstance().setRandomSeed(SEED);
      Block inner = linear(6);
      inner.initialize(manager, DataType.FLOAT32, INPUT);
      Block wrapper = new SequentialBlock().add(linear(5)).add(new Holder().add(inner));
      wrapper.initialize(manager, DataType.FLOAT32, INPUT);
      assertArrayEquals(Fixtures.nextDraw(manager), after, "the generator, as by hand");
      assertSameValues(wrapper, net.getChildren().valueAt(0));
    }
  }

  /**
   * A refusal after the nested placement (the head given 4 outputs for 3, placed last) rolls it all
   * back having drawn nothing: the inner replacement placed ahead of its wrapper is held back like
   * the rest.
   */
  @Test
  void aLaterRefusalAfterTheNestedPlacementHasDrawnNothing() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = initializedNet(manager);
      List<Parameter> before = new ArrayList<>(BlockTrees.parametersOf(net));
      List<float[]> values = new ArrayList<>();
      for (Parameter p : before) {
        values.add(p.getArray().toFloatArray());
      }
      Map<Class<? extends Block>, ReplacementFunction> policies = policies(new ArrayList<>());
      policies.put(Linear.class, (block, index) -> linear(index == 0 ? 6 : 4));
      Engine.getInstance().setRandomSeed(SEED);
      SurgeryException refused =
          org.junit.jupiter.api.Assertions.assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModuleClasses(net, policies, List.of(), false, null));
      assertTrue(refused.getMessage().contains("changes the output shapes"), refused.getMessage());
      float[] afterAttempt = Fixtures.nextDraw(manager);
      Engine.getInstance().setRandomSeed(SEED);
      assertArrayEquals(Fixtures.nextDraw(manager), afterAttempt, "the refused surgery drew");
      assertEquals(before, new ArrayList<>(BlockTrees.parametersOf(net)), "the same parameters");
      for (int i = 0; i < before.size(); i++) {
        assertArrayEquals(values.get(i), before.get(i).getArray().toFloatArray());
      }
    }
  }

  private static void assertSameValues(Block expected, Block actual) {
    PairList<String, Parameter> e = expected.getParameters();
    PairList<String, Parameter> a = actual.getParameters();
    assertEquals(e.keys(), a.keys());
    for (int i = 0; i < e.size(); i++) {
      assertArrayEquals(
          e.valueAt(i).getArray().toFloatArray(),
          a.valueAt(i).getArray().toFloatArray(),
          a.keyAt(i));
    }
  }
}
