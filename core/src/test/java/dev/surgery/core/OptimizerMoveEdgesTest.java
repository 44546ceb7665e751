package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.OptimizerMoveRig.Batches;
import dev.surgery.core.OptimizerMoveRig.Batches.Batch;
import dev.surgery.core.OptimizerMoveRig.Kind;
import dev.surgery.core.OptimizerMoveRig.Shadow;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.opentest4j.AssertionFailedError;

/**
 * The edges of {@code replaceParamsInOptimizer} and {@code updateParamsInOptimizer} and their
 * interplay with freezing, each against an oracle of this probe's own: DJL's optimizers replayed on
 * copies of the weights with the subject's gradients (a fresh optimizer for what must start fresh),
 * or a twin run without the call.
 */
class OptimizerMoveEdgesTest {

  static final float LR = 0.01f;

  /** How the source layer stops training. */
  enum Freeze {
    /** DJL's own {@code block.freezeParameters(true)}: the optimizer keeps its state. */
    DJL,
    /** {@code ModuleSurgery.freezeParameters}: the state is dropped. */
    SURGERY
  }

  /** How the replacement holds the weights. */
  enum Hold {
    /** A {@code WeightCopy.into} copy (new arrays). */
    COPY,
    /** New Parameters around the very arrays. */
    REWRAP
  }

  static Linear rewrap(Linear old) {
    Linear fresh =
        Linear.builder()
            .setUnits(old.getParameters().get("weight").getArray().getShape().get(0))
            .build();
    for (Parameter p : OptimizerMoveRig.params(fresh)) {
      p.setArray(old.getParameters().get(p.getName()).getArray());
    }
    return fresh;
  }

  static Linear copy(Linear old) {
    long units = old.getParameters().get("weight").getArray().getShape().get(0);
    return WeightCopy.into(Linear.builder().setUnits(units).build(), old);
  }

  static Linear hold(Hold hold, Linear old) {
    return hold == Hold.COPY ? copy(old) : rewrap(old);
  }

  /** Replaces layer {@code i} without the trainer; returns the replacement in the tree. */
  static Linear replaceWithoutTrainer(OptimizerMoveRig rig, int i, Supplier<Block> replacement) {
    replaceWithoutTrainer(rig.net, rig.child(i), replacement);
    return rig.layer(i);
  }

  /** Replaces the Linear {@code old} of {@code net} without any trainer. */
  static void replaceWithoutTrainer(Block net, Block old, Supplier<Block> replacement) {
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(
            net,
            Map.of(Linear.class, (b, k) -> b == old ? replacement.get() : null),
            null,
            false,
            null);
    assertEquals(1, replaced.size());
  }

  /** An optimizer of this kind at the fixed rate, from step 0. */
  static Optimizer fixed(Kind kind) {
    return kind.build(Tracker.fixed(LR), 0);
  }

  /** A rig training at the fixed rate. */
  static OptimizerMoveRig rig(String name, Kind kind, long seed) {
    return new OptimizerMoveRig(name, fixed(kind), seed);
  }

  /** A shadow that follows every parameter of the subject in one replayed optimizer. */
  static Shadow shadowOf(OptimizerMoveRig subject, Optimizer replay) {
    Shadow shadow = new Shadow();
    for (Parameter p : subject.params()) {
      shadow.follow(p, replay);
    }
    return shadow;
  }

  /** The layer, frozen by DJL's own {@code freezeParameters(true)}. */
  static Linear frozen(Linear layer) {
    layer.freezeParameters(true);
    return layer;
  }

  /** Stops layer {@code i} training, as {@code how} says. */
  static void freeze(Freeze how, OptimizerMoveRig subject, int i) {
    if (how == Freeze.DJL) {
      subject.child(i).freezeParameters(true);
    } else {
      ModuleSurgery.freezeParameters(
          OptimizerMoveRig.params(subject.child(i)), List.of(subject.trainer));
    }
  }

  /**
   * The shadow's slots of {@code from} stop and {@code to} starts in {@code fresh}, pair by pair
   * (drop, then follow: the follow order is the update order); returns the new shadow ids.
   */
  static List<String> restart(
      Shadow shadow, List<Parameter> from, List<Parameter> to, Optimizer fresh) {
    List<String> ids = new ArrayList<>();
    for (int i = 0; i < from.size(); i++) {
      shadow.drop(from.get(i));
      ids.add(shadow.follow(to.get(i), fresh));
    }
    return ids;
  }

