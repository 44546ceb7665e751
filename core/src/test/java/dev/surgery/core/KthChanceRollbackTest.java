package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyDense;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A failure at every chance of one surgery, k = 1, 2, ... until the surgery succeeds, over trees
 * where the engine's newer paths run: a block in two branches, a Parameter object two blocks hold,
 * a block a plain field calls as well as being a child, a block whose getChildren() lists fields, a
 * block shared by two models each with its own trainer, frozen layers, a pending backward, and a
 * float16 model. The chances: the replacement function's k-th call throwing, its k-th replacement
 * having a parameter of the wrong shape, the matcher's k-th call throwing, the engine's named
 * points, and the trainers' own maps (store entries, optimizer state, update counts) failing at
 * their k-th change. After every failure {@link KthFaultRig} checks everything reachable, object
 * for object and bit for bit, and that ten more steps match a twin that never tried. The same
 * checks hold after the public freeze and unfreeze calls fail at each chance of the trainer's maps,
 * after surgeries the engine refuses by itself half way (a stale children list, an unwritable tie,
 * a replacement already in the model, two policies on one block, a replacement holding its
 * ancestor), and after a plan, which must also leave the engine's generator where it was.
 */
class KthChanceRollbackTest {

  private static final Shape INPUT = new Shape(4, 5);

  /** The trees. */
  enum Tree {
    CHAIN,
    BLOCK_IN_TWO_BRANCHES,
    PARAMETER_IN_TWO_BLOCKS,
    FIELD_TIE,
    FIELD_AND_CHILD,
    LIST_FIELD_TIE,
    LISTED_CHILDREN,
    LISTED_OUTSIDE_ABSTRACT_BLOCK,
    LISTED_ONCE_REGISTERED_TWICE,
    LISTED_SCALE,
    TWO_MODELS,
    TWO_MODELS_ONE_LISTING,
    FROZEN_LAYER,
    PENDING_BACKWARD,
    FROZEN_AND_PENDING,
    FLOAT16
  }

  /** The chances. */
  enum Seam {
    FUNCTION_THROWS,
    WRONG_SHAPE,
    MATCHER_THROWS,
    POINT_INITIALIZE,
    POINT_TRAINER_REMOVE,
    POINT_TRAINER_ADD,
    TRAINER_MAPS,
    /** The k-th getChildren() of a block that lists its children itself, while a surgery runs. */
    GET_CHILDREN_THROWS
  }

  /** Lists its children (held in fields) itself; each listing is a chance while one is armed. */
  static final class CountingListed extends Fixtures.TwoInOrder {
    CountingListed(Block first, Block second) {
      super(first, second);
    }

    @Override
    public ai.djl.nn.BlockList getChildren() {
      KthFaultRig.Injector armed = KthFaultRig.ARMED.get();
      if (armed != null) {
        armed.hit("getChildren");
      }
      return Fixtures.listOf(first, second);
    }
  }

  private static Block relu() {
    return Activation.reluBlock();
  }

