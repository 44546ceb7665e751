package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.Fixtures.FieldHolder;
import dev.surgery.core.Fixtures.ListHolder;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * With only class or name matchers the surgery's walk keeps no record of leaves that no policy
 * matches (most blocks of a large tree); everything it still has to say about them must be what it
 * says with a matcher that reads paths (which makes it record every block): a leaf still in the
 * model is refused as a replacement, a detached one is accepted, and parameters of such leaves
 * under a replaced block leave the trainer. Expectations are written out from the trees built here,
 * and each case runs with both kinds of matcher.
 */
class PassedLeavesTest {

  private static final Shape INPUT = new Shape(2, 5);

  /** The class matcher, or the same selection through a path-reading matcher. */
  private static BlockMatcher ofClass(Class<?> type, boolean pathFree) {
    return pathFree ? BlockMatcher.ofClass(type) : (block, path) -> type.isInstance(block);
  }

  /** root -> 3 groups -> (Linear, identity, Linear). */
  private static SequentialBlock tree(List<Block> linears, List<Block> identities) {
    SequentialBlock root = new SequentialBlock();
    for (int g = 0; g < 3; g++) {
      SequentialBlock group = new SequentialBlock();
      for (int i = 0; i < 3; i++) {
        Block leaf = i == 1 ? Blocks.identityBlock() : Linear.builder().setUnits(2).build();
        (i == 1 ? identities : linears).add(leaf);
        group.add(leaf);
      }
      root.add(group);
    }
    return root;
  }

  /** Every block of the tree, in pre-order, by identity. */
  private static List<Block> blocks(Block root) {
    List<Block> out = new ArrayList<>();
    for (Block child : root.getChildren().values()) {
      out.add(child);
      out.addAll(blocks(child));
    }
    return out;
  }

  /**
   * Thousands of passed-by leaves (the walk records them in chunks of 4,096): a replacement that is
   * one of them, far into the walk, is still known as a block of the model, and a detached one is
   * not; the leaves then entered keep their first paths (the refusal names the replaced block's).
   */
  @Test
  void passedLeavesBeyondTheFirstChunksAreStillKnown() {
    for (boolean pathFree : new boolean[] {true, false}) {
      SequentialBlock root = new SequentialBlock();
      List<Block> identities = new ArrayList<>();
      for (int g = 0; g < 10; g++) {
        SequentialBlock group = new SequentialBlock();
        for (int i = 0; i < 1000; i++) {
          Block identity = Blocks.identityBlock();
          identities.add(identity);
          group.add(identity);
        }
        root.add(group);
      }
      Linear last = Linear.builder().setUnits(2).build();
      root.add(last);
      Block deepInTheModel = identities.get(9_321);
      List<Block> before = blocks(root);
      Map<BlockMatcher, ReplacementFunction> takeOne = new LinkedHashMap<>();
      takeOne.put(ofClass(Linear.class, pathFree), (block, index) -> deepInTheModel);

      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(root, takeOne, SurgeryOptions.defaults()));

      assertTrue(e.getMessage().contains("already part of the model"), e.getMessage());
      assertEquals("11Linear", e.getBlockPath());
      assertEquals(before, blocks(root), "rolled back");

      Block detached = Blocks.identityBlock();
      Map<BlockMatcher, ReplacementFunction> takeNew = new LinkedHashMap<>();
      takeNew.put(ofClass(Linear.class, pathFree), (block, index) -> detached);
      assertEquals(
          Map.of(last, detached),
          ModuleSurgery.replaceModules(root, takeNew, SurgeryOptions.defaults()));
      assertSame(detached, root.getChildren().get(10).getValue());
    }
  }

  @Test
  void aLeafNoPolicyMatchesIsRefusedAsAReplacementWhileItIsInTheModel() {
    for (boolean pathFree : new boolean[] {true, false}) {
      List<Block> linears = new ArrayList<>();
      List<Block> identities = new ArrayList<>();
      SequentialBlock root = tree(linears, identities);
      List<Block> before = blocks(root);
      Block taken = identities.get(0); // still in the first group
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          ofClass(Linear.class, pathFree),
          (block, index) -> index == 3 ? taken : Linear.builder().setUnits(2).build());
      Map<Object, Integer> counters = new HashMap<>();
      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () ->
                  ModuleSurgery.replaceModules(
                      root, policies, SurgeryOptions.builder().optIndices(counters).build()));
      assertTrue(e.getMessage().contains("already part of the model"), e.getMessage());
      assertEquals("02SequentialBlock/03Linear", e.getBlockPath(), "pathFree=" + pathFree);
      List<Block> after = blocks(root);
      assertEquals(before.size(), after.size());
      for (int i = 0; i < before.size(); i++) {
        assertSame(before.get(i), after.get(i), "rolled back, block " + i);
      }
      assertTrue(counters.isEmpty(), "the counters are as they were: " + counters);
    }
  }

  @Test
  void aDetachedLeafNoPolicyMatchesMayComeBack() {
    for (boolean pathFree : new boolean[] {true, false}) {
      List<Block> linears = new ArrayList<>();
      List<Block> identities = new ArrayList<>();
      SequentialBlock root = tree(linears, identities);
      List<Block> groups = root.getChildren().values();
      Block detached = identities.get(1); // leaves with the second group
      Block newGroup = Linear.builder().setUnits(2).build();
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          ofClass(SequentialBlock.class, pathFree),
          (block, index) -> block == groups.get(1) ? newGroup : null);
      policies.put(
          ofClass(Linear.class, pathFree),
          (block, index) -> block == linears.get(5) ? detached : null);
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

      assertEquals(List.of(groups.get(1), linears.get(5)), new ArrayList<>(replaced.keySet()));
      assertSame(newGroup, root.getChildren().values().get(1));
      assertSame(detached, groups.get(2).getChildren().values().get(2), "pathFree=" + pathFree);
      assertSame(identities.get(2), groups.get(2).getChildren().values().get(1));
    }
  }

  @Test
  void parametersOfUnmatchedLeavesUnderAReplacedBlockLeaveTheTrainer() {
    for (boolean pathFree : new boolean[] {true, false}) {
      TinyDense a = new TinyDense(5);
      TinyDense b = new TinyDense(5);
      TinyDense kept = new TinyDense(5);
      ListHolder inner = new ListHolder(a, b);
      FieldHolder root = new FieldHolder(inner, kept);
      try (Model model = TinyModels.model("passed-leaves", root);
          Trainer trainer = model.newTrainer(sgd())) {
        trainer.initialize(INPUT);
        Fixtures.sumStep(trainer);
        TinyDense fresh = new TinyDense(5);
        Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(ofClass(ListHolder.class, pathFree), (block, index) -> fresh);
        ModuleSurgery.replaceModules(
            root, policies, SurgeryOptions.builder().optTrainers(List.of(trainer)).build());

        assertEquals(
            Fixtures.ids(kept.getWeight(), kept.getBias(), fresh.getWeight(), fresh.getBias()),
            Fixtures.storeIds(trainer),
            "pathFree=" + pathFree);
        assertTrue(a.getWeight().getArray().isReleased(), "a dropped leaf's array is freed");
        assertTrue(b.getBias().getArray().isReleased(), "a dropped leaf's array is freed");
        assertFalse(kept.getWeight().getArray().isReleased(), "a kept leaf's array is not");
        Fixtures.sumStep(trainer);
      }
    }
  }

  private static DefaultTrainingConfig sgd() {
    return new DefaultTrainingConfig(new GcSafeL2Loss())
        .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.01f)).build());
  }
}