  /** A layer's parameters before and after its replacement. */
  record Swap(List<Parameter> before, List<Parameter> after) {
    /** Moves the old parameters' training with {@code replaceParamsInOptimizer}. */
    Swap replaceInOptimizer(Trainer... trainers) {
      ModuleSurgery.replaceParamsInOptimizer(before, after, List.of(trainers));
      return this;
    }

    /** Moves the old parameters' training with {@code updateParamsInOptimizer}. */
    Swap updateInOptimizer(Trainer... trainers) {
      ModuleSurgery.updateParamsInOptimizer(before, after, List.of(trainers));
      return this;
    }

    /** The shadow carries each old slot on as the new parameter's (state kept). */
    void carry(Shadow shadow) {
      for (int i = 0; i < before.size(); i++) {
        shadow.carry(before.get(i), after.get(i));
      }
    }

    /** The new parameters start in {@code fresh}; returns their shadow ids. */
    List<String> restart(Shadow shadow, Optimizer fresh) {
      return OptimizerMoveEdgesTest.restart(shadow, before, after, fresh);
    }
  }

  /** Replaces layer {@code i} by {@code how} of it, without the trainer. */
  static Swap swap(OptimizerMoveRig subject, int i, UnaryOperator<Linear> how) {
    List<Parameter> before = OptimizerMoveRig.params(subject.child(i));
    Linear old = subject.layer(i);
    Linear now = replaceWithoutTrainer(subject, i, () -> how.apply(old));
    return new Swap(before, OptimizerMoveRig.params(now));
  }

  // ---------------------------------------------------------------------------------------------

  /** The oracle itself: with no surgery the shadow and the twin follow the subject bit for bit. */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void theShadowAndTheTwinFollowPlainTraining(Kind kind) {
    try (Batches data = new Batches(11, 7);
        OptimizerMoveRig subject = rig("s", kind, 5);
        OptimizerMoveRig twin = rig("t", kind, 5);
        Shadow shadow = shadowOf(subject, fixed(kind))) {
      for (int k = 0; k < 25; k++) {
        shadow.step(subject, data.get(k), "step " + k);
        twin.step(data.get(k));
        OptimizerMoveRig.assertSameValues(subject, twin, "step " + k);
      }
    }
  }

  /**
   * A frozen layer (DJL's freeze keeps its state; the library's drops it) replaced, without the
   * trainer, by a trainable copy or rewrap, then moved with {@code replaceParamsInOptimizer}: the
   * new parameters train as a fresh optimizer of the same settings would, the rest go on with their
   * own state.
   */
  @ParameterizedTest(name = "{0} {1} {2}")
  @MethodSource("frozenCases")
  void aFrozenSourceMovedToATrainableTargetStartsFresh(Kind kind, Freeze freeze, Hold hold) {
    try (Batches data = new Batches(12, 9);
        OptimizerMoveRig subject = rig("s", kind, 6);
        Shadow shadow = shadowOf(subject, fixed(kind))) {
      int k = 0;
      for (; k < 6; k++) {
        shadow.step(subject, data.get(k), "before freeze " + k);
      }
      freeze(freeze, subject, 1);
      for (; k < 12; k++) {
        shadow.step(subject, data.get(k), "frozen " + k);
      }
      Swap moved = swap(subject, 1, old -> hold(hold, old));
      assertTrue(moved.after().get(0).requiresGradient());
      moved.replaceInOptimizer(subject.trainer).restart(shadow, fixed(kind));
      for (; k < 32; k++) {
        shadow.step(subject, data.get(k), "after the move " + k);
      }
    }
  }

  static Stream<Arguments> frozenCases() {
    List<Arguments> all = new ArrayList<>();
    for (Kind kind : Kind.values()) {
      for (Freeze f : Freeze.values()) {
        for (Hold h : Hold.values()) {
          all.add(Arguments.of(kind, f, h));
        }
      }
    }
    return all.stream();
  }

  /**
   * The oracle tells a fresh start from a carried one (else the tests above would prove nothing).
   */
  @Test
  void theOracleTellsAFreshStartFromCarriedState() {
    try (Batches data = new Batches(12, 9);
        OptimizerMoveRig subject = rig("s", Kind.ADAM, 6);
        Shadow shadow = shadowOf(subject, fixed(Kind.ADAM))) {
      int k = 0;
      for (; k < 6; k++) {
        shadow.step(subject, data.get(k), "before " + k);
      }
      subject.child(1).freezeParameters(true);
      swap(subject, 1, OptimizerMoveEdgesTest::copy)
          .replaceInOptimizer(subject.trainer)
          .carry(shadow); // the wrong expectation
      int at = k;
      assertThrows(AssertionFailedError.class, () -> shadow.step(subject, data.get(at), "carried"));
    }
  }