  static List<Block> roots(Tree tree) {
    switch (tree) {
      case BLOCK_IN_TWO_BRANCHES -> {
        TinyDense shared = new TinyDense(5);
        ParallelBlock branches =
            new ParallelBlock(
                list ->
                    new NDList(list.get(0).singletonOrThrow().add(list.get(1).singletonOrThrow())),
                List.of(
                    new SequentialBlock().add(shared).add(relu()),
                    new SequentialBlock().add(new TinyDense(5)).add(shared)));
        return List.of(new SequentialBlock().add(branches).add(new TinyDense(3)));
      }
      case PARAMETER_IN_TWO_BLOCKS -> {
        TinyDense a = new TinyDense(5);
        return List.of(
            new SequentialBlock()
                .add(a)
                .add(relu())
                .add(new SharedParametersTest.TiedBias(a.getBias()))
                .add(new TinyDense(5))
                .add(new TinyDense(3)));
      }
      case FIELD_TIE -> {
        TinyDense a = new TinyDense(5);
        return List.of(
            new SequentialBlock()
                .add(a)
                .add(relu())
                .add(new TiedBlockTest.TiedHead(a, new TinyDense(5)))
                .add(new TinyDense(3)));
      }
      case FIELD_AND_CHILD -> {
        TinyDense a = new TinyDense(5);
        TiedBlockTest.TiedHead head = new TiedBlockTest.TiedHead(a, new TinyDense(5));
        head.adopt("again", a);
        return List.of(new SequentialBlock().add(a).add(relu()).add(head).add(new TinyDense(3)));
      }
      case LIST_FIELD_TIE -> {
        TinyDense a = new TinyDense(5);
        return List.of(
            new SequentialBlock()
                .add(a)
                .add(relu())
                .add(new TiedBlockTest.ListTiedHead(a, new TinyDense(5)))
                .add(new TinyDense(3)));
      }
      case LISTED_CHILDREN -> {
        return List.of(
            new SequentialBlock()
                .add(new TinyDense(5))
                .add(new CountingListed(new TinyDense(5), new TinyDense(5)))
                .add(new TinyDense(3)));
      }
      case TWO_MODELS -> {
        TinyDense shared = new TinyDense(5);
        return List.of(
            new SequentialBlock().add(shared).add(relu()).add(new TinyDense(3)),
            new SequentialBlock().add(shared).add(relu()).add(new TinyDense(3)));
      }
      case LISTED_OUTSIDE_ABSTRACT_BLOCK -> {
        return List.of(
            new SequentialBlock()
                .add(new TinyDense(5))
                .add(new ListedChildrenTest.BaseListed(new TinyDense(5), new TinyDense(5)))
                .add(new TinyDense(3)));
      }
      case LISTED_ONCE_REGISTERED_TWICE -> {
        return List.of(
            new SequentialBlock()
                .add(new TinyDense(5))
                .add(
                    new ListedChildrenTest.ListedOnceRegisteredTwice(
                        new TinyDense(5), new TinyDense(5)))
                .add(new TinyDense(3)));
      }
      case LISTED_SCALE -> {
        return List.of(
            new SequentialBlock()
                .add(new TinyDense(5))
                .add(new ListedChildrenTest.ListedScale())
                .add(new TinyDense(3)));
      }
      case TWO_MODELS_ONE_LISTING -> {
        // The other model reaches the shared layer through a block that lists its children.
        TinyDense shared = new TinyDense(5);
        return List.of(
            new SequentialBlock().add(shared).add(relu()).add(new TinyDense(3)),
            new SequentialBlock()
                .add(new CountingListed(shared, new TinyDense(5)))
                .add(new TinyDense(3)));
      }
      default -> {
        return List.of(
            new SequentialBlock()
                .add(new TinyDense(5))
                .add(relu())
                .add(new TinyDense(5))
                .add(relu())
                .add(new TinyDense(3)));
      }
    }
  }

  /** Weight copies, new wrappers around the arrays, half copies and adoptions, in turn. */
  static Block replacement(Block block, int index) {
    TinyDense old = (TinyDense) block;
    return switch (index % 4) {
      case 0 -> TinyDense.copying(old);
      case 1 -> TinyDense.rewrapping(old);
      case 2 -> TinyDense.copyingWeight(old);
      default -> TinyDense.adopting(old);
    };
  }

  /** A replacement with a parameter of the wrong shape: more units, or built for wider inputs. */
  static Block wrongShape(Block block, int k) {
    TinyDense old = (TinyDense) block;
    if (k % 2 == 1) {
      return new TinyDense(old.getUnits() + 1);
    }
    TinyDense wide = new TinyDense(old.getUnits());
    var anchor = old.getWeight().getArray();
    wide.initialize(anchor.getManager(), anchor.getDataType(), new Shape(4, 6));
    return wide;
  }

  static Stream<Arguments> cases() {
    List<Arguments> cases = new ArrayList<>();
    for (Tree tree : Tree.values()) {
      for (Seam seam : Seam.values()) {
        if (seam == Seam.GET_CHILDREN_THROWS
            && tree != Tree.LISTED_CHILDREN
            && tree != Tree.TWO_MODELS_ONE_LISTING) {
          continue; // only that tree has such a block
        }
        cases.add(
            Arguments.of(
                tree,
                seam,
                tree == Tree.FLOAT16
                    ? OptimizerKind.SGD_MOMENTUM
                    : OptimizerKind.ADAM_RATE_PER_ID));
        if (tree == Tree.CHAIN || tree == Tree.FROZEN_AND_PENDING) {
          cases.add(Arguments.of(tree, seam, OptimizerKind.SGD_MOMENTUM));
          cases.add(Arguments.of(tree, seam, OptimizerKind.ADAMW));
        }
      }
    }
    return cases.stream();
  }

