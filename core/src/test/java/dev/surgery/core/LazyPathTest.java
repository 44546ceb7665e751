package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Class and name matchers do not read paths, so counting builds no path at all; the paths the
 * surgery reports must be the very paths a plain pre-order walk of the tree gives (the oracle here
 * is written out from the tree's construction), and matchers combined from path-free and
 * path-reading parts must still see them.
 */
class LazyPathTest {

  /** root -> 3 groups -> (Linear, identity, Linear); returns the Linears in pre-order. */
  private static SequentialBlock tree(List<Block> linears) {
    SequentialBlock root = new SequentialBlock();
    for (int g = 0; g < 3; g++) {
      SequentialBlock group = new SequentialBlock();
      for (int i = 0; i < 3; i++) {
        Block leaf = i == 1 ? Blocks.identityBlock() : Linear.builder().setUnits(2).build();
        if (i != 1) {
          linears.add(leaf);
        }
        group.add(leaf);
      }
      root.add(group);
    }
    return root;
  }

  @Test
  void aFailingReplacementNamesTheDeepPathOfItsBlock() {
    List<Block> linears = new ArrayList<>();
    SequentialBlock root = tree(linears);
    Block victim = linears.get(3); // second group's third child
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        Linear.class,
        (block, index) -> {
          if (block == victim) {
            throw new IllegalStateException("boom");
          }
          return Linear.builder().setUnits(2).build();
        });
    SurgeryException e =
        assertThrows(
            SurgeryException.class, () -> ModuleSurgery.replaceModuleClasses(root, policies));
    assertEquals("02SequentialBlock/03Linear", e.getBlockPath());
    // rolled back: every original Linear is in place again
    assertSame(
        linears.get(3), root.getChildren().get(1).getValue().getChildren().get(2).getValue());
  }

  @Test
  void aClassMatcherCombinedWithAPathGlobSeesPaths() {
    List<Block> linears = new ArrayList<>();
    SequentialBlock root = tree(linears);
    BlockMatcher firstOfGroup =
        BlockMatcher.ofClass(Linear.class).and(BlockMatcher.pathGlob("*/01Linear"));
    assertEquals(3, ModuleSurgery.countModuleInstances(root, firstOfGroup));
    List<String> seen = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        firstOfGroup,
        (block, index) -> {
          seen.add(BlockPaths.pathOf(root, block));
          return null;
        });
    ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());
    assertEquals(
        List.of(
            "01SequentialBlock/01Linear",
            "02SequentialBlock/01Linear",
            "03SequentialBlock/01Linear"),
        seen);
  }

  @Test
  void pathFreeCombinationsMatchAsTheirParts() {
    List<Block> linears = new ArrayList<>();
    SequentialBlock root = tree(linears);
    BlockMatcher linear = BlockMatcher.ofClass(Linear.class);
    BlockMatcher identity = BlockMatcher.lambdaNamed("identity");
    assertEquals(6, ModuleSurgery.countModuleInstances(root, linear));
    assertEquals(3, ModuleSurgery.countModuleInstances(root, identity));
    assertEquals(9, ModuleSurgery.countModuleInstances(root, linear.or(identity)));
    assertEquals(0, ModuleSurgery.countModuleInstances(root, linear.and(identity)));
    // everything below the root but the Linears: the 3 groups and the 3 identities
    assertEquals(6, ModuleSurgery.countModuleInstances(root, linear.negate()));
  }

  @Test
  void sharedBlocksCountOnceWhateverTheirKind() {
    // root -> a, b; both hold the same Linear, the same identity leaf and the same group, whose
    // two Linears are counted once each: 1 + 2 Linears, 1 identity, 3 sequential blocks.
    Block tied = Linear.builder().setUnits(2).build();
    Block identity = Blocks.identityBlock();
    SequentialBlock group =
        new SequentialBlock()
            .add(Linear.builder().setUnits(2).build())
            .add(Linear.builder().setUnits(2).build());
    SequentialBlock a = new SequentialBlock().add(tied).add(identity).add(group);
    SequentialBlock b = new SequentialBlock().add(group).add(identity).add(tied);
    SequentialBlock root = new SequentialBlock().add(a).add(b);
    assertEquals(3, ModuleSurgery.countModuleInstances(root, Linear.class));
    assertEquals(1, ModuleSurgery.countModuleInstances(root, BlockMatcher.lambdaNamed("identity")));
    assertEquals(3, ModuleSurgery.countModuleInstances(root, SequentialBlock.class));
    // The path-reading form counts the same blocks.
    assertEquals(
        3,
        ModuleSurgery.countModuleInstances(
            root, (block, path) -> block instanceof Linear && path != null));
  }

  /**
   * A block-only matcher selects what its predicate says, as the same predicate in a path lambda
   * does, and is path-free on its own and combined with other path-free matchers (the surgery then
   * builds no paths and passes unselected leaves by).
   */
  @Test
  void aBlockOnlyMatcherSelectsWhatItsPredicateSaysWithoutPaths() {
    List<Block> linears = new ArrayList<>();
    SequentialBlock root = tree(linears);
    List<Block> lambdaLinears = new ArrayList<>();
    SequentialBlock twin = tree(lambdaLinears);
    java.util.Set<Block> chosen = java.util.Set.of(linears.get(1), linears.get(4));
    java.util.Set<Block> chosenTwin = java.util.Set.of(lambdaLinears.get(1), lambdaLinears.get(4));
    BlockMatcher byBlock = BlockMatcher.byBlock(chosen::contains);

    assertEquals(false, PathFreeMatcher.usesPath(byBlock));
    assertEquals(false, PathFreeMatcher.usesPath(byBlock.or(BlockMatcher.ofClass(Linear.class))));
    assertEquals(false, PathFreeMatcher.usesPath(byBlock.negate()));
    assertEquals(true, PathFreeMatcher.usesPath(byBlock.and(BlockMatcher.pathGlob("**"))));
    assertEquals(2, ModuleSurgery.countModuleInstances(root, byBlock));

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.of(byBlock, (block, index) -> Linear.builder().setUnits(2).build()),
            SurgeryOptions.defaults());
    Map<Block, Block> replacedTwin =
        ModuleSurgery.replaceModules(
            twin,
            Map.of(
                (block, path) -> chosenTwin.contains(block),
                (block, index) -> Linear.builder().setUnits(2).build()),
            SurgeryOptions.defaults());

    assertEquals(chosen, replaced.keySet());
    assertEquals(chosenTwin, replacedTwin.keySet());
    assertEquals(
        BlockPaths.index(twin).values().stream().toList(),
        BlockPaths.index(root).values().stream().toList(),
        "the same places changed");
    for (int i : new int[] {1, 4}) {
      String path = BlockPaths.pathOf(root, replaced.get(linears.get(i)));
      assertEquals(BlockPaths.pathOf(twin, replacedTwin.get(lambdaLinears.get(i))), path);
      org.junit.jupiter.api.Assertions.assertNotNull(path, "the replacement is in the tree");
    }
  }

  /**
   * Matchers and errors see the paths of the tree as the surgery began: a block below a wrapped
   * composite keeps its own path (the one the caller finds again once a refused surgery is rolled
   * back), not the path it would have below the wrapper while the surgery runs.
   */
  @Test
  void aBlockBelowAWrappedCompositeIsNamedByThePathItHadWhenTheSurgeryBegan() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Block target = conv(4);
      ParallelBlock parallel = new ParallelBlock(list -> list.get(0));
      parallel.add(new SequentialBlock().add(target));
      SequentialBlock root = new SequentialBlock().add(parallel);
      root.initialize(manager, DataType.FLOAT32, new Shape(2, 4, 6, 6));
      List<String> pathsSeen = new ArrayList<>();
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.pathGlob("*"),
          (block, index) -> new SequentialBlock().add(block).add(Activation.reluBlock()));
      policies.put(
          (block, path) -> {
            if (block == target) {
              pathsSeen.add(path);
            }
            return block instanceof Conv2d;
          },
          (block, index) -> conv(5)); // five filters: a shape change, refused

      SurgeryException e =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults()));

      String original = "01ParallelBlock/01SequentialBlock/01Conv2d";
      assertEquals(original, e.getBlockPath());
      assertEquals(List.of(original), pathsSeen, "the matcher saw the same path");
      assertEquals(original, BlockPaths.pathOf(root, target), "rolled back: the path exists");
    }
  }

  private static Block conv(int filters) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .setFilters(filters)
        .optPadding(new Shape(1, 1))
        .build();
  }
}
