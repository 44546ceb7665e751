package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import ai.djl.util.PairList;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A parent whose forward reaches a child through a holder the engine cannot write (a Pair, an
 * Optional, a Map.Entry, an AtomicReference, a PairList, a Map key, a field of an interface type,
 * concrete classes of these such as a HashMap's keys, an AbstractMap.SimpleEntry or a list in a
 * field declared Iterable; a record or box class of the program's own, a WeakReference, an
 * AtomicReferenceArray, a lambda that captured it, a list of lists, an array of arrays, a static
 * field) would keep calling the old block after a "successful" surgery: the surgery is refused,
 * naming the block, the parent's class and field, and leaves tree, values and trainer as they were.
 */
class UnwritableHolderTest {

  private static final Shape INPUT = new Shape(2, 5);

  /** An interface a block may implement, so that a field of its type can hold the block. */
  interface Layer {}

  /** A TinyDense-like block behind an interface type. */
  static final class InterfaceDense extends AbstractBlock implements Layer {
    final Block inner = addChildBlock("inner", new TinyDense(5));

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return inner.forward(store, inputs, training);
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      inner.initialize(manager, dataType, shapes);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  /**
   * Runs a registered child that it reaches through a holder, then a plain child: the forward calls
   * whatever the holder holds, not the children list.
   */
  abstract static class HolderParent extends AbstractBlock {
    final Block plain;

    HolderParent(Block plain) {
      this.plain = plain;
    }

    /**
     * Registers {@code held} and then the plain child, the order every parent's forward runs them
     * in, and returns {@code held} for the subclass's holder.
     */
    final Block registerChildren(Block held) {
      addChildBlock("held", held);
      addChildBlock("plain", plain);
      return held;
    }

    /** The child as the holder holds it now. */
    abstract Block held();

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return plain.forward(store, held().forward(store, inputs, training), training);
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      held().initialize(manager, dataType, shapes);
      plain.initialize(manager, dataType, shapes);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  static final class PairParent extends HolderParent {
    final Pair<String, Block> pair;

    PairParent(Block held, Block plain) {
      super(plain);
      pair = new Pair<>("held", registerChildren(held));
    }

    @Override
    Block held() {
      return pair.getValue();
    }
  }

  /**
   * Holds the child behind another block in a Pair (the plain child as its key): a search that
   * stopped at the first block it met would not see the child.
   */
  static final class BehindPairParent extends HolderParent {
    final Pair<Block, Block> behind;

    BehindPairParent(Block held, Block plain) {
      super(plain);
      behind = new Pair<>(plain, registerChildren(held));
    }

    @Override
    Block held() {
      return behind.getValue();
    }
  }

  static final class OptionalParent extends HolderParent {
    final Optional<Block> maybe;

    OptionalParent(Block held, Block plain) {
      super(plain);
      maybe = Optional.of(registerChildren(held));
    }

    @Override
    Block held() {
      return maybe.get();
    }
  }

  static final class EntryParent extends HolderParent {
    final Map.Entry<Block, String> entry;

    EntryParent(Block held, Block plain) {
      super(plain);
      entry = new AbstractMap.SimpleEntry<>(registerChildren(held), "held");
    }

    @Override
    Block held() {
      return entry.getKey();
    }
  }

  static final class ReferenceParent extends HolderParent {
    final AtomicReference<Block> reference;

    ReferenceParent(Block held, Block plain) {
      super(plain);
      reference = new AtomicReference<>(registerChildren(held));
    }

    @Override
    Block held() {
      return reference.get();
    }
  }

  static final class PairListParent extends HolderParent {
    final PairList<String, Block> pairs = new PairList<>();

    PairListParent(Block held, Block plain) {
      super(plain);
      pairs.add("held", registerChildren(held));
    }

    @Override
    Block held() {
      return pairs.get("held");
    }
  }