  @ParameterizedTest(name = "{0}, {1}, {2}")
  @MethodSource("cases")
  void everyChanceIsRolledBackExactly(Tree tree, Seam seam, OptimizerKind kind) throws Exception {
    DataType type = tree == Tree.FLOAT16 ? DataType.FLOAT16 : DataType.FLOAT32;
    Consumer<KthFaultRig> prepare =
        rig -> {
          if (seam == Seam.TRAINER_MAPS) {
            rig.armTrainerMaps(); // before a stand-in optimizer takes the maps it holds
          }
          if (tree == Tree.FROZEN_LAYER || tree == Tree.FROZEN_AND_PENDING) {
            // The first (copied) and, frozen and pending, the second (rewrapped: it restarts).
            List<Parameter> frozen =
                new ArrayList<>(rig.roots.get(0).getChildren().valueAt(0).getParameters().values());
            if (tree == Tree.FROZEN_AND_PENDING) {
              frozen.addAll(rig.roots.get(0).getChildren().valueAt(2).getParameters().values());
            }
            ModuleSurgery.freezeParameters(frozen, rig.trainers);
          }
        };
    Consumer<KthFaultRig> beforeAttempt =
        rig -> {
          if (tree == Tree.PENDING_BACKWARD || tree == Tree.FROZEN_AND_PENDING) {
            rig.round(false);
          }
        };
    KthFaultRig.Sweep sweep =
        KthFaultRig.sweep(
            tree + "-" + seam + "-" + kind,
            name -> new KthFaultRig(name, roots(tree), INPUT, type, kind),
            prepare,
            beforeAttempt,
            (rig, injector) -> attempt(rig, seam, injector),
            seam != Seam.POINT_INITIALIZE); // its replacements draw fresh values
    sweep.reportAndAssertNoDefect();
  }

  static void attempt(KthFaultRig rig, Seam seam, KthFaultRig.Injector injector) {
    Block root = rig.roots.get(0);
    switch (seam) {
      case POINT_INITIALIZE, POINT_TRAINER_REMOVE, POINT_TRAINER_ADD -> {
        String point =
            switch (seam) {
              case POINT_INITIALIZE -> "initialize";
              case POINT_TRAINER_REMOVE -> "trainer.remove";
              default -> "trainer.add";
            };
        Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
        // The initialize point is reached only by a replacement the engine initializes.
        policies.put(
            TinyDense.class,
            seam == Seam.POINT_INITIALIZE
                ? (block, index) -> new TinyDense(((TinyDense) block).getUnits())
                : KthChanceRollbackTest::replacement);
        @SuppressWarnings({"unchecked", "rawtypes"})
        Map<Class<? extends Block>, Integer> indices = (Map) rig.indices;
        ModuleSurgery.replaceModuleClasses(
            root,
            policies,
            rig.trainers,
            false,
            indices,
            name -> {
              if (name.equals(point)) {
                injector.hit(point);
              }
            });
      }
      default -> {
        BlockMatcher matcher =
            seam == Seam.MATCHER_THROWS
                ? (block, path) -> {
                  injector.hit("matcher");
                  return block instanceof TinyDense;
                }
                : BlockMatcher.ofClass(TinyDense.class);
        ReplacementFunction function =
            switch (seam) {
              case FUNCTION_THROWS ->
                  (block, index) -> {
                    injector.hit("function");
                    return replacement(block, index);
                  };
              case WRONG_SHAPE ->
                  (block, index) -> {
                    if (injector.take("replacement")) {
                      return wrongShape(block, injector.k);
                    }
                    return replacement(block, index);
                  };
              default -> KthChanceRollbackTest::replacement;
            };
        Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(matcher, function);
        ModuleSurgery.replaceModules(
            root,
            policies,
            SurgeryOptions.builder().optTrainers(rig.trainers).optIndices(rig.indices).build());
      }
    }
  }

  /** The public freezing calls, all or nothing too. */
  enum Freezing {
    FREEZE,
    UNFREEZE,
    /** Frozen by flag only: the arrays kept taking gradients, which the unfreeze zeroes. */
    UNFREEZE_ARRAYS_TAKING_GRADIENTS
  }

  static Stream<Arguments> freezings() {
    List<Arguments> cases = new ArrayList<>();
    for (Freezing f : Freezing.values()) {
      for (boolean pending : new boolean[] {false, true}) {
        for (OptimizerKind kind :
            List.of(OptimizerKind.ADAM_RATE_PER_ID, OptimizerKind.SGD_MOMENTUM)) {
          cases.add(Arguments.of(f, pending, kind));
        }
      }
    }
    return cases.stream();
  }

