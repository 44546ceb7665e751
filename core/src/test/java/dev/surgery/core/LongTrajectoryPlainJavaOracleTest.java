package dev.surgery.core;

import static dev.surgery.core.testing.TrajectoryOracle.forEachOptim;
import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.core.testing.TrajectoryOracle.Optim;
import dev.surgery.core.testing.TrajectoryOracle.Schedule;
import dev.surgery.core.testing.TrajectoryOracle.Settings;
import dev.surgery.core.testing.TrajectoryOracle.WarmupCosine;
import dev.surgery.core.testing.TrajectoryOracle.WarmupMultiFactor;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Long trajectories (300-320 steps, seven to ten surgeries each) checked after every step against a
 * plain-Java, double-precision oracle ({@link TrajectoryOracle}) that uses none of DJL's optimizers
 * or trackers: it holds its own copy of every parameter, its own Adam moments or SGD momentum, its
 * own update counts, and its own learning-rate schedule formulas, and is fed only the gradients DJL
 * computed (read after {@code backward}, before {@code step}). Here each surgery states what it
 * expects of every parameter it touches (born, carried, left, frozen, unfrozen), and the model must
 * agree ({@link TrajectoryOracle#checkStructure}).
 *
 * <p>The update rules are those of DJL 0.36.0's {@code Adam}, {@code AdamW}, {@code Sgd} and the
 * PyTorch engine's native {@code adamUpdate} / {@code sgdUpdate} (ai_djl_pytorch_jni_PyTorchLibrary
 * _optim.cc): {@code g = rescale * g}; {@code g = min(g, clip)} (a one-sided clamp_max, as the
 * kernel does); Adam: {@code g += wd * w}; AdamW: {@code w -= w * lr * wd} (the undistorted rate);
 * {@code m = b1 m + (1 - b1) g}, {@code v = b2 v + (1 - b2) g^2}, {@code w -= m * lr * sqrt(1 -
 * b2^t) / (1 - b1^t) / (sqrt(v) + eps)}; SGD: {@code s = mu s + lr (g + wd w)}, {@code w -= s}.
 *
 * <p>What the oracle assumes, from the promise (README, user guide "The optimizer, and what exact
 * means"): P is the model's position (beginNumUpdate + steps run). Every trainable parameter is
 * updated at step P+1 with the schedule's value at P+1. A surviving parameter (one of the original
 * model, or a new Parameter wrapping its array) uses t = P+1 for Adam's bias correction (DJL's
 * global count, as without surgery). A born parameter (a fresh layer, a frozen layer made trainable
 * by {@code unfreezeParameters} or by new Parameters around its arrays) starts with zero state and
 * uses its own update count t = 1, 2, ... A new Parameter wrapping the array of a born parameter
 * keeps the born parameter's state and own count. Frozen parameters never change.
 *
 * <p>Tolerance, two checks after every step. (1) The trajectory: {@code |djl - oracle| <= 1e-4 *
 * (|oracle| + 0.01 * max|tensor|)} (the oracle's {@code pathRoom} 0). The oracle's gradients are
 * DJL's, and its weight decay is taken on DJL's weights, so float32 rounding does not feed back
 * through the network or the decay; DJL's weights drift from the double ones only by the rounding
 * of each float32 update and weight (about 6e-8 relative per step, at most ~2e-5 over 320 steps;
 * the worst seen here is 3e-5 of the measure, near-zero elements where the 0.01 max|tensor| floor
 * decides). (2) The step alone: DJL's change of each weight against the oracle's change from the
 * same point, within 4 ulps of the weight plus 1e-4 of the change plus 1e-6 of the tensor's largest
 * change (the worst seen is 0.3 of that room). Each wrong reading of the promise the oracle could
 * make (a born parameter on the global count, a schedule restarted at birth or lagging by one step)
 * changes the steps it touches by far more than that room (a one-step lag of the cosine schedule
 * moves a step by about 0.5%); {@link #theOracleNoticesABornParameterOnTheGlobalCount} checks that
 * two of them are caught.
 */
class LongTrajectoryPlainJavaOracleTest {

  private static final int IN = 6;
  private static final int HIDDEN = 8;
  private static final int OUT = 3;
  private static final int BATCH = 8;
  private static final int BATCHES = 5;

  /** Children of the model: L0 relu L1 relu L2 relu L3. */
  private static final int L0 = 0;

  private static final int L1 = 2;
  private static final int L2 = 4;
  private static final int L3 = 6;

  /** Something done to the model before the forward of a step. */
  interface Action {
    void apply(Run run);
  }

  record Event(int step, String what, Action action) {}

  // ------------------------------------------------------------------------------------------
  // The scenarios
  // ------------------------------------------------------------------------------------------

  private static final Schedule COSINE = new WarmupCosine(1e-4f, 25, 0.01f, 1e-4f, 500);
  private static final Schedule SGD_COSINE = new WarmupCosine(1e-3f, 25, 0.05f, 1e-3f, 400);

  /** Settings of a scenario run under each optimizer: SGD with momentum 0.9, Adam(W) with none. */
  private static Settings settings(
      Optim o, float decay, float clip, float rescale, int begin, Schedule schedule) {
    return new Settings(
        o, decay, clip, rescale, o == Optim.SGD_MOMENTUM ? 0.9f : 0f, begin, schedule);
  }

  /** AdamW's decay 0.02, the others' 1e-3. */
  private static float decay(Optim o) {
    return o == Optim.ADAMW ? 0.02f : 1e-3f;
  }

  /** The SGD schedule for SGD, else {@link #COSINE}. */
  private static Schedule cosine(Optim o) {
    return o == Optim.SGD_MOMENTUM ? SGD_COSINE : COSINE;
  }

  /** Before the first step, the program freezes L0, L1 and L2 with DJL's API. */
  private static Event programFreezesTheBackbone() {
    return new Event(
        0,
        "program freezes L0 L1 L2",
        r -> {
          r.programFreeze(L0);
          r.programFreeze(L1);
          r.programFreeze(L2);
        });
  }

  /** Every kind of surgery, among training survivors, under one optimizer. */
  private static List<Event> everyKind() {
    return List.of(
        new Event(0, "program freezes L0 (DJL's freezeParameters)", r -> r.programFreeze(L0)),
        new Event(37, "fresh L3 (born)", r -> r.fresh(L3, OUT, true)),
        new Event(60, "freeze born L3", r -> r.freeze(L3)),
        new Event(75, "plan a fresh L2 (changes nothing)", r -> r.plan(L2)),
        new Event(90, "freeze L1 (ModuleSurgery.freezeParameters)", r -> r.freeze(L1)),
        new Event(90, "unfreeze L3, born at 37 and frozen at 60", r -> r.unfreeze(L3)),
        new Event(100, "a surgery of L1 and L3 that fails on L3", r -> r.failing(L1, L3)),
        new Event(120, "rewrap born L3 (state and own count kept)", r -> r.rewrap(L3, OUT)),
        new Event(
            135, "copy L3 without the trainer, then move its state", r -> r.copyAndMove(L3, OUT)),
        new Event(150, "unfreeze L0 (ModuleSurgery.unfreezeParameters)", r -> r.unfreeze(L0)),
        new Event(
            180,
            "L1 made trainable by new Parameters around its arrays",
            r -> r.rewrap(L1, HIDDEN)),
        new Event(
            210, "rewrap survivor L2 into a SequentialBlock", r -> r.rewrapInSequence(L2, HIDDEN)),
        new Event(250, "remove L2 (identity)", r -> r.remove(L2)),
        new Event(
            251,
            "fresh L3 then rewrap it, no step between",
            r -> {
              r.fresh(L3, OUT, false);
              r.rewrap(L3, OUT);
            }),
        new Event(252, "a surgery of L1 and L3 that fails on L3", r -> r.failing(L1, L3)),
        new Event(265, "copy L1 with the trainer (fresh copies)", r -> r.copyFresh(L1, HIDDEN)),
        new Event(
            280,
            "fresh L1 twice in a row",
            r -> {
              r.fresh(L1, HIDDEN, true);
              r.fresh(L1, HIDDEN, false);
            }));
  }

  @Test
  void adamWithDecayClipAndRescaleStaysOnTheOracleThroughEveryKindOfSurgery() throws Exception {
    Settings s = new Settings(Optim.ADAM, 1e-3f, 0.05f, 0.5f, 0f, 0, COSINE);
    new Run("adam", s, 7).train(320, everyKind());
  }

  @Test
  void adamWWithAMultiFactorScheduleStaysOnTheOracleThroughEveryKindOfSurgery() throws Exception {
    Settings s =
        new Settings(
            Optim.ADAMW,
            0.05f,
            0.2f,
            1f,
            0f,
            0,
            new WarmupMultiFactor(5e-4f, 20, 0.008f, new int[] {40, 100, 160, 230, 265}, 0.7f));
    new Run("adamw", s, 8).train(320, everyKind());
  }

  @Test
  void sgdMomentumWithDecayClipAndRescaleStaysOnTheOracleThroughEveryKindOfSurgery()
      throws Exception {
    Settings s = settings(Optim.SGD_MOMENTUM, 1e-3f, 0.3f, 0.8f, 0, SGD_COSINE);
    new Run("sgd-momentum", s, 9).train(320, everyKind());
  }

  /** A run resumed at 100 (optBeginNumUpdate): surgery before its first step, then more. */
  @Test
  void surgeryRightAfterAResumeAtStepHundredStaysOnTheOracle() {
    forEachOptim(
        o -> {
          Schedule schedule =
              o == Optim.SGD_MOMENTUM
                  ? new WarmupCosine(1e-3f, 150, 0.05f, 1e-3f, 300)
                  : new WarmupCosine(1e-4f, 150, 0.01f, 1e-4f, 300);
          Settings s = settings(o, decay(o), 0.1f, 1f, 100, schedule);
          List<Event> events =
              List.of(
                  new Event(0, "fresh L3 right after the resume", r -> r.fresh(L3, OUT, true)),
                  new Event(
                      0, "rewrap survivor L1 right after the resume", r -> r.rewrap(L1, HIDDEN)),
                  new Event(60, "freeze L0", r -> r.freeze(L0)),
                  new Event(61, "rewrap born L3", r -> r.rewrap(L3, OUT)),
                  new Event(130, "unfreeze L0", r -> r.unfreeze(L0)),
                  new Event(170, "remove L2", r -> r.remove(L2)),
                  new Event(
                      220,
                      "fresh L3 twice",
                      r -> {
                        r.fresh(L3, OUT, true);
                        r.fresh(L3, OUT, false);
                      }));
          new Run("resumed-" + o, s, 10 + o.ordinal()).train(260, events);
        });
  }

  /**
   * A frozen backbone: only born parameters train for long stretches, so DJL's own global count
   * lags the model's position; the head is replaced and rewrapped, then the backbone is unfrozen
   * layer by layer, by {@code unfreezeParameters} and by replacement.
   */
  @Test
  void aFrozenBackboneWhoseHeadIsReplacedAndRewrappedStaysOnTheOracle() {
    forEachOptim(
        o -> {
          Settings s = settings(o, decay(o), 0.2f, 0.5f, 0, cosine(o));
          List<Event> events =
              List.of(
                  programFreezesTheBackbone(),
                  new Event(37, "fresh head", r -> r.fresh(L3, OUT, true)),
                  new Event(120, "fresh head again", r -> r.fresh(L3, OUT, false)),
                  new Event(150, "rewrap the born head", r -> r.rewrap(L3, OUT)),
                  new Event(151, "rewrap the born head again", r -> r.rewrapInSequence(L3, OUT)),
                  new Event(180, "unfreeze L2", r -> r.unfreeze(L2)),
                  new Event(
                      230,
                      "L1 trainable by new Parameters around its arrays",
                      r -> r.rewrap(L1, HIDDEN)),
                  new Event(260, "rewrap the unfrozen L2", r -> r.rewrap(L2, HIDDEN)));
          new Run("frozen-backbone-" + o, s, 20 + o.ordinal()).train(300, events);
        });
  }

  /** The frozen backbone in a run resumed at 100: only born parameters train from the start. */
  @Test
  void aFrozenBackboneInAResumedRunStaysOnTheOracle() throws Exception {
    Settings s =
        new Settings(
            Optim.ADAM, 1e-3f, 0.2f, 1f, 0f, 100, new WarmupCosine(1e-4f, 150, 0.01f, 1e-4f, 300));
    List<Event> events =
        List.of(
            programFreezesTheBackbone(),
            new Event(0, "fresh head right after the resume", r -> r.fresh(L3, OUT, true)),
            new Event(50, "fresh head again", r -> r.fresh(L3, OUT, true)),
            new Event(90, "copy the head and move its state", r -> r.copyAndMove(L3, OUT)),
            new Event(120, "unfreeze L2", r -> r.unfreeze(L2)),
            new Event(160, "rewrap L2", r -> r.rewrapInSequence(L2, HIDDEN)));
    new Run("frozen-backbone-resumed", s, 30).train(220, events);
  }

  /**
   * Rates by parameter id (a tracker of the program's own, half the rate for the layers it was
   * given): a moved parameter keeps the rate of the id it had first, also after a freeze and an
   * unfreeze; a born one gets the tracker's default. Where a frozen layer is made trainable by new
   * Parameters around its arrays, the oracle assumes the first id too.
   */
  @Test
  void ratesByParameterIdFollowTheFirstIdThroughMovesAndBornParametersGetTheDefault() {
    forEachOptim(
        o -> {
          Settings s = settings(o, decay(o), 0.2f, 1f, 0, cosine(o));
          List<Event> events =
              List.of(
                  new Event(40, "rewrap L1 (moved: first id)", r -> r.rewrap(L1, HIDDEN)),
                  new Event(60, "freeze L2", r -> r.freeze(L2)),
                  new Event(90, "unfreeze L2 (first id)", r -> r.unfreeze(L2)),
                  new Event(120, "fresh L3 (default rate)", r -> r.fresh(L3, OUT, true)),
                  new Event(150, "rewrap born L3", r -> r.rewrap(L3, OUT)),
                  new Event(180, "freeze rewrapped L1", r -> r.freeze(L1)),
                  new Event(
                      210,
                      "L1 trainable by new Parameters around its arrays",
                      r -> r.rewrap(L1, HIDDEN)),
                  new Event(240, "copy L2 and move its state", r -> r.copyAndMove(L2, HIDDEN)),
                  new Event(260, "rewrap L2 in a sequence", r -> r.rewrapInSequence(L2, HIDDEN)),
                  new Event(270, "freeze L1 again", r -> r.freeze(L1)),
                  new Event(
                      285,
                      "copy the frozen L1 and move it (fresh, first id)",
                      r -> r.copyAndMove(L1, HIDDEN)));
          Run run = new Run("per-id-" + o, s, 40 + o.ordinal());
          run.perIdRates = true;
          run.train(300, events);
        });
  }

  /**
   * A frozen layer copied ({@link WeightCopy#into}) in a surgery without the trainer and swapped in
   * with {@link ModuleSurgery#replaceParamsInOptimizer}, as {@code WeightCopy}'s Javadoc shows: the
   * frozen layer has no optimizer state to carry, so its trainable copy starts fresh (own count,
   * schedule at the model's position), as an unfrozen layer does. Once in a run where survivors
   * train (L0 frozen by {@code freezeParameters} after 60 steps, copied at 150) and once in a
   * frozen backbone where DJL's global count lags the model's position (L0 never trained, copied at
   * 200). Before the thirty-first session's fix the copy was updated on DJL's global count (see
   * {@link FrozenParameterMovedByReplaceParamsInOptimizerTest}).
   */
  @Test
  void aFrozenLayerCopiedAndMovedWithReplaceParamsInOptimizerTrainsFresh() {
    List<Executable> runs = new ArrayList<>();
    for (Optim o : Optim.values()) {
      Settings s = settings(o, 1e-3f, 0.2f, 1f, 0, cosine(o));
      List<Event> survivorsTrain =
          List.of(
              new Event(60, "freeze L0", r -> r.freeze(L0)),
              new Event(150, "copy the frozen L0 and move it", r -> r.copyAndMove(L0, HIDDEN)));
      runs.add(() -> new Run("copied-frozen-" + o, s, 50 + o.ordinal()).train(200, survivorsTrain));
      List<Event> frozenBackbone =
          List.of(
              programFreezesTheBackbone(),
              new Event(37, "fresh head", r -> r.fresh(L3, OUT, true)),
              new Event(120, "fresh head again", r -> r.fresh(L3, OUT, true)),
              new Event(
                  200,
                  "copy the never-trained frozen L0 and move it",
                  r -> r.copyAndMove(L0, HIDDEN)));
      runs.add(
          () ->
              new Run("copied-frozen-backbone-" + o, s, 60 + o.ordinal())
                  .train(240, frozenBackbone));
    }
    assertAll(runs.stream());
  }

  /**
   * The tolerance has teeth: an oracle that (wrongly) gives a born Adam parameter DJL's global
   * count for its bias correction is caught.
   */
  @Test
  void theOracleNoticesABornParameterOnTheGlobalCount() throws Exception {
    Settings s = new Settings(Optim.ADAM, 0f, -1f, 1f, 0f, 0, COSINE);
    List<Event> events = List.of(new Event(37, "fresh L3", r -> r.fresh(L3, OUT, true)));
    Run wrong = new Run("mutant", s, 7);
    wrong.mutantGlobalCountForBorn = true;
    AssertionError e = assertThrows(AssertionError.class, () -> wrong.train(60, events));
    assertTrue(e.getMessage().contains("step 38"), e.getMessage());
    Run wrongSchedule = new Run("mutant-schedule", s, 7);
    wrongSchedule.mutantScheduleRestartsAtBirth = true;
    e = assertThrows(AssertionError.class, () -> wrongSchedule.train(60, events));
    assertTrue(e.getMessage().contains("step 38"), e.getMessage());
  }

  // ------------------------------------------------------------------------------------------
  // The run
  // ------------------------------------------------------------------------------------------

  /**
   * A run of the MLP under {@link TrajectoryOracle} (one trainer, {@code pathRoom} 0): each event's
   * surgery states what it expects of every parameter it touches, and the model must agree ({@link
   * TrajectoryOracle#checkStructure}) before every step is checked.
   */
  static final class Run {
    final String name;
    final Settings settings;
    final long seed;
    boolean mutantGlobalCountForBorn;
    boolean mutantScheduleRestartsAtBirth;
    boolean perIdRates;

    SequentialBlock net;
    Trainer trainer;
    TrajectoryOracle oracle;
    int step;

    Run(String name, Settings settings, long seed) {
      this.name = name;
      this.settings = settings;
      this.seed = seed;
    }

    void train(int steps, List<Event> events) throws Exception {
      try (Model model = Model.newInstance(name);
          NDManager data = NDManager.newBaseManager()) {
        data.getEngine().setRandomSeed((int) seed);
        net = TrajectoryOracle.mlp(HIDDEN, OUT);
        model.setBlock(net);
        List<NDList[]> batches = TrajectoryOracle.regression(data, seed, BATCHES, BATCH, IN, OUT);
        Settings s = settings;
        if (perIdRates) {
          // Layer-wise rates by parameter id: half the rate for L1, L2 and L3 as built.
          Set<String> half = new HashSet<>();
          for (int index : new int[] {L1, L2, L3}) {
            for (Parameter p : params(child(index))) {
              half.add(p.getId());
            }
          }
          s = settings.halvingRatesOf(half);
        }
        DefaultTrainingConfig config =
            new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(s.build());
        try (Trainer t = model.newTrainer(config)) {
          trainer = t;
          trainer.initialize(new Shape(BATCH, IN));
          oracle = new TrajectoryOracle(name, net, s);
          oracle.pathRoom = 0;
          oracle.mutantBornOnGlobalCount = mutantGlobalCountForBorn;
          oracle.mutantScheduleRestartsAtBirth = mutantScheduleRestartsAtBirth;
          for (step = 0; step < steps; step++) {
            for (Event e : events) {
              if (e.step() == step) {
                e.action().apply(this);
                oracle.checkStructure("after '" + e.what() + "'");
                oracle.compare("after '" + e.what() + "' (before step " + (step + 1) + ")");
              }
            }
            TrajectoryOracle.forwardBackward(trainer, batches.get(step % BATCHES));
            oracle.beforeStep(0);
            trainer.step();
            oracle.afterStep("step " + (step + 1));
          }
          System.out.println(oracle.summary());
        }
      }
    }

    // -------------------------------------------------------------------- surgeries

    Block child(int index) {
      return net.getChildren().get(index).getValue();
    }

    int position() {
      return oracle.position(0);
    }

    /** The Linear a child is or holds first. */
    static Linear linearIn(Block block) {
      if (block instanceof Linear linear) {
        return linear;
      }
      return linearIn(block.getChildren().get(0).getValue());
    }

    private static List<Parameter> params(Block block) {
      List<Parameter> list = new ArrayList<>();
      for (Pair<String, Parameter> p : block.getParameters()) {
        list.add(p.getValue());
      }
      return list;
    }

    private Map<Block, Block> replace(Block old, ReplacementFunction function, boolean byClass) {
      Map<Block, Block> replaced;
      if (byClass && old instanceof Linear) {
        replaced =
            ModuleSurgery.replaceModuleClasses(
                net,
                Map.of(Linear.class, (b, i) -> b == old ? function.apply(b, i) : null),
                List.of(trainer),
                false,
                null);
      } else {
        Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
        policies.put(BlockMatcher.byBlock(b -> b == old), function);
        replaced =
            ModuleSurgery.replaceModules(
                net, policies, SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
      }
      assertEquals(1, replaced.size(), name + " step " + step + ": one replacement");
      return replaced;
    }

    /**
     * Replaces child {@code index} by {@code function} with the trainer: the old parameters leave,
     * the new ones are born now (named {@code tag} and the position).
     */
    private void replaceBorn(int index, ReplacementFunction function, boolean byClass, String tag) {
      Block old = child(index);
      List<Parameter> gone = params(old);
      replace(old, function, byClass);
      gone.forEach(oracle::drop);
      for (Pair<String, Parameter> p : child(index).getParameters()) {
        oracle.born(p.getValue(), p.getKey() + tag + position());
      }
    }

    /** Replaces child {@code index} by a fresh Linear; its parameters are born now. */
    void fresh(int index, int units, boolean byClass) {
      replaceBorn(index, (b, i) -> Linear.builder().setUnits(units).build(), byClass, "@born");
    }

    /** Replaces child {@code index} by a new Linear whose new Parameters wrap the old arrays. */
    void rewrap(int index, int units) {
      Block old = child(index);
      Linear oldLinear = linearIn(old);
      replace(old, (b, i) -> wrapping(oldLinear, units), true);
      moveSlots(oldLinear, linearIn(child(index)));
    }

    /** Replaces child {@code index} by a SequentialBlock holding a Linear around the old arrays. */
    void rewrapInSequence(int index, int units) {
      Block old = child(index);
      Linear oldLinear = linearIn(old);
      replace(old, (b, i) -> new SequentialBlock().add(wrapping(oldLinear, units)), false);
      moveSlots(oldLinear, linearIn(child(index)));
    }

    private static Linear wrapping(Linear old, int units) {
      Linear fresh = Linear.builder().setUnits(units).build();
      for (Pair<String, Parameter> p : fresh.getParameters()) {
        p.getValue().setArray(old.getParameters().get(p.getKey()).getArray());
      }
      return fresh;
    }

    /**
     * A new Parameter around an old one's array: same state, or fresh if the old one was frozen.
     */
    private void moveSlots(Linear oldLinear, Linear newLinear) {
      for (Pair<String, Parameter> p : newLinear.getParameters()) {
        Parameter oldParam = oldLinear.getParameters().get(p.getKey());
        assertTrue(p.getValue() != oldParam, "a new Parameter");
        assertSame(oldParam.getArray(), p.getValue().getArray(), "wraps the old array");
        oracle.carry(oldParam, p.getValue());
      }
    }

    /**
     * Replaces child {@code index} by a copy ({@link WeightCopy#into}) in a surgery without the
     * trainer, then moves the old parameters' training to the copies with {@link
     * ModuleSurgery#replaceParamsInOptimizer}: state, count, birth and rate id carry over (a copy
     * of a frozen parameter that trains has nothing to carry: fresh).
     */
    void copyAndMove(int index, int units) {
      Block old = child(index);
      List<Parameter> oldParams = params(linearIn(old));
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModuleClasses(
              net,
              Map.of(
                  Linear.class,
                  (b, i) ->
                      b == old
                          ? WeightCopy.into(Linear.builder().setUnits(units).build(), b)
                          : null),
              null,
              false,
              null);
      assertEquals(1, replaced.size());
      List<Parameter> newParams = params(child(index));
      ModuleSurgery.replaceParamsInOptimizer(oldParams, newParams, List.of(trainer));
      for (int i = 0; i < newParams.size(); i++) {
        oracle.carry(oldParams.get(i), newParams.get(i));
      }
    }

    /** A copy with the trainer passed: the copies start fresh, with the copied values. */
    void copyFresh(int index, int units) {
      replaceBorn(
          index,
          (b, i) -> WeightCopy.into(Linear.builder().setUnits(units).build(), b),
          true,
          "@copied");
    }

    /**
     * A surgery that replaces {@code first} and then fails on {@code second}: refused, and every
     * state is as before (the oracle is left as it is).
     */
    void failing(int first, int second) {
      Block a = child(first);
      Block b = child(second);
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.byBlock(x -> x == a || x == b),
          (x, i) -> {
            if (x == a) {
              return Linear.builder().setUnits(linearUnits(first)).build();
            }
            throw new IllegalStateException("a planned failure");
          });
      assertThrows(
          SurgeryException.class,
          () ->
              ModuleSurgery.replaceModules(
                  net, policies, SurgeryOptions.builder().optTrainers(List.of(trainer)).build()));
      assertSame(a, child(first));
      assertSame(b, child(second));
    }

    /** A plan of a fresh replacement: nothing changes. */
    void plan(int index) {
      Block old = child(index);
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.byBlock(x -> x == old),
          (x, i) -> Linear.builder().setUnits(linearUnits(index)).build());
      SurgeryPlan plan =
          ModuleSurgery.plan(
              net, policies, SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
      assertEquals(1, plan.steps().size());
      assertSame(old, child(index));
    }

    private static int linearUnits(int index) {
      return index == L3 ? OUT : HIDDEN;
    }

    /** Replaces child {@code index} by the identity: its parameters leave the model. */
    void remove(int index) {
      Block old = child(index);
      List<Parameter> gone = params(old);
      replace(old, (b, i) -> Blocks.identityBlock(), false);
      gone.forEach(oracle::drop);
    }

    void freeze(int index) {
      List<Parameter> list = params(child(index));
      ModuleSurgery.freezeParameters(list, List.of(trainer));
      list.forEach(oracle::freeze);
    }

    void unfreeze(int index) {
      List<Parameter> list = params(child(index));
      ModuleSurgery.unfreezeParameters(list, List.of(trainer));
      list.forEach(oracle::unfreeze);
    }

    /** The program's own freeze, with DJL's API, before the first step (no state yet). */
    void programFreeze(int index) {
      assertEquals(0, step, "only before training");
      child(index).freezeParameters(true);
      params(child(index)).forEach(oracle::freeze);
    }
  }
}