  /** Keys a map by its child: the engine writes map values, not keys. */
  static final class MapKeyParent extends HolderParent {
    final Map<Block, Integer> order = new LinkedHashMap<>();

    MapKeyParent(Block held, Block plain) {
      super(plain);
      order.put(registerChildren(held), 0);
    }

    @Override
    Block held() {
      return order.keySet().iterator().next();
    }
  }

  /** An Object field that holds a Pair: one level into the holder is looked at. */
  static final class ObjectPairParent extends HolderParent {
    final Object stash;

    ObjectPairParent(Block held, Block plain) {
      super(plain);
      stash = new Pair<>(registerChildren(held), "held");
    }

    @Override
    @SuppressWarnings("unchecked")
    Block held() {
      return ((Pair<Block, String>) stash).getKey();
    }
  }

  static final class InterfaceParent extends HolderParent {
    final Layer layer;

    InterfaceParent(Block held, Block plain) {
      super(plain);
      layer = (Layer) registerChildren(held);
    }

    @Override
    Block held() {
      return (Block) layer;
    }
  }

  /** Keys a concrete map class by its child (declared HashMap, not Map). */
  static final class HashMapKeyParent extends HolderParent {
    final java.util.HashMap<Block, String> byBlock = new java.util.HashMap<>();

    HashMapKeyParent(Block held, Block plain) {
      super(plain);
      byBlock.put(registerChildren(held), "held");
    }

    @Override
    Block held() {
      return byBlock.keySet().iterator().next();
    }
  }

  /** A concrete entry class (declared AbstractMap.SimpleEntry, not Map.Entry). */
  static final class SimpleEntryParent extends HolderParent {
    final AbstractMap.SimpleEntry<String, Block> named;

    SimpleEntryParent(Block held, Block plain) {
      super(plain);
      named = new AbstractMap.SimpleEntry<>("held", registerChildren(held));
    }

    @Override
    Block held() {
      return named.getValue();
    }
  }

  /** A list in a field declared Iterable: the engine writes Collection fields, not this one. */
  static final class IterableParent extends HolderParent {
    final Iterable<Block> layers;

    IterableParent(Block held, Block plain) {
      super(plain);
      layers = new ArrayList<>(List.of(registerChildren(held)));
    }

    @Override
    Block held() {
      return layers.iterator().next();
    }
  }

  /** A Set field: a collection the engine writes (in place of the old element). */
  static final class SetParent extends HolderParent {
    final Set<Block> layers = new LinkedHashSet<>();

    SetParent(Block held, Block plain) {
      super(plain);
      layers.add(registerChildren(held));
    }

    @Override
    Block held() {
      return layers.iterator().next();
    }
  }

  /** A record of the program's own holding the child. */
  record Slot(Block block) {}

  static final class RecordParent extends HolderParent {
    final Slot slot;

    RecordParent(Block held, Block plain) {
      super(plain);
      slot = new Slot(registerChildren(held));
    }

    @Override
    Block held() {
      return slot.block();
    }
  }

  /** A plain box class of the program's own. */
  static final class Box {
    Block inside;
  }

  static final class BoxParent extends HolderParent {
    final Box box = new Box();

    BoxParent(Block held, Block plain) {
      super(plain);
      box.inside = registerChildren(held);
    }

    @Override
    Block held() {
      return box.inside;
    }
  }

  static final class WeakParent extends HolderParent {
    final java.lang.ref.WeakReference<Block> weak;

    WeakParent(Block held, Block plain) {
      super(plain);
      weak = new java.lang.ref.WeakReference<>(registerChildren(held));
    }

    @Override
    Block held() {
      return weak.get();
    }
  }

  static final class CellsParent extends HolderParent {
    final java.util.concurrent.atomic.AtomicReferenceArray<Block> cells =
        new java.util.concurrent.atomic.AtomicReferenceArray<>(1);

    CellsParent(Block held, Block plain) {
      super(plain);
      cells.set(0, registerChildren(held));
    }

