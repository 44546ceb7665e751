package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.Fixtures.FieldHolder;
import dev.surgery.core.Fixtures.ListHolder;
import dev.surgery.core.Fixtures.RecursiveLinear;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The engine's structural semantics. Tests named {@code test_*} port Composer's
 * tests/utils/test_module_surgery.py case by case.
 */
class ModuleSurgeryTest {

  private static Linear linear(long units) {
    return Linear.builder().setUnits(units).build();
  }

  private static Conv2d conv(int filters, int stride) {
    return TinyModels.conv3x3(filters, stride);
  }

  /** Composer's SimpleReplacementPolicy model: fc1 = Linear(32), fc2 = Linear(10), pool. */
  private static SequentialBlock simpleModel() {
    return new SequentialBlock()
        .add(linear(32))
        .add(linear(10))
        .add(Pool.maxPool2dBlock(new Shape(3, 3)));
  }

  /** Linear -> RecursiveLinear when units are 10 or 9 and it is not one already; pools tagged. */
  private static Map<BlockMatcher, ReplacementFunction> simplePolicy() {
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(Linear.class),
        (block, index) -> {
          long units = BlockInspector.linearUnits((Linear) block);
          boolean eligible = (units == 10 || units == 9) && !(block instanceof RecursiveLinear);
          return eligible ? new RecursiveLinear(units) : null;
        });
    policies.put(
        BlockMatcher.lambdaNamed("maxPool2d"),
        (block, index) -> new LambdaBlock(list -> list, "tagged"));
    return policies;
  }

  private static SurgeryOptions recurse(boolean recurse) {
    return SurgeryOptions.builder().optRecurseOnReplacements(recurse).build();
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void test_module_replacement_simple(boolean recurse) {
    SequentialBlock model = simpleModel();
    Block fc1 = model.getChildren().valueAt(0);
    ModuleSurgery.replaceModules(model, simplePolicy(), recurse(recurse));

    assertSame(fc1, model.getChildren().valueAt(0), "fc1 (32 units) stays a plain Linear");
    RecursiveLinear fc2 = assertInstanceOf(RecursiveLinear.class, model.getChildren().valueAt(1));
    assertEquals("tagged", ((LambdaBlock) model.getChildren().valueAt(2)).getName());
    if (recurse) {
      RecursiveLinear sub = assertInstanceOf(RecursiveLinear.class, fc2.getChildren().valueAt(0));
      assertEquals(9, BlockInspector.linearUnits(sub));
      Block leaf = sub.getChildren().valueAt(0);
      assertEquals(Linear.class, leaf.getClass(), "8 units: recursion stops");
    } else {
      assertEquals(Linear.class, fc2.getChildren().valueAt(0).getClass());
    }
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void test_module_replacement_module_index(boolean recurse) {
    SequentialBlock model = simpleModel();
    Block fc2 = model.getChildren().valueAt(1);
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    BlockMatcher linears = BlockMatcher.ofClass(Linear.class);
    policies.put(
        linears,
        (block, index) ->
            index == 0 ? new RecursiveLinear(BlockInspector.linearUnits((Linear) block)) : null);
    SurgeryOptions options = recurse(recurse);
    ModuleSurgery.replaceModules(model, policies, options);

    RecursiveLinear fc1 = assertInstanceOf(RecursiveLinear.class, model.getChildren().valueAt(0));
    assertSame(fc2, model.getChildren().valueAt(1), "only index 0 is replaced");
    assertEquals(Linear.class, fc1.getChildren().valueAt(0).getClass());
    assertEquals(recurse ? 4 : 2, options.getIndices().get(linears), "every call counts");
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void test_module_replacement_noop(boolean recurse) {
    SequentialBlock model = simpleModel();
    String before = model.toString();
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Conv2d.class,
        (block, index) -> {
          throw new AssertionError("no Conv2d in the model: must never be called");
        });
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(model, policies, null, recurse, null);
    assertTrue(replaced.isEmpty());
    assertEquals(before, model.toString());
  }

  @Test
  void seedExampleCountModuleInstances() {
    SequentialBlock model = new SequentialBlock().add(linear(32)).add(linear(64));
    model.add(Activation.reluBlock());
    assertEquals(2, ModuleSurgery.countModuleInstances(model, Linear.class));
    assertEquals(3, ModuleSurgery.countModuleInstances(model, Linear.class, LambdaBlock.class));
    assertEquals(1, ModuleSurgery.countModuleInstances(model, BlockMatcher.lambdaNamed("ReLU")));
    assertEquals(
        0, ModuleSurgery.countModuleInstances(model, SequentialBlock.class), "root excluded");
  }

  /**
   * Composites and leaves at any depth count once each, however many parents hold them, under a
   * class matcher and a path matcher alike. The oracle: the distinct blocks below the root by
   * identity, collected by a plain walk of the children.
   */
  @Test
  void countModuleInstancesCountsDistinctBlocksAtEveryDepth() {
    Linear shared = linear(2);
    SequentialBlock inner =
        new SequentialBlock().add(shared).add(new SequentialBlock().add(linear(3)));
    SequentialBlock model =
        new SequentialBlock().add(inner).add(inner).add(shared).add(new SequentialBlock());
    Set<Block> below = Collections.newSetFromMap(new IdentityHashMap<>());
    List<Block> todo = new ArrayList<>(model.getChildren().values());
    while (!todo.isEmpty()) {
      Block b = todo.remove(todo.size() - 1);
      if (below.add(b)) {
        todo.addAll(b.getChildren().values());
      }
    }
    for (Class<?> type : List.of(SequentialBlock.class, Linear.class, Block.class)) {
      long expected = below.stream().filter(type::isInstance).count();
      assertEquals(expected, ModuleSurgery.countModuleInstances(model, type), type.getName());
      assertEquals(
          expected,
          ModuleSurgery.countModuleInstances(model, (block, path) -> type.isInstance(block)),
          "by path: " + type.getName());
    }
  }

  @Test
  void seedExampleRecursionReturnsIntermediateReplacements() {
    SequentialBlock model = new SequentialBlock().add(conv(8, 1));
    Block conv = model.getChildren().valueAt(0);
    List<Block> made = new ArrayList<>();
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Conv2d.class,
        (block, index) -> {
          Block l = linear(32);
          made.add(l);
          return l;
        });
    policies.put(
        Linear.class,
        (block, index) -> {
          if (BlockInspector.linearUnits((Linear) block) != 32) {
            return null;
          }
          Block l = linear(64);
          made.add(l);
          return l;
        });
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(model, policies, null, true, null);

    assertEquals(List.of(conv, made.get(0)), new ArrayList<>(replaced.keySet()));
    assertEquals(made, new ArrayList<>(replaced.values()));
    assertSame(made.get(1), model.getChildren().valueAt(0));
    assertEquals("01Linear", model.getChildren().keyAt(0), "key renamed after the new class");
  }

  @Test
  void derivedKeysAreRenamedWithTwoDigitsBeyondTheNinthChildAndOthersKept() {
    SequentialBlock model = new SequentialBlock();
    for (int i = 0; i < 11; i++) {
      model.add(Activation.reluBlock());
    }
    model.add(Activation.reluBlock());
    // A key the user chose is not derived from the class name: it stays.
    DjlBlocks.liveChildren(model).keys().set(11, "head");
    ModuleSurgery.replaceModules(
        model,
        new LinkedHashMap<>(
            Map.of(
                (block, path) ->
                    path.equals("03LambdaBlock")
                        || path.equals("10LambdaBlock")
                        || path.equals("11LambdaBlock")
                        || path.equals("head"),
                (ReplacementFunction) (block, index) -> linear(4))),
        SurgeryOptions.builder().build());
    List<String> keys = model.getChildren().keys();
    assertEquals("03Linear", keys.get(2));
    assertEquals("09LambdaBlock", keys.get(8));
    // DJL's %02d: the tenth child's key has two digits, no leading zero.
    assertEquals("10Linear", keys.get(9));
    assertEquals("11Linear", keys.get(10));
    assertEquals("head", keys.get(11));
    assertInstanceOf(Linear.class, model.getChildren().valueAt(11));
  }

  @Test
  void indicesContinueAcrossCallsAndCountNullResults() {
    Map<Class<? extends Block>, Integer> indices = new HashMap<>();
    indices.put(Linear.class, 5);
    List<Integer> seen = new ArrayList<>();
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Linear.class,
        (block, index) -> {
          seen.add(index);
          return null;
        });
    ModuleSurgery.replaceModuleClasses(simpleModel(), policies, null, false, indices);
    ModuleSurgery.replaceModuleClasses(simpleModel(), policies, null, false, indices);
    assertEquals(List.of(5, 6, 7, 8), seen);
    assertEquals(9, indices.get(Linear.class));
  }

  /**
   * A plan passes the functions the caller's counters, as the apply does, so it names the block the
   * apply replaces; and it leaves the counters as they were. A failing function of the second
   * policy is named by that policy's number.
   */
  @Test
  void aPlanStartsFromTheCallersIndicesAndNamesThePolicyThatFailed() {
    BlockMatcher linears = BlockMatcher.ofClass(Linear.class);
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    // Index 6 is the second Linear (fc2) when the counter starts at 5, the first one from 0.
    policies.put(linears, (block, index) -> index == 6 ? linear(10) : null);
    Map<Object, Integer> indices = new HashMap<>(Map.of(linears, 5));
    SurgeryOptions options = SurgeryOptions.builder().optIndices(indices).build();
    SequentialBlock model = simpleModel();
    SurgeryPlan plan = ModuleSurgery.plan(model, policies, options);
    assertEquals(Map.of(linears, 5), indices, "a plan does not move the counters");
    Block fc2 = model.getChildren().valueAt(1);
    String fc2Path = BlockPaths.display(model.getChildren().keyAt(1));
    Map<Block, Block> applied = ModuleSurgery.replaceModules(model, policies, options);
    assertEquals(List.of(fc2), new ArrayList<>(applied.keySet()));
    assertEquals(
        List.of(fc2Path),
        plan.steps().stream().map(SurgeryPlan.Step::path).toList(),
        "the plan names the block the apply replaced");

    Map<BlockMatcher, ReplacementFunction> failing = new LinkedHashMap<>();
    failing.put(BlockMatcher.lambdaNamed("ReLU"), (block, index) -> null);
    failing.put(
        linears,
        (block, index) -> {
          throw new IllegalStateException("no replacement");
        });
    SurgeryException e =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.plan(simpleModel(), failing, SurgeryOptions.defaults()));
    assertTrue(e.getMessage().contains("policy #1 failed"), e.getMessage());
  }

  @Test
  void aRolledBackSurgeryPutsTheIndicesBackSoARetryPassesTheSameOnes() {
    Map<Class<? extends Block>, Integer> indices = new HashMap<>();
    indices.put(Linear.class, 5);
    List<Integer> seen = new ArrayList<>();
    boolean[] failing = {true};
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Linear.class,
        (block, index) -> {
          seen.add(index);
          if (failing[0] && index == 6) {
            throw new IllegalStateException("transient failure");
          }
          return new Fixtures.RecursiveLinear(3);
        });
    assertThrows(
        SurgeryException.class,
        () -> ModuleSurgery.replaceModuleClasses(simpleModel(), policies, null, false, indices));
    assertEquals(Map.of(Linear.class, 5), indices, "the failed attempt's calls are undone");
    failing[0] = false;
    ModuleSurgery.replaceModuleClasses(simpleModel(), policies, null, false, indices);
    assertEquals(List.of(5, 6, 5, 6), seen, "the retry passes the indices of the first attempt");
    assertEquals(7, indices.get(Linear.class));

    // Matcher-keyed counters that did not exist before the failed surgery are removed again.
    SurgeryOptions options = SurgeryOptions.builder().build();
    Map<BlockMatcher, ReplacementFunction> byMatcher = new LinkedHashMap<>();
    byMatcher.put(
        BlockMatcher.ofClass(Linear.class),
        (block, index) -> {
          throw new IllegalStateException("always fails");
        });
    assertThrows(
        SurgeryException.class,
        () -> ModuleSurgery.replaceModules(simpleModel(), byMatcher, options));
    assertEquals(Map.of(), options.getIndices());
  }

  @Test
  void sharedBlockIsVisitedOnceAndReplacedInEveryParent() {
    Linear shared = linear(4);
    SequentialBlock left = new SequentialBlock().add(shared);
    SequentialBlock right = new SequentialBlock().add(linear(3)).add(shared);
    ParallelBlock root = new ParallelBlock(list -> list.get(0), List.of(left, right));
    assertEquals(2, ModuleSurgery.countModuleInstances(root, Linear.class), "shared counts once");

    List<Block> visited = new ArrayList<>();
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Linear.class,
        (block, index) -> {
          visited.add(block);
          return block == shared ? new TinyDense(4) : null;
        });
    Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(root, policies);

    assertEquals(1, replaced.size());
    Block dense = replaced.get(shared);
    assertSame(dense, left.getChildren().valueAt(0));
    assertSame(dense, right.getChildren().valueAt(1));
    assertEquals(2, visited.size(), "the shared Linear is visited once, the other Linear once");
    assertEquals("02TinyDense", right.getChildren().keyAt(1));
  }

  @Test
  void replacementIsWrittenIntoFieldsAndListFields() {
    Linear first = linear(8);
    Linear second = linear(2);
    FieldHolder holder = new FieldHolder(first, second);
    Linear inList = linear(5);
    ListHolder list = new ListHolder(inList, linear(3));
    SequentialBlock root = new SequentialBlock().add(holder).add(list);

    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Linear.class,
        (block, index) ->
            block == second || block == inList
                ? new TinyDense(BlockInspector.linearUnits((Linear) block))
                : null);
    Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(root, policies);

    assertSame(replaced.get(second), holder.second, "field updated");
    assertSame(replaced.get(second), holder.getChildren().valueAt(1), "children updated");
    assertSame(first, holder.first);
    assertSame(replaced.get(inList), list.layers.get(0), "List element updated");
    assertSame(replaced.get(inList), list.getChildren().valueAt(0));
    assertEquals("02second", holder.getChildren().keyAt(1), "custom keys are kept");
  }

  /** A container that runs its children from an ArrayDeque field, in the deque's order. */
  static final class DequeHolder extends ai.djl.nn.AbstractBlock {
    final java.util.ArrayDeque<Block> layers = new java.util.ArrayDeque<>();

    DequeHolder(Block... blocks) {
      for (Block b : blocks) {
        layers.add(addChildBlock(b.getClass().getSimpleName(), b));
      }
    }

    @Override
    protected ai.djl.ndarray.NDList forwardInternal(
        ai.djl.training.ParameterStore store,
        ai.djl.ndarray.NDList inputs,
        boolean training,
        ai.djl.util.PairList<String, Object> params) {
      return inputs;
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inputs;
    }
  }

  @Test
  void replacementInAnOrderedCollectionFieldKeepsItsPlace() {
    Linear a = linear(1);
    Linear b = linear(2);
    Linear c = linear(3);
    DequeHolder holder = new DequeHolder(a, b, c);
    SequentialBlock root = new SequentialBlock().add(holder);
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(Linear.class, (block, index) -> block == b ? new TinyDense(2) : null);
    Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(root, policies);
    assertEquals(List.of(a, replaced.get(b), c), new ArrayList<>(holder.layers));
  }

  @Test
  void aNewParameterAroundTheOldArrayKeepsThatArrayAlive() {
    try (NDManager manager = NDManager.newBaseManager()) {
      TinyDense dense = new TinyDense(3);
      SequentialBlock root = new SequentialBlock().add(dense);
      root.initialize(manager, DataType.FLOAT32, new Shape(2, 4));
      var array = dense.getWeight().getArray();
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      // Composer style: a new block whose new Parameter wraps the old weight's array.
      policies.put(TinyDense.class, (block, index) -> TinyDense.rewrapping((TinyDense) block));
      ModuleSurgery.replaceModuleClasses(root, policies);
      assertFalse(array.isReleased(), "an array the live model still uses must not be closed");
    }
  }

  @Test
  void replacementInsideReplacedSubtreeIsNotVisitedUnlessStillReachable() {
    Linear inner = linear(10);
    SequentialBlock container = new SequentialBlock().add(inner);
    SequentialBlock root = new SequentialBlock().add(container);
    List<Block> visited = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(SequentialBlock.class),
        (block, index) -> new SequentialBlock().add(linear(7)));
    policies.put(BlockMatcher.ofClass(Linear.class), Fixtures.recording(visited));
    ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());
    assertTrue(visited.isEmpty(), "the detached Linear must not be visited");
  }

  @Test
  void twoPoliciesReplacingTheSameBlockIsAnErrorAndChangesNothing() {
    SequentialBlock model = simpleModel();
    String before = model.toString();
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(BlockMatcher.ofClass(Linear.class), (b, i) -> new TinyDense(1));
    policies.put(BlockMatcher.pathGlob("*Linear"), (b, i) -> new TinyDense(2));
    SurgeryException e =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.replaceModules(model, policies, SurgeryOptions.defaults()));
    assertEquals("01Linear", e.getBlockPath());
    assertTrue(e.getMessage().contains("two policies"), e.getMessage());
    assertEquals(before, model.toString());
  }

  @Test
  void pathGlobMatchesAcrossSegments() {
    SequentialBlock inner = new SequentialBlock().add(conv(4, 2)).add(conv(4, 1));
    SequentialBlock root = new SequentialBlock().add(conv(4, 1)).add(inner);
    assertEquals(
        2, ModuleSurgery.countModuleInstances(root, BlockMatcher.pathGlob("02SequentialBlock/*")));
    assertEquals(3, ModuleSurgery.countModuleInstances(root, BlockMatcher.pathGlob("**Conv2d")));
    assertEquals(
        "02SequentialBlock/01Conv2d", BlockPaths.pathOf(root, inner.getChildren().valueAt(0)));
  }

  @Test
  void uninitializedReplacementOfInitializedBlockIsPlacedLikeTheOld() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock model = new SequentialBlock().add(conv(4, 2)).add(conv(4, 1));
      model.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(Conv2d.class, (block, index) -> index == 0 ? conv(4, 2) : null);
      Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(model, policies);
      Block fresh = replaced.values().iterator().next();
      assertTrue(fresh.isInitialized());
      assertArrayEquals(new Shape[] {new Shape(2, 3, 8, 8)}, fresh.getInputShapes());
      var weight = fresh.getParameters().get("weight").getArray();
      assertSame(manager, weight.getManager());
      assertEquals(DataType.FLOAT32, weight.getDataType());
      assertTrue(model.isInitialized());
    }
  }

  @Test
  void replacementChangingOutputShapesIsRejectedUnlessAllowed() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock model = new SequentialBlock().add(conv(4, 2)).add(conv(4, 1));
      model.initialize(manager, DataType.FLOAT32, new Shape(2, 3, 8, 8));
      Block original = model.getChildren().valueAt(0);
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(BlockMatcher.pathGlob("01Conv2d"), (block, index) -> conv(4, 1));
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(model, policies, SurgeryOptions.defaults()));
      assertEquals("01Conv2d", e.getBlockPath());
      assertTrue(e.getMessage().contains("changes the output shapes"), e.getMessage());
      assertSame(original, model.getChildren().valueAt(0));

      ModuleSurgery.replaceModules(
          model, policies, SurgeryOptions.builder().optAllowShapeChange(true).build());
      assertNotSame(original, model.getChildren().valueAt(0));
    }
  }

  /**
   * A function that throws on its third call, after two replacements are in the tree: unchecked, or
   * a checked exception it never declared (Kotlin, Scala, a sneaky throw), which must be rolled
   * back the same way and kept as the cause.
   */
  @ParameterizedTest(name = "under {0}")
  @MethodSource("dev.surgery.core.WeightCopyFaultTest#optimizers")
  void rollbackAfterThirdCallRestoresStructureValuesStoreAndOptimizerState(OptimizerKind kind)
      throws Exception {
    for (boolean checked : new boolean[] {false, true}) {
      rollbackAfterThirdCall(kind, checked);
    }
  }

  private static void rollbackAfterThirdCall(OptimizerKind kind, boolean checked) throws Exception {
    Supplier<Block> build =
        () ->
            new SequentialBlock()
                .add(conv(4, 2))
                .add(Activation.reluBlock())
                .add(conv(4, 2))
                .add(conv(4, 2))
                .add(ai.djl.nn.Blocks.batchFlattenBlock())
                .add(linear(4));
    try (ControlTwin twin = new ControlTwin("rollback", build, kind, new Shape(8, 3, 16, 16));
        NDManager data = NDManager.newBaseManager()) {
      Block net = twin.subjectRoot;
      Trainer trainer = twin.subjectTrainer;
      ArrayDataset images = TinyData.images(data, 16, 3, 16, 8);
      twin.fit(images);
      WeightCopyFaultTest.BeforeState before = WeightCopyFaultTest.BeforeState.of(net, trainer);

      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          Conv2d.class,
          (block, index) -> {
            if (index == 2) {
              throw checked
                  ? ModuleSurgeryTest.<RuntimeException>sneaky(
                      new IOException("boom on the third call"))
                  : new IllegalStateException("boom on the third call");
            }
            return Fixtures.copyOf((Conv2d) block);
          });
      SurgeryException e = Fixtures.assertClassSurgeryRefused(net, policies, trainer);
      assertEquals("04Conv2d", e.getBlockPath());
      assertTrue(e.getMessage().contains("boom on the third call"), e.getMessage());
      assertEquals(
          checked ? IOException.class : IllegalStateException.class, e.getCause().getClass());

      // Against the snapshot taken before, then against a twin that never saw a surgery, before
      // and after an epoch more: every element of every parameter and optimizer state.
      before.assertUnchanged(net, trainer);
      twin.assertSubjectIsTheControl("after the rolled-back surgery");
      twin.fit(images);
      twin.assertSubjectIsTheControl("after an epoch more");
    }
  }

  /** Throws a checked exception where the compiler sees none declared. */
  @SuppressWarnings("unchecked")
  private static <T extends Throwable> T sneaky(Throwable t) throws T {
    throw (T) t;
  }

  private static SurgeryOptions recursing(boolean recurse) {
    return SurgeryOptions.builder().optRecurseOnReplacements(recurse).build();
  }

  /**
   * A replacement that wraps a fresh match (a new layer inside a new block) never stops under
   * recursion: the blocks below a replacement count as deep in replacements as it, so the guard
   * refuses the chain with its typed error instead of the stack overflowing; nothing changes.
   */
  @Test
  void aWrapperAroundAFreshMatchIsRefusedAtTheGenerationLimit() {
    Linear original = linear(2);
    SequentialBlock root = new SequentialBlock().add(original);
    Map<BlockMatcher, ReplacementFunction> policy =
        Map.of(
            BlockMatcher.ofClass(Linear.class),
            (block, index) -> new SequentialBlock().add(linear(2)));
    SurgeryException e =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.replaceModules(root, policy, recursing(true)));
    assertTrue(
        e.getMessage().contains("replaced " + TreeSurgery.MAX_GENERATIONS + " times in a row"),
        e.getMessage());
    assertSame(original, root.getChildren().valueAt(0));
    assertEquals(1, root.getChildren().size());
  }

  /**
   * The limit is the longest chain allowed: a recursion whose replacements of replacements stop
   * after exactly {@link TreeSurgery#MAX_GENERATIONS} generations ends normally.
   */
  @Test
  void aChainOfExactlyTheGenerationLimitIsAllowed() {
    SequentialBlock root = new SequentialBlock().add(linear(2));
    Map<Block, Integer> generation = new java.util.IdentityHashMap<>();
    Map<BlockMatcher, ReplacementFunction> policy =
        Map.of(
            BlockMatcher.ofClass(Linear.class),
            Fixtures.generations(generation, TreeSurgery.MAX_GENERATIONS, () -> linear(2)));
    Map<Block, Block> replaced = ModuleSurgery.replaceModules(root, policy, recursing(true));
    assertEquals(TreeSurgery.MAX_GENERATIONS, replaced.size());
    assertEquals(TreeSurgery.MAX_GENERATIONS, generation.get(root.getChildren().valueAt(0)));
  }

  /** A replacement that holds an ancestor of the replaced block would make the tree a cycle. */
  @Test
  void aReplacementHoldingAnAncestorOfTheReplacedBlockIsRefused() {
    Linear leaf = linear(2);
    SequentialBlock middle = new SequentialBlock().add(leaf);
    SequentialBlock root = new SequentialBlock().add(middle);
    assertRefusedAsCycle(root, middle, leaf, (block, index) -> new SequentialBlock().add(middle));
  }

  /** Replaces the leaf below {@code middle} with the function, which must be refused as a cycle. */
  private static void assertRefusedAsCycle(
      SequentialBlock root, SequentialBlock middle, Linear leaf, ReplacementFunction function) {
    Map<BlockMatcher, ReplacementFunction> policy =
        Map.of(BlockMatcher.ofClass(Linear.class), function);
    for (boolean recurse : new boolean[] {false, true}) {
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(root, policy, recursing(recurse)));
      assertTrue(e.getMessage().contains("would contain itself"), e.getMessage());
      assertEquals("01SequentialBlock/01Linear", e.getBlockPath());
      assertSame(leaf, middle.getChildren().valueAt(0));
      assertSame(middle, root.getChildren().valueAt(0));
    }
  }

  /**
   * A replacement function that runs a surgery of its own on another part of the tree: its change
   * was outside the outer surgery's undo, so a later failure left it in place. The nested surgery
   * is refused, the outer one fails with it, and the tree is as it was.
   */
  @Test
  void aSurgeryStartedFromAReplacementFunctionIsRefused() {
    Linear first = linear(2);
    Linear second = linear(2);
    SequentialBlock other = new SequentialBlock().add(second);
    SequentialBlock root = new SequentialBlock().add(first).add(other);
    Map<BlockMatcher, ReplacementFunction> nested =
        Map.of(BlockMatcher.ofClass(Linear.class), (block, index) -> linear(2));
    Map<BlockMatcher, ReplacementFunction> outer =
        Map.of(
            (block, path) -> block == first,
            (block, index) -> {
              ModuleSurgery.replaceModules(other, nested, SurgeryOptions.defaults());
              return linear(2);
            });
    SurgeryException e =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.replaceModules(root, outer, SurgeryOptions.defaults()));
    assertTrue(e.getMessage().contains("must not change the tree"), e.getMessage());
    assertSame(first, root.getChildren().valueAt(0));
    assertSame(second, other.getChildren().valueAt(0));
    // Nor from a dry run's function, whose changes would stay ("without changing anything").
    assertThrows(
        SurgeryException.class, () -> ModuleSurgery.plan(root, outer, SurgeryOptions.defaults()));
    assertSame(second, other.getChildren().valueAt(0));
    // The guard is released: the next surgery runs.
    assertEquals(2, ModuleSurgery.replaceModules(root, nested, SurgeryOptions.defaults()).size());
  }

  /**
   * The ancestor may sit deeper in the replacement, below new blocks: two new wrappers around the
   * parent, or around the root (it was placed, and the model contained itself).
   */
  @Test
  void aReplacementHoldingAnAncestorBelowNewBlocksIsRefused() {
    Linear leaf = linear(2);
    SequentialBlock middle = new SequentialBlock().add(leaf);
    SequentialBlock root = new SequentialBlock().add(middle);
    for (Block ancestor : new Block[] {middle, root}) {
      assertRefusedAsCycle(
          root,
          middle,
          leaf,
          (block, index) -> new SequentialBlock().add(new SequentialBlock().add(ancestor)));
    }
    // Three new wrappers: the look below new blocks goes on past the first new one.
    assertRefusedAsCycle(
        root,
        middle,
        leaf,
        (block, index) ->
            new SequentialBlock()
                .add(new SequentialBlock().add(new SequentialBlock().add(middle))));
  }

  /**
   * The ancestor a cycle would run through can be a replacement placed earlier in the same surgery
   * (a wrapper around the parent), not only a block the walk met.
   */
  @Test
  void aReplacementHoldingAnEarlierReplacementAboveTheBlockIsRefused() {
    Linear leaf = linear(2);
    SequentialBlock middle = new SequentialBlock().add(leaf);
    SequentialBlock root = new SequentialBlock().add(middle);
    Block[] wrapper = new Block[1];
    Map<BlockMatcher, ReplacementFunction> policy =
        Map.of(
            (block, path) -> block == middle || block == leaf,
            (block, index) -> {
              if (block == middle) {
                wrapper[0] = new SequentialBlock().add(middle);
                return wrapper[0];
              }
              return new SequentialBlock().add(wrapper[0]);
            });
    SurgeryException e =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.replaceModules(root, policy, SurgeryOptions.defaults()));
    assertTrue(e.getMessage().contains("would contain itself"), e.getMessage());
    assertSame(middle, root.getChildren().valueAt(0));
    assertSame(leaf, middle.getChildren().valueAt(0));
    assertEquals(1, middle.getChildren().size());
  }

  /**
   * The same new block returned for two matches is, from the second match on, a block of the model:
   * refused as any such block is, with or without recursion, and nothing changes.
   */
  @Test
  void theSameReplacementForTwoMatchesIsRefusedWithOrWithoutRecursion() {
    Linear first = linear(2);
    Linear second = linear(2);
    SequentialBlock root = new SequentialBlock().add(first).add(second);
    Block shared = linear(2);
    Map<BlockMatcher, ReplacementFunction> policy =
        Map.of(
            BlockMatcher.ofClass(Linear.class), (block, index) -> block == shared ? null : shared);
    for (boolean recurse : new boolean[] {false, true}) {
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(root, policy, recursing(recurse)));
      assertTrue(e.getMessage().contains("already part of the model"), e.getMessage());
      assertEquals("02Linear", e.getBlockPath());
      assertSame(first, root.getChildren().valueAt(0));
      assertSame(second, root.getChildren().valueAt(1));
    }
  }

  /**
   * A block this surgery replaced, returned for a later match: once accepted without the checks a
   * new block gets, it ran on inputs it was never built for (a 1-channel convolution at a 4-channel
   * place, a convolution in a linear layer's). Refused, nothing changes.
   */
  @Test
  void aBlockThisSurgeryReplacedIsRefusedAtALaterMatch() {
    Linear first = linear(2);
    Linear second = linear(2);
    SequentialBlock root = new SequentialBlock().add(first).add(second);
    Map<BlockMatcher, ReplacementFunction> policy =
        Map.of(
            BlockMatcher.ofClass(Linear.class),
            (block, index) -> block == first ? linear(2) : block == second ? first : null);
    for (boolean recurse : new boolean[] {false, true}) {
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(root, policy, recursing(recurse)));
      assertTrue(
          e.getMessage().contains("a block this surgery has taken out of the model already"),
          e.getMessage());
      assertEquals("02Linear", e.getBlockPath());
      assertSame(first, root.getChildren().valueAt(0));
      assertSame(second, root.getChildren().valueAt(1));
    }
  }
}
