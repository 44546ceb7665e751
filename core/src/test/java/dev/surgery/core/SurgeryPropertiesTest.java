package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Blocks;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.util.Pair;
import dev.surgery.core.Fixtures.FieldHolder;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.testing.TinyModels;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * Property-based checks of the engine on generated block trees (nested sequential and parallel
 * blocks, convolutions, linears, batch norms, pools, lambdas, shared blocks, blocks that keep
 * children in fields) under generated policy sets, with and without recursion, on a live trainer.
 * Every tree and policy set is derived from the generated seed, so a failing case replays from the
 * seed jqwik prints.
 */
class SurgeryPropertiesTest {

  private static final Shape INPUT = new Shape(2, 4, 6, 6);

  @Property(seed = "20261129")
  void liveSurgeryKeepsTreeStoreAndShapesConsistent(
      @ForAll long seed,
      @ForAll @IntRange(min = 1, max = 15) int policyMask,
      @ForAll boolean recurse)
      throws Exception {
    Random random = new Random(seed);
    List<Block> leaves = new ArrayList<>();
    SequentialBlock root = new SequentialBlock();
    int width = 1 + random.nextInt(3);
    for (int i = 0; i < width; i++) {
      root.add(generate(random, 3, leaves));
    }
    try (Model model = TinyModels.model("prop", root)) {
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(Optimizer.adam().build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(INPUT);
        int convsBefore = ModuleSurgery.countModuleInstances(root, Conv2d.class);
        int linearsBefore = ModuleSurgery.countModuleInstances(root, Linear.class);
        Set<Parameter> paramsBefore = TreeSurgery.parametersOf(root);

        Map<BlockMatcher, ReplacementFunction> policies = policies(policyMask, random);
        Map<Block, Block> replaced =
            ModuleSurgery.replaceModules(
                root,
                policies,
                SurgeryOptions.builder()
                    .optTrainers(List.of(trainer))
                    .optRecurseOnReplacements(recurse)
                    .build());

        // Counts: every replaced block of a class leaves, every replacement of a class arrives.
        int convsReplaced = 0;
        int convsAdded = 0;
        int linearsReplaced = 0;
        int linearsAdded = 0;
        for (Map.Entry<Block, Block> e : replaced.entrySet()) {
          if (e.getKey() == e.getValue() || replaced.containsKey(e.getValue())) {
            continue;
          }
          convsReplaced += origin(replaced, e.getKey()) instanceof Conv2d ? 1 : 0;
          linearsReplaced += origin(replaced, e.getKey()) instanceof Linear ? 1 : 0;
          convsAdded += e.getValue() instanceof Conv2d ? 1 : 0;
          linearsAdded += e.getValue() instanceof Linear ? 1 : 0;
        }
        assertEquals(
            convsBefore - convsReplaced + convsAdded,
            ModuleSurgery.countModuleInstances(root, Conv2d.class));
        assertEquals(
            linearsBefore - linearsReplaced + linearsAdded,
            ModuleSurgery.countModuleInstances(root, Linear.class));

        // No live block refers to a replaced block, through children or fields.
        Set<Block> live = liveBlocks(root);
        for (Block old : replaced.keySet()) {
          if (old != replaced.get(old)) {
            assertTrue(!live.contains(old), "a replaced block is still reachable");
          }
        }
        for (Block b : live) {
          for (Pair<String, Block> child : b.getChildren()) {
            assertTrue(live.contains(child.getValue()));
          }
          for (Field f : DjlInternals.blockHoldingFields(b.getClass())) {
            Object v = DjlInternals.read(f, b);
            if (v instanceof Block held) {
              assertTrue(live.contains(held), "field " + f + " points outside the live tree");
            }
          }
        }

        // The trainer holds exactly the live parameters; state only for live ones; old arrays
        // freed.
        assertEquals(Fixtures.modelIds(root), Fixtures.storeIds(trainer));
        for (Set<String> keys : Fixtures.stateKeys(trainer).values()) {
          assertTrue(Fixtures.modelIds(root).containsAll(keys));
        }
        Set<Parameter> paramsAfter = TreeSurgery.parametersOf(root);
        for (Parameter p : paramsBefore) {
          if (!paramsAfter.contains(p)) {
            assertTrue(p.getArray().isReleased(), "removed parameter array must be released");
          }
        }

        // Every policy preserves shapes, so the model still maps the input shape to the same
        // output.
        NDArray x = model.getNDManager().ones(INPUT);
        NDList out = trainer.evaluate(new NDList(x));
        assertArrayEquals(root.getOutputShapes(new Shape[] {INPUT}), out.getShapes());
        out.close();
        x.close();
      }
    }
  }