    @Override
    Block held() {
      return cells.get(0);
    }
  }

  /** A lambda that captured the child, in a field of a functional interface. */
  static final class LambdaParent extends HolderParent {
    final java.util.function.Supplier<Block> source;

    LambdaParent(Block held, Block plain) {
      super(plain);
      Block child = registerChildren(held);
      source = () -> child;
    }

    @Override
    Block held() {
      return source.get();
    }
  }

  /** The child in a list of lists: the writes reach the outer list only. */
  static final class NestedListParent extends HolderParent {
    final List<List<Block>> groups = new ArrayList<>();

    NestedListParent(Block held, Block plain) {
      super(plain);
      groups.add(new ArrayList<>(List.of(registerChildren(held))));
    }

    @Override
    Block held() {
      return groups.get(0).get(0);
    }
  }

  /** The child in an array of arrays. */
  static final class NestedArrayParent extends HolderParent {
    final Block[][] grid;

    NestedArrayParent(Block held, Block plain) {
      super(plain);
      grid = new Block[][] {{registerChildren(held)}};
    }

    @Override
    Block held() {
      return grid[0][0];
    }
  }

  /** The child in a static field: shared by every instance, never written. */
  static final class StaticParent extends HolderParent {
    static Block shared;

    StaticParent(Block held, Block plain) {
      super(plain);
      shared = registerChildren(held);
    }

    @Override
    Block held() {
      return shared;
    }
  }

  /** A static map: the engine writes an instance's maps, never a class's. */
  static final class StaticMapParent extends HolderParent {
    static final Map<String, Block> REGISTRY = new HashMap<>();

    StaticMapParent(Block held, Block plain) {
      super(plain);
      REGISTRY.put("held", registerChildren(held));
    }

    @Override
    Block held() {
      return REGISTRY.get("held");
    }
  }

  /** A static array: the engine writes an instance's arrays, never a class's. */
  static final class StaticArrayParent extends HolderParent {
    static final Block[] SLOTS = new Block[1];

    StaticArrayParent(Block held, Block plain) {
      super(plain);
      SLOTS[0] = registerChildren(held);
    }

    @Override
    Block held() {
      return SLOTS[0];
    }
  }

  /** One holder: how to build its parent, and the words the refusal must use. */
  record Case(
      String holder,
      String field,
      java.util.function.BiFunction<Block, Block, HolderParent> parent,
      boolean interfaceChild) {
    @Override
    public String toString() {
      return holder;
    }
  }

