package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import dev.surgery.core.internal.BlockFields;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Weight tying across branches: a block that calls a layer held elsewhere in the tree, keeping it
 * in a field without being its parent. Replacing the layer must reach that field too (or refuse,
 * where the field cannot be written), or the tying block's forward keeps calling the old layer,
 * whose arrays the surgery frees. The oracle of the written case is a model built tied to the
 * replacement from the start, trained on the same batches, step by step.
 */
class TiedBlockTest {

  private static final Shape INPUT = new Shape(2, 5);

  /** Calls a layer it does not own (held elsewhere), then its own child. */
  static class TiedHead extends AbstractBlock {
    Block tied;
    Block own;

    TiedHead(Block tied, Block own) {
      this.tied = tied;
      this.own = addChildBlock("own", own);
    }

    Block tied() {
      return tied;
    }

    /** Makes a block its child too (a parent that also keeps it in a field). */
    void adopt(String name, Block child) {
      addChildBlock(name, child);
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return own.forward(store, tied().forward(store, inputs, training), training);
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
      own.initialize(manager, dataType, shapes); // the tied layer is initialized by its parent
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  /** Keeps the tied layer in a list. */
  static final class ListTiedHead extends TiedHead {
    final List<Block> tiedLayers = new ArrayList<>();

    ListTiedHead(Block tied, Block own) {
      super(null, own);
      tiedLayers.add(tied);
    }

    @Override
    Block tied() {
      return tiedLayers.get(0);
    }
  }

  /** Keeps two tied layers in one list and calls both, in the list's order. */
  static final class TwoTiedListHead extends TiedHead {
    final List<Block> tiedLayers = new ArrayList<>();

    TwoTiedListHead(Block first, Block second, Block own) {
      super(null, own);
      tiedLayers.add(first);
      tiedLayers.add(second);
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDList x = inputs;
      for (Block b : tiedLayers) {
        x = b.forward(store, x, training);
      }
      return own.forward(store, x, training);
    }
  }

  /** Keeps the tied layer in an Optional, which the engine cannot write. */
  static final class OptionalTiedHead extends TiedHead {
    final Optional<Block> maybe;

    OptionalTiedHead(Block tied, Block own) {
      super(null, own);
      maybe = Optional.of(tied);
    }

    @Override
    Block tied() {
      return maybe.get();
    }
  }

  /** Keeps the tied layer two holders deep: a list of optionals. */
  static final class NestedTiedHead extends TiedHead {
    final List<Optional<Block>> slots = new ArrayList<>();

    NestedTiedHead(Block tied, Block own) {
      super(null, own);
      slots.add(Optional.of(tied));
    }

    @Override
    Block tied() {
      return slots.get(0).get();
    }
  }

  /** Keeps the tied layer in an access-ordered map, between two other entries. */
  static final class AccessOrderTiedHead extends TiedHead {
    final Map<String, Object> byName = new LinkedHashMap<>(16, 0.75f, true);

    AccessOrderTiedHead(Block tied, Block own) {
      super(null, own);
      byName.put("a", "first");
      byName.put("tied", tied);
      byName.put("b", "last");
    }

    @Override
    Block tied() {
      return (Block) byName.get("tied");
    }
  }

  /** Wraps a layer: holds it in a field and as its child (a replacement around the old block). */
  static final class Wrapper extends TiedHead {
    Wrapper(Block inner) {
      super(null, inner);
      tied = inner;
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return tied.forward(store, inputs, training);
    }
  }

  /** Keeps the tied layer in a list typed for its class. */
  static final class TypedListTiedHead extends TiedHead {
    final List<TinyDense> layers = new ArrayList<>();

    TypedListTiedHead(TinyDense tied, Block own) {
      super(null, own);
      layers.add(tied);
    }

    @Override
    Block tied() {
      return layers.get(0);
    }
  }

  /** Holds the tied layer in a box reached both directly and at the end of a long chain. */
  static final class DeepTiedHead extends TiedHead {
    final Object[] extra;

    DeepTiedHead(Block tied, Block own) {
      super(null, own);
      // Two holders deep in the box: met first at the chain's end, the inner list lies past the
      // search's depth; met by the short path, it is found.
      List<List<Block>> box = new ArrayList<>(List.of(new ArrayList<>(List.of(tied))));
      Object chain = box;
      for (int i = 0; i < 6; i++) {
        chain = new ArrayList<>(List.of(chain));
      }
      extra = new Object[] {chain, new Object[] {box}};
    }

    @Override
    @SuppressWarnings("unchecked")
    Block tied() {
      return ((List<List<Block>>) ((Object[]) extra[1])[0]).get(0).get(0);
    }
  }

  /** Keeps functions it never calls in forward: a comparator, instance and static. */
  static final class SortingHead extends TiedHead {
    static final java.util.Comparator<String> BY_LENGTH =
        java.util.Comparator.comparing(String::length);
    final java.util.Comparator<String> order = java.util.Comparator.comparing(String::length);

    SortingHead(Block tied, Block own) {
      super(tied, own);
    }
  }

  /** {@code encoder(layer) -> head}, the head (a tying block or a caller) tied to the layer. */
  private static SequentialBlock tiedModel(TinyDense layer, Block head) {
    return new SequentialBlock().add(new SequentialBlock().add(layer)).add(head);
  }

  @Test
  void aBlockFieldTyingTheReplacedLayerIsPointedAtTheReplacementAndTrainsLikeAModelBuiltThatWay() {
    assertTiedFieldRewritten(false);
  }

  @Test
  void aListTyingTheReplacedLayerIsWrittenToo() {
    assertTiedFieldRewritten(true);
  }

  private static void assertTiedFieldRewritten(boolean inList) {
    TinyDense layer = new TinyDense(5);
    TinyDense own = new TinyDense(5);
    TiedHead head = inList ? new ListTiedHead(layer, own) : new TiedHead(layer, own);
    SequentialBlock root = tiedModel(layer, head);
    try (Model model = TinyModels.model("tied", root);
        Trainer trainer = model.newTrainer(sgd())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Fixtures.sumStep(trainer);

      TinyDense[] made = new TinyDense[1];
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(layer, (block, i) -> made[0] = TinyDense.copying(layer));
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(root, policies, withTrainer(trainer));

      assertEquals(Map.of(layer, made[0]), replaced);
      assertSame(made[0], head.tied(), "the tying field follows the replacement");
      assertSame(
          made[0], ((SequentialBlock) root.getChildren().valueAt(0)).getChildren().valueAt(0));
      assertTrue(layer.getWeight().getArray().isReleased(), "the old layer's arrays are freed");

      // The oracle: the same structure built tied to a layer holding the replacement's values.
      TinyDense controlLayer = new TinyDense(5);
      TinyDense controlOwn = new TinyDense(5);
      TiedHead controlHead =
          inList
              ? new ListTiedHead(controlLayer, controlOwn)
              : new TiedHead(controlLayer, controlOwn);
      SequentialBlock controlRoot = tiedModel(controlLayer, controlHead);
      try (Model control = TinyModels.model("tied-control", controlRoot);
          Trainer controlTrainer = control.newTrainer(sgd())) {
        controlTrainer.initialize(INPUT);
        copyValues(root, controlRoot);
        // A trajectory, not one step: every step's values equal, bit for bit, and finite.
        for (int step = 0; step < 10; step++) {
          Fixtures.sumStep(trainer);
          Fixtures.sumStep(controlTrainer);
          List<float[]> expected = values(controlRoot);
          List<float[]> actual = values(root);
          assertEquals(expected.size(), actual.size());
          for (int i = 0; i < expected.size(); i++) {
            String where = "step " + step + ", parameter " + i;
            ExactnessOracle.assertBitsEqual(expected.get(i), actual.get(i), where);
            for (float v : actual.get(i)) {
              assertTrue(Float.isFinite(v), where);
            }
          }
        }
      }
    }
  }

  @Test
  void aFailedSurgeryPutsTheTyingFieldBack() {
    TinyDense layer = new TinyDense(5);
    TinyDense own = new TinyDense(5);
    TiedHead head = new TiedHead(layer, own);
    SequentialBlock root = tiedModel(layer, head);
    try (Model model = TinyModels.model("tied", root);
        Trainer trainer = model.newTrainer(sgd())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Map<String, float[]> valuesBefore = Fixtures.snapshot(root);
      Set<String> storeBefore = Fixtures.storeIds(trainer);

      // The second replacement changes the output shape: refused when the replacements are placed,
      // after the tying field was written.
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(
              layer, (block, i) -> TinyDense.copying(layer), own, (block, i) -> new TinyDense(4));
      SurgeryException e = assertReplaceRefused(root, policies, withTrainer(trainer));

      assertTrue(e.getMessage().contains("shape"), e.getMessage());
      assertSame(layer, head.tied());
      assertSame(layer, ((SequentialBlock) root.getChildren().valueAt(0)).getChildren().valueAt(0));
      assertFalse(layer.getWeight().getArray().isReleased());
      Map<String, float[]> valuesAfter = Fixtures.snapshot(root);
      Fixtures.assertBitsEqual(valuesBefore, valuesAfter);
      assertEquals(storeBefore, Fixtures.storeIds(trainer));
      Fixtures.sumStep(trainer); // still trains on the old layer
    }
  }

  @Test
  void aPlanDoesNotMoveTheTyingField() {
    TinyDense layer = new TinyDense(5);
    TiedHead head = new TiedHead(layer, new TinyDense(5));
    SequentialBlock root = tiedModel(layer, head);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new TinyDense(5));

    SurgeryPlan plan = ModuleSurgery.plan(root, policies, SurgeryOptions.defaults());

    assertEquals(1, plan.steps().size());
    assertSame(layer, head.tied());
  }