  private static List<Parameter> firstTwoLayers(KthFaultRig rig) {
    List<Parameter> layers =
        new ArrayList<>(rig.roots.get(0).getChildren().valueAt(0).getParameters().values());
    layers.addAll(rig.roots.get(0).getChildren().valueAt(2).getParameters().values());
    return layers;
  }

  @ParameterizedTest(name = "{0}, pending backward {1}, {2}")
  @MethodSource("freezings")
  void everyChanceOfAFreezingIsRolledBackExactly(
      Freezing freezing, boolean pending, OptimizerKind kind) throws Exception {
    KthFaultRig.Sweep sweep =
        KthFaultRig.sweep(
            freezing + "-" + pending + "-" + kind,
            name -> new KthFaultRig(name, roots(Tree.CHAIN), INPUT, DataType.FLOAT32, kind),
            rig -> {
              rig.armTrainerMaps();
              if (freezing != Freezing.FREEZE) {
                ModuleSurgery.freezeParameters(firstTwoLayers(rig), rig.trainers);
              }
              if (freezing == Freezing.UNFREEZE_ARRAYS_TAKING_GRADIENTS) {
                for (Parameter p : firstTwoLayers(rig)) {
                  p.getArray().setRequiresGradient(true);
                }
                rig.round(true); // a gradient the frozen parameters' arrays keep
              }
            },
            rig -> {
              if (pending) {
                rig.round(false);
              }
            },
            (rig, injector) -> {
              if (freezing == Freezing.FREEZE) {
                ModuleSurgery.freezeParameters(firstTwoLayers(rig), rig.trainers);
              } else {
                ModuleSurgery.unfreezeParameters(firstTwoLayers(rig), rig.trainers);
              }
            },
            true);
    sweep.reportAndAssertNoDefect();
  }

  /** Surgeries the engine refuses by itself, after it changed part of the tree. */
  enum Refusal {
    /** A parent lists its second child only while it is a TinyDense: the list goes stale. */
    STALE_LIST,
    /** A block calls the replaced layer through an Optional, which the engine cannot write. */
    UNWRITABLE_TIE,
    /** The second replacement is the model's third layer, still in the model. */
    ALREADY_IN_THE_MODEL,
    /** A second policy replaces the last layer again. */
    TWO_POLICIES,
    /** The last replacement holds the root. */
    HOLDS_ITS_ANCESTOR
  }

  static Stream<Arguments> refusals() {
    List<Arguments> cases = new ArrayList<>();
    for (Refusal r : Refusal.values()) {
      cases.add(Arguments.of(r, false));
      cases.add(Arguments.of(r, true));
    }
    return cases.stream();
  }

  @ParameterizedTest(name = "{0}, pending backward {1}")
  @MethodSource("refusals")
  void aRefusalAfterPartOfTheSurgeryIsRolledBackExactly(Refusal refusal, boolean pending)
      throws Exception {
    KthFaultRig.Sweep sweep =
        KthFaultRig.refused(
            refusal + "-" + pending,
            name ->
                new KthFaultRig(
                    name,
                    refusalTree(refusal),
                    INPUT,
                    DataType.FLOAT32,
                    OptimizerKind.ADAM_RATE_PER_ID),
            rig -> {
              if (pending) {
                rig.round(false);
              }
            },
            (rig, injector) -> {
              Block root = rig.roots.get(0);
              Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
              Block last = root.getChildren().valueAt(root.getChildren().size() - 1);
              policies.put(
                  BlockMatcher.ofClass(TinyDense.class),
                  (block, index) ->
                      switch (refusal) {
                        case STALE_LIST -> new SequentialBlock().add(replacement(block, index));
                        case ALREADY_IN_THE_MODEL -> index == 1 ? last : replacement(block, index);
                        case HOLDS_ITS_ANCESTOR ->
                            block == last
                                ? new SequentialBlock().add(root)
                                : replacement(block, index);
                        default -> replacement(block, index);
                      });
              if (refusal == Refusal.TWO_POLICIES) {
                policies.put(
                    BlockMatcher.byBlock(b -> b == last),
                    (block, index) -> TinyDense.copying((TinyDense) block));
              }
              ModuleSurgery.replaceModules(
                  root, policies, SurgeryOptions.builder().optTrainers(rig.trainers).build());
            });
    System.out.println("REFUSAL " + sweep.label + ": " + sweep.notes);
    assertTrue(sweep.defects.isEmpty(), sweep.label + ": " + String.join("\n", sweep.defects));
  }