  static Stream<Case> refusedHolders() {
    return Stream.of(
        new Case("inside a Pair", "pair", PairParent::new, false),
        new Case("inside a Pair", "behind", BehindPairParent::new, false),
        new Case("inside an Optional", "maybe", OptionalParent::new, false),
        new Case("inside a Map.Entry", "entry", EntryParent::new, false),
        new Case("inside an AtomicReference", "reference", ReferenceParent::new, false),
        new Case("inside a PairList", "pairs", PairListParent::new, false),
        new Case("as a key of a Map", "order", MapKeyParent::new, false),
        new Case("inside a Pair", "stash", ObjectPairParent::new, false),
        new Case("as a key of a Map", "byBlock", HashMapKeyParent::new, false),
        new Case("inside a Map.Entry", "named", SimpleEntryParent::new, false),
        new Case(
            "in a collection the surgery does not write", "layers", IterableParent::new, false),
        new Case(
            "in a field of type " + Layer.class.getName(), "layer", InterfaceParent::new, true),
        new Case(
            "inside a " + Slot.class.getName() + " (its field 'block')",
            "slot",
            RecordParent::new,
            false),
        new Case(
            "inside a " + Box.class.getName() + " (its field 'inside')",
            "box",
            BoxParent::new,
            false),
        new Case("inside a WeakReference", "weak", WeakParent::new, false),
        new Case("inside an AtomicReferenceArray", "cells", CellsParent::new, false),
        new Case("captured by a lambda", "source", LambdaParent::new, false),
        new Case("in a collection nested in a collection", "groups", NestedListParent::new, false),
        new Case(
            "in a collection or array nested in an array", "grid", NestedArrayParent::new, false),
        new Case("in a field of type " + Block.class.getName(), "shared", StaticParent::new, false),
        new Case("in a Map the surgery does not write", "REGISTRY", StaticMapParent::new, false),
        new Case("in an array the surgery does not write", "SLOTS", StaticArrayParent::new, false));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("refusedHolders")
  void aChildInAnUnwritableHolderRefusesTheWholeSurgery(Case c) {
    Block held = c.interfaceChild() ? new InterfaceDense() : new TinyDense(5);
    TinyDense plain = new TinyDense(5);
    // A second, writable replacement in the same surgery: the refusal must undo it too.
    TinyDense first = new TinyDense(5);
    HolderParent parent = c.parent().apply(held, plain);
    Fixtures.FieldHolder root = new Fixtures.FieldHolder(first, parent);
    try (Model model = TinyModels.model("holder", root);
        Trainer trainer = model.newTrainer(adam())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      List<Block> childrenBefore = new ArrayList<>(parent.getChildren().values());
      Map<String, float[]> valuesBefore = Fixtures.snapshot(root);
      Set<String> storeBefore = Fixtures.storeIds(trainer);
      Map<String, float[]> stateBefore = ExactnessOracle.optimizerStateValues(trainer);

      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put((block, path) -> block == first || block == held, (block, index) -> fresh(c));
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModules(
                      root,
                      policies,
                      SurgeryOptions.builder().optTrainers(List.of(trainer)).build()));

      String message = e.getMessage();
      assertTrue(message.contains("02second/01held"), message); // the block path
      assertTrue(message.contains(parent.getClass().getName()), message);
      assertTrue(message.contains("'" + c.field() + "'"), message);
      assertTrue(message.contains(c.holder()), message);
      assertTrue(message.contains("a field of type Block, a List, an array or a Map"), message);
      // All or nothing: the other replacement is undone, nothing changed in values or trainer.
      assertSame(first, root.first);
      assertSame(first, root.getChildren().valueAt(0));
      assertEquals(childrenBefore, new ArrayList<>(parent.getChildren().values()));
      assertSame(held, parent.held());
      Fixtures.assertBitsEqual(valuesBefore, Fixtures.snapshot(root));
      assertEquals(storeBefore, Fixtures.storeIds(trainer));
      Fixtures.assertBitsEqual(stateBefore, ExactnessOracle.optimizerStateValues(trainer));
      Fixtures.sumStep(trainer);
    }
  }

  @Test
  void aHolderThatDoesNotHoldTheReplacedBlockIsNoObstacle() {
    TinyDense held = new TinyDense(5);
    TinyDense plain = new TinyDense(5);
    PairParent parent = new PairParent(held, plain);
    Fixtures.FieldHolder root = rootOver(parent);
    try (NDManager manager = NDManager.newBaseManager()) {
      root.initialize(manager, DataType.FLOAT32, INPUT);
      Map<Block, Block> replaced = replaceByFreshDense(root, plain);
      assertSame(replaced.get(plain), parent.getChildren().valueAt(1));
      assertSame(replaced.get(plain), parent.plain, "the Block field is written");
      assertSame(held, parent.held());
    }
  }

  /** A mode of the program's own, in a field of a parent: an enum holds no block. */
  enum Mode {
    FAST,
    SLOW
  }

  /** A parent with an enum field and a Random of its own beside a plain Block field. */
  static final class ModalParent extends HolderParent {
    final Mode mode = Mode.FAST;
    final java.util.Random random = new java.util.Random(1) {};
    final Block child;

    ModalParent(Block held, Block plain) {
      super(plain);
      child = registerChildren(held);
    }

    @Override
    Block held() {
      return child;
    }
  }