  @Test
  void aTieTheEngineCannotWriteRefusesTheSurgeryNamingBothBlocks() {
    TinyDense layer = new TinyDense(5);
    TiedHead optionalHead = new OptionalTiedHead(layer, new TinyDense(5));
    SequentialBlock root = tiedModel(layer, optionalHead);
    assertRefusedUnchanged(root, layer, "02OptionalTiedHead", "inside an Optional", "maybe");
  }

  @Test
  void aTieNestedTwoHoldersDeepRefusesTheSurgery() {
    TinyDense layer = new TinyDense(5);
    SequentialBlock root = tiedModel(layer, new NestedTiedHead(layer, new TinyDense(5)));
    assertRefusedUnchanged(root, layer, "02NestedTiedHead", "nested inside", "slots");
  }

  @Test
  void aLambdaBlockRunningAComposedFunctionThatCapturedTheLayerRefusesTheSurgery() {
    TinyDense layer = new TinyDense(5);
    java.util.function.Function<NDList, NDList> call =
        x -> layer.forward(new ParameterStore(), x, false);
    java.util.function.Function<NDList, NDList> then = x -> x;
    // java.base does not open the package of andThen's lambda: what it captured cannot be read.
    assertUnreadableRefused(
        layer, new LambdaBlock(call.andThen(then), "composed"), "02LambdaBlock");
  }

  /**
   * Replaces {@code layer} in a model where {@code runner} runs a function the engine cannot look
   * into: refused, naming the field and {@code named}, the model unchanged.
   */
  private static void assertUnreadableRefused(TinyDense layer, Block runner, String named) {
    SequentialBlock root = tiedModel(layer, runner);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new TinyDense(5));

    SurgeryException e = assertReplaceRefused(root, policies);
    String message = e.getMessage();
    assertTrue(message.contains(named), message);
    assertTrue(message.contains("LambdaBlock.lambda"), message);
    assertTrue(message.contains("cannot look into"), message);
    assertSame(layer, root.getChildren().valueAt(0).getChildren().valueAt(0));
  }

  /** An invocation handler of the program's own that calls the layer it holds. */
  static final class CallingHandler implements java.lang.reflect.InvocationHandler {
    final TinyDense layer;

