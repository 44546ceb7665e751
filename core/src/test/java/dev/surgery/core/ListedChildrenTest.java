package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Parameter;
import ai.djl.nn.ParameterList;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;

/**
 * A block that lists its children by overriding {@code getChildren()} instead of registering them
 * with {@code addChildBlock}: DJL's own view of the tree (parameters, save, load, the trainer) is
 * what the override returns. The engine must see those children too: find and replace them (the
 * fields the list is built from are written), free the arrays of such a block it replaces, and
 * refuse, with the model as it was, a list it cannot change. The oracle is the same block with its
 * children registered (the engine's usual case) put through the same surgery and the same steps.
 */
class ListedChildrenTest {

  private static final Shape INPUT = new Shape(4, 5);

  /** Keeps its children in fields and lists them from there, never registering them. */
  static final class Listed extends Fixtures.TwoInOrder {
    Listed(Block first, Block second) {
      super(first, second);
    }

    @Override
    public BlockList getChildren() {
      return Fixtures.listOf(first, second);
    }
  }

  /** Outside DJL's AbstractBlock: its children in fields, listed by its getChildren(). */
  static final class BaseListed extends AbstractBaseBlock {
    Block first;
    Block second;

    BaseListed(Block first, Block second) {
      this.first = first;
      this.second = second;
    }

    @Override
    public BlockList getChildren() {
      return Fixtures.listOf(first, second);
    }

    @Override
    public ParameterList getDirectParameters() {
      return new ParameterList();
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return Fixtures.inOrder(first, second, store, inputs, training);
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      Fixtures.initializeInOrder(first, second, manager, dataType, shapes);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return second.getOutputShapes(first.getOutputShapes(inputs));
    }
  }

  /**
   * Lists the children it was built with, whatever its fields hold later, from a place the engine
   * does not look into (a thread-local list).
   */
  static final class ListedOnce extends Fixtures.TwoInOrder {
    private final ThreadLocal<BlockList> built = new ThreadLocal<>();

    ListedOnce(Block first, Block second) {
      super(first, second);
      built.set(Fixtures.listOf(first, second));
    }

    @Override
    public BlockList getChildren() {
      BlockList copy = new BlockList(2);
      copy.addAll(built.get());
      return copy;
    }
  }

  /**
   * Scales its input by one parameter it keeps in a field and lists itself, never registering it.
   */
  static class ListedScale extends AbstractBlock {
    final Parameter scale =
        Parameter.builder()
            .setName("scale")
            .setType(Parameter.Type.WEIGHT)
            .optInitializer(new ConstantInitializer(0.5f))
            .optShape(new Shape(1))
            .build();

    @Override
    public ParameterList getDirectParameters() {
      ParameterList list = new ParameterList();
      list.add("scale", scale);
      return list;
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDArray x = inputs.singletonOrThrow();
      return new NDList(x.mul(store.getValue(scale, x.getDevice(), training)));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  /** The twin: the same parameter registered. */
  static final class RegisteredScale extends ListedScale {
    RegisteredScale() {
      addParameter(scale);
    }

    @Override
    public ParameterList getDirectParameters() {
      return new ParameterList(DjlBlocks.liveParameters(this));
    }
  }

  /**
   * Lists its second child only while it is a TinyDense: a replacement of another class is lost.
   */
  static final class ListedByClass extends Fixtures.TwoInOrder {
    ListedByClass(Block first, Block second) {
      super(first, second);
    }

    @Override
    public BlockList getChildren() {
      BlockList list = new BlockList(2);
      list.add("first", first);
      if (second instanceof TinyDense) {
        list.add("second", second);
      }
      return list;
    }
  }

  /** Registers its first child twice but lists it once, beside its second. */
  static final class ListedOnceRegisteredTwice extends Fixtures.TwoInOrder {
    ListedOnceRegisteredTwice(Block first, Block second) {
      this.first = addChildBlock("first", first);
      addChildBlock("again", first);
      this.second = second;
    }

    @Override
    public BlockList getChildren() {
      return Fixtures.listOf(first, second);
    }
  }

  /** A model, its trainer under Adam, and a batch, all initialized from the same seed. */
  private static final class Run implements AutoCloseable {
    final Fixtures.TwoInOrder inner; // null for a run whose first block is not a pairing
    final Model model;
    final Trainer trainer;
    final NDArray x;
    final NDArray y;

    Run(BiFunction<Block, Block, Fixtures.TwoInOrder> build) {
      this(build.apply(new TinyDense(4), new TinyDense(4)));
    }

    Run(Block first) {
      inner = first instanceof Fixtures.TwoInOrder pairing ? pairing : null;
      model = Model.newInstance("listed");
      model.setBlock(new SequentialBlock().add(first).add(new TinyDense(3)));
      trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss())
                  .optOptimizer(
                      Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build()));
      Engine.getInstance().setRandomSeed(11);
      trainer.initialize(INPUT);
      x = model.getNDManager().randomNormal(INPUT);
      y = model.getNDManager().randomNormal(new Shape(4, 3));
    }