  /**
   * Fields of types that hold no block, an enum (whose fields are the JDK's) and a subclass of a
   * JDK class, are no obstacle: looking into them failed every surgery below such a parent ("Unable
   * to make field ... java.lang.Enum.name accessible").
   */
  @Test
  void anEnumOrAJdkSubclassFieldIsNoObstacle() {
    TinyDense held = new TinyDense(5);
    ModalParent parent = new ModalParent(held, new TinyDense(5));
    Fixtures.FieldHolder root = rootOver(parent);
    Map<Block, Block> replaced = replaceByFreshDense(root, held);
    assertSame(replaced.get(held), parent.held(), "the Block field is written");
  }

  @Test
  void aSetFieldIsWrittenNotRefused() {
    TinyDense held = new TinyDense(5);
    SetParent parent = new SetParent(held, new TinyDense(5));
    Fixtures.FieldHolder root = rootOver(parent);
    Map<Block, Block> replaced = replaceByFreshDense(root, held);
    Block replacement = replaced.get(held);
    assertNotSame(held, replacement);
    assertSame(replacement, parent.held(), "the Set's element is the replacement");
  }

  /** A collection of words that counts how often it is walked. */
  static final class CountedWords extends java.util.AbstractCollection<Object> {
    final List<Object> words = new ArrayList<>();
    int walks;

    @Override
    public java.util.Iterator<Object> iterator() {
      walks++;
      return words.iterator();
    }

    @Override
    public int size() {
      return words.size();
    }
  }

  /** A parent with a large collection in a field the writes do not reach (declared Iterable). */
  static final class VocabularyParent extends HolderParent {
    final Iterable<Object> vocabulary;
    final Block child;

    VocabularyParent(Block held, Block plain, Iterable<Object> vocabulary) {
      super(plain);
      this.vocabulary = vocabulary;
      child = registerChildren(held);
    }

    @Override
    Block held() {
      return child;
    }
  }

  /**
   * A parent's field the writes do not reach is searched once by the parents' check, however many
   * of the parent's children are replaced (it was searched in full once per child: a large
   * vocabulary and 32 replaced children took seconds), and once more by the tie step, whose
   * question is another.
   */
  @Test
  void aParentsLargeFieldIsSearchedOncePerSurgery() {
    CountedWords vocabulary = new CountedWords();
    for (int i = 0; i < 1000; i++) {
      vocabulary.words.add("word" + i);
    }
    TinyDense held = new TinyDense(5);
    TinyDense plain = new TinyDense(5);
    VocabularyParent parent = new VocabularyParent(held, plain, vocabulary);
    Fixtures.FieldHolder root = rootOver(parent);
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put((block, path) -> block == held || block == plain, (b, index) -> new TinyDense(5));
    Map<Block, Block> replaced = ModuleSurgery.replaceModules(root, policies, noTrainer());
    assertEquals(2, replaced.size());
    assertSame(replaced.get(held), parent.held());
    assertSame(replaced.get(plain), parent.plain);
    assertEquals(
        2, vocabulary.walks, "the parents' check once for both children, the tie step once");
  }

  /** The parent as the second child of a field holder whose first child is a fresh layer. */
  private static Fixtures.FieldHolder rootOver(HolderParent parent) {
    return new Fixtures.FieldHolder(new TinyDense(5), parent);
  }

  /** Replaces {@code target} alone by a fresh TinyDense, with no trainer. */
  private static Map<Block, Block> replaceByFreshDense(Block root, Block target) {
    return ModuleSurgery.replaceModules(
        root, Fixtures.replacing(target, (block, index) -> new TinyDense(5)), noTrainer());
  }

  private static Block fresh(Case c) {
    return c.interfaceChild() ? new InterfaceDense() : new TinyDense(5);
  }

  private static SurgeryOptions noTrainer() {
    return SurgeryOptions.builder().build();
  }

  private static DefaultTrainingConfig adam() {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
  }
}