    CallingHandler(TinyDense layer) {
      this.layer = layer;
    }

    @Override
    public Object invoke(Object proxy, java.lang.reflect.Method method, Object[] args) {
      return layer.forward(new ParameterStore(), (NDList) args[0], false);
    }
  }

  /**
   * An outside tester: a LambdaBlock running a {@code java.lang.reflect.Proxy} whose handler calls
   * the layer was taken for an object looked at, not into: the surgery replaced the layer and the
   * proxy kept calling the old one, silently (a weight copy: the freed arrays at the next forward).
   * The handler is looked into as any holder of the program's own.
   */
  @Test
  @SuppressWarnings("unchecked")
  void aLambdaBlockRunningAProxyWhoseHandlerHoldsTheLayerRefusesTheSurgery() {
    TinyDense layer = new TinyDense(5);
    java.util.function.Function<NDList, NDList> call =
        (java.util.function.Function<NDList, NDList>)
            java.lang.reflect.Proxy.newProxyInstance(
                getClass().getClassLoader(),
                new Class<?>[] {java.util.function.Function.class},
                new CallingHandler(layer));
    SequentialBlock root = tiedModel(layer, new LambdaBlock(call, "proxy"));
    assertRefusedUnchanged(
        root, layer, "02LambdaBlock", "held by the invocation handler of a", "lambda");
  }

  /**
   * The same through {@code MethodHandleProxies}: the JDK's handler holds a method handle bound to
   * the layer, which nothing can read: refused as a function the engine cannot look into.
   */
  @Test
  @SuppressWarnings("unchecked")
  void aLambdaBlockRunningAMethodHandleProxyRefusesTheSurgery() throws Exception {
    TinyDense layer = new TinyDense(5);
    java.lang.invoke.MethodHandle forward =
        java.lang.invoke.MethodHandles.lookup()
            .findStatic(
                TiedBlockTest.class,
                "forwardThrough",
                java.lang.invoke.MethodType.methodType(NDList.class, TinyDense.class, NDList.class))
            .bindTo(layer);
    java.util.function.Function<NDList, NDList> call =
        java.lang.invoke.MethodHandleProxies.asInterfaceInstance(
            java.util.function.Function.class, forward);
    // JDK 17 to 21 make it a java.lang.reflect.Proxy; JDK 22 and later a hidden class of their
    // own (jdk.MHProxy1.Function/0x...), which the refusal names instead.
    String named =
        java.lang.reflect.Proxy.isProxyClass(call.getClass())
            ? "java.lang.reflect.Proxy"
            : call.getClass().getName();
    assertUnreadableRefused(layer, new LambdaBlock(call, "method handle proxy"), named);
  }

  /** A handler of the program's own that holds no block: an enum singleton. */
  enum IdentityHandler implements java.lang.reflect.InvocationHandler {
    INSTANCE;

    @Override
    public Object invoke(Object proxy, java.lang.reflect.Method method, Object[] args) {
      return args[0];
    }
  }