  /**
   * Frozen source to frozen target (DJL's freeze keeps the state, which moves with the parameter),
   * then the target unfrozen. By DJL's own {@code freeze(false)} it goes on with the moved state
   * exactly as the twin that was frozen and unfrozen by DJL without any surgery (SGD with momentum
   * and a fixed rate, whose step does not depend on DJL's hash-ordered count); by {@code
   * ModuleSurgery.unfreezeParameters} it starts fresh (Adam, a fresh optimizer fed its gradients).
   */
  @ParameterizedTest
  @EnumSource(Hold.class)
  void aFrozenSourceMovedToAFrozenTargetKeepsDjlsStateForAnUnfreezeByDjl(Hold hold) {
    Kind kind = Kind.SGD_MOMENTUM;
    try (Batches data = new Batches(13, 9);
        OptimizerMoveRig subject = rig("s", kind, 7);
        OptimizerMoveRig twin = rig("t", kind, 7)) {
      for (int k = 0; k < 30; k++) {
        if (k == 8) {
          subject.child(1).freezeParameters(true);
          twin.child(1).freezeParameters(true);
        }
        if (k == 12) {
          Swap moved = swap(subject, 1, old -> frozen(hold(hold, old)));
          assertFalse(moved.after().get(0).requiresGradient());
          moved.replaceInOptimizer(subject.trainer);
        }
        if (k == 16) {
          subject.child(1).freezeParameters(false);
          twin.child(1).freezeParameters(false);
        }
        OptimizerMoveRig.stepTwins(subject, twin, data.get(k), "step " + k);
      }
    }
  }

  /** The same frozen target unfrozen with {@code ModuleSurgery.unfreezeParameters}: fresh. */
  @ParameterizedTest(name = "{0} {1} {2}")
  @MethodSource("frozenCases")
  void aFrozenTargetUnfrozenByTheLibraryStartsFresh(Kind kind, Freeze freeze, Hold hold) {
    try (Batches data = new Batches(14, 9);
        OptimizerMoveRig subject = rig("s", kind, 8);
        Shadow shadow = shadowOf(subject, fixed(kind))) {
      List<Parameter> moved = null;
      for (int k = 0; k < 30; k++) {
        if (k == 5) {
          freeze(freeze, subject, 2);
        }
        if (k == 9) {
          Swap swap = swap(subject, 2, old -> frozen(hold(hold, old)));
          swap.replaceInOptimizer(subject.trainer).carry(shadow);
          moved = swap.after();
        }
        if (k == 13) {
          ModuleSurgery.unfreezeParameters(moved, List.of(subject.trainer));
          restart(shadow, moved, moved, fixed(kind));
        }
        shadow.step(subject, data.get(k), "step " + k);
      }
    }
  }

  /**
   * A trainable source moved to a frozen copy keeps its state for later: DJL's {@code
   * freeze(false)} on the copy goes on exactly as the twin frozen and unfrozen by DJL.
   */
  @Test
  void aTrainableSourceMovedToAFrozenCopyKeepsItsStateForAnUnfreezeByDjl() {
    Kind kind = Kind.SGD_MOMENTUM;
    try (Batches data = new Batches(15, 9);
        OptimizerMoveRig subject = rig("s", kind, 9);
        OptimizerMoveRig twin = rig("t", kind, 9)) {
      for (int k = 0; k < 30; k++) {
        if (k == 10) {
          swap(subject, 1, old -> frozen(copy(old))).replaceInOptimizer(subject.trainer);
          twin.child(1).freezeParameters(true);
        }
        if (k == 15) {
          subject.child(1).freezeParameters(false);
          twin.child(1).freezeParameters(false);
        }
        OptimizerMoveRig.stepTwins(subject, twin, data.get(k), "step " + k);
      }
    }
  }