    void step() {
      try (GradientCollector collector = trainer.newGradientCollector()) {
        NDArray loss = trainer.getLoss().evaluate(new NDList(y), trainer.forward(new NDList(x)));
        collector.backward(loss);
      }
      trainer.step();
    }

    List<Parameter> parameters() {
      List<Parameter> all = new ArrayList<>();
      model.getBlock().getParameters().values().forEach(all::add);
      return all;
    }

    /** The ids of the trainer's store: exactly the model's parameters, none left behind. */
    void assertStoreIsTheModel() {
      Set<String> model = new HashSet<>();
      parameters().forEach(p -> model.add(p.getId()));
      Map<String, Object> store = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer));
      assertEquals(model, store.keySet(), "the trainer's store holds exactly the model");
    }

    @Override
    public void close() {
      trainer.close();
      model.close();
    }
  }

  /** Steps both runs {@code steps} times, asserting bit-identical twins after each step. */
  private static void stepTwins(Run subject, Run control, int steps, String past) {
    for (int i = 0; i < steps; i++) {
      subject.step();
      control.step();
      ExactnessOracle.assertTwinsBitIdentical(
          control.parameters(),
          control.trainer,
          subject.parameters(),
          subject.trainer,
          "after step " + (i + 1) + " past the " + past);
    }
  }

  private static Map<Block, Block> copySecond(Run run) {
    return ModuleSurgery.replaceModules(
        run.model.getBlock(),
        Map.<BlockMatcher, ReplacementFunction>of(
            BlockMatcher.byBlock(block -> block == run.inner.second),
            (block, index) -> TinyDense.copying((TinyDense) block)),
        SurgeryOptions.builder().optTrainers(List.of(run.trainer)).build());
  }

  @Test
  void aLayerListedOnlyByGetChildrenIsFoundReplacedAndTrainsAsWhenRegistered() {
    try (Run subject = new Run(Listed::new);
        Run control = new Run(Fixtures.FieldHolder::new)) {
      ExactnessOracle.assertTwinsBitIdentical(
          control.parameters(), control.trainer, subject.parameters(), subject.trainer, "at start");
      assertEquals(
          3, ModuleSurgery.countModuleInstances(subject.model.getBlock(), TinyDense.class));
      for (int i = 0; i < 2; i++) {
        subject.step();
        control.step();
      }
      Block old = subject.inner.second;
      List<NDArray> oldArrays = new ArrayList<>();
      old.getParameters().values().forEach(p -> oldArrays.add(p.getArray()));

      assertEquals(1, copySecond(subject).size());
      assertEquals(1, copySecond(control).size());

      assertNotSame(old, subject.inner.second, "the field the list is built from was written");
      assertSame(subject.inner.second, subject.inner.getChildren().get("second"));
      assertTrue(oldArrays.stream().allMatch(NDArray::isReleased), "the old arrays are freed");
      subject.assertStoreIsTheModel();
      stepTwins(subject, control, 10, "surgery");
    }
  }

  @Test
  void replacingABlockThatListsItsChildrenItselfFreesTheirArraysAndLeavesTheTrainerExact() {
    try (Run subject = new Run(Listed::new);
        Run control = new Run(Fixtures.FieldHolder::new)) {
      subject.step();
      control.step();
      List<NDArray> oldArrays = new ArrayList<>();
      subject.inner.getParameters().values().forEach(p -> oldArrays.add(p.getArray()));
      assertEquals(4, oldArrays.size());

      for (Run run : List.of(subject, control)) {
        Fixtures.TwoInOrder inner = run.inner;
        BiFunction<Block, Block, Fixtures.TwoInOrder> rebuild =
            inner instanceof Listed ? Listed::new : Fixtures.FieldHolder::new;
        ModuleSurgery.replaceModules(
            run.model.getBlock(),
            Map.<BlockMatcher, ReplacementFunction>of(
                BlockMatcher.byBlock(block -> block == inner),
                (block, index) ->
                    rebuild.apply(
                        TinyDense.copying((TinyDense) inner.first),
                        TinyDense.copying((TinyDense) inner.second))),
            SurgeryOptions.builder().optTrainers(List.of(run.trainer)).build());
      }

      assertTrue(
          oldArrays.stream().allMatch(NDArray::isReleased),
          "the replaced block's children's arrays are freed");
      subject.assertStoreIsTheModel();
      stepTwins(subject, control, 10, "surgery");
    }
  }

  @Test
  void aListThatDoesNotFollowItsFieldsIsRefusedWithTheModelAsItWas() {
    try (Run subject = new Run(ListedOnce::new);
        Run control = new Run(ListedOnce::new)) {
      subject.step();
      control.step();
      Block old = subject.inner.second;
      List<NDArray> arrays = new ArrayList<>();
      subject.parameters().forEach(p -> arrays.add(p.getArray()));

      SurgeryException refused = assertThrows(SurgeryException.class, () -> copySecond(subject));

      assertTrue(
          refused.getMessage().contains("overrides getChildren()")
              && refused.getMessage().contains("still lists the old block"),
          refused.getMessage());
      assertEquals("01ListedOnce/second", refused.getBlockPath());
      assertSame(old, subject.inner.second, "the field is put back");
      List<Parameter> now = subject.parameters();
      for (int i = 0; i < arrays.size(); i++) {
        assertSame(arrays.get(i), now.get(i).getArray());
        assertFalse(arrays.get(i).isReleased());
      }
      subject.assertStoreIsTheModel();
      stepTwins(subject, control, 10, "refusal");
    }
  }

  @Test
  void replacingABlockThatListsItsParametersItselfFreesThemAndLeavesTheTrainerExact() {
    ListedScale listed = new ListedScale();
    RegisteredScale registered = new RegisteredScale();
    assertTrue(DjlBlocks.liveParameters(listed).isEmpty(), "never registered");
    try (Run subject = new Run(listed);
        Run control = new Run(registered)) {
      subject.step();
      control.step();
      NDArray old = listed.scale.getArray();
      for (Run run : List.of(subject, control)) {
        Block first = run.model.getBlock().getChildren().valueAt(0);
        ModuleSurgery.replaceModules(
            run.model.getBlock(),
            Map.<BlockMatcher, ReplacementFunction>of(
                BlockMatcher.byBlock(block -> block == first),
                (block, index) ->
                    block instanceof RegisteredScale ? new RegisteredScale() : new ListedScale()),
            SurgeryOptions.builder().optTrainers(List.of(run.trainer)).build());
      }
      assertTrue(old.isReleased(), "the replaced block's own parameter is freed");
      subject.assertStoreIsTheModel();
      stepTwins(subject, control, 10, "surgery");
    }
  }

  @Test
  void aLayerOfABlockOutsideAbstractBlockIsReplacedThroughItsFieldAndTrainsAsWhenRegistered() {
    BaseListed base = new BaseListed(new TinyDense(4), new TinyDense(4));
    try (Run subject = new Run(base);
        Run control = new Run(Fixtures.FieldHolder::new)) {
      subject.step();
      control.step();
      Block old = base.second;
      for (Run run : List.of(subject, control)) {
        Block second = run == subject ? base.second : run.inner.second;
        ModuleSurgery.replaceModules(
            run.model.getBlock(),
            Map.<BlockMatcher, ReplacementFunction>of(
                BlockMatcher.byBlock(block -> block == second),
                (block, index) -> TinyDense.copying((TinyDense) block)),
            SurgeryOptions.builder().optTrainers(List.of(run.trainer)).build());
      }
      assertNotSame(old, base.second, "the field is written");
      assertTrue(old.getParameters().values().stream().allMatch(p -> p.getArray().isReleased()));
      subject.assertStoreIsTheModel();
      stepTwins(subject, control, 10, "surgery");
    }
  }

  @Test
  void aListThatDropsTheReplacementIsRefusedWithTheModelAsItWas() {
    TinyDense second = new TinyDense(4);
    ListedByClass parent = new ListedByClass(new TinyDense(4), second);
    SequentialBlock root = new SequentialBlock().add(parent);
    SurgeryException refused =
        assertThrows(
            SurgeryException.class,
            () ->
                ModuleSurgery.replaceModules(
                    root,
                    Map.<BlockMatcher, ReplacementFunction>of(
                        BlockMatcher.byBlock(block -> block == second),
                        (block, index) -> ai.djl.nn.core.Linear.builder().setUnits(4).build()),
                    SurgeryOptions.defaults()));
    assertTrue(
        refused.getMessage().contains("does not list the replacement"), refused.getMessage());
    assertSame(second, parent.second, "the field is put back");
  }

  @Test
  void aBlockRegisteredTwiceButListedOnceIsWrittenInEveryRegisteredPlace() {
    TinyDense first = new TinyDense(4);
    ListedOnceRegisteredTwice parent = new ListedOnceRegisteredTwice(first, new TinyDense(4));
    SequentialBlock root = new SequentialBlock().add(parent);
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.<BlockMatcher, ReplacementFunction>of(
                BlockMatcher.byBlock(block -> block == first), (block, index) -> new TinyDense(4)),
            SurgeryOptions.defaults());
    Block replacement = replaced.get(first);
    assertSame(replacement, parent.first);
    assertEquals(
        List.of(replacement, replacement),
        DjlBlocks.registeredChildren(parent).values(),
        "both registered places hold the replacement");
  }

  /**
   * Under recursion a block may come back to the place it left (A, then B, then A again): the
   * parent that lists its children itself then lists A, which stands for itself, and the check of
   * such lists must not take it for a stale old block.
   */
  @Test
  void aRecursionThatPutsTheBlockBackPassesTheCheckOfTheParentsList() {
    TinyDense first = new TinyDense(4);
    TinyDense second = new TinyDense(4);
    Listed parent = new Listed(first, second);
    SequentialBlock root = new SequentialBlock().add(parent);
    TinyDense[] stand = new TinyDense[1];
    Map<BlockMatcher, ReplacementFunction> policies = new java.util.LinkedHashMap<>();
    policies.put((block, path) -> block == first, (block, i) -> stand[0] = new TinyDense(4));
    policies.put((block, path) -> block == stand[0], (block, i) -> first);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root, policies, SurgeryOptions.builder().optRecurseOnReplacements(true).build());

    assertEquals(2, replaced.size(), "the block and its stand-in were both replaced");
    assertSame(stand[0], replaced.get(first));
    assertSame(first, replaced.get(stand[0]));
    assertSame(first, parent.first, "the block is back in its field");
    assertEquals(List.of(first, second), parent.getChildren().values());
  }
}