  /**
   * A reviewer: a proxy whose handler is an enum of the program's own, or a lambda that captured an
   * annotation instance (a JDK proxy), holds no block, yet every surgery on the model was refused
   * as calling a function the engine cannot look into.
   */
  @Test
  @SuppressWarnings("unchecked")
  void proxiesThatHoldNoBlockDoNotStopASurgery() {
    TinyDense layer = new TinyDense(5);
    java.util.function.Function<NDList, NDList> identity =
        (java.util.function.Function<NDList, NDList>)
            java.lang.reflect.Proxy.newProxyInstance(
                getClass().getClassLoader(),
                new Class<?>[] {java.util.function.Function.class},
                IdentityHandler.INSTANCE);
    Deprecated annotation = Dummy.class.getAnnotation(Deprecated.class);
    java.util.function.Function<NDList, NDList> annotated = x -> annotation.forRemoval() ? null : x;
    SequentialBlock root =
        new SequentialBlock()
            .add(layer)
            .add(new LambdaBlock(identity, "proxy"))
            .add(new LambdaBlock(annotated, "annotation"));
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new TinyDense(5));
    assertEquals(1, ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults()).size());
  }

  @Deprecated
  private static final class Dummy {}

  private static NDList forwardThrough(TinyDense layer, NDList x) {
    return layer.forward(new ParameterStore(), x, false);
  }

  @Test
  void aLambdaOfTheProgramComposingTwoFunctionsIsLookedThrough() {
    TinyDense layer = new TinyDense(5);
    java.util.function.Function<NDList, NDList> call =
        x -> layer.forward(new ParameterStore(), x, false);
    java.util.function.Function<NDList, NDList> then = x -> x;
    SequentialBlock root =
        tiedModel(layer, new LambdaBlock(x -> then.apply(call.apply(x)), "composed by hand"));
    assertRefusedUnchanged(root, layer, "02LambdaBlock", "captured by a lambda", "lambda");
  }

  /**
   * A function that reaches the layer three lambdas deep, deeper than the lookout reads captured
   * values: what it does not read through is assumed to reach a block, so the tie is still found.
   */
  @Test
  void aLambdaReachingTheLayerThreeLambdasDeepRefusesTheSurgery() {
    TinyDense layer = new TinyDense(5);
    java.util.function.Function<NDList, NDList> inner =
        x -> layer.forward(new ParameterStore(), x, false);
    java.util.function.Function<NDList, NDList> middle = x -> inner.apply(x);
    SequentialBlock root =
        tiedModel(layer, new LambdaBlock(x -> middle.apply(x), "three lambdas deep"));
    assertRefusedUnchanged(root, layer, "02LambdaBlock", "captured by a lambda", "lambda");
  }

  /** Plain data of the program's own, not final: a subclass may add fields of its own. */
  static class Note {
    final String text;

    Note(String text) {
      this.text = text;
    }

    NDList apply(NDList x) {
      return x;
    }
  }

  /** A note that keeps, and calls, a layer. */
  static final class CallingNote extends Note {
    final TinyDense layer;

    CallingNote(TinyDense layer) {
      super("calls the layer");
      this.layer = layer;
    }

    @Override
    NDList apply(NDList x) {
      return forwardThrough(layer, x);
    }
  }

  /**
   * A lambda that captured a value declared as a data class of the program's own that is not final,
   * whose own fields reach no block: the value may be a subclass that holds one (here the layer it
   * calls), so it is looked into and the tie found.
   */
  @Test
  void aLambdaCapturingANonFinalDataClassIsLookedIntoForASubclassHoldingTheLayer() {
    TinyDense layer = new TinyDense(5);
    Note note = new CallingNote(layer);
    SequentialBlock root = tiedModel(layer, new LambdaBlock(x -> note.apply(x), "note"));
    assertRefusedUnchanged(root, layer, "02LambdaBlock", "captured by a lambda", "lambda");
  }

  /** Data of the program's own that keeps a layer. */
  static class LayerKeeper {
    final TinyDense layer;

    LayerKeeper(TinyDense layer) {
      this.layer = layer;
    }
  }

  /** A final subclass that declares data only: the layer is in its superclass's field. */
  static final class LabelledKeeper extends LayerKeeper {
    final String label;

    LabelledKeeper(TinyDense layer, String label) {
      super(layer);
      this.label = label;
    }
  }

  /**
   * A lambda that captured a final data class of the program's own whose superclass (the program's
   * own too) keeps the layer: the superclass's fields are read as well, and the tie found.
   */
  @Test
  void aLambdaCapturingADataClassWhoseSuperclassKeepsTheLayerRefusesTheSurgery() {
    TinyDense layer = new TinyDense(5);
    LabelledKeeper keeper = new LabelledKeeper(layer, "kept");
    SequentialBlock root =
        tiedModel(layer, new LambdaBlock(x -> forwardThrough(keeper.layer, x), "keeper"));
    assertRefusedUnchanged(root, layer, "02LambdaBlock", "captured by a lambda", "lambda");
  }

  @Test
  void aParentHoldingItsChildTwoHoldersDeepRefusesTheSurgery() {
    TinyDense layer = new TinyDense(5);
    NestedTiedHead parent = new NestedTiedHead(layer, new TinyDense(5));
    parent.adopt("layer", layer);
    SequentialBlock root = new SequentialBlock().add(parent);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new TinyDense(5));

    SurgeryException e = assertReplaceRefused(root, policies);

    assertTrue(e.getMessage().contains("nested inside"), e.getMessage());
    assertTrue(e.getMessage().contains("'slots'"), e.getMessage());
    assertSame(layer, parent.getChildren().valueAt(1));
  }

  @Test
  void aReplacementBuiltAroundTheOldTiedLayerIsPointedAtThatLayersReplacement() {
    TinyDense layer = new TinyDense(5);
    TiedHead head = new TiedHead(layer, new TinyDense(5));
    SequentialBlock root = tiedModel(layer, head);
    try (Model model = TinyModels.model("tied", root);
        Trainer trainer = model.newTrainer(sgd())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      TinyDense[] madeLayer = new TinyDense[1];
      TiedHead[] madeHead = new TiedHead[1];
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(layer, (block, i) -> madeLayer[0] = TinyDense.copying(layer));
      // The function builds the new head around the old head's tied layer, which the same surgery
      // replaces.
      policies.put(
          (block, path) -> block == head,
          (block, i) ->
              madeHead[0] =
                  new TiedHead(((TiedHead) block).tied, TinyDense.copying((TinyDense) head.own)));

      ModuleSurgery.replaceModules(root, policies, withTrainer(trainer));

      assertSame(madeHead[0], root.getChildren().valueAt(1));
      assertSame(madeLayer[0], madeHead[0].tied());
      Fixtures.sumStep(trainer); // the old layer's arrays are freed: it must not be called
    }
  }

  @Test
  void aWrapperHoldingTheBlockItReplacesKeepsIt() {
    TinyDense layer = new TinyDense(5);
    SequentialBlock root = new SequentialBlock().add(new SequentialBlock().add(layer));
    Wrapper[] made = new Wrapper[1];
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> made[0] = new Wrapper(block));

    ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertSame(layer, made[0].tied, "not pointed at itself");
    assertSame(layer, made[0].own);
  }

  /** Wraps a layer in a field only: the layer is not its child. */
  static final class FieldOnlyWrapper extends TiedHead {
    FieldOnlyWrapper(Block inner) {
      super(inner, new TinyDense(5));
    }
  }

  @Test
  void aWrapperKeepingTheBlockItReplacesOnlyInAFieldIsRefused() {
    TinyDense layer = new TinyDense(5);
    SequentialBlock root = new SequentialBlock().add(new SequentialBlock().add(layer));
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new FieldOnlyWrapper(block));

    SurgeryException e = assertReplaceRefused(root, policies);

    assertTrue(e.getMessage().contains("but not as a child"), e.getMessage());
    assertSame(layer, root.getChildren().valueAt(0).getChildren().valueAt(0));
  }

  @Test
  void aRefusedSurgeryPutsAnAccessOrderedMapBackInItsOrder() {
    TinyDense layer = new TinyDense(5);
    TinyDense own = new TinyDense(5);
    AccessOrderTiedHead head = new AccessOrderTiedHead(layer, own);
    SequentialBlock root = tiedModel(layer, head);
    try (Model model = TinyModels.model("tied", root);
        Trainer trainer = model.newTrainer(sgd())) {
      trainer.initialize(INPUT);
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(
              layer,
              (block, i) -> TinyDense.copying(layer),
              own,
              (block, i) -> new TinyDense(4)); // refused

      assertReplaceRefused(root, policies, withTrainer(trainer));

      assertEquals(List.of("a", "tied", "b"), new ArrayList<>(head.byName.keySet()));
      assertSame(layer, head.byName.values().toArray()[1]);
    }
  }

  @Test
  void aTieToALayerInsideAReplacedBlockIsRefusedUnlessTheReplacementKeepsIt() {
    TinyDense layer = new TinyDense(5);
    SequentialBlock encoder = new SequentialBlock().add(layer);
    TiedHead head = new TiedHead(layer, new TinyDense(5));
    SequentialBlock root = new SequentialBlock().add(encoder).add(head);
    try (Model model = TinyModels.model("tied", root);
        Trainer trainer = model.newTrainer(sgd())) {
      trainer.initialize(INPUT);
      Fixtures.sumStep(trainer);
      Map<String, float[]> valuesBefore = Fixtures.snapshot(root);

      // The encoder replaced by a new one that does not keep the tied layer: refused.
      Map<BlockMatcher, ReplacementFunction> dropping =
          Fixtures.replacing(
              encoder, (block, i) -> new SequentialBlock().add(TinyDense.copying(layer)));
      SurgeryException e = assertReplaceRefused(root, dropping, withTrainer(trainer));
      assertTrue(e.getMessage().contains("02TiedHead"), e.getMessage());
      assertTrue(e.getMessage().contains("01SequentialBlock/01TinyDense"), e.getMessage());
      assertTrue(e.getMessage().contains("leaves the model with an ancestor"), e.getMessage());
      assertSame(encoder, root.getChildren().valueAt(0));
      Map<String, float[]> valuesAfter = Fixtures.snapshot(root);
      valuesBefore.forEach((k, v) -> ExactnessOracle.assertBitsEqual(v, valuesAfter.get(k), k));

      // A new encoder that keeps the layer as its child: the tie stays valid.
      SequentialBlock[] kept = new SequentialBlock[1];
      Map<BlockMatcher, ReplacementFunction> keeping =
          Fixtures.replacing(
              encoder,
              (block, i) -> kept[0] = new SequentialBlock().add(layer).add(Blocks.identityBlock()));
      ModuleSurgery.replaceModules(root, keeping, withTrainer(trainer));
      assertSame(kept[0], root.getChildren().valueAt(0));
      assertSame(layer, head.tied());
      assertFalse(layer.getWeight().getArray().isReleased());
      Fixtures.sumStep(trainer);
    }
  }

  @Test
  void aTieReachedByAShortAndALongPathIsFoundWhereverTheLongOneIsMetFirst() {
    TinyDense layer = new TinyDense(5);
    SequentialBlock root = tiedModel(layer, new DeepTiedHead(layer, new TinyDense(5)));
    assertRefusedUnchanged(root, layer, "02DeepTiedHead", "nested inside", "extra");
  }

  /**
   * Both tied layers of one list replaced in one surgery: each element is pointed at its own
   * replacement, in place, as a head built around the replacements holds them; none is left behind
   * in the list (where the forward would call a block whose arrays were freed).
   */
  @Test
  void twoTiedLayersInOneListAreEachPointedAtTheirReplacement() {
    TinyDense first = new TinyDense(5);
    TinyDense second = new TinyDense(5);
    TwoTiedListHead head = new TwoTiedListHead(first, second, new TinyDense(5));
    SequentialBlock root =
        new SequentialBlock().add(new SequentialBlock().add(first).add(second)).add(head);
    try (NDManager manager = NDManager.newBaseManager()) {
      root.initialize(manager, DataType.FLOAT32, INPUT);
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          (block, path) -> block == first || block == second,
          (block, i) -> TinyDense.copying((TinyDense) block));
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

      assertEquals(2, replaced.size());
      assertEquals(List.of(replaced.get(first), replaced.get(second)), head.tiedLayers);
    }
  }

  @Test
  void aTypedListIsNotGivenAReplacementOfAnotherClass() {
    TinyDense layer = new TinyDense(5);
    TypedListTiedHead head = new TypedListTiedHead(layer, new TinyDense(5));
    SequentialBlock root = tiedModel(layer, head);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new SequentialBlock().add(new TinyDense(5)));

    SurgeryException e = assertReplaceRefused(root, policies);

    assertTrue(e.getMessage().contains("TypedListTiedHead.layers"), e.getMessage());
    assertTrue(e.getMessage().contains("declared to hold TinyDense"), e.getMessage());
    assertSame(layer, head.layers.get(0));
    assertSame(layer, root.getChildren().valueAt(0).getChildren().valueAt(0));
  }

  @Test
  void functionsABlockDoesNotRunInForwardAreNoObstacle() {
    TinyDense layer = new TinyDense(5);
    TinyDense own = new TinyDense(5);
    SortingHead head = new SortingHead(layer, own);
    SequentialBlock root = tiedModel(layer, head);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new TinyDense(5));

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertSame(replaced.get(layer), head.tied());
  }

  /**
   * A stage of the model: a sequential block of a class of its own, so a class matcher can pick it.
   */
  static final class Stage extends SequentialBlock {}

  @Test
  void aLambdaBlockTheWalkPassedByIsLookedAtUnderAClassMatcherToo() {
    TinyDense layer = new TinyDense(5);
    LambdaBlock caller =
        new LambdaBlock(x -> layer.forward(new ParameterStore(), x, false), "calls the layer");
    SequentialBlock root = tiedModel(layer, caller);
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(BlockMatcher.ofClass(TinyDense.class), (block, i) -> new TinyDense(5));

    SurgeryException e = assertReplaceRefused(root, policies);

    assertTrue(e.getMessage().contains("02LambdaBlock"), e.getMessage());
    assertTrue(e.getMessage().contains("captured by a lambda"), e.getMessage());
    assertSame(layer, root.getChildren().valueAt(0).getChildren().valueAt(0));
  }

  @Test
  void aTyingLeafAReplacementReusesIsCheckedAsAnOriginal() {
    // The stage holds a layer and a lambda block that calls it; the new stage keeps the lambda
    // block but not the layer, whose arrays would go with the old stage.
    TinyDense layer = new TinyDense(5);
    LambdaBlock caller =
        new LambdaBlock(x -> layer.forward(new ParameterStore(), x, false), "calls the layer");
    Stage stage = new Stage();
    stage.add(layer).add(caller);
    SequentialBlock root = new SequentialBlock().add(stage);
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(Stage.class),
        (block, i) -> new SequentialBlock().add(new TinyDense(5)).add(caller));

    SurgeryException e = assertReplaceRefused(root, policies);

    assertTrue(e.getMessage().contains("leaves the model with an ancestor"), e.getMessage());
    // The layer, which the class matcher's walk passed by, is named by its path all the same.
    assertTrue(e.getMessage().contains("the block at 01Stage/01TinyDense"), e.getMessage());
    assertSame(stage, root.getChildren().valueAt(0));
    assertSame(caller, stage.getChildren().valueAt(1));
  }

  @Test
  void aSurgeryThatKeepsEveryBlockLooksAtNoTie() {
    TinyDense layer = new TinyDense(5);
    java.util.function.Function<NDList, NDList> call =
        x -> layer.forward(new ParameterStore(), x, false);
    SequentialBlock root = tiedModel(layer, new LambdaBlock(call.andThen(x -> x), "composed"));
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> null); // keeps it

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertTrue(replaced.isEmpty() || replaced.get(layer) == layer, replaced.toString());
    assertSame(layer, root.getChildren().valueAt(0).getChildren().valueAt(0));
  }

  @Test
  void aRecursionThatPutsEveryBlockBackLooksAtNoTie() {
    TinyDense layer = new TinyDense(5);
    java.util.function.Function<NDList, NDList> call =
        x -> layer.forward(new ParameterStore(), x, false);
    SequentialBlock root = tiedModel(layer, new LambdaBlock(call.andThen(x -> x), "composed"));
    TinyDense[] stand = new TinyDense[1];
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    // The layer is replaced, then its replacement by the layer again: the tree ends as it began.
    policies.put((block, path) -> block == layer, (block, i) -> stand[0] = new TinyDense(5));
    policies.put((block, path) -> block == stand[0], (block, i) -> layer);

    ModuleSurgery.replaceModules(
        root, policies, SurgeryOptions.builder().optRecurseOnReplacements(true).build());

    assertSame(layer, root.getChildren().valueAt(0).getChildren().valueAt(0));
  }

  @Test
  void aLambdaBlockThatCapturedTheReplacedLayerRefusesTheSurgery() {
    TinyDense layer = new TinyDense(5);
    LambdaBlock caller =
        new LambdaBlock(x -> layer.forward(new ParameterStore(), x, false), "calls the layer");
    SequentialBlock root = tiedModel(layer, caller);
    assertRefusedUnchanged(root, layer, "02LambdaBlock", "captured by a lambda", "lambda");
  }

  private static void assertRefusedUnchanged(
      SequentialBlock root, TinyDense layer, String holderKey, String how, String field) {
    Block encoder = root.getChildren().valueAt(0);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new TinyDense(5));

    SurgeryException e = assertReplaceRefused(root, policies);

    String message = e.getMessage();
    assertTrue(message.contains("01SequentialBlock/01TinyDense"), message); // the tied layer
    assertTrue(message.contains(holderKey), message); // the tying block
    assertTrue(message.contains(how), message);
    assertTrue(message.contains("." + field), message);
    assertTrue(message.contains("weight tying"), message);
    assertSame(layer, encoder.getChildren().valueAt(0));
  }

  @Test
  void djlsOwnFunctionBlocksNeedNoSecondLookButOnesThatCapturedABlockDo() {
    TinyDense layer = new TinyDense(5);
    TieLookout lookout = new TieLookout();
    for (Block inert :
        List.of(
            Blocks.identityBlock(),
            Activation.reluBlock(),
            Pool.maxPool2dBlock(new Shape(2, 2)),
            LambdaBlock.singleton(a -> a.mul(2)),
            Linear.builder().setUnits(3).build(),
            new SequentialBlock().add(layer))) {
      assertFalse(BlockFields.mayReferenceBlocks(inert), inert.toString());
      assertFalse(lookout.mayTie(inert), inert.toString());
    }
    for (Block tying :
        List.of(
            new TiedHead(layer, new TinyDense(5)),
            new LambdaBlock(x -> layer.forward(new ParameterStore(), x, false)),
            LambdaBlock.singleton(a -> layer.getWeight().getArray().add(a)))) {
      assertTrue(BlockFields.mayReferenceBlocks(tying), tying.toString());
      // The lookout has met LambdaBlock and the singleton wrapper's class above: its cached
      // answers per class must still look at each instance's captured values.
      assertTrue(lookout.mayTie(tying), tying.toString());
    }
    assertFalse(lookout.mayTie(LambdaBlock.singleton(a -> a.mul(3))));
  }

  @Test
  void aTiedLayerThatIsNotReplacedStaysTied() {
    TinyDense layer = new TinyDense(5);
    TinyDense own = new TinyDense(5);
    TiedHead head = new TiedHead(layer, own);
    SequentialBlock root = tiedModel(layer, head);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(own, (block, i) -> new TinyDense(5));

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertEquals(1, replaced.size());
    assertNotSame(own, head.own);
    assertSame(head.own, head.getChildren().valueAt(0));
    assertSame(layer, head.tied());
  }

  /** A leaf that calls a layer it keeps in a plain field (writable by the engine). */
  static final class FieldTiedLeaf extends AbstractBlock {
    Block tied;

    FieldTiedLeaf(Block tied) {
      this.tied = tied;
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return tied.forward(store, inputs, training);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  /** A leaf that calls a layer it keeps in an Optional, which the engine cannot write. */
  static final class OptionalTiedLeaf extends AbstractBlock {
    final Optional<Block> maybe;

    OptionalTiedLeaf(Block tied) {
      maybe = Optional.of(tied);
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return maybe.get().forward(store, inputs, training);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  /** Keeps a method handle bound to the tied layer, whose bound values the JDK hides. */
  static final class HandleTiedHead extends TiedHead {
    final Object call;

    HandleTiedHead(Block tied, Block own) throws ReflectiveOperationException {
      super(tied, own);
      call =
          MethodHandles.lookup()
              .findVirtual(Object.class, "toString", MethodType.methodType(String.class))
              .bindTo(tied);
    }
  }

  /**
   * A kept block whose field holds a method handle with bound values refuses the surgery: the
   * handle may call the replaced layer, and neither a read nor a write can reach into it.
   */
  @Test
  void aBoundMethodHandleInAKeptBlockRefusesTheSurgery() throws ReflectiveOperationException {
    TinyDense layer = new TinyDense(5);
    HandleTiedHead head = new HandleTiedHead(layer, new TinyDense(5));
    SequentialBlock root = tiedModel(layer, head);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> new TinyDense(5));

    SurgeryException e = assertReplaceRefused(root, policies);

    assertTrue(e.getMessage().contains("HandleTiedHead.call"), e.getMessage());
    assertTrue(e.getMessage().contains("a method handle with bound values"), e.getMessage());
    assertSame(layer, root.getChildren().valueAt(0).getChildren().valueAt(0));
    assertSame(layer, head.tied());
  }

  /** Another stage class, so that a class matcher can pick it apart from {@link Stage}. */
  static final class OtherStage extends SequentialBlock {}

  /**
   * A policy that returns the tying block itself keeps it, as if no policy had matched it (Composer
   * sets nothing then): its field is pointed at the tied layer's replacement all the same.
   */
  @Test
  void aTyingBlockItsPolicyKeepsIsPointedAtTheReplacementToo() {
    TinyDense layer = new TinyDense(5);
    TiedHead head = new TiedHead(layer, new TinyDense(5));
    SequentialBlock root = tiedModel(layer, head);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(head, (block, i) -> block, layer, (block, i) -> new TinyDense(5));

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertSame(head, root.getChildren().valueAt(1));
    assertSame(replaced.get(layer), root.getChildren().valueAt(0).getChildren().valueAt(0));
    assertSame(replaced.get(layer), head.tied());
  }

  /**
   * A tying leaf inside a block the surgery replaces leaves the model with it, so where it holds
   * the tied layer (even a place the engine cannot write) is no obstacle.
   */
  @Test
  void aTyingLeafThatLeavesWithItsReplacedParentIsNoObstacle() {
    TinyDense layer = new TinyDense(5);
    Stage stage = new Stage();
    stage.add(new OptionalTiedLeaf(layer));
    SequentialBlock root = new SequentialBlock().add(new SequentialBlock().add(layer)).add(stage);
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(TinyDense.class, (block, i) -> new TinyDense(5));
    policies.put(Stage.class, (block, i) -> new SequentialBlock().add(Blocks.identityBlock()));

    Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(root, policies);

    assertEquals(List.of(layer, stage), new ArrayList<>(replaced.keySet()));
    assertSame(replaced.get(layer), root.getChildren().valueAt(0).getChildren().valueAt(0));
    assertSame(replaced.get(stage), root.getChildren().valueAt(1));
  }

  /**
   * A tying leaf the walk passed by is named by its whole path when its tie refuses the surgery,
   * not by its key alone (which another branch may use too).
   */
  @Test
  void aPassedTyingLeafIsNamedByItsWholePath() {
    TinyDense layer = new TinyDense(5);
    SequentialBlock root =
        new SequentialBlock()
            .add(new SequentialBlock().add(layer))
            .add(new SequentialBlock().add(new OptionalTiedLeaf(layer)));
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(TinyDense.class, (block, i) -> new TinyDense(5));

    SurgeryException e =
        assertThrows(
            SurgeryException.class, () -> ModuleSurgery.replaceModuleClasses(root, policies));

    assertTrue(
        e.getMessage().contains("block 02SequentialBlock/01OptionalTiedLeaf (field"),
        e.getMessage());
    assertSame(layer, root.getChildren().valueAt(0).getChildren().valueAt(0));
  }

  /**
   * A leaf replacement built around a block the same surgery replaces (the function received the
   * old one) is pointed at that block's replacement, as a kept block's field is: else its forward
   * would call the old block, whose arrays are freed.
   */
  @Test
  void aLeafReplacementHoldingAnotherReplacedBlockIsPointedAtItsReplacement() {
    TinyDense first = new TinyDense(5);
    TinyDense second = new TinyDense(5);
    SequentialBlock root = new SequentialBlock().add(new SequentialBlock().add(first)).add(second);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(
            first, (block, i) -> new TinyDense(5), second, (block, i) -> new FieldTiedLeaf(first));

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    FieldTiedLeaf leaf = (FieldTiedLeaf) root.getChildren().valueAt(1);
    assertSame(replaced.get(first), leaf.tied);
    assertSame(replaced.get(first), root.getChildren().valueAt(0).getChildren().valueAt(0));
  }

  /**
   * Under recursion a tied layer replaced twice (A, then its replacement B by C) leaves the tie
   * pointing at the end of the chain, the block that stands in the tree.
   */
  @Test
  void aTieFollowsAChainOfReplacementsToItsEnd() {
    TinyDense layer = new TinyDense(5);
    TiedHead head = new TiedHead(layer, new TinyDense(5));
    SequentialBlock root = tiedModel(layer, head);
    TinyDense[] made = new TinyDense[2];
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put((block, path) -> block == layer, (block, i) -> made[0] = new TinyDense(5));
    policies.put(
        (block, path) -> made[0] != null && block == made[0],
        (block, i) -> made[1] = new TinyDense(5));

    ModuleSurgery.replaceModules(
        root, policies, SurgeryOptions.builder().optRecurseOnReplacements(true).build());

    assertSame(made[1], root.getChildren().valueAt(0).getChildren().valueAt(0));
    assertSame(made[1], head.tied());
  }

  /**
   * A tie to a leaf that a replacement keeps, below a new block of its own, stays valid: the leaf
   * is still in the model (the walk passed it by under a class matcher, so only the replacement's
   * blocks tell that).
   */
  @Test
  void aTieToALeafKeptDeepInsideAReplacementStays() {
    TinyDense layer = new TinyDense(5);
    Stage encoder = new Stage();
    encoder.add(layer);
    TiedHead head = new TiedHead(layer, new TinyDense(5));
    SequentialBlock root = new SequentialBlock().add(encoder).add(head);
    SequentialBlock[] made = new SequentialBlock[1];
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Stage.class,
        (block, i) -> made[0] = new SequentialBlock().add(new SequentialBlock().add(layer)));

    ModuleSurgery.replaceModuleClasses(root, policies);

    assertSame(made[0], root.getChildren().valueAt(0));
    assertSame(layer, head.tied());
  }

  /**
   * A tie to a leaf whose parent a policy kept (returned itself) stays valid: the leaf never left
   * the model, while another block was replaced.
   */
  @Test
  void aTieToALeafBelowAPolicyKeptParentStays() {
    TinyDense layer = new TinyDense(5);
    Stage encoder = new Stage();
    encoder.add(layer);
    TiedHead head = new TiedHead(layer, new TinyDense(5));
    OtherStage other = new OtherStage();
    other.add(Blocks.identityBlock());
    SequentialBlock root = new SequentialBlock().add(encoder).add(head).add(other);
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(Stage.class, (block, i) -> block);
    policies.put(OtherStage.class, (block, i) -> new SequentialBlock().add(Blocks.identityBlock()));

    Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(root, policies);

    assertSame(encoder, root.getChildren().valueAt(0));
    assertSame(replaced.get(other), root.getChildren().valueAt(2));
    assertSame(layer, head.tied());
  }

  /**
   * A replacement that wraps the block it replaces one level down (inside a new block of its own)
   * keeps it: the wrapper's field still calls the old block, its child, not the replacement.
   */
  @Test
  void aWrapperInsideAReplacementKeepsTheBlockItWraps() {
    TinyDense layer = new TinyDense(5);
    SequentialBlock root = new SequentialBlock().add(new SequentialBlock().add(layer));
    Wrapper[] wrapper = new Wrapper[1];
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(
            layer, (block, i) -> new SequentialBlock().add(wrapper[0] = new Wrapper(block)));

    ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertSame(layer, wrapper[0].tied);
    assertSame(layer, wrapper[0].own);
  }

  /**
   * The root is never replaced nor any block's child, but its own fields may tie a layer deeper in
   * the tree: its forward would still call the old layer unless the tie step looks at it too.
   */
  @Test
  void aRootTyingALayerBelowItIsPointedAtTheReplacement() {
    TinyDense layer = new TinyDense(5);
    TiedHead root = new TiedHead(layer, new SequentialBlock().add(layer));
    TinyDense[] made = new TinyDense[1];
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(layer, (block, i) -> made[0] = new TinyDense(5));

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertEquals(Map.of(layer, made[0]), replaced);
    assertSame(made[0], root.own.getChildren().valueAt(0), "the child place is written");
    assertSame(made[0], root.tied(), "the root's tying field follows the replacement");
  }

  /**
   * Under recursion the tied layer's replacement can leave the model again (its holder was wrapped,
   * and the wrapper replaced by a block without it): pointing the tie at it would make the head
   * call a block no longer in the model, so the surgery is refused and undone.
   */
  @Test
  void aTieWhoseReplacementWasDroppedAgainIsRefused() {
    TinyDense layer = new TinyDense(5);
    TiedHead head = new TiedHead(layer, new TinyDense(5));
    SequentialBlock root = tiedModel(layer, head);
    Block holder = root.getChildren().valueAt(0);
    Block[] wrapper = new Block[1];
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        (block, path) -> block == holder,
        (block, i) -> wrapper[0] = new SequentialBlock().add(holder));
    policies.put((block, path) -> block == layer, (block, i) -> new TinyDense(5));
    policies.put((block, path) -> block == wrapper[0], (block, i) -> new TinyDense(5));

    SurgeryException e =
        assertReplaceRefused(
            root, policies, SurgeryOptions.builder().optRecurseOnReplacements(true).build());

    assertTrue(e.getMessage().contains("its replacement was dropped again"), e.getMessage());
    assertSame(layer, head.tied(), "the tie is as it was");
    assertSame(holder, root.getChildren().valueAt(0));
    assertSame(layer, holder.getChildren().valueAt(0));
  }

  /** Replaces as {@code policies} say, with no trainer, asserting the surgery is refused. */
  private static SurgeryException assertReplaceRefused(
      Block root, Map<BlockMatcher, ReplacementFunction> policies) {
    return assertReplaceRefused(root, policies, SurgeryOptions.defaults());
  }

  /** Replaces as {@code policies} say, asserting the surgery is refused. */
  private static SurgeryException assertReplaceRefused(
      Block root, Map<BlockMatcher, ReplacementFunction> policies, SurgeryOptions options) {
    return assertThrows(
        SurgeryException.class, () -> ModuleSurgery.replaceModules(root, policies, options));
  }

  /** Options whose surgery keeps {@code trainer}'s store and optimizer in step. */
  private static SurgeryOptions withTrainer(Trainer trainer) {
    return SurgeryOptions.builder().optTrainers(List.of(trainer)).build();
  }

  private static void copyValues(Block from, Block to) {
    List<Parameter> source = new ArrayList<>(BlockTrees.parametersOf(from));
    List<Parameter> target = new ArrayList<>(BlockTrees.parametersOf(to));
    assertEquals(source.size(), target.size());
    for (int i = 0; i < source.size(); i++) {
      source.get(i).getArray().copyTo(target.get(i).getArray());
    }
  }

  private static List<float[]> values(Block root) {
    List<float[]> values = new ArrayList<>();
    for (Parameter p : BlockTrees.parametersOf(root)) {
      values.add(ExactnessOracle.floats(p.getArray()));
    }
    return values;
  }

  private static DefaultTrainingConfig sgd() {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.005f)).build());
  }
}
