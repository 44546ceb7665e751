package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.FixedPerVarTracker;
import ai.djl.util.PairList;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.layers.AdoptingConv2d;
import dev.surgery.core.testing.ExactnessOracle;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Supplier;

/** Small blocks and inspection helpers shared by the engine tests. */
final class Fixtures {

  private Fixtures() {}

  /** A Linear subclass with a child Linear of one unit less, like Composer's RecursiveLinear. */
  static final class RecursiveLinear extends Linear {
    final Linear submodule;

    RecursiveLinear(long units) {
      super(Linear.builder().setUnits(units));
      submodule = addChildBlock("submodule", Linear.builder().setUnits(units - 1).build());
    }
  }

  /** Runs two children in order, keeping each in a field; how it lists them is up to a subclass. */
  abstract static class TwoInOrder extends AbstractBlock {
    Block first;
    Block second;

    /** The two blocks, held in fields only (a subclass lists or registers them as it likes). */
    TwoInOrder(Block first, Block second) {
      this.first = first;
      this.second = second;
    }

    TwoInOrder() {}

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return inOrder(first, second, store, inputs, training);
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      initializeInOrder(first, second, manager, dataType, shapes);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return second.getOutputShapes(first.getOutputShapes(inputs));
    }
  }

  /** Two blocks as a children list, named {@code first} and {@code second}. */
  static BlockList listOf(Block first, Block second) {
    BlockList list = new BlockList(2);
    list.add("first", first);
    list.add("second", second);
    return list;
  }

  /** The forward of two blocks in order. */
  static NDList inOrder(
      Block first, Block second, ParameterStore store, NDList inputs, boolean training) {
    return second.forward(store, first.forward(store, inputs, training), training);
  }

  /** Initializes two blocks in order, the second for the first's output shapes. */
  static void initializeInOrder(
      Block first, Block second, NDManager manager, DataType dataType, Shape... shapes) {
    first.initialize(manager, dataType, shapes);
    second.initialize(manager, dataType, first.getOutputShapes(shapes));
  }

  /** A container that runs its children in order and also keeps each in a field. */
  static final class FieldHolder extends TwoInOrder {
    FieldHolder(Block first, Block second) {
      this.first = addChildBlock("first", first);
      this.second = addChildBlock("second", second);
    }
  }

  /**
   * A container that runs the children its own field holds, in order (the children list is only
   * bookkeeping): the surgery engine must find and write that field.
   */
  abstract static class InOrderHolder extends AbstractBlock {

    /** The children as the field holds them now. */
    abstract List<Block> layers();

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDList x = inputs;
      for (Block b : layers()) {
        x = b.forward(store, x, training);
      }
      return x;
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      Shape[] s = shapes;
      for (Block b : layers()) {
        b.initialize(manager, dataType, s);
        s = b.getOutputShapes(s);
      }
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      Shape[] s = inputs;
      for (Block b : layers()) {
        s = b.getOutputShapes(s);
      }
      return s;
    }
  }

  /** An {@link InOrderHolder} whose field is a List. */
  static final class ListHolder extends InOrderHolder {
    final List<Block> layers = new ArrayList<>();

    ListHolder(Block... blocks) {
      for (Block b : blocks) {
        layers.add(addChildBlock(b.getClass().getSimpleName(), b));
      }
    }

    @Override
    List<Block> layers() {
      return layers;
    }
  }

  /**
   * A block that is no {@link AbstractBlock} (a proxy of the interface), as a block of another
   * library may be: {@code method} answers {@code answer}, every other method null.
   */
  static Block foreignBlock(String method, Object answer) {
    return (Block)
        Proxy.newProxyInstance(
            Block.class.getClassLoader(),
            new Class<?>[] {Block.class},
            (proxy, called, args) -> called.getName().equals(method) ? answer : null);
  }

  /**
   * A replacement that keeps every block (returns null), adding each it is asked about to {@code
   * asked}: which blocks a surgery visits.
   */
  static ReplacementFunction recording(List<Block> asked) {
    return (block, index) -> {
      asked.add(block);
      return null;
    };
  }

  /** A fresh Conv2d with the same settings, initialized where the old one lives, weights copied. */
  static Conv2d copyOf(Conv2d old) {
    Conv2d copy = AdoptingConv2d.settingsOf(old).build();
    NDArray anchor = old.getParameters().get("weight").getArray();
    copy.initialize(anchor.getManager(), anchor.getDataType(), old.getInputShapes());
    for (var entry : old.getDirectParameters()) {
      entry.getValue().getArray().copyTo(copy.getDirectParameters().get(entry.getKey()).getArray());
    }
    return copy;
  }

  /**
   * One policy that replaces {@code target}, matched by identity, with what {@code replacement}
   * builds: most surgeries in these tests replace a single block they hold.
   */
  static Map<BlockMatcher, ReplacementFunction> replacing(
      Block target, ReplacementFunction replacement) {
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put((block, path) -> block == target, replacement);
    return policies;
  }

  /**
   * Two policies, tried in this order, each replacing its block (matched by identity) with what its
   * function builds.
   */
  static Map<BlockMatcher, ReplacementFunction> replacing(
      Block first,
      ReplacementFunction firstReplacement,
      Block second,
      ReplacementFunction secondReplacement) {
    Map<BlockMatcher, ReplacementFunction> policies = replacing(first, firstReplacement);
    policies.put((block, path) -> block == second, secondReplacement);
    return policies;
  }

  /**
   * A replacement chain for recursing surgeries: each block is replaced by a fresh one from {@code
   * fresh}, which the recursion replaces again, until generation {@code last} is kept. {@code
   * generation} records each replacement's generation (an original is generation 0).
   */
  static ReplacementFunction generations(
      Map<Block, Integer> generation, int last, Supplier<? extends Block> fresh) {
    return (block, index) -> {
      int g = generation.getOrDefault(block, 0);
      if (g == last) {
        return null;
      }
      Block next = fresh.get();
      generation.put(next, g + 1);
      return next;
    };
  }

  /**
   * One policy that replaces every block of {@code type} with what {@code replacement} builds, for
   * {@link ModuleSurgery#replaceModuleClasses}.
   */
  static Map<Class<? extends Block>, ReplacementFunction> replacingClass(
      Class<? extends Block> type, ReplacementFunction replacement) {
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(type, replacement);
    return policies;
  }

  /**
   * Replaces by class, keeping {@code trainer} in step, asserting the surgery is refused; the
   * refusal is returned for the test's own checks of its message and cause.
   */
  static SurgeryException assertClassSurgeryRefused(
      Block root, Map<Class<? extends Block>, ReplacementFunction> policies, Trainer trainer) {
    return assertThrows(
        SurgeryException.class,
        () -> ModuleSurgery.replaceModuleClasses(root, policies, List.of(trainer), false, null));
  }

  /**
   * A new Linear of the old one's units that holds its values ({@link WeightCopy#into}): the
   * weight-copying replacement the optimizer-field probes move state with.
   */
  static Linear linearCopyOf(Block old) {
    return WeightCopy.into(
        Linear.builder()
            .setUnits(old.getParameters().get("weight").getArray().getShape().get(0))
            .build(),
        old);
  }

  /** Linear(6), tanh, Linear(3): the model the optimizer-field probes train. */
  static SequentialBlock tanhProbeNet() {
    return new SequentialBlock()
        .add(Linear.builder().setUnits(6).build())
        .add(Activation::tanh)
        .add(Linear.builder().setUnits(3).build());
  }

  /**
   * A trainer of {@code model} on softmax cross-entropy under {@code optimizer}, initialized for
   * the optimizer-field probes' batches of 8 x 4.
   */
  static Trainer probeTrainer(Model model, Optimizer optimizer) {
    Trainer trainer =
        model.newTrainer(
            new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(optimizer));
    trainer.initialize(new Shape(8, 4));
    return trainer;
  }

  /** One update on a fixed batch: forward {@code x}, the trainer's loss on {@code y}, step. */
  static void lossStep(Trainer trainer, NDArray x, NDArray y) {
    try (GradientCollector gc = trainer.newGradientCollector()) {
      gc.backward(trainer.getLoss().evaluate(new NDList(y), trainer.forward(new NDList(x))));
    }
    trainer.step();
  }

  /** Rates per id: {@code rate} for each parameter {@code net} has now, {@code others} else. */
  static FixedPerVarTracker perIdRates(Block net, float rate, float others) {
    FixedPerVarTracker.Builder rates = FixedPerVarTracker.builder().setDefaultValue(others);
    for (var p : net.getParameters()) {
      rates.put(p.getValue().getId(), rate);
    }
    return rates.build();
  }

  /**
   * Asserts that two blocks' parameters, in order, hold equal values: a block initialized by hand
   * against the one a surgery drew.
   */
  static void assertSameValues(Block expected, Block actual, String label) {
    List<Parameter> e = new ArrayList<>(expected.getParameters().values());
    List<Parameter> a = new ArrayList<>(actual.getParameters().values());
    assertEquals(e.size(), a.size(), label);
    for (int i = 0; i < e.size(); i++) {
      assertArrayEquals(
          e.get(i).getArray().toFloatArray(),
          a.get(i).getArray().toFloatArray(),
          label + " " + e.get(i).getName());
    }
  }

  /**
   * Asserts the same keys and, under each, the same bits: values or optimizer state a refused or
   * undone surgery must leave as they were.
   */
  static void assertBitsEqual(Map<String, float[]> expected, Map<String, float[]> actual) {
    assertEquals(expected.keySet(), actual.keySet());
    expected.forEach((k, v) -> ExactnessOracle.assertBitsEqual(v, actual.get(k), k));
  }

  /**
   * The engine generator's next eight uniform draws: two runs that drew the same before agree here,
   * so a surgery that moved the generator shows.
   */
  static float[] nextDraw(NDManager manager) {
    try (NDArray draw = manager.randomUniform(0, 1, new Shape(8))) {
      return draw.toFloatArray();
    }
  }

  /** Parameter id to a bitwise copy of its values, in traversal order. */
  static Map<String, float[]> snapshot(Block root) {
    Map<String, float[]> values = new LinkedHashMap<>();
    for (Parameter p : BlockTrees.parametersOf(root)) {
      values.put(p.getId(), ExactnessOracle.floats(p.getArray()));
    }
    return values;
  }

  /** The ids of some parameters, sorted. */
  static Set<String> ids(Parameter... parameters) {
    Set<String> ids = new TreeSet<>();
    for (Parameter p : parameters) {
      ids.add(p.getId());
    }
    return ids;
  }

  /**
   * One step whose loss is the sum of the outputs on an all-ones batch of the model's recorded
   * input shape: gradients keep one sign.
   */
  static void sumStep(Trainer trainer) {
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

  /** The ids the trainer's parameter store holds. */
  static Set<String> storeIds(Trainer trainer) {
    return new TreeSet<>(DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).keySet());
  }

  /** The ids of every parameter of the model. */
  static Set<String> modelIds(Block root) {
    Set<String> ids = new TreeSet<>();
    for (Parameter p : BlockTrees.parametersOf(root)) {
      ids.add(p.getId());
    }
    return ids;
  }

  /** Every optimizer state key, per state field. */
  static Map<String, Set<String>> stateKeys(Trainer trainer) {
    Map<String, Set<String>> keys = new LinkedHashMap<>();
    DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer))
        .forEach((name, state) -> keys.put(name, new TreeSet<>(state.keySet())));
    return keys;
  }
}