  /**
   * Repeated moves: A to a copy B, B to a rewrap C, C to a copy D, each through a surgery without
   * the trainer and {@code replaceParamsInOptimizer}, a step apart or none: the twin without any
   * surgery is matched bit for bit (Adam, AdamW, SGD momentum).
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void repeatedMovesKeepTheTrajectoryOfTheTwin(Kind kind) {
    try (Batches data = new Batches(16, 9);
        OptimizerMoveRig subject = rig("s", kind, 10);
        OptimizerMoveRig twin = rig("t", kind, 10)) {
      for (int k = 0; k < 30; k++) {
        if (k == 6 || k == 7 || k == 10) {
          int moves = k == 7 ? 2 : 1; // two moves with no step between
          for (int m = 0; m < moves; m++) {
            boolean rewrap = (k + m) % 2 == 1;
            swap(subject, 1, old -> rewrap ? rewrap(old) : copy(old))
                .replaceInOptimizer(subject.trainer);
          }
        }
        OptimizerMoveRig.stepTwins(subject, twin, data.get(k), "step " + k);
      }
    }
  }

  /**
   * A born parameter (a copy registered fresh through {@code updateParamsInOptimizer}) moved later
   * to a copy of itself keeps its own count and state: it goes on as the fresh optimizer it started
   * in; moved again to a frozen copy and unfrozen by the library, it starts fresh once more.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void aBornParameterMovedKeepsItsOwnCount(Kind kind) {
    try (Batches data = new Batches(17, 9);
        OptimizerMoveRig subject = rig("s", kind, 11);
        Shadow shadow = shadowOf(subject, fixed(kind))) {
      for (int k = 0; k < 40; k++) {
        if (k == 8) {
          swap(subject, 3, OptimizerMoveEdgesTest::copy)
              .updateInOptimizer(subject.trainer)
              .restart(shadow, fixed(kind));
        }
        if (k == 14 || k == 20) {
          boolean asCopy = k == 14;
          swap(subject, 3, old -> asCopy ? copy(old) : rewrap(old))
              .replaceInOptimizer(subject.trainer)
              .carry(shadow);
        }
        if (k == 26) {
          swap(subject, 3, old -> frozen(copy(old)))
              .replaceInOptimizer(subject.trainer)
              .carry(shadow);
        }
        if (k == 30) {
          List<Parameter> now = OptimizerMoveRig.params(subject.child(3));
          ModuleSurgery.unfreezeParameters(now, List.of(subject.trainer));
          restart(shadow, now, now, fixed(kind));
        }
        shadow.step(subject, data.get(k), "step " + k);
      }
    }
  }

  /**
   * Right after a resume with {@code optBeginNumUpdate(100)}, before any step, under a schedule: a
   * trainable layer moved to a copy goes on exactly as the twin resumed the same way; a layer
   * frozen by DJL moved to a trainable copy (at once, or after 5 steps) trains as a fresh optimizer
   * whose schedule is shifted to the model's position (100, or 105).
   */
  @ParameterizedTest(name = "{0} frozen steps before the move: {1}")
  @MethodSource("resumeCases")
  void movesRightAfterAResume(Kind kind, int frozenSteps) {
    int begin = 100;
    ParameterTracker schedule = OptimizerMoveRig.schedule(n -> n);
    try (Batches data = new Batches(18, 9);
        OptimizerMoveRig subject = new OptimizerMoveRig("s", kind.build(schedule, begin), 12);
        OptimizerMoveRig twin = new OptimizerMoveRig("t", kind.build(schedule, begin), 12);
        Shadow shadow = shadowOf(subject, kind.build(schedule, begin))) {
      // layer 2: a trainable move before the first step; the twin makes none
      swap(subject, 2, OptimizerMoveEdgesTest::copy)
          .replaceInOptimizer(subject.trainer)
          .carry(shadow);
      // layer 1: frozen by DJL from the start (in the twin too)
      subject.child(1).freezeParameters(true);
      twin.child(1).freezeParameters(true);
      int k = 0;
      for (; k < frozenSteps; k++) {
        shadow.step(subject, data.get(k), "frozen " + k);
        twin.step(data.get(k));
        OptimizerMoveRig.assertSameValues(subject, twin, "step " + k);
      }
      Swap moved =
          swap(subject, 1, OptimizerMoveEdgesTest::copy).replaceInOptimizer(subject.trainer);
      int position = begin + frozenSteps;
      moved.restart(shadow, kind.build(OptimizerMoveRig.schedule(n -> n + position), 0));
      for (int end = k + 20; k < end; k++) {
        shadow.step(subject, data.get(k), "after the move " + k);
      }
    }
  }

  static Stream<Arguments> resumeCases() {
    List<Arguments> all = new ArrayList<>();
    for (Kind kind : Kind.values()) {
      all.add(Arguments.of(kind, 0));
      all.add(Arguments.of(kind, 5));
    }
    return all.stream();
  }