  private static List<Block> refusalTree(Refusal refusal) {
    switch (refusal) {
      case STALE_LIST -> {
        return List.of(
            new SequentialBlock()
                .add(new TinyDense(5))
                .add(new ListedChildrenTest.ListedByClass(new TinyDense(5), new TinyDense(5)))
                .add(new TinyDense(3)));
      }
      case UNWRITABLE_TIE -> {
        TinyDense a = new TinyDense(5);
        return List.of(
            new SequentialBlock()
                .add(new TinyDense(5))
                .add(a)
                .add(relu())
                .add(new TiedBlockTest.OptionalTiedHead(a, new TinyDense(5)))
                .add(new TinyDense(3)));
      }
      default -> {
        return roots(Tree.CHAIN);
      }
    }
  }

  @ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.EnumSource(Tree.class)
  void aPlanLeavesEverythingAsItWas(Tree tree) throws Exception {
    DataType type = tree == Tree.FLOAT16 ? DataType.FLOAT16 : DataType.FLOAT32;
    OptimizerKind kind =
        tree == Tree.FLOAT16 ? OptimizerKind.SGD_MOMENTUM : OptimizerKind.ADAM_RATE_PER_ID;
    KthFaultRig.Sweep sweep =
        KthFaultRig.once(
            "plan-" + tree,
            name -> new KthFaultRig(name, roots(tree), INPUT, type, kind),
            rig -> {
              if (tree == Tree.PENDING_BACKWARD || tree == Tree.FROZEN_AND_PENDING) {
                rig.round(false);
              }
            },
            (rig, injector) -> {
              // Copies, rewraps and adoptions, and a fresh layer the plan must not draw for.
              Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
              policies.put(
                  BlockMatcher.ofClass(TinyDense.class),
                  (block, index) ->
                      index == 0
                          ? new TinyDense(((TinyDense) block).getUnits())
                          : replacement(block, index));
              ModuleSurgery.plan(
                  rig.roots.get(0),
                  policies,
                  SurgeryOptions.builder().optTrainers(rig.trainers).build());
            },
            false);
    assertTrue(sweep.defects.isEmpty(), sweep.label + ": " + String.join("\n", sweep.defects));
  }

  /**
   * The one-to-one move of {@link ModuleSurgery#replaceParamsInOptimizer} after the blocks were
   * swapped without the trainer (weight copies, new wrappers, half copies, adoptions), with the
   * trainer's maps failing at each chance; the twins train once the move succeeded.
   */
  @ParameterizedTest(name = "{0}, pending backward {1}")
  @MethodSource("moves")
  void everyChanceOfAOneToOneMoveIsRolledBackExactly(OptimizerKind kind, boolean pending)
      throws Exception {
    KthFaultRig.Sweep sweep =
        KthFaultRig.sweep(
            "move-" + kind + "-" + pending,
            name -> new KthFaultRig(name, roots(Tree.CHAIN), INPUT, DataType.FLOAT32, kind),
            rig -> {
              rig.armTrainerMaps();
              if (pending) {
                rig.round(false);
              }
              Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
              policies.put(
                  BlockMatcher.ofClass(TinyDense.class), KthChanceRollbackTest::replacement);
              Map<Block, Block> swapped =
                  ModuleSurgery.replaceModules(
                      rig.roots.get(0), policies, SurgeryOptions.defaults());
              List<Parameter> from = new ArrayList<>();
              List<Parameter> to = new ArrayList<>();
              swapped.forEach(
                  (old, fresh) -> {
                    from.addAll(((TinyDense) old).getParameters().values());
                    to.addAll(((TinyDense) fresh).getParameters().values());
                  });
              rig.handed.add(from);
              rig.handed.add(to);
            },
            rig -> {},
            (rig, injector) -> {
              @SuppressWarnings("unchecked")
              List<Parameter> from = (List<Parameter>) rig.handed.get(0);
              @SuppressWarnings("unchecked")
              List<Parameter> to = (List<Parameter>) rig.handed.get(1);
              ModuleSurgery.replaceParamsInOptimizer(from, to, rig.trainers);
            },
            true,
            false);
    sweep.reportAndAssertNoDefect();
  }

  static Stream<Arguments> moves() {
    List<Arguments> cases = new ArrayList<>();
    for (OptimizerKind kind :
        List.of(OptimizerKind.ADAM_RATE_PER_ID, OptimizerKind.SGD_MOMENTUM, OptimizerKind.ADAMW)) {
      cases.add(Arguments.of(kind, false));
      cases.add(Arguments.of(kind, true));
    }
    return cases.stream();
  }
}
