package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
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
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Decisions nested along one path in one surgery (a wrapped composite and a replaced or wrapped
 * layer inside it, three levels, a replacement that reuses some of the old children while another
 * policy replaces one of them, a block shared at two places, recursion into a policy's own
 * wrapper), with live trainers under Adam, AdamW and SGD with momentum.
 *
 * <p>The oracle is this class's own shadow: a copy of every parameter, updated by an independent
 * DJL optimizer of the same kind on the gradients the trainer is about to use. A survivor (same
 * {@code Parameter}, or a parameter around the same array) keeps its shadow, and so its optimizer's
 * state and count, across the surgery; a parameter born in the surgery gets a copy of its starting
 * values in a fresh optimizer of the same kind (bias correction from 1). Every step, every
 * parameter, its optimizer state and its update count must equal its shadow's bit for bit. The plan
 * made first must leave everything untouched and predict the born, dropped and kept parameters and
 * the totals; the same surgery failing late must leave everything as before and train on bit for
 * bit as a twin that never tried.
 */
class NestedDecisionsExactnessTest {

  static final Shape INPUT = new Shape(4, 5);
  private static final int WARM_UP = 3;
  private static final int AFTER = 12;

  /** A composite of the test's own class. */
  static final class Outer extends SequentialBlock {}

  /** A composite a replacement function makes. */
  static final class FreshHolder extends SequentialBlock {}

  /** A composite inside {@link Outer}. */
  static final class Middle extends SequentialBlock {}

  /** The blocks of one network, for identity matchers. */
  static final class Net {
    SequentialBlock root;
    Outer outer;
    Middle middle;
    Linear a;
    Linear b;
    Linear c;
    Linear d;
    Linear head;
    Linear shared;
    SequentialBlock left;
    SequentialBlock right;
  }

  private static Linear linear(int units) {
    return Linear.builder().setUnits(units).build();
  }

  /** root[ outer[ a, tanh, middle[ b, tanh, c ], tanh, d ], tanh, head ]. */
  static Net tree() {
    Net n = new Net();
    n.a = linear(6);
    n.b = linear(6);
    n.c = linear(6);
    n.d = linear(6);
    n.head = linear(3);
    n.middle = new Middle();
    n.middle.add(n.b).add(Activation.tanhBlock()).add(n.c);
    n.outer = new Outer();
    n.outer.add(n.a).add(Activation.tanhBlock()).add(n.middle).add(Activation.tanhBlock()).add(n.d);
    n.root = new SequentialBlock();
    n.root.add(n.outer).add(Activation.tanhBlock()).add(n.head);
    return n;
  }

  /** root[ left[ shared, tanh ], right[ shared, tanh ], head ]: one Linear at two places. */
  static Net diamond() {
    Net n = new Net();
    n.shared = linear(5);
    n.head = linear(3);
    n.left = new Middle();
    n.left.add(n.shared).add(Activation.tanhBlock());
    n.right = new SequentialBlock();
    n.right.add(n.shared).add(Activation.tanhBlock());
    n.root = new SequentialBlock();
    n.root.add(n.left).add(n.right).add(n.head);
    return n;
  }

  private static BlockMatcher is(Block block) {
    return BlockMatcher.byBlock(b -> b == block);
  }

  /** Policies in the order given, each block matched by identity. */
  private static Map<BlockMatcher, ReplacementFunction> policyMap(
      Block first, ReplacementFunction firstFunction) {
    Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
    p.put(is(first), firstFunction);
    return p;
  }

  private static Map<BlockMatcher, ReplacementFunction> policyMap(
      Block first,
      ReplacementFunction firstFunction,
      Block second,
      ReplacementFunction secondFunction) {
    Map<BlockMatcher, ReplacementFunction> p = policyMap(first, firstFunction);
    p.put(is(second), secondFunction);
    return p;
  }

  private static Map<BlockMatcher, ReplacementFunction> policyMap(
      Block first,
      ReplacementFunction firstFunction,
      Block second,
      ReplacementFunction secondFunction,
      Block third,
      ReplacementFunction thirdFunction) {
    Map<BlockMatcher, ReplacementFunction> p =
        policyMap(first, firstFunction, second, secondFunction);
    p.put(is(third), thirdFunction);
    return p;
  }

  /** An empty set of elements told apart by identity. */
  private static <T> Set<T> identitySet() {
    return Collections.newSetFromMap(new IdentityHashMap<>());
  }

  private static ReplacementFunction wrapAfter(int units) {
    return (block, index) -> new SequentialBlock().add(block).add(linear(units));
  }

  /** A scenario's second flag: its surgery recurses on replacements. */
  private static final boolean RECURSING = true;