  /**
   * One {@code updateParamsInOptimizer} call mixing a rewrap of a DJL-frozen layer that now trains
   * (fresh), a rewrap of a trainable layer that is now frozen (state kept, fresh once the library
   * unfreezes it), and a copy (born): each against its own DJL optimizer.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void updateParamsInOptimizerWithMixedFrozenAndTrainableRewraps(Kind kind) {
    try (Batches data = new Batches(19, 9);
        OptimizerMoveRig subject = rig("s", kind, 13);
        Shadow shadow = shadowOf(subject, fixed(kind))) {
      int k = 0;
      for (; k < 5; k++) {
        shadow.step(subject, data.get(k), "step " + k);
      }
      subject.child(0).freezeParameters(true);
      for (; k < 9; k++) {
        shadow.step(subject, data.get(k), "step " + k);
      }
      List<Parameter> before = subject.params();
      Block l0 = subject.child(0);
      Block l1 = subject.child(1);
      Block l2 = subject.child(2);
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModuleClasses(
              subject.net,
              Map.of(
                  Linear.class,
                  (b, i) -> {
                    if (b == l0) {
                      return rewrap((Linear) b); // trains: was frozen
                    }
                    if (b == l1) {
                      return frozen(rewrap((Linear) b)); // frozen: was trainable
                    }
                    return b == l2 ? copy((Linear) b) : null;
                  }),
              null,
              false,
              null);
      assertEquals(3, replaced.size());
      List<Parameter> after = subject.params();
      ModuleSurgery.updateParamsInOptimizer(before, after, List.of(subject.trainer));
      Optimizer fresh = fixed(kind);
      for (int i = 0; i < 6; i++) {
        if (i < 2 || i >= 4) {
          shadow.drop(before.get(i));
          shadow.follow(after.get(i), fresh); // layer 0 restarts, layer 2 is born
        } else {
          shadow.carry(before.get(i), after.get(i)); // layer 1 frozen with its state
        }
      }
      for (; k < 16; k++) {
        shadow.step(subject, data.get(k), "step " + k);
      }
      List<Parameter> l1Now = OptimizerMoveRig.params(subject.child(1));
      ModuleSurgery.unfreezeParameters(l1Now, List.of(subject.trainer));
      restart(shadow, l1Now, l1Now, fixed(kind));
      for (; k < 32; k++) {
        shadow.step(subject, data.get(k), "step " + k);
      }
    }
  }

  /**
   * Learning rates by parameter id (a tracker of the program's, keyed by the ids of the initialized
   * model) through a chain of moves of layer 1: copy, rewrap, library freeze, rewrap that trains
   * again (fresh, at the first id's rate), rekey through updateParamsInOptimizer, a copy through
   * updateParamsInOptimizer (born: the default rate), and a move of that born one (its own id's
   * answer, the default); layer 2 frozen by DJL, moved to a frozen copy and unfrozen by the library
   * (fresh, at its first id's rate). Each slot of the oracle is given the rate its expectation
   * names, by its own id.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void ratesByIdFollowTheFirstIdThroughEveryMove(Kind kind) {
    float fallback = 0.004f;
    Map<String, Float> rates = new ConcurrentHashMap<>();
    Map<String, Float> shadowRates = new ConcurrentHashMap<>();
    try (Batches data = new Batches(20, 9);
        OptimizerMoveRig subject =
            new OptimizerMoveRig(
                "s", kind.build(OptimizerMoveRig.ratesById(rates, fallback), 0), 14);
        Shadow shadow = new Shadow()) {
      List<Parameter> initial = subject.params();
      Map<Parameter, Float> rateOf = new IdentityHashMap<>();
      Optimizer replay = kind.build(OptimizerMoveRig.ratesById(shadowRates, fallback), 0);
      for (int i = 0; i < initial.size(); i++) {
        float r = 0.003f + 0.003f * (i % 4);
        rates.put(initial.get(i).getId(), r);
        shadowRates.put(shadow.follow(initial.get(i), replay), r);
        rateOf.put(initial.get(i), r);
      }
      List<Parameter> first1 = OptimizerMoveRig.params(subject.child(1));
      List<Parameter> first2 = OptimizerMoveRig.params(subject.child(2));
      Supplier<Optimizer> fresh =
          () -> kind.build(OptimizerMoveRig.ratesById(shadowRates, fallback), 0);
      for (int k = 0; k < 44; k++) {
        switch (k) {
          case 4:
          case 7:
          case 25:
            {
              boolean asCopy = k != 7;
              swap(subject, 1, old -> asCopy ? copy(old) : rewrap(old))
                  .replaceInOptimizer(subject.trainer)
                  .carry(shadow);
              break;
            }
          case 10:
            ModuleSurgery.freezeParameters(
                OptimizerMoveRig.params(subject.child(1)), List.of(subject.trainer));
            break;
          case 13:
            {
              List<String> ids =
                  swap(subject, 1, OptimizerMoveEdgesTest::rewrap)
                      .replaceInOptimizer(subject.trainer)
                      .restart(shadow, fresh.get());
              for (int i = 0; i < 2; i++) {
                shadowRates.put(ids.get(i), rateOf.get(first1.get(i)));
              }
              break;
            }
          case 17:
          case 21:
            {
              boolean asCopy = k == 21;
              Swap moved =
                  swap(subject, 1, old -> asCopy ? copy(old) : rewrap(old))
                      .updateInOptimizer(subject.trainer);
              if (asCopy) {
                for (String id : moved.restart(shadow, fresh.get())) {
                  shadowRates.put(id, fallback); // born
                }
              } else {
                moved.carry(shadow);
              }
              break;
            }
          case 5:
            subject.child(2).freezeParameters(true);
            break;
          case 8:
            swap(subject, 2, old -> frozen(copy(old)))
                .replaceInOptimizer(subject.trainer)
                .carry(shadow);
            break;
          case 12:
            {
              List<Parameter> now = OptimizerMoveRig.params(subject.child(2));
              ModuleSurgery.unfreezeParameters(now, List.of(subject.trainer));
              List<String> ids = restart(shadow, now, now, fresh.get());
              for (int i = 0; i < 2; i++) {
                shadowRates.put(ids.get(i), rateOf.get(first2.get(i)));
              }
              break;
            }
          default:
            break;
        }
        shadow.step(subject, data.get(k), "step " + k);
      }
    }
  }

  /** Two models sharing one Linear (M1: L0, shared, L2; M2: shared, B1), each with a trainer. */
  static final class TwoModels implements AutoCloseable {
    final Model m1 = Model.newInstance("m1");
    final Model m2 = Model.newInstance("m2");
    final SequentialBlock n1 = new SequentialBlock();
    final SequentialBlock n2 = new SequentialBlock();
    final Trainer t1;
    final Trainer t2;