  private static Block origin(Map<Block, Block> replaced, Block block) {
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      if (e.getValue() == block && e.getKey() != block) {
        return origin(replaced, e.getKey());
      }
    }
    return block;
  }

  /** Shape-preserving policies selected by the mask bits. */
  private static Map<BlockMatcher, ReplacementFunction> policies(int mask, Random random) {
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    // Replacements are never replaced again, so recursion terminates.
    Set<Block> made = Collections.newSetFromMap(new IdentityHashMap<>());
    boolean copy = random.nextBoolean();
    if ((mask & 1) != 0) {
      policies.put(
          BlockMatcher.ofClass(Conv2d.class),
          guarded(
              made,
              (block, index) ->
                  index % 2 == 0
                      ? (copy && block.isInitialized() ? Fixtures.copyOf((Conv2d) block) : conv())
                      : null));
    }
    if ((mask & 2) != 0) {
      policies.put(
          BlockMatcher.ofClass(Linear.class),
          guarded(
              made,
              (block, index) -> index % 3 != 1 ? Linear.builder().setUnits(6).build() : null));
    }
    if ((mask & 4) != 0) {
      policies.put(
          BlockMatcher.ofClass(BatchNorm.class),
          guarded(made, (block, index) -> BatchNorm.builder().build()));
    }
    if ((mask & 8) != 0) {
      policies.put(
          BlockMatcher.lambdaNamed("maxPool2d"),
          guarded(made, (block, index) -> new LambdaBlock(Activation::relu, "reluInsteadOfPool")));
    }
    return policies;
  }

  private static ReplacementFunction guarded(Set<Block> made, ReplacementFunction function) {
    return (block, index) -> {
      if (made.contains(block)) {
        return null;
      }
      Block replacement = function.apply(block, index);
      if (replacement != null) {
        made.add(replacement);
      }
      return replacement;
    };
  }

  private static Conv2d conv() {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optPadding(new Shape(1, 1))
        .setFilters(4)
        .build();
  }

  /** A random shape-preserving block over (N, 4, 6, 6) inputs. */
  private static Block generate(Random random, int depth, List<Block> leaves) {
    int kind = random.nextInt(depth > 0 ? 9 : 6);
    Block block;
    switch (kind) {
      case 0:
        block = conv();
        break;
      case 1:
        block = Linear.builder().setUnits(6).build();
        break;
      case 2:
        block = BatchNorm.builder().build();
        break;
      case 3:
        block = Pool.maxPool2dBlock(new Shape(3, 3), new Shape(1, 1), new Shape(1, 1));
        break;
      case 4:
        block = random.nextBoolean() ? Activation.reluBlock() : Blocks.identityBlock();
        break;
      case 5:
        // share a leaf made earlier: the same block under two parents
        block = leaves.isEmpty() ? conv() : leaves.get(random.nextInt(leaves.size()));
        return block;
      case 6:
        SequentialBlock seq = new SequentialBlock();
        int n = 1 + random.nextInt(3);
        for (int i = 0; i < n; i++) {
          seq.add(generate(random, depth - 1, leaves));
        }
        return seq;
      case 7:
        List<Block> branches = new ArrayList<>();
        int m = 1 + random.nextInt(3);
        for (int i = 0; i < m; i++) {
          branches.add(generate(random, depth - 1, leaves));
        }
        return new ParallelBlock(SurgeryPropertiesTest::sum, branches);
      default:
        return new FieldHolder(
            generate(random, depth - 1, leaves), generate(random, depth - 1, leaves));
    }
    leaves.add(block);
    return block;
  }

  private static NDList sum(List<NDList> outputs) {
    NDArray total = outputs.get(0).singletonOrThrow();
    for (int i = 1; i < outputs.size(); i++) {
      total = total.add(outputs.get(i).singletonOrThrow());
    }
    return new NDList(total);
  }

  private static Set<Block> liveBlocks(Block root) {
    Set<Block> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    collect(root, seen);
    return seen;
  }

  private static void collect(Block block, Collection<Block> seen) {
    if (!seen.add(block)) {
      return;
    }
    BlockList children = block.getChildren();
    for (Pair<String, Block> child : children) {
      collect(child.getValue(), seen);
    }
  }
}