  /** One scenario: its network and its policies (built anew for each call). */
  enum Scenario {
    WRAP_AND_REPLACE_INSIDE_FRESH(false) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(n.outer, wrapAfter(6), n.b, (block, index) -> linear(6));
      }
    },
    WRAP_AND_REPLACE_INSIDE_WEIGHT_COPY(false) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(
            n.outer, wrapAfter(6), n.b, (block, index) -> WeightCopy.into(linear(6), block));
      }
    },
    WRAP_AND_WRAP_INSIDE(false) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(n.outer, wrapAfter(6), n.a, wrapAfter(6));
      }
    },
    THREE_LEVELS(false) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(
            n.outer,
            wrapAfter(6),
            n.middle,
            (block, index) -> new SequentialBlock().add(linear(6)).add(block),
            n.c,
            (block, index) -> linear(6));
      }
    },
    REUSED_CHILDREN_ONE_REPLACED(false) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        // keeps a and middle, drops d; a is then replaced by another policy
        return policyMap(
            n.outer,
            (block, index) ->
                new SequentialBlock()
                    .add(block.getChildren().valueAt(0))
                    .add(Activation.tanhBlock())
                    .add(block.getChildren().valueAt(2)),
            n.a,
            (block, index) -> linear(6),
            n.c,
            (block, index) -> WeightCopy.into(linear(6), block));
      }
    },
    DIAMOND_ONE_PARENT_WRAPPED(true) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(n.left, wrapAfter(5));
      }
    },
    DIAMOND_ONE_PARENT_WRAPPED_SHARED_WRAPPED(true) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(n.left, wrapAfter(5), n.shared, wrapAfter(5));
      }
    },
    RECURSION_INTO_OWN_WRAPPER(false, RECURSING) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
        Set<Block> wrapped = identitySet();
        Set<Block> ownFresh = identitySet();
        p.put(is(n.outer), wrapAfter(6));
        p.put(
            BlockMatcher.byBlock(b -> (b == n.a && !wrapped.contains(b)) || ownFresh.contains(b)),
            (block, index) -> {
              if (ownFresh.remove(block)) {
                return linear(6); // the policy's own wrapper's fresh layer, replaced again
              }
              wrapped.add(block);
              Linear fresh = linear(6);
              ownFresh.add(fresh);
              return new SequentialBlock().add(block).add(fresh);
            });
        return p;
      }
    },
    RECURSION_REPLACES_THE_OUTER_WRAPPERS_OWN_FRESH_LAYER(false, RECURSING) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
        Set<Block> own = identitySet();
        p.put(
            is(n.outer),
            (block, index) -> {
              Linear fresh = linear(6);
              own.add(fresh);
              return new SequentialBlock().add(block).add(fresh);
            });
        p.put(
            BlockMatcher.byBlock(b -> own.contains(b) || b == n.b),
            (block, index) -> {
              own.remove(block);
              return linear(6);
            });
        return p;
      }
    },
    RECURSION_CHAIN_OF_REPLACED_FRESH_LAYERS(false, RECURSING) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
        Map<Block, Integer> depth = new IdentityHashMap<>();
        Set<Block> wrapped = identitySet();
        p.put(is(n.outer), wrapAfter(6));
        p.put(
            BlockMatcher.byBlock(
                b -> (b == n.a && !wrapped.contains(b)) || depth.getOrDefault(b, 9) < 3),
            (block, index) -> {
              Linear fresh = linear(6);
              if (block == n.a) {
                wrapped.add(block);
                depth.put(fresh, 1);
                return new SequentialBlock().add(block).add(fresh);
              }
              depth.put(fresh, depth.get(block) + 1); // f1 -> f2 -> f3
              return fresh;
            });
        return p;
      }
    },
    RECURSION_WRAPS_ITS_OWN_FRESH_LAYER(false, RECURSING) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
        Set<Block> wrapped = identitySet();
        Set<Block> own = identitySet();
        p.put(is(n.outer), wrapAfter(6));
        p.put(
            BlockMatcher.byBlock(b -> (b == n.a && !wrapped.contains(b)) || own.contains(b)),
            (block, index) -> {
              wrapped.add(block);
              if (own.remove(block)) {
                return new SequentialBlock().add(block).add(linear(6));
              }
              Linear fresh = linear(6);
              own.add(fresh);
              return new SequentialBlock().add(block).add(fresh);
            });
        return p;
      }
    },
    RECURSION_WRAPS_A_REPLACEMENT_THAT_REUSES_CHILDREN(false, RECURSING) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
        Set<Block> done = identitySet();
        p.put(
            is(n.outer),
            (block, index) ->
                new FreshHolder()
                    .add(block.getChildren().valueAt(0))
                    .add(Activation.tanhBlock())
                    .add(block.getChildren().valueAt(2)));
        p.put(
            BlockMatcher.byBlock(b -> b instanceof FreshHolder && !done.contains(b)),
            (block, index) -> {
              done.add(block);
              return new SequentialBlock().add(block).add(linear(6));
            });
        p.put(is(n.b), (block, index) -> WeightCopy.into(linear(6), block));
        return p;
      }
    },
    RECURSION_REPLACES_A_WEIGHT_COPY_AGAIN(false, RECURSING) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
        Set<Block> copies = identitySet();
        p.put(is(n.outer), wrapAfter(6));
        p.put(
            BlockMatcher.byBlock(b -> b == n.b || copies.contains(b)),
            (block, index) -> {
              if (copies.remove(block)) {
                return linear(6); // the copy, an intermediate with arrays, replaced again
              }
              Linear copy = WeightCopy.into(linear(6), block);
              copies.add(copy);
              return copy;
            });
        p.put(
            is(n.c),
            (block, index) -> new SequentialBlock().add(WeightCopy.into(linear(6), block)));
        return p;
      }
    },
    REUSED_CHILD_WRAPPED_AND_ITS_LEAF_REPLACED(false) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(
            n.outer,
            (block, index) ->
                new FreshHolder()
                    .add(block.getChildren().valueAt(0))
                    .add(Activation.tanhBlock())
                    .add(block.getChildren().valueAt(2)),
            n.middle,
            (block, index) -> new SequentialBlock().add(block).add(linear(6)),
            n.c,
            (block, index) -> linear(6));
      }
    },
    DIAMOND_RECURSION_INTO_THE_SHARED_WRAPPER(true, RECURSING) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
        Set<Block> own = identitySet();
        Set<Block> wrapped = identitySet();
        p.put(is(n.left), wrapAfter(5));
        p.put(
            BlockMatcher.byBlock(b -> (b == n.shared && !wrapped.contains(b)) || own.contains(b)),
            (block, index) -> {
              if (own.remove(block)) {
                return linear(5);
              }
              wrapped.add(block);
              Linear fresh = linear(5);
              own.add(fresh);
              return new SequentialBlock().add(block).add(fresh);
            });
        return p;
      }
    },
    DIAMOND_SHARED_REPLACED_SECOND_PARENT_WRAPPED(true) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(n.shared, (block, index) -> linear(5), n.right, wrapAfter(5));
      }
    },
    DIAMOND_SHARED_WRAPPED_SECOND_PARENT_WRAPPED(true) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(n.shared, wrapAfter(5), n.right, wrapAfter(5));
      }
    },
    DIAMOND_SHARED_COPIED_FIRST_PARENT_WRAPPED(true) {
      @Override
      Map<BlockMatcher, ReplacementFunction> policies(Net n) {
        return policyMap(
            n.left, wrapAfter(5), n.shared, (block, index) -> WeightCopy.into(linear(5), block));
      }
    };

    final boolean diamond;
    final boolean recurse;

    Scenario(boolean diamond) {
      this(diamond, false);
    }

    Scenario(boolean diamond, boolean recurse) {
      this.diamond = diamond;
      this.recurse = recurse;
    }

    Net net() {
      return diamond ? diamond() : tree();
    }

    abstract Map<BlockMatcher, ReplacementFunction> policies(Net n);

    /** Whether the surgery recurses on replacements (the {@code RECURSING} scenarios). */
    boolean recurse() {
      return recurse;
    }
  }

  /**
   * The optimizers, each built for a shift of its schedule: 0 for the trainer and the survivors'
   * shadow, the model's position at the surgery for the born parameters' fresh shadow (a fresh
   * optimizer counts from 1, the schedule goes on where the model is).
   */
  enum Opt {
    ADAM(shift -> Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build()),
    ADAMW(
        shift ->
            Optimizer.adamW()
                .optLearningRateTracker(Tracker.fixed(0.01f))
                .optWeightDecays(0.05f)
                .build()),
    SGD_MOMENTUM(
        shift ->
            Optimizer.sgd()
                .setLearningRateTracker(Tracker.fixed(0.05f))
                .optMomentum(0.9f)
                .optWeightDecays(1e-3f)
                .build()),
    ADAM_SCHEDULE(shift -> Optimizer.adam().optLearningRateTracker(decaying(0.01f, shift)).build()),
    SGD_MOMENTUM_SCHEDULE(
        shift ->
            Optimizer.sgd()
                .setLearningRateTracker(decaying(0.05f, shift))
                .optMomentum(0.9f)
                .build());

    private final java.util.function.IntFunction<Optimizer> factory;

    Opt(java.util.function.IntFunction<Optimizer> factory) {
      this.factory = factory;
    }

    Optimizer create(int shift) {
      return factory.apply(shift);
    }

    private static ParameterTracker decaying(float base, int shift) {
      return (id, n) -> base / (1f + 0.25f * (n + shift));
    }
  }

  static Stream<Arguments> cases() {
    List<Arguments> all = new ArrayList<>();
    for (Scenario s : Scenario.values()) {
      for (Opt k : Opt.values()) {
        all.add(Arguments.of(s, k));
      }
    }
    return all.stream();
  }

  static Stream<Arguments> secondCases() {
    List<Arguments> all = new ArrayList<>();
    for (Scenario s : Scenario.values()) {
      for (Opt k : List.of(Opt.ADAM_SCHEDULE, Opt.ADAMW, Opt.SGD_MOMENTUM_SCHEDULE)) {
        all.add(Arguments.of(s, k));
      }
    }
    return all.stream();
  }

  /** How a scenario fails late. */
  enum Late {
    /** A last policy (on the head, visited last) throws. */
    THROWS,
    /** The head's replacement changes its output shape (4 for 3), placed last. */
    SHAPE,
    /**
     * A layer inside the nested decisions ({@code c}, or the shared layer) is given 7 outputs for 6
     * (or 5) by a policy tried before the scenario's own: the refusal comes from inside the chain.
     */
    INNER_SHAPE
  }

  static Stream<Arguments> failures() {
    List<Arguments> all = new ArrayList<>();
    for (Scenario s : Scenario.values()) {
      for (Late late : Late.values()) {
        // A failure restores the schedules' births too: aSecondNestedSurgeryOverTheFirstsBornLayers
        for (Opt k : List.of(Opt.ADAM, Opt.ADAMW, Opt.SGD_MOMENTUM)) {
          all.add(Arguments.of(s, late, k));
        }
      }
    }
    return all.stream();
  }

  // ------------------------------------------------------------------------------------------

  @ParameterizedTest(name = "{0} under {1}")
  @MethodSource("cases")
  void planThenApplyTrainsEveryParameterAsItsShadow(Scenario scenario, Opt kind) {
    Net net = scenario.net();
    try (Rig rig = new Rig(kind, net.root)) {
      rig.steps(WARM_UP);
      Block root = rig.model.getBlock();
      long before = count(root);

      // The plan: draws nothing, changes nothing, leaves no array open.
      State untouched = State.of(rig);
      int openBeforePlan = OpenArrays.ofTraining(rig.model, rig.trainer).size();
      List<Block> madeByPlan = new ArrayList<>();
      Engine.getInstance().setRandomSeed(77);
      SurgeryPlan plan =
          ModuleSurgery.plan(
              root,
              recording(scenario.policies(net), madeByPlan),
              SurgeryOptions.builder()
                  .optTrainers(List.of(rig.trainer))
                  .optRecurseOnReplacements(scenario.recurse())
                  .build());
      float[] drawAfterPlan = Fixtures.nextDraw(rig.scratch);
      Engine.getInstance().setRandomSeed(77);
      assertArrayEquals(Fixtures.nextDraw(rig.scratch), drawAfterPlan, "the plan drew");
      untouched.assertSame(rig, "after the plan");
      assertEquals(
          openBeforePlan,
          OpenArrays.ofTraining(rig.model, rig.trainer).size(),
          "open arrays after the plan");
      for (Block made : madeByPlan) {
        for (Parameter p : made.getParameters().values()) {
          if (!oldParameter(rig, p)) {
            assertTrue(
                !p.isInitialized() || p.getArray().isReleased(),
                "an array a replacement of the plan came with is closed: " + p.getName());
          }
        }
      }

      // The apply.
      Map<Parameter, NDArray> oldArrays = new IdentityHashMap<>();
      for (Parameter p : root.getParameters().values()) {
        oldArrays.put(p, p.getArray());
      }
      Map<String, float[]> stateBefore = ExactnessOracle.optimizerStateValues(rig.trainer);
      List<Block> made = new ArrayList<>();
      Engine.getInstance().setRandomSeed(78);
      ModuleSurgery.replaceModules(
          root,
          recording(scenario.policies(net), made),
          SurgeryOptions.builder()
              .optTrainers(List.of(rig.trainer))
              .optRecurseOnReplacements(scenario.recurse())
              .build());
      Fates fates = rig.adopt(oldArrays);
      // What the functions made and the model does not hold (an intermediate replacement) is
      // closed.
      Set<Parameter> live = identitySet();
      live.addAll(params(root));
      for (Block b : made) {
        for (Parameter p : b.getParameters().values()) {
          if (!live.contains(p) && p.isInitialized() && !oldArrays.containsKey(p)) {
            assertTrue(p.getArray().isReleased(), "an intermediate's array is closed: " + p);
          }
        }
      }
      for (Parameter p : params(root)) {
        assertTrue(p.isInitialized(), p.getName() + " has an array after the surgery");
      }
      String table = plan.toTable("plan") + "\n" + fates;
      assertFalse(fates.born.isEmpty() && fates.removed.isEmpty(), "the surgery did something");

      // The plan predicted it.
      assertEquals(before, plan.parametersBefore(), table);
      assertEquals(count(root), plan.parametersAfter(), table);
      assertEquals(
          fates.bornShapes(),
          plannedShapes(plan, SurgeryPlan.StateFate.FRESH, SurgeryPlan.Step::added),
          "born " + table);
      for (SurgeryPlan.Step step : plan.steps()) {
        for (SurgeryPlan.PlannedParameter p : step.added()) {
          assertTrue(p.bornExact(), "born exact: " + p + "\n" + table);
        }
      }
      // Dropped: state that left the model (every removed parameter trained, so had state).
      Map<String, Integer> droppedLeft = new TreeMap<>();
      for (Parameter p : fates.removed) {
        droppedLeft.merge(p.getName() + p.getArray().getShape(), 1, Integer::sum);
      }
      assertEquals(
          droppedLeft,
          plannedShapes(plan, SurgeryPlan.StateFate.DROPPED, SurgeryPlan.Step::removed),
          "dropped " + table);
      // Nothing planned as moved left the model, or was born.
      for (SurgeryPlan.Step step : plan.steps()) {
        for (SurgeryPlan.PlannedParameter p : step.kept()) {
          assertTrue(
              p.state() == SurgeryPlan.StateFate.MOVED, "kept parameters move: " + p + table);
        }
      }
      // The survivors' state is as before (the shadows hold it too, checked below).
      Map<String, float[]> stateAfter = ExactnessOracle.optimizerStateValues(rig.trainer);
      for (Parameter p : fates.survivors) {
        for (Map.Entry<String, float[]> e : stateAfter.entrySet()) {
          if (e.getKey().contains("/" + p.getId() + "/")) {
            String old = e.getKey().replace(p.getId(), fates.oldIds.get(p));
            assertNotNull(stateBefore.get(old), old);
            assertArrayEquals(stateBefore.get(old), e.getValue(), e.getKey());
          }
        }
      }
      rig.assertAllMatchShadows("right after the surgery");

      // Training on: every parameter as its shadow, every step; open arrays do not grow.
      rig.steps(2);
      int open = OpenArrays.ofTraining(rig.model, rig.trainer).size();
      rig.steps(AFTER - 2);
      assertEquals(open, OpenArrays.ofTraining(rig.model, rig.trainer).size(), "open arrays grew");
      for (Parameter p : fates.removed) {
        assertTrue(p.getArray().isReleased(), p.getName() + " left the model and is freed");
      }
    }
  }

  @ParameterizedTest(name = "{0} failing by {1} under {2}")
  @MethodSource("failures")
  void aLateFailureLeavesAllAsBeforeAndTrainsOnAsATwinThatNeverTried(
      Scenario scenario, Late late, Opt kind) {
    Net net = scenario.net();
    Net twinNet = scenario.net();
    try (Rig rig = new Rig(kind, net.root);
        Rig twin = new Rig(kind, twinNet.root)) {
      rig.steps(WARM_UP);
      twin.steps(WARM_UP);
      assertTwins(twin, rig, "before");
      Block root = rig.model.getBlock();
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      List<String> lateCalls = new ArrayList<>();
      if (late == Late.INNER_SHAPE) {
        Linear inner = scenario.diamond ? net.shared : net.c;
        policies.put(
            is(inner),
            (block, index) -> {
              lateCalls.add("late");
              return linear(7);
            });
      }
      policies.putAll(scenario.policies(net));
      if (late != Late.INNER_SHAPE) {
        policies.put(
            is(net.head),
            (block, index) -> {
              lateCalls.add("late");
              if (late == Late.THROWS) {
                throw new IllegalStateException("a later policy fails");
              }
              return linear(4);
            });
      }
      State untouched = State.of(rig);
      int open = OpenArrays.ofTraining(rig.model, rig.trainer).size();
      // Per-policy counters: a failed surgery (and a plan) leaves them as they were.
      Map<Object, Integer> indices = new HashMap<>();
      for (BlockMatcher m : policies.keySet()) {
        indices.put(m, 5);
      }
      Map<Object, Integer> indicesBefore = new HashMap<>(indices);
      SurgeryOptions options =
          SurgeryOptions.builder()
              .optTrainers(List.of(rig.trainer))
              .optRecurseOnReplacements(scenario.recurse())
              .optIndices(indices)
              .build();
      // The plan refuses too, and leaves everything.
      Engine.getInstance().setRandomSeed(91);
      assertThrows(SurgeryException.class, () -> ModuleSurgery.plan(root, policies, options));
      untouched.assertSame(rig, "after the refused plan");
      Engine.getInstance().setRandomSeed(91);
      List<Block> made = new ArrayList<>();
      SurgeryException refused =
          assertThrows(
              SurgeryException.class,
              () -> ModuleSurgery.replaceModules(root, recording(policies, made), options));
      for (Block b : made) {
        for (Parameter p : b.getParameters().values()) {
          if (!oldParameter(rig, p)) {
            assertTrue(
                !p.isInitialized() || p.getArray().isReleased(),
                "an array a replacement of the failed surgery came with is closed: " + p);
          }
        }
      }
      float[] draw = Fixtures.nextDraw(rig.scratch);
      Engine.getInstance().setRandomSeed(91);
      assertArrayEquals(Fixtures.nextDraw(rig.scratch), draw, "the failed surgery drew");
      assertEquals(List.of("late", "late"), lateCalls, refused.getMessage());
      untouched.assertSame(rig, "after the failure");
      assertEquals(indicesBefore, indices, "the counters");
      rig.assertStoreHoldsOnlyLive();
      assertEquals(
          open, OpenArrays.ofTraining(rig.model, rig.trainer).size(), "open arrays after failure");
      for (int i = 0; i < 10; i++) {
        rig.steps(1);
        twin.steps(1);
        assertTwins(twin, rig, "step " + i + " after the failure");
      }
    }
  }

  /**
   * The defect the recursion scenario found: a wrapped composite holding a layer wrapped by a
   * policy that, recursing, replaced its own wrapper's fresh layer. Placement reached the outer
   * wrapper first, found the replacement of that fresh layer without an array and tried to place it
   * first; a fresh layer's replacement has no place of its own (no recorded shapes), so nothing
   * placed it and the outer wrapper was taken for a structural surgery: without a trainer, a silent
   * success with the outer wrapper's fresh layer without an array; with one (and in the plan), a
   * refusal. Now the replacement around it (the inner wrapper, at the wrapped layer's place) places
   * it. The oracle: the two fresh layers initialized by hand in that order from the same seed.
   */
  @org.junit.jupiter.api.Test
  void recursionIntoItsOwnWrapperInsideAWrappedBlockPlacesEveryFreshLayerAsByHand() {
    Net net = tree();
    try (NDManager manager = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed(1);
      net.root.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32, INPUT);
      Engine.getInstance().setRandomSeed(4242);
      ModuleSurgery.replaceModules(
          net.root,
          Scenario.RECURSION_INTO_OWN_WRAPPER.policies(net),
          SurgeryOptions.builder().optRecurseOnReplacements(true).build());
      float[] after = Fixtures.nextDraw(manager);
      for (Parameter p : params(net.root)) {
        assertTrue(p.isInitialized(), p.getName() + " has an array after the surgery");
      }
      // root[ W1[ outer[ W2[ a, f2 ], ... ], f0 ], tanh, head ]
      Block w1 = net.root.getChildren().valueAt(0);
      Block w2 = net.outer.getChildren().valueAt(0);
      Block f0 = w1.getChildren().valueAt(1);
      Block f2 = w2.getChildren().valueAt(1);
      org.junit.jupiter.api.Assertions.assertSame(net.outer, w1.getChildren().valueAt(0));
      org.junit.jupiter.api.Assertions.assertSame(net.a, w2.getChildren().valueAt(0));
      Engine.getInstance().setRandomSeed(4242);
      Linear innerByHand = linear(6);
      innerByHand.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(4, 6));
      Linear outerByHand = linear(6);
      outerByHand.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(4, 6));
      assertArrayEquals(Fixtures.nextDraw(manager), after, "the generator, as by hand");
      assertBits(
          innerByHand.getParameters().get("weight").getArray().toFloatArray(),
          f2.getParameters().get("weight").getArray().toFloatArray(),
          "the inner wrapper's fresh layer");
      assertBits(
          outerByHand.getParameters().get("weight").getArray().toFloatArray(),
          f0.getParameters().get("weight").getArray().toFloatArray(),
          "the outer wrapper's fresh layer");
      net.root
          .forward(
              new ai.djl.training.ParameterStore(manager, false),
              new NDList(manager.ones(INPUT)),
              false)
          .close();
    }
  }

  /**
   * A second nested surgery over the first one's born layers: the first surgery's wrapper is
   * wrapped again and a layer born in the first surgery is replaced by a weight copy inside it.
   * First it fails late (the head given 4 outputs): everything, the born parameters' schedule
   * included, trains on as a twin that had only the first surgery. Then it succeeds: the first
   * surgery's born parameters go on with their own fresh shadow (born at the first surgery's
   * position), the second's start a fresh one at the second's.
   */
  @ParameterizedTest(name = "{0} under {1}")
  @MethodSource("secondCases")
  void aSecondNestedSurgeryOverTheFirstsBornLayers(Scenario scenario, Opt kind) {
    Net net = scenario.net();
    Net twinNet = scenario.net();
    try (Rig rig = new Rig(kind, net.root);
        Rig twin = new Rig(kind, twinNet.root)) {
      List<Fates> first = new ArrayList<>();
      for (Rig r : List.of(rig, twin)) {
        Net n = r == rig ? net : twinNet;
        r.steps(WARM_UP);
        Map<Parameter, NDArray> oldArrays = arraysOf(r);
        Engine.getInstance().setRandomSeed(78);
        ModuleSurgery.replaceModules(
            n.root,
            scenario.policies(n),
            SurgeryOptions.builder()
                .optTrainers(List.of(r.trainer))
                .optRecurseOnReplacements(scenario.recurse())
                .build());
        first.add(r.adopt(oldArrays));
        r.steps(2);
      }
      assertTwins(twin, rig, "after the first surgery");
      Set<Parameter> born = identitySet();
      born.addAll(first.get(0).born);
      int units = scenario.diamond ? 5 : 6;

      // It fails late.
      State untouched = State.of(rig);
      Engine.getInstance().setRandomSeed(79);
      assertThrows(
          SurgeryException.class,
          () ->
              ModuleSurgery.replaceModules(
                  net.root,
                  second(net, born, units, true),
                  SurgeryOptions.builder().optTrainers(List.of(rig.trainer)).build()));
      untouched.assertSame(rig, "after the failed second surgery");
      for (int i = 0; i < 5; i++) {
        rig.steps(1);
        twin.steps(1);
        assertTwins(twin, rig, "step " + i + " after the failed second surgery");
      }

      // It succeeds.
      Map<Parameter, NDArray> oldArrays = arraysOf(rig);
      Engine.getInstance().setRandomSeed(80);
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(
              net.root,
              second(net, born, units, false),
              SurgeryOptions.builder().optTrainers(List.of(rig.trainer)).build());
      assertEquals(2, replaced.size(), "the wrapper and a born layer");
      Fates fates = rig.adopt(oldArrays);
      assertFalse(fates.born.isEmpty(), fates.toString());
      assertFalse(fates.removed.isEmpty(), fates.toString());
      rig.assertAllMatchShadows("right after the second surgery");
      rig.steps(8);
    }
  }

  /** The first child of the root wrapped, and the first layer born in {@code born} copied. */
  private static Map<BlockMatcher, ReplacementFunction> second(
      Net net, Set<Parameter> born, int units, boolean fail) {
    Map<BlockMatcher, ReplacementFunction> p = new LinkedHashMap<>();
    Block first = net.root.getChildren().valueAt(0);
    Block target = firstBornLinear(net.root, born);
    assertNotNull(target, "a layer born in the first surgery");
    p.put(is(first), wrapAfter(units));
    p.put(
        is(target),
        (block, index) -> {
          long out = block.getParameters().get("weight").getArray().getShape().get(0);
          return WeightCopy.into(linear((int) out), block);
        });
    if (fail) {
      p.put(is(net.head), (block, index) -> linear(4));
    }
    return p;
  }

  /** The policies, each returned block noted in {@code made}. */
  private static Map<BlockMatcher, ReplacementFunction> recording(
      Map<BlockMatcher, ReplacementFunction> policies, List<Block> made) {
    Map<BlockMatcher, ReplacementFunction> recorded = new LinkedHashMap<>();
    policies.forEach(
        (matcher, function) ->
            recorded.put(
                matcher,
                (block, index) -> {
                  Block b = function.apply(block, index);
                  made.add(b);
                  return b;
                }));
    return recorded;
  }

  private static boolean oldParameter(Rig rig, Parameter p) {
    if (!p.isInitialized()) {
      return false;
    }
    for (Parameter q : params(rig.model.getBlock())) {
      if (q == p || q.getArray() == p.getArray()) {
        return true;
      }
    }
    return false;
  }

  private static Block firstBornLinear(Block block, Set<Parameter> born) {
    if (block instanceof Linear && born.containsAll(block.getParameters().values())) {
      return block;
    }
    for (Block child : block.getChildren().values()) {
      Block found = firstBornLinear(child, born);
      if (found != null) {
        return found;
      }
    }
    return null;
  }

  private static Map<Parameter, NDArray> arraysOf(Rig rig) {
    Map<Parameter, NDArray> arrays = new IdentityHashMap<>();
    for (Parameter p : params(rig.model.getBlock())) {
      arrays.put(p, p.getArray());
    }
    return arrays;
  }

  /**
   * Each of the surgery's fault points ({@link Faults}: draws, initialization, trainer add and
   * remove) made to fail in turn, the k-th call for k = 1, 2, ... until the surgery gets through:
   * after every failure the tree, values, Parameters, store, state and generator are as before and
   * one step of training matches the twin that never tried, bit for bit; then the surgery succeeds
   * and every parameter trains as its shadow.
   */
  @ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.EnumSource(Scenario.class)
  void everyInjectedFaultInTheNestedSurgeryIsRolledBackExactly(Scenario scenario) {
    Net net = scenario.net();
    Net twinNet = scenario.net();
    try (Rig rig = new Rig(Opt.ADAM, net.root);
        Rig twin = new Rig(Opt.ADAM, twinNet.root)) {
      rig.steps(WARM_UP);
      twin.steps(WARM_UP);
      int k = 1;
      List<String> names = new ArrayList<>();
      List<Integer> drawFailures = new ArrayList<>();
      for (; ; k++) {
        assertTrue(k < 100, "the fault points never ran out");
        State untouched = State.of(rig);
        int[] calls = {0};
        int armed = k;
        names.clear();
        Faults faults =
            name -> {
              names.add(name);
              if (++calls[0] == armed) {
                throw new IllegalStateException("injected at " + name + " (" + armed + ")");
              }
            };
        Map<Parameter, NDArray> oldArrays = arraysOf(rig);
        Engine.getInstance().setRandomSeed(91);
        try {
          ModuleSurgery.replaceModuleClasses(
              net.root,
              asOnePolicy(scenario.policies(net)),
              List.of(rig.trainer),
              scenario.recurse(),
              null,
              faults);
        } catch (SurgeryException e) {
          float[] draw = Fixtures.nextDraw(rig.scratch);
          Engine.getInstance().setRandomSeed(91);
          float[] unmoved = Fixtures.nextDraw(rig.scratch);
          if (names.indexOf("draw") < names.size() - 1) {
            // A failure in the held-back draws themselves, after one of them: the generator has
            // moved (docs/reliability.md, "Known gaps"); all else is as before.
            drawFailures.add(k);
          } else {
            assertArrayEquals(unmoved, draw, "the failed surgery drew, fault " + k + " " + names);
          }
          untouched.assertSame(rig, "after fault " + k + " " + names);
          rig.assertStoreHoldsOnlyLive();
          rig.steps(1);
          twin.steps(1);
          assertTwins(twin, rig, "after fault " + k + " " + names);
          continue;
        }
        assertTrue(calls[0] < k, "the surgery got through fault " + k);
        rig.adopt(oldArrays);
        break;
      }
      assertTrue(k > 2, "fault points were reached: " + names);
      rig.assertAllMatchShadows("after the surgery");
      rig.steps(5);
    }
  }

  /** The scenario's matchers as one policy on every block, for the overload that takes faults. */
  static Map<Class<? extends Block>, ReplacementFunction> asOnePolicy(
      Map<BlockMatcher, ReplacementFunction> policies) {
    Map<Class<? extends Block>, ReplacementFunction> one = new LinkedHashMap<>();
    one.put(
        Block.class,
        (block, index) -> {
          for (Map.Entry<BlockMatcher, ReplacementFunction> e : policies.entrySet()) {
            if (e.getKey().matches(block, null)) {
              return e.getValue().apply(block, index);
            }
          }
          return null;
        });
    return one;
  }

  /**
   * Without a trainer the same surgery places every fresh layer too (a silent success with a
   * parameter without an array was the defect's trainerless face): the values, Parameters' shapes
   * and the generator are those of the surgery made with a trainer on a twin of the same values,
   * the plan without a trainer gives the same totals, and the model runs forward.
   */
  @ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.EnumSource(Scenario.class)
  void withoutATrainerTheSameValuesAsWithOne(Scenario scenario) {
    Net bare = scenario.net();
    Net trained = scenario.net();
    try (NDManager manager = NDManager.newBaseManager();
        Rig rig = new Rig(Opt.ADAM, trained.root)) {
      Engine.getInstance().setRandomSeed(1234);
      bare.root.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32, INPUT);
      assertEquals(params(trained.root).size(), params(bare.root).size());
      for (int i = 0; i < params(bare.root).size(); i++) {
        assertBits(
            params(trained.root).get(i).getArray().toFloatArray(),
            params(bare.root).get(i).getArray().toFloatArray(),
            "initialized alike " + i);
      }
      SurgeryOptions bareOptions =
          SurgeryOptions.builder().optRecurseOnReplacements(scenario.recurse()).build();
      SurgeryPlan plan = ModuleSurgery.plan(bare.root, scenario.policies(bare), bareOptions);
      Engine.getInstance().setRandomSeed(78);
      ModuleSurgery.replaceModules(bare.root, scenario.policies(bare), bareOptions);
      float[] bareDraw = Fixtures.nextDraw(manager);
      Engine.getInstance().setRandomSeed(78);
      ModuleSurgery.replaceModules(
          trained.root,
          scenario.policies(trained),
          SurgeryOptions.builder()
              .optTrainers(List.of(rig.trainer))
              .optRecurseOnReplacements(scenario.recurse())
              .build());
      assertArrayEquals(Fixtures.nextDraw(manager), bareDraw, "the generator");
      List<Parameter> expected = params(trained.root);
      List<Parameter> actual = params(bare.root);
      assertEquals(expected.size(), actual.size(), "parameters");
      for (int i = 0; i < expected.size(); i++) {
        assertTrue(actual.get(i).isInitialized(), actual.get(i).getName() + " has an array");
        assertBits(
            expected.get(i).getArray().toFloatArray(),
            actual.get(i).getArray().toFloatArray(),
            "parameter " + i + " " + actual.get(i).getName());
      }
      assertEquals(count(bare.root), plan.parametersAfter(), plan.toTable("plan"));
      bare.root
          .forward(
              new ai.djl.training.ParameterStore(manager, false),
              new NDList(manager.ones(INPUT)),
              false)
          .close();
    }
  }

  // ------------------------------------------------------------------------------------------

  interface Side extends Function<SurgeryPlan.Step, List<SurgeryPlan.PlannedParameter>> {}

  private static Map<String, Integer> plannedShapes(
      SurgeryPlan plan, SurgeryPlan.StateFate fate, Side side) {
    Map<String, Integer> shapes = new TreeMap<>();
    for (SurgeryPlan.Step step : plan.steps()) {
      for (SurgeryPlan.PlannedParameter p : side.apply(step)) {
        if (p.state() == fate) {
          shapes.merge(
              p.name().substring(p.name().lastIndexOf('_') + 1) + p.shape(), 1, Integer::sum);
        }
      }
    }
    return shapes;
  }

  /** The model's parameters as DJL lists them, each once (a shared block lists its own twice). */
  static List<Parameter> params(Block root) {
    Set<Parameter> seen = identitySet();
    List<Parameter> all = new ArrayList<>();
    for (Parameter p : root.getParameters().values()) {
      if (seen.add(p)) {
        all.add(p);
      }
    }
    return all;
  }

  private static long count(Block root) {
    long n = 0;
    for (Parameter p : params(root)) {
      n += p.getArray().getShape().size();
    }
    return n;
  }

  private static void assertBits(float[] expected, float[] actual, String where) {
    assertEquals(expected.length, actual.length, where);
    for (int i = 0; i < expected.length; i++) {
      if (!Float.isFinite(actual[i])
          || Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
        throw new AssertionError(
            where + ": element " + i + " is " + actual[i] + ", expected " + expected[i]);
      }
    }
  }

  /** Both models' parameters by position, their optimizer state and counts, bit for bit. */
  private static void assertTwins(Rig twin, Rig rig, String when) {
    List<Parameter> expected = params(twin.model.getBlock());
    List<Parameter> actual = params(rig.model.getBlock());
    assertEquals(expected.size(), actual.size(), when);
    Optimizer eo = DjlTrainers.optimizer(twin.trainer);
    Optimizer ao = DjlTrainers.optimizer(rig.trainer);
    var es = DjlOptimizers.optimizerStates(eo);
    var as = DjlOptimizers.optimizerStates(ao);
    for (int i = 0; i < expected.size(); i++) {
      Parameter e = expected.get(i);
      Parameter a = actual.get(i);
      String where = "#" + i + " " + a.getName() + " " + when;
      assertBits(e.getArray().toFloatArray(), a.getArray().toFloatArray(), where);
      for (String field : es.keySet()) {
        Map<Device, NDArray> ed = es.get(field).get(e.getId());
        Map<Device, NDArray> ad = as.get(field).get(a.getId());
        assertEquals(ed == null, ad == null, field + " " + where);
        if (ed != null) {
          assertEquals(ed.keySet(), ad.keySet(), field + " " + where);
          for (Device d : ed.keySet()) {
            assertBits(ed.get(d).toFloatArray(), ad.get(d).toFloatArray(), field + " " + where);
          }
        }
      }
      assertEquals(
          DjlOptimizers.updateCounts(eo).get(e.getId()),
          DjlOptimizers.updateCounts(ao).get(a.getId()),
          "count " + where);
    }
    assertEquals(
        DjlOptimizers.globalUpdateCount(eo), DjlOptimizers.globalUpdateCount(ao), "global " + when);
  }

  /** What the surgery did to each parameter, as seen from outside. */
  static final class Fates {
    final List<Parameter> survivors = new ArrayList<>();
    final List<Parameter> born = new ArrayList<>();
    final List<Parameter> removed = new ArrayList<>();
    final Map<Parameter, String> oldIds = new IdentityHashMap<>();

    Map<String, Integer> bornShapes() {
      Map<String, Integer> shapes = new TreeMap<>();
      for (Parameter p : born) {
        shapes.merge(p.getName() + p.getArray().getShape(), 1, Integer::sum);
      }
      return shapes;
    }

    @Override
    public String toString() {
      return "survivors "
          + names(survivors)
          + ", born "
          + names(born)
          + ", removed "
          + names(removed);
    }

    private static List<String> names(List<Parameter> ps) {
      List<String> names = new ArrayList<>();
      for (Parameter p : ps) {
        names.add(p.getName() + p.getShape());
      }
      return names;
    }
  }

  /** A parameter's shadow: a copy updated by an independent optimizer under the given id. */
  record Shadow(String id, NDArray copy, Optimizer optimizer) {}

  /** A model, its trainer, and a shadow of each parameter. */
  static final class Rig implements AutoCloseable {
    final Opt kind;
    final Model model;
    final Trainer trainer;
    final NDManager scratch = NDManager.newBaseManager();
    final Optimizer survivorShadows;
    Optimizer bornShadows;
    Map<Parameter, Shadow> shadows = new IdentityHashMap<>();
    int step;

    Rig(Opt kind, Block root) {
      this.kind = kind;
      model = TinyModels.model("nested", root);
      trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(kind.create(0)));
      Engine.getInstance().setRandomSeed(1234);
      trainer.initialize(INPUT);
      survivorShadows = kind.create(0);
      for (Parameter p : params(root)) {
        NDArray copy = p.getArray().duplicate();
        copy.attach(scratch);
        shadows.put(p, new Shadow(p.getId(), copy, survivorShadows));
      }
    }

    /** Sorts the live parameters into survivors and born; checks the removed ones are gone. */
    Fates adopt(Map<Parameter, NDArray> oldArrays) {
      Fates fates = new Fates();
      bornShadows = null; // each surgery's born parameters: a fresh optimizer from its position
      Map<NDArray, Parameter> byArray = new IdentityHashMap<>();
      oldArrays.forEach((p, a) -> byArray.put(a, p));
      Map<Parameter, Shadow> next = new IdentityHashMap<>();
      Set<Parameter> kept = identitySet();
      Optimizer live = DjlTrainers.optimizer(trainer);
      for (Parameter p : params(model.getBlock())) {
        if (next.containsKey(p)) {
          continue; // shared: listed twice
        }
        Parameter old = oldArrays.containsKey(p) ? p : byArray.get(p.getArray());
        if (old != null) {
          kept.add(old);
          next.put(p, shadows.get(old));
          fates.survivors.add(p);
          fates.oldIds.put(p, shadows.get(old).id());
        } else {
          if (bornShadows == null) {
            bornShadows = kind.create(step); // the model's position
          }
          NDArray copy = p.getArray().duplicate();
          copy.attach(scratch);
          next.put(p, new Shadow(p.getId(), copy, bornShadows));
          fates.born.add(p);
          assertNull(DjlOptimizers.updateCounts(live).get(p.getId()), "a born count");
          DjlOptimizers.optimizerStates(live)
              .forEach((f, s) -> assertFalse(s.containsKey(p.getId()), "born state " + f));
        }
      }
      for (Parameter old : oldArrays.keySet()) {
        if (!kept.contains(old)) {
          fates.removed.add(old);
          assertTrue(old.getArray().isReleased(), old.getName() + " left and is freed");
        }
      }
      shadows = next;
      assertStoreHoldsOnlyLive();
      return fates;
    }

    void assertStoreHoldsOnlyLive() {
      Set<String> live = new TreeSet<>();
      for (Parameter p : params(model.getBlock())) {
        live.add(p.getId());
        assertFalse(p.getArray().isReleased(), p.getName() + " of the model is freed");
      }
      Map<String, Object> entries = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer));
      assertEquals(live, new TreeSet<>(entries.keySet()), "the store's entries");
      for (Object entry : entries.values()) {
        for (NDArray mirror : DjlTrainers.mirrors(entry)) {
          assertFalse(mirror.isReleased(), "a freed array in the store");
        }
      }
      Optimizer optimizer = DjlTrainers.optimizer(trainer);
      DjlOptimizers.optimizerStates(optimizer)
          .forEach(
              (field, state) -> {
                assertTrue(live.containsAll(state.keySet()), field + " of a dead parameter");
                state
                    .values()
                    .forEach(
                        d -> d.values().forEach(a -> assertFalse(a.isReleased(), "freed state")));
              });
      assertTrue(live.containsAll(DjlOptimizers.updateCounts(optimizer).keySet()), "dead counts");
      for (NDArray a : OpenArrays.reachable(model.getBlock(), trainer)) {
        assertFalse(a.isReleased(), "a freed array is still reachable");
      }
    }

    void steps(int n) {
      for (int i = 0; i < n; i++) {
        stepOnce();
      }
    }

    private void stepOnce() {
      try (NDManager batch = scratch.newSubManager()) {
        NDArray x = batch.arange(20f).reshape(INPUT).add(step * 0.37f).sin();
        NDArray y = batch.arange(12f).reshape(4, 3).mul(0.5f).add(step * 0.11f).cos();
        try (GradientCollector collector = trainer.newGradientCollector()) {
          NDList prediction = trainer.forward(new NDList(x));
          collector.backward(trainer.getLoss().evaluate(new NDList(y), prediction));
        }
        Map<Parameter, NDArray> gradients = new IdentityHashMap<>();
        for (Parameter p : shadows.keySet()) {
          try (NDArray g = p.getArray().getGradient()) {
            NDArray kept = g.duplicate();
            kept.attach(batch);
            gradients.put(p, kept);
          }
        }
        trainer.step();
        for (Map.Entry<Parameter, Shadow> e : shadows.entrySet()) {
          Shadow s = e.getValue();
          s.optimizer().update(s.id(), s.copy(), gradients.get(e.getKey()));
        }
      }
      step++;
      assertAllMatchShadows("after step " + step);
    }

    void assertAllMatchShadows(String when) {
      Optimizer live = DjlTrainers.optimizer(trainer);
      var liveStates = DjlOptimizers.optimizerStates(live);
      for (Map.Entry<Parameter, Shadow> e : shadows.entrySet()) {
        Parameter p = e.getKey();
        Shadow s = e.getValue();
        String where = p.getName() + p.getShape() + " (" + p.getId() + ") " + when;
        assertBits(s.copy().toFloatArray(), p.getArray().toFloatArray(), where);
        var shadowStates = DjlOptimizers.optimizerStates(s.optimizer());
        for (String field : shadowStates.keySet()) {
          Map<Device, NDArray> expected = shadowStates.get(field).get(s.id());
          Map<Device, NDArray> actual = liveStates.get(field).get(p.getId());
          assertEquals(expected == null, actual == null, field + " present, " + where);
          if (expected != null) {
            for (Device d : expected.keySet()) {
              assertBits(
                  expected.get(d).toFloatArray(),
                  actual.get(d).toFloatArray(),
                  field + " " + where);
            }
          }
        }
        assertEquals(
            DjlOptimizers.updateCounts(s.optimizer()).get(s.id()),
            DjlOptimizers.updateCounts(live).get(p.getId()),
            "count " + where);
      }
    }

    @Override
    public void close() {
      trainer.close();
      model.close();
      scratch.close();
    }
  }

  /** Everything a failed surgery or a plan must leave as it was. */
  record State(
      Map<Block, List<Block>> tree,
      List<Parameter> parameters,
      List<NDArray> arrays,
      List<float[]> values,
      Map<String, Parameter> store,
      Map<String, float[]> optimizerState,
      Map<String, Integer> counts,
      Object installedOptimizer) {

    static State of(Rig rig) {
      Map<Block, List<Block>> tree = new IdentityHashMap<>();
      walk(rig.model.getBlock(), tree);
      List<Parameter> parameters = params(rig.model.getBlock());
      List<NDArray> arrays = new ArrayList<>();
      List<float[]> values = new ArrayList<>();
      for (Parameter p : parameters) {
        arrays.add(p.getArray());
        values.add(p.getArray().toFloatArray());
      }
      Map<String, Parameter> store = new HashMap<>();
      DjlTrainers.storeEntries(DjlTrainers.parameterStore(rig.trainer))
          .forEach((id, entry) -> store.put(id, DjlTrainers.entryParameter(entry)));
      Optimizer optimizer = DjlTrainers.optimizer(rig.trainer);
      return new State(
          tree,
          parameters,
          arrays,
          values,
          store,
          ExactnessOracle.optimizerStateValues(rig.trainer),
          new HashMap<>(DjlOptimizers.updateCounts(optimizer)),
          DjlTrainers.birthAwareOptimizer(rig.trainer, false));
    }

    private static void walk(Block block, Map<Block, List<Block>> tree) {
      if (tree.containsKey(block)) {
        return;
      }
      List<Block> children = new ArrayList<>(block.getChildren().values());
      tree.put(block, children);
      for (Block child : children) {
        walk(child, tree);
      }
    }

    void assertSame(Rig rig, String when) {
      State now = of(rig);
      assertEquals(tree.keySet().size(), now.tree.keySet().size(), "blocks " + when);
      for (Map.Entry<Block, List<Block>> e : tree.entrySet()) {
        List<Block> children = now.tree.get(e.getKey());
        assertNotNull(children, "a block left the tree " + when);
        assertEquals(e.getValue().size(), children.size(), "children " + when);
        for (int i = 0; i < children.size(); i++) {
          Assertions2.same(e.getValue().get(i), children.get(i), "child " + i + " " + when);
        }
      }
      assertEquals(parameters.size(), now.parameters.size(), when);
      for (int i = 0; i < parameters.size(); i++) {
        Assertions2.same(parameters.get(i), now.parameters.get(i), "parameter " + i + " " + when);
        Assertions2.same(arrays.get(i), now.arrays.get(i), "array " + i + " " + when);
        assertBits(values.get(i), now.values.get(i), "value " + i + " " + when);
      }
      assertEquals(store.keySet(), now.store.keySet(), "store " + when);
      store.forEach((id, p) -> Assertions2.same(p, now.store.get(id), "store " + id + " " + when));
      assertEquals(optimizerState.keySet(), now.optimizerState.keySet(), "state " + when);
      optimizerState.forEach(
          (k, v) -> assertBits(v, now.optimizerState.get(k), "state " + k + " " + when));
      assertEquals(counts, now.counts, "counts " + when);
      Assertions2.same(installedOptimizer, now.installedOptimizer, "installed optimizer " + when);
    }
  }

  /** Identity assertions under a name that does not clash with the record method. */
  static final class Assertions2 {
    static void same(Object expected, Object actual, String where) {
      org.junit.jupiter.api.Assertions.assertSame(expected, actual, where);
    }
  }
}
