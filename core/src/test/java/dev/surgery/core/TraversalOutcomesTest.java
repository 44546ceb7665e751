package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What one run of the engine's traversal promises beyond its structure: the caller's counters after
 * a failure that came once the traversal was done, the messages that name a failure, and the arrays
 * a replaced block with children leaves to be freed.
 */
class TraversalOutcomesTest {

  private static final Shape INPUT = new Shape(2, 3);

  private static Linear linear(long units) {
    return Linear.builder().setUnits(units).build();
  }

  /** Two Linear layers, initialized on {@code manager}: their replacements are placed and drawn. */
  private static SequentialBlock twoLinears(NDManager manager) {
    SequentialBlock net = new SequentialBlock().add(linear(4)).add(linear(2));
    net.initialize(manager, DataType.FLOAT32, INPUT);
    return net;
  }

  /** A fresh Linear of the old one's units: placement draws its weight at the end of the apply. */
  private static Block freshLike(Block old) {
    return linear(old.getParameters().get("weight").getArray().getShape().get(0));
  }

  /**
   * The counters are written back when the traversal ends; a failure after that (here the held-back
   * draws, the apply's last step) must still leave them as they were, so a retry passes the same
   * indices (the documented contract of {@code indices}). The failure, not one of the engine's own,
   * is named by its message alone.
   */
  @Test
  void aFailureAfterTheTraversalPutsTheIndicesBackAndNamesItsCause() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = twoLinears(manager);
      Map<Class<? extends Block>, Integer> indices = new HashMap<>();
      indices.put(Linear.class, 5);
      List<Integer> seen = new ArrayList<>();
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Fixtures.replacingClass(
              Linear.class,
              (block, index) -> {
                seen.add(index);
                return freshLike(block);
              });
      Faults failingDraw =
          name -> {
            if (name.equals("draw")) {
              throw new IllegalStateException("no draw today");
            }
          };
      Block first = net.getChildren().valueAt(0);

      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModuleClasses(
                      net, policies, null, false, indices, failingDraw));
      assertEquals(List.of(5, 6), seen, "both calls were made before the draws");
      assertEquals(Map.of(Linear.class, 5), indices, "the failed attempt's counters are undone");
      assertSame(first, net.getChildren().valueAt(0), "the model is as it was");
      assertNull(e.getBlockPath(), "no block is concerned once the traversal is done");
      assertEquals("surgery failed and was rolled back: no draw today", e.getMessage());

      ModuleSurgery.replaceModuleClasses(net, policies, null, false, indices, Faults.NONE);
      assertEquals(List.of(5, 6, 5, 6), seen, "the retry passes the indices of the failed attempt");
      assertEquals(7, indices.get(Linear.class));
    }
  }

  /** Throws any throwable from a function that declares none (as Kotlin or a sneaky throw can). */
  /** Replaces every Linear of {@code net} by class, asserting the surgery is refused. */
  private static SurgeryException linearsRefused(Block net, ReplacementFunction replacement) {
    return assertThrows(
        SurgeryException.class,
        () ->
            ModuleSurgery.replaceModuleClasses(
                net, Fixtures.replacingClass(Linear.class, replacement)));
  }

  @SuppressWarnings("unchecked")
  private static <T extends Throwable> Block sneaky(Throwable t) throws T {
    throw (T) t;
  }

  /**
   * A failing function is named by its failure's message; a failure without one (an {@code
   * IOException()}) by its class, so the message never reads "null" nor hides what failed.
   */
  @Test
  void aFunctionsFailureIsNamedByItsMessageOrElseByItsClass() {
    SequentialBlock net = new SequentialBlock().add(linear(4)).add(linear(2));
    SurgeryException withMessage =
        linearsRefused(
            net,
            (block, index) -> {
              throw new IllegalStateException("boom");
            });
    assertEquals(
        "at 01Linear: replacement function of policy Linear failed: boom",
        withMessage.getMessage());

    SurgeryException without = linearsRefused(net, (block, index) -> sneaky(new IOException()));
    assertEquals(
        "at 01Linear: replacement function of policy Linear failed: java.io.IOException",
        without.getMessage());
    assertTrue(without.getCause() instanceof IOException);
  }

  /**
   * A replaced block with children takes its layers' parameters out of the model: without a trainer
   * their arrays are freed once the surgery commits (the documented rule: arrays of parameters that
   * left the model and that no live parameter shares are closed), as a replaced leaf's are. The
   * kept layer's arrays stay open.
   */
  @Test
  void aReplacedBlockWithChildrenHasItsLayersArraysFreed() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock inner = new SequentialBlock().add(linear(4)).add(linear(4));
      Linear kept = linear(2);
      SequentialBlock net = new SequentialBlock().add(inner).add(kept);
      net.initialize(manager, DataType.FLOAT32, INPUT);
      List<NDArray> left = new ArrayList<>();
      for (Parameter p : inner.getParameters().values()) {
        left.add(p.getArray());
      }
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      // A class matcher (path-free): the walk's own per-block answers are what is pinned here.
      policies.put(
          BlockMatcher.ofClass(SequentialBlock.class),
          (block, index) -> new SequentialBlock().add(linear(4)).add(linear(4)));

      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(net, policies, SurgeryOptions.defaults());

      assertEquals(1, replaced.size());
      assertSame(replaced.get(inner), net.getChildren().valueAt(0));
      assertEquals(4, left.size());
      for (NDArray a : left) {
        assertTrue(a.isReleased(), "an array of a layer that left the model is freed");
      }
      for (Parameter p : kept.getParameters().values()) {
        assertFalse(p.getArray().isReleased(), "the kept layer's arrays stay");
      }
      for (Parameter p : replaced.get(inner).getParameters().values()) {
        assertFalse(p.getArray().isReleased(), "the replacement's arrays stay");
      }
    }
  }

  /**
   * A block with children replaced by a leaf takes what it held out of the model: those blocks are
   * not visited (the documented rule: descendants of a replaced block are visited only while still
   * reachable).
   */
  @Test
  void whatABlockReplacedByALeafHeldIsNotVisited() {
    Linear inner = linear(10);
    SequentialBlock root = new SequentialBlock().add(new SequentialBlock().add(inner));
    List<Block> visited = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(BlockMatcher.ofClass(SequentialBlock.class), (block, index) -> linear(7));
    policies.put(BlockMatcher.ofClass(Linear.class), Fixtures.recording(visited));

    ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertEquals(List.of(), visited, "the detached Linear is not visited");
    assertTrue(root.getChildren().valueAt(0) instanceof Linear);
  }

  /**
   * A block that left the model with its replaced holder may come back inside a replacement; from
   * then on it is in the model again, and a later function returning it is refused as for any block
   * of the model (it would be in two places, one of them never checked).
   */
  @Test
  void aBlockBroughtBackByAReplacementIsRefusedAsAnotherReplacement() {
    Linear detached = linear(4);
    SequentialBlock holder = new SequentialBlock().add(detached);
    Linear wrapped = linear(4);
    Linear last = linear(4);
    SequentialBlock root = new SequentialBlock().add(holder).add(wrapped).add(last);
    List<Block> before = new ArrayList<>(root.getChildren().values());
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(
            holder,
            (block, index) -> linear(4),
            wrapped,
            (block, index) -> new SequentialBlock().add(detached));
    policies.put((block, path) -> block == last, (block, index) -> detached);

    SurgeryException e =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults()));

    assertTrue(e.getMessage().contains("already part of the model"), e.getMessage());
    assertEquals("03Linear", e.getBlockPath());
    assertEquals(before, root.getChildren().values(), "rolled back");
    assertSame(detached, holder.getChildren().valueAt(0));
  }

  /**
   * A replacement with children that a recursion replaces again leaves the model: the arrays it
   * brought (a layer it was given initialized) are freed once the surgery commits, as the
   * documentation says of replacements that did not stay; the one that stays keeps its own. Also in
   * a model not initialized yet, where nothing else of the surgery holds an array.
   */
  @ParameterizedTest(name = "model initialized: {0}")
  @ValueSource(booleans = {true, false})
  void aReplacementWithChildrenReplacedAgainHasItsArraysFreed(boolean initialized) {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net =
          initialized
              ? twoLinears(manager)
              : new SequentialBlock().add(Blocks.identityBlock()).add(linear(2));
      Block first = net.getChildren().valueAt(0);
      Linear ready = linear(4);
      ready.initialize(manager, DataType.FLOAT32, INPUT);
      SequentialBlock[] wrappers = new SequentialBlock[2];
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          (block, path) -> block == first,
          (block, index) -> wrappers[0] = new SequentialBlock().add(ready));
      policies.put(
          (block, path) -> block == wrappers[0],
          (block, index) -> wrappers[1] = new SequentialBlock().add(linear(4)));

      Map<Block, Block> replaced = ModuleSurgery.replaceModules(net, policies, recursing());

      assertEquals(Map.of(first, wrappers[0], wrappers[0], wrappers[1]), replaced);
      assertSame(wrappers[1], net.getChildren().valueAt(0));
      assertArraysFreed(ready, true, "the dropped replacement's layer");
      assertEquals(initialized, wrappers[1].isInitialized(), "placed where the old one was");
      if (initialized) {
        assertArraysFreed(wrappers[1], false, "the staying replacement");
        assertArraysFreed(net.getChildren().valueAt(1), false, "the kept layer");
      }
    }
  }

  /**
   * The same for a chain of leaves (each swap leaves every other block where it was): the middle
   * one, a weight copy the recursion replaced again by a layer initialized already, is freed with
   * the original.
   */
  @Test
  void aLeafReplacementReplacedAgainHasItsArraysFreed() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = twoLinears(manager);
      Block first = net.getChildren().valueAt(0);
      Linear ready = linear(4);
      ready.initialize(manager, DataType.FLOAT32, INPUT);
      Block[] chain = {null, ready};
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          (block, path) -> block == first,
          (block, index) -> chain[0] = Fixtures.linearCopyOf(block));
      policies.put((block, path) -> block == chain[0], (block, index) -> ready);

      Map<Block, Block> replaced = ModuleSurgery.replaceModules(net, policies, recursing());

      assertEquals(Map.of(first, chain[0], chain[0], chain[1]), replaced);
      assertSame(chain[1], net.getChildren().valueAt(0));
      assertArraysFreed(first, true, "the original");
      assertArraysFreed(chain[0], true, "the middle copy");
      assertArraysFreed(chain[1], false, "the last copy, in the model");
    }
  }

  /**
   * Without a trainer, an initialized layer replaced by a weight copy (initialized already, so
   * placement has nothing to do) has its arrays freed: they left the model.
   */
  @Test
  void aLayerReplacedByAWeightCopyHasItsArraysFreedWithoutATrainer() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = twoLinears(manager);
      Block first = net.getChildren().valueAt(0);
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(
              net,
              Map.of(
                  BlockMatcher.ofClass(Linear.class),
                  (block, index) -> index == 0 ? Fixtures.linearCopyOf(block) : null),
              SurgeryOptions.defaults());
      Block copy = replaced.get(first);
      assertSame(copy, net.getChildren().valueAt(0));
      assertArraysFreed(first, true, "the replaced layer");
      assertArraysFreed(copy, false, "the copy");
      assertArraysFreed(net.getChildren().valueAt(1), false, "the kept layer");
    }
  }

  /**
   * A layer that a replaced block and a kept one both hold stays in the model: its arrays stay open
   * without a trainer too (only arrays that left the model are freed).
   */
  @Test
  void aLayerAKeptBlockSharesKeepsItsArraysWhenItsOtherHolderIsReplaced() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Linear shared = linear(4);
      Linear own = linear(4);
      SequentialBlock replacedHolder = new SequentialBlock().add(own).add(shared);
      SequentialBlock keptHolder = new SequentialBlock().add(shared);
      SequentialBlock net = new SequentialBlock().add(replacedHolder).add(keptHolder);
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 4));
      Map<BlockMatcher, ReplacementFunction> policies =
          Fixtures.replacing(
              replacedHolder, (block, index) -> new SequentialBlock().add(linear(4)));

      ModuleSurgery.replaceModules(net, policies, SurgeryOptions.defaults());

      assertArraysFreed(own, true, "the layer only the replaced block held");
      assertArraysFreed(shared, false, "the layer the kept block holds too");
    }
  }

  private static SurgeryOptions recursing() {
    return SurgeryOptions.builder().optRecurseOnReplacements(true).build();
  }

  /** Asserts every parameter array of {@code block} is freed, or none is. */
  private static void assertArraysFreed(Block block, boolean freed, String what) {
    for (Parameter p : block.getParameters().values()) {
      assertEquals(freed, p.getArray().isReleased(), what + ": " + p.getName());
    }
  }

  /**
   * Under recursion a path-reading matcher is asked about a replacement at the place of the block
   * it replaced (paths are those the blocks had when the surgery began).
   */
  @Test
  void aRecursionAsksAboutAReplacementAtThePathOfTheBlockItReplaced() {
    SequentialBlock root = new SequentialBlock().add(linear(4)).add(linear(2));
    Block second = root.getChildren().valueAt(1);
    Map<Block, String> asked = new IdentityHashMap<>();
    Block[] made = new Block[1];
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        (block, path) -> {
          asked.put(block, path);
          return block == second;
        },
        (block, index) -> made[0] = linear(2));

    ModuleSurgery.replaceModules(
        root, policies, SurgeryOptions.builder().optRecurseOnReplacements(true).build());

    assertEquals("02Linear", asked.get(second));
    assertEquals("02Linear", asked.get(made[0]), "the replacement is asked at its place");
  }

  /**
   * A function that initializes the block it replaces makes what the walk read of it stale: the
   * engine reads it again, so the replacement is placed with the input shapes the old block now
   * recorded, and the arrays the function gave the old block are freed with it.
   */
  @Test
  void aFunctionThatInitializedTheOldBlockHasItsReplacementPlaced() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = new SequentialBlock().add(linear(4)).add(linear(2));
      Block first = net.getChildren().valueAt(0);
      Map<BlockMatcher, ReplacementFunction> policies =
          Map.of(
              BlockMatcher.ofClass(Linear.class),
              (block, index) -> {
                if (index != 0) {
                  return null;
                }
                block.initialize(manager, DataType.FLOAT32, INPUT);
                return linear(4);
              });

      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(net, policies, SurgeryOptions.defaults());

      Block fresh = replaced.get(first);
      assertTrue(fresh.isInitialized(), "placed where the old block now says it was");
      assertEquals(List.of(INPUT), List.of(fresh.getInputShapes()));
      assertArraysFreed(first, true, "the arrays the function gave the old block");
    }
  }

  /**
   * A kept block whose own parameters wrap the replaced layer's arrays still uses them: they stay
   * open (only arrays that no live parameter shares are freed).
   */
  @Test
  void anArrayAKeptBlocksParameterWrapsStaysOpen() {
    try (NDManager manager = NDManager.newBaseManager()) {
      TinyDense replacedLayer = new TinyDense(5);
      replacedLayer.initialize(manager, DataType.FLOAT32, new Shape(2, 5));
      TinyDense kept = TinyDense.rewrapping(replacedLayer);
      SequentialBlock net = new SequentialBlock().add(replacedLayer).add(kept);

      ModuleSurgery.replaceModules(
          net,
          Fixtures.replacing(replacedLayer, (b, i) -> new TinyDense(5)),
          SurgeryOptions.defaults());

      assertSame(kept, net.getChildren().valueAt(1));
      assertArraysFreed(replacedLayer, false, "arrays the kept block's parameters wrap");
      assertArraysFreed(kept, false, "the kept block");
    }
  }

  /**
   * A block without parameters replaced by a layer initialized already (so placement makes no
   * array): the trainer is given the new parameters all the same, and its store is the model's.
   */
  @Test
  void aTrainerIsGivenTheParametersOfAnInitializedLayerReplacingOneWithout() {
    SequentialBlock net =
        new SequentialBlock().add(linear(4)).add(Blocks.identityBlock()).add(linear(2));
    try (Model model = TinyModels.model("joined", net);
        Trainer trainer =
            model.newTrainer(
                new DefaultTrainingConfig(new GcSafeL2Loss())
                    .optOptimizer(
                        Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.1f)).build()))) {
      trainer.initialize(INPUT);
      Linear ready = linear(4);
      ready.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(2, 4));
      Block identity = net.getChildren().valueAt(1);

      ModuleSurgery.replaceModules(
          net,
          Fixtures.replacing(identity, (b, i) -> ready),
          SurgeryOptions.builder().optTrainers(List.of(trainer)).build());

      assertSame(ready, net.getChildren().valueAt(1));
      assertEquals(Fixtures.modelIds(net), Fixtures.storeIds(trainer));
      float[] before = ready.getParameters().get("weight").getArray().toFloatArray();
      Fixtures.sumStep(trainer);
      assertFalse(
          java.util.Arrays.equals(
              before, ready.getParameters().get("weight").getArray().toFloatArray()),
          "the new layer trains");
    }
  }
}