    TwoModels(Kind kind, long seed) {
      Linear shared = Linear.builder().setUnits(4).build();
      n1.add(Linear.builder().setUnits(4).build())
          .add(Activation.tanhBlock())
          .add(shared)
          .add(Activation.tanhBlock())
          .add(Linear.builder().setUnits(2).build());
      n2.add(shared).add(Activation.tanhBlock()).add(Linear.builder().setUnits(2).build());
      m1.setBlock(n1);
      m2.setBlock(n2);
      t1 = m1.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(fixed(kind)));
      t1.initialize(OptimizerMoveRig.INPUT);
      t2 = m2.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(fixed(kind)));
      t2.initialize(new Shape(4, 4));
      Random r = new Random(seed);
      List<Parameter> all = new ArrayList<>(OptimizerMoveRig.params(n1));
      all.addAll(OptimizerMoveRig.params(n2.getChildren().get(2).getValue()));
      for (Parameter p : all) {
        float[] v = new float[(int) p.getArray().getShape().size()];
        for (int i = 0; i < v.length; i++) {
          v[i] = (float) (r.nextGaussian() * 0.6);
        }
        p.getArray().set(FloatBuffer.wrap(v));
      }
    }

    Block shared1() {
      return n1.getChildren().get(2).getValue();
    }

    void step(Batches data, int k) {
      Batch b = data.get(k);
      OptimizerMoveRig.forwardBackward(t1, b);
      t1.step();
      Batch c = data.get(k + 1);
      Batch wide = new Batch(c.x().concat(c.x().get(":, 0:1"), 1), c.y()); // (4, 4) inputs for M2
      OptimizerMoveRig.forwardBackward(t2, wide);
      t2.step();
    }

    static void assertSame(TwoModels a, TwoModels b, String when) {
      OptimizerMoveRig.assertSameValues(
          OptimizerMoveRig.params(a.n1), OptimizerMoveRig.params(b.n1), when + " (model 1)");
      OptimizerMoveRig.assertSameValues(
          OptimizerMoveRig.params(a.n2), OptimizerMoveRig.params(b.n2), when + " (model 2)");
    }

    @Override
    public void close() {
      t1.close();
      t2.close();
      m1.close();
      m2.close();
    }
  }

  /**
   * Two models sharing a block: a copy of model 1's own first layer moved with both trainers given
   * (model 2's trainer does not hold it and is left alone), and the shared block rewrapped in model
   * 1 only and moved in model 1's trainer alone: both models go on exactly as their twins.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void twoModelsSharingABlockGoOnAsTheirTwins(Kind kind) {
    try (Batches data = new Batches(23, 9);
        TwoModels subject = new TwoModels(kind, 15);
        TwoModels twin = new TwoModels(kind, 15)) {
      for (int k = 0; k < 30; k++) {
        if (k == 6) {
          Block l0 = subject.n1.getChildren().get(0).getValue();
          List<Parameter> before = OptimizerMoveRig.params(l0);
          replaceWithoutTrainer(subject.n1, l0, () -> copy((Linear) l0));
          ModuleSurgery.replaceParamsInOptimizer(
              before,
              OptimizerMoveRig.params(subject.n1.getChildren().get(0).getValue()),
              List.of(subject.t1, subject.t2));
        }
        if (k == 10) {
          Block s = subject.shared1();
          List<Parameter> before = OptimizerMoveRig.params(s);
          replaceWithoutTrainer(subject.n1, s, () -> rewrap((Linear) s));
          assertFalse(before.get(0).getArray().isReleased(), "the rewrap keeps the arrays");
          ModuleSurgery.replaceParamsInOptimizer(
              before, OptimizerMoveRig.params(subject.shared1()), List.of(subject.t1));
        }
        subject.step(data, k);
        twin.step(data, k);
        TwoModels.assertSame(subject, twin, "step " + k);
      }
    }
  }

  /**
   * Two trainers on one model, the second used only to evaluate: a born copy registered in the
   * first alone (the second has not seen it), then moved with both trainers given. The move
   * succeeds, the first trains it on as its fresh optimizer, and the second evaluates the model as
   * the first does.
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void aParameterOnlyOneOfTwoTrainersHoldsIsMovedInThatOne(Kind kind) {
    try (Batches data = new Batches(24, 9);
        OptimizerMoveRig subject = rig("s", kind, 16);
        Trainer evaluator =
            subject.model.newTrainer(
                new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(fixed(kind)));
        Shadow shadow = shadowOf(subject, fixed(kind))) {
      evaluator.initialize(OptimizerMoveRig.INPUT);
      for (int k = 0; k < 25; k++) {
        if (k == 5) {
          List<Parameter> before = OptimizerMoveRig.params(subject.child(3));
          Linear old = subject.layer(3);
          Linear now =
              (Linear)
                  ModuleSurgery.replaceModuleClasses(
                          subject.net,
                          Map.of(Linear.class, (b, i) -> b == old ? copy(old) : null),
                          List.of(subject.trainer),
                          false,
                          null)
                      .get(old);
          restart(shadow, before, OptimizerMoveRig.params(now), fixed(kind));
        }
        if (k == 8) {
          List<Parameter> born = OptimizerMoveRig.params(subject.child(3));
          assertFalse(TrainerSurgery.holds(evaluator, born.get(0)), "only the first holds it");
          swap(subject, 3, OptimizerMoveEdgesTest::copy)
              .replaceInOptimizer(subject.trainer, evaluator)
              .carry(shadow);
        }
        shadow.step(subject, data.get(k), "step " + k);
        if (k >= 8) {
          NDArray a = evaluator.evaluate(new NDList(data.get(k).x())).head();
          NDArray b = subject.trainer.evaluate(new NDList(data.get(k).x())).head();
          assertArrayEquals(b.toFloatArray(), a.toFloatArray());
        }
      }
    }
  }

  /** Asserts that {@code replaceParamsInOptimizer} refuses the lists, saying {@code why}. */
  private static void assertRefusedSaying(
      String why, List<Parameter> olds, List<Parameter> news, List<Trainer> trainers) {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> ModuleSurgery.replaceParamsInOptimizer(olds, news, trainers));
    assertTrue(String.valueOf(e.getMessage()).contains(why), why + ": " + e.getMessage());
  }

  /**
   * The refusals say what is wrong: a new parameter without an array is told apart from one whose
   * array was freed, and an old parameter listed twice from one moved at both positions or at one.
   */
  @Test
  void refusalsOfReplaceParamsInOptimizerSayWhatIsWrong() {
    try (Batches data = new Batches(41, 1);
        OptimizerMoveRig subject = OptimizerMoveRig.atFixedRate("s", Kind.ADAM, LR, 41)) {
      subject.step(data.get(0));
      Parameter w = subject.layer(1).getParameters().get("weight");
      Parameter unset =
          Parameter.builder().setName("weight").setType(Parameter.Type.WEIGHT).build();
      Parameter freed = RefusedOptimizerMoveTest.around(w.getArray().duplicate(), "weight", true);
      freed.getArray().close();
      Parameter copy = RefusedOptimizerMoveTest.around(w.getArray().duplicate(), "weight", true);
      Parameter other = RefusedOptimizerMoveTest.around(w.getArray().duplicate(), "weight", true);
      List<Trainer> trainers = List.of(subject.trainer);
      assertRefusedSaying("has no array", List.of(w), List.of(unset), trainers);
      assertRefusedSaying("has a freed array", List.of(w), List.of(freed), trainers);
      assertRefusedSaying("moved at both", List.of(w, w), List.of(copy, other), trainers);
      assertRefusedSaying("moved at one", List.of(w, w), List.of(w, copy), trainers);
      assertRefusedSaying("moved at one", List.of(w, w), List.of(copy, w), trainers);
    }
  }

  /**
   * Composer's ordered difference touches only what differs: a parameter in both lists is left
   * alone (not registered, even where no trainer holds it), while the one that takes a removed
   * parameter's place joins and the removed one leaves.
   */
  @Test
  void aParameterInBothListsIsLeftAloneByUpdateParamsInOptimizer() {
    try (Batches data = new Batches(42, 1);
        OptimizerMoveRig subject = OptimizerMoveRig.atFixedRate("s", Kind.ADAM, LR, 42)) {
      subject.step(data.get(0));
      Parameter w = subject.layer(1).getParameters().get("weight");
      Parameter outside = RefusedOptimizerMoveTest.around(w.getArray().duplicate(), "weight", true);
      Parameter copy = RefusedOptimizerMoveTest.around(w.getArray().duplicate(), "weight", true);

      ModuleSurgery.updateParamsInOptimizer(
          List.of(outside, w), List.of(outside, copy), List.of(subject.trainer));

      java.util.Set<String> store = Fixtures.storeIds(subject.trainer);
      assertFalse(store.contains(outside.getId()), "in both lists: not added");
      assertTrue(store.contains(copy.getId()), "added");
      assertFalse(store.contains(w.getId()), "removed");
    }
  }

  /**
   * The optimizer state of parameters that leave the trainer is closed (documented: "optimizer
   * state removed and closed"), and nothing the trainer still holds is.
   */
  @Test
  void updateParamsInOptimizerClosesTheStateOfWhatLeft() {
    try (Batches data = new Batches(43, 2);
        OptimizerMoveRig subject = OptimizerMoveRig.atFixedRate("s", Kind.ADAM, LR, 43)) {
      subject.step(data.get(0));
      subject.step(data.get(1));
      java.util.Set<NDArray> before =
          dev.surgery.core.testing.OpenArrays.reachable(subject.net, subject.trainer);
      List<Parameter> leaving = OptimizerMoveRig.params(subject.layer(3));

      ModuleSurgery.updateParamsInOptimizer(leaving, List.of(), List.of(subject.trainer));

      java.util.Set<NDArray> after =
          dev.surgery.core.testing.OpenArrays.reachable(subject.net, subject.trainer);
      int gone = 0;
      for (NDArray a : before) {
        if (after.contains(a)) {
          assertFalse(a.isReleased(), "still held");
        } else {
          gone++;
          assertTrue(a.isReleased(), "the state of a parameter that left");
        }
      }
      assertTrue(gone >= 4, "Adam's two state arrays for the weight and the bias: " + gone);
    }
  }

  /**
   * An added parameter without an array is refused as documented (IllegalStateException), naming
   * the parameter and no block (the call is given parameters, not blocks), and changes nothing.
   */
  @Test
  void anAddedParameterWithoutAnArrayIsRefusedNamingNoBlock() {
    try (Batches data = new Batches(44, 1);
        OptimizerMoveRig subject = OptimizerMoveRig.atFixedRate("s", Kind.ADAM, LR, 44)) {
      subject.step(data.get(0));
      java.util.Set<String> store = Fixtures.storeIds(subject.trainer);
      List<Parameter> leaving = OptimizerMoveRig.params(subject.layer(3));
      Parameter unset =
          Parameter.builder().setName("weight").setType(Parameter.Type.WEIGHT).build();

      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () ->
                  ModuleSurgery.updateParamsInOptimizer(
                      leaving, List.of(unset), List.of(subject.trainer)));

      assertTrue(e.getMessage().startsWith("parameter 'weight'"), e.getMessage());
      SurgeryException cause = assertInstanceOf(SurgeryException.class, e.getCause());
      assertEquals(null, cause.getBlockPath());
      assertEquals(store, Fixtures.storeIds(subject.trainer), "nothing changed");
    }
  }
}
