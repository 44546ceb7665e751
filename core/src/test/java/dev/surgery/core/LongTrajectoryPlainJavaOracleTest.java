package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Long trajectories (300-320 steps, seven to ten surgeries each) checked after every step against
 * an oracle written here in plain Java, in double precision, that uses none of DJL's optimizers or
 * trackers: it holds its own copy of every parameter, its own Adam moments or SGD momentum, its own
 * update counts, and its own learning-rate schedule formulas, and is fed only the gradients DJL
 * computed (read after {@code backward}, before {@code step}).
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
 * (|oracle| + 0.01 * max|tensor|)}. The oracle's gradients are DJL's, and its weight decay is taken
 * on DJL's weights, so float32 rounding does not feed back through the network or the decay; DJL's
 * weights drift from the double ones only by the rounding of each float32 update and weight (about
 * 6e-8 relative per step, at most ~2e-5 over 320 steps; the worst seen here is 3e-5 of the measure,
 * near-zero elements where the 0.01 max|tensor| floor decides). (2) The step alone: DJL's change of
 * each weight against the oracle's change from the same point, within 4 ulps of the weight plus
 * 1e-4 of the change plus 1e-6 of the tensor's largest change (the worst seen is 0.3 of that room).
 * Each wrong reading of the promise the oracle could make (a born parameter on the global count, a
 * schedule restarted at birth or lagging by one step) changes the steps it touches by far more than
 * that room (a one-step lag of the cosine schedule moves a step by about 0.5%); {@link
 * #theOracleNoticesABornParameterOnTheGlobalCount} checks that two of them are caught.
 */
class LongTrajectoryPlainJavaOracleTest {

  private static final int IN = 6;
  private static final int HIDDEN = 8;
  private static final int OUT = 3;
  private static final int BATCH = 8;
  private static final int BATCHES = 5;
  private static final double RTOL = 1e-4;

  /** Children of the model: L0 relu L1 relu L2 relu L3. */
  private static final int L0 = 0;

  private static final int L1 = 2;
  private static final int L2 = 4;
  private static final int L3 = 6;

  enum Optim {
    ADAM,
    ADAMW,
    SGD_MOMENTUM
  }

  /** A learning-rate schedule: DJL's tracker for the trainer, and the oracle's own formula. */
  interface Schedule {
    Tracker djl();

    double at(int numUpdate);
  }

  /** DJL's linear warm-up followed by its cosine tracker; changes at every step. */
  record WarmupCosine(float start, int warm, float base, float fin, int max) implements Schedule {
    @Override
    public Tracker djl() {
      return Tracker.warmUp()
          .optWarmUpBeginValue(start)
          .optWarmUpSteps(warm)
          .setMainTracker(
              Tracker.cosine().setBaseValue(base).optFinalValue(fin).setMaxUpdates(max).build())
          .build();
    }

    @Override
    public double at(int n) {
      if (n < warm) {
        double first = cosine(0);
        return start + (first - start) * n / warm;
      }
      return cosine(n - warm);
    }

    private double cosine(int k) {
      if (k > max) {
        return fin;
      }
      return fin + ((double) base - fin) / 2 * (1 + Math.cos(Math.PI * k / max));
    }
  }

  /** DJL's linear warm-up followed by its multi-factor tracker. */
  record WarmupMultiFactor(float start, int warm, float base, int[] steps, float factor)
      implements Schedule {
    @Override
    public Tracker djl() {
      return Tracker.warmUp()
          .optWarmUpBeginValue(start)
          .optWarmUpSteps(warm)
          .setMainTracker(
              Tracker.multiFactor().setBaseValue(base).setSteps(steps).optFactor(factor).build())
          .build();
    }

    @Override
    public double at(int n) {
      if (n < warm) {
        double first = multi(0);
        return start + (first - start) * n / warm;
      }
      return multi(n - warm);
    }

    private double multi(int k) {
      double value = base;
      for (int s : steps) {
        if (k > s) {
          value *= factor;
        }
      }
      return value;
    }
  }

  /** Optimizer settings. */
  record Settings(
      Optim optim,
      float weightDecay,
      float clip,
      float rescale,
      float momentum,
      int begin,
      Schedule schedule) {

    Optimizer build(ParameterTracker tracker) {
      switch (optim) {
        case ADAM:
          return Optimizer.adam()
              .optLearningRateTracker(tracker)
              .optWeightDecays(weightDecay)
              .optClipGrad(clip)
              .setRescaleGrad(rescale)
              .optBeginNumUpdate(begin)
              .build();
        case ADAMW:
          return Optimizer.adamW()
              .optLearningRateTracker(tracker)
              .optWeightDecays(weightDecay)
              .optClipGrad(clip)
              .setRescaleGrad(rescale)
              .optBeginNumUpdate(begin)
              .build();
        default:
          return Optimizer.sgd()
              .setLearningRateTracker(tracker)
              .optMomentum(momentum)
              .optWeightDecays(weightDecay)
              .optClipGrad(clip)
              .setRescaleGrad(rescale)
              .optBeginNumUpdate(begin)
              .build();
      }
    }
  }

  /** Something done to the model before the forward of a step. */
  interface Action {
    void apply(Run run);
  }

  record Event(int step, String what, Action action) {}

  // ------------------------------------------------------------------------------------------
  // The scenarios
  // ------------------------------------------------------------------------------------------

  private static final Schedule COSINE = new WarmupCosine(1e-4f, 25, 0.01f, 1e-4f, 500);

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
    Settings s =
        new Settings(
            Optim.SGD_MOMENTUM,
            1e-3f,
            0.3f,
            0.8f,
            0.9f,
            0,
            new WarmupCosine(1e-3f, 25, 0.05f, 1e-3f, 400));
    new Run("sgd-momentum", s, 9).train(320, everyKind());
  }

  /** A run resumed at 100 (optBeginNumUpdate): surgery before its first step, then more. */
  @Test
  void surgeryRightAfterAResumeAtStepHundredStaysOnTheOracle() throws Exception {
    List<Executable> runs = new ArrayList<>();
    for (Optim o : Optim.values()) {
      Settings s =
          new Settings(
              o,
              o == Optim.ADAMW ? 0.02f : 1e-3f,
              0.1f,
              1f,
              o == Optim.SGD_MOMENTUM ? 0.9f : 0f,
              100,
              o == Optim.SGD_MOMENTUM
                  ? new WarmupCosine(1e-3f, 150, 0.05f, 1e-3f, 300)
                  : new WarmupCosine(1e-4f, 150, 0.01f, 1e-4f, 300));
      List<Event> events =
          List.of(
              new Event(0, "fresh L3 right after the resume", r -> r.fresh(L3, OUT, true)),
              new Event(0, "rewrap survivor L1 right after the resume", r -> r.rewrap(L1, HIDDEN)),
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
      runs.add(() -> new Run("resumed-" + o, s, 10 + o.ordinal()).train(260, events));
    }
    assertAll(runs.stream());
  }

  /**
   * A frozen backbone: only born parameters train for long stretches, so DJL's own global count
   * lags the model's position; the head is replaced and rewrapped, then the backbone is unfrozen
   * layer by layer, by {@code unfreezeParameters} and by replacement.
   */
  @Test
  void aFrozenBackboneWhoseHeadIsReplacedAndRewrappedStaysOnTheOracle() throws Exception {
    List<Executable> runs = new ArrayList<>();
    for (Optim o : Optim.values()) {
      Settings s =
          new Settings(
              o,
              o == Optim.ADAMW ? 0.02f : 1e-3f,
              0.2f,
              0.5f,
              o == Optim.SGD_MOMENTUM ? 0.9f : 0f,
              0,
              o == Optim.SGD_MOMENTUM ? new WarmupCosine(1e-3f, 25, 0.05f, 1e-3f, 400) : COSINE);
      List<Event> events =
          List.of(
              new Event(
                  0,
                  "program freezes L0 L1 L2",
                  r -> {
                    r.programFreeze(L0);
                    r.programFreeze(L1);
                    r.programFreeze(L2);
                  }),
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
      runs.add(() -> new Run("frozen-backbone-" + o, s, 20 + o.ordinal()).train(300, events));
    }
    assertAll(runs.stream());
  }

  /** The frozen backbone in a run resumed at 100: only born parameters train from the start. */
  @Test
  void aFrozenBackboneInAResumedRunStaysOnTheOracle() throws Exception {
    Settings s =
        new Settings(
            Optim.ADAM, 1e-3f, 0.2f, 1f, 0f, 100, new WarmupCosine(1e-4f, 150, 0.01f, 1e-4f, 300));
    List<Event> events =
        List.of(
            new Event(
                0,
                "program freezes L0 L1 L2",
                r -> {
                  r.programFreeze(L0);
                  r.programFreeze(L1);
                  r.programFreeze(L2);
                }),
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
  void ratesByParameterIdFollowTheFirstIdThroughMovesAndBornParametersGetTheDefault()
      throws Exception {
    List<Executable> runs = new ArrayList<>();
    for (Optim o : Optim.values()) {
      Settings s =
          new Settings(
              o,
              o == Optim.ADAMW ? 0.02f : 1e-3f,
              0.2f,
              1f,
              o == Optim.SGD_MOMENTUM ? 0.9f : 0f,
              0,
              o == Optim.SGD_MOMENTUM ? new WarmupCosine(1e-3f, 25, 0.05f, 1e-3f, 400) : COSINE);
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
      runs.add(() -> run.train(300, events));
    }
    assertAll(runs.stream());
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
  void aFrozenLayerCopiedAndMovedWithReplaceParamsInOptimizerTrainsFresh() throws Exception {
    List<Executable> runs = new ArrayList<>();
    for (Optim o : Optim.values()) {
      Schedule schedule =
          o == Optim.SGD_MOMENTUM ? new WarmupCosine(1e-3f, 25, 0.05f, 1e-3f, 400) : COSINE;
      Settings s =
          new Settings(o, 1e-3f, 0.2f, 1f, o == Optim.SGD_MOMENTUM ? 0.9f : 0f, 0, schedule);
      List<Event> survivorsTrain =
          List.of(
              new Event(60, "freeze L0", r -> r.freeze(L0)),
              new Event(150, "copy the frozen L0 and move it", r -> r.copyAndMove(L0, HIDDEN)));
      runs.add(() -> new Run("copied-frozen-" + o, s, 50 + o.ordinal()).train(200, survivorsTrain));
      List<Event> frozenBackbone =
          List.of(
              new Event(
                  0,
                  "program freezes L0 L1 L2",
                  r -> {
                    r.programFreeze(L0);
                    r.programFreeze(L1);
                    r.programFreeze(L2);
                  }),
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
  // The run and the oracle
  // ------------------------------------------------------------------------------------------

  /** The oracle's own record of one parameter. */
  static final class Slot {
    final String origin;
    double[] w;
    double[] m;
    double[] v;
    boolean frozen;
    boolean born;
    int birth;
    int own;

    /** The id a tracker by parameter id is asked with: the first one, kept through moves. */
    String rateId;

    Slot(String origin, double[] w) {
      this.origin = origin;
      this.w = w;
    }

    void startFresh(int position) {
      frozen = false;
      born = true;
      birth = position;
      own = 0;
      m = new double[w.length];
      v = new double[w.length];
    }
  }

  static final class Run {
    final String name;
    final Settings settings;
    final long seed;
    boolean mutantGlobalCountForBorn;
    boolean mutantScheduleRestartsAtBirth;
    boolean perIdRates;
    final List<String> halfRateIds = new ArrayList<>();

    SequentialBlock net;
    Trainer trainer;
    final Map<Parameter, Slot> slots = new IdentityHashMap<>();
    int position;
    int step;
    double worst;
    String worstWhere = "";
    double worstStep;
    String worstStepWhere = "";

    Run(String name, Settings settings, long seed) {
      this.name = name;
      this.settings = settings;
      this.seed = seed;
    }

    void train(int steps, List<Event> events) throws Exception {
      try (Model model = Model.newInstance(name);
          NDManager data = NDManager.newBaseManager()) {
        data.getEngine().setRandomSeed((int) seed);
        net = new SequentialBlock();
        net.add(Linear.builder().setUnits(HIDDEN).build())
            .add(Activation.reluBlock())
            .add(Linear.builder().setUnits(HIDDEN).build())
            .add(Activation.reluBlock())
            .add(Linear.builder().setUnits(HIDDEN).build())
            .add(Activation.reluBlock())
            .add(Linear.builder().setUnits(OUT).build());
        model.setBlock(net);
        List<NDList[]> batches = batches(data, seed);
        ParameterTracker tracker = settings.schedule().djl();
        if (perIdRates) {
          // Layer-wise rates by parameter id: half the rate for L1, L2 and L3 as built.
          for (int index : new int[] {L1, L2, L3}) {
            for (Pair<String, Parameter> p : child(index).getParameters()) {
              halfRateIds.add(p.getValue().getId());
            }
          }
          Schedule schedule = settings.schedule();
          Set<String> half = Set.copyOf(halfRateIds);
          tracker =
              (id, numUpdate) -> (float) (schedule.at(numUpdate) * (half.contains(id) ? 0.5 : 1));
        }
        DefaultTrainingConfig config =
            new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(settings.build(tracker));
        try (Trainer t = model.newTrainer(config)) {
          trainer = t;
          trainer.initialize(new Shape(BATCH, IN));
          position = settings.begin();
          for (Pair<String, Parameter> p : net.getParameters()) {
            Slot slot = new Slot(p.getKey(), values(p.getValue()));
            slot.rateId = p.getValue().getId();
            slots.put(p.getValue(), slot);
          }
          for (step = 0; step < steps; step++) {
            for (Event e : events) {
              if (e.step() == step) {
                e.action().apply(this);
                checkStructure("after '" + e.what() + "'");
                compare("after '" + e.what() + "' (before step " + (step + 1) + ")");
              }
            }
            NDList[] batch = batches.get(step % BATCHES);
            try (GradientCollector collector = trainer.newGradientCollector()) {
              NDArray prediction = trainer.forward(batch[0]).singletonOrThrow();
              collector.backward(trainer.getLoss().evaluate(batch[1], new NDList(prediction)));
            }
            Map<Parameter, float[]> grads = new IdentityHashMap<>();
            Map<Parameter, float[]> before = new IdentityHashMap<>();
            Map<Parameter, double[]> oracleBefore = new IdentityHashMap<>();
            for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
              if (!e.getValue().frozen) {
                NDArray g = e.getKey().getArray().getGradient();
                grads.put(e.getKey(), g.toFloatArray());
                g.close();
                before.put(e.getKey(), e.getKey().getArray().toFloatArray());
                oracleBefore.put(e.getKey(), e.getValue().w.clone());
              }
            }
            trainer.step();
            oracleStep(grads, before);
            String when = "step " + (step + 1) + " (position " + position + ")";
            compareStep(when, before, oracleBefore);
            compare(when);
          }
          System.out.printf(
              "%s: %d steps, worst |djl - oracle| / (|oracle| + 0.01 max|tensor|) = %.3g at %s;"
                  + " worst step error / room = %.3g at %s%n",
              name, steps, worst, worstWhere, worstStep, worstStepWhere);
        }
      }
    }

    // -------------------------------------------------------------------- the oracle's update

    /**
     * One update of the oracle's weights with DJL's gradients. Weight decay is taken on DJL's
     * weights before the step, as the gradient is: the oracle's own double weights have drifted by
     * float32 rounding, and where the gradient and the decay nearly cancel (Adam's L2 decay on a
     * weight near zero) that drift would be most of what is left of the gradient.
     */
    void oracleStep(Map<Parameter, float[]> grads, Map<Parameter, float[]> djlWeights) {
      position++;
      Settings s = settings;
      for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
        Slot slot = e.getValue();
        if (slot.frozen) {
          continue;
        }
        float[] g = grads.get(e.getKey());
        assertNotNull(g, "gradient of " + slot.origin);
        float[] decayed = djlWeights.get(e.getKey());
        int t;
        int at = position;
        if (slot.born) {
          slot.own++;
          assertEquals(position, slot.birth + slot.own, "oracle bookkeeping");
          t = mutantGlobalCountForBorn ? position : slot.own;
          if (mutantScheduleRestartsAtBirth) {
            at = slot.own;
          }
        } else {
          t = position;
        }
        double lr = s.schedule().at(at);
        if (perIdRates) {
          lr = (float) (lr * (halfRateIds.contains(slot.rateId) ? 0.5 : 1));
        }
        double[] w = slot.w;
        double wd = s.weightDecay();
        if (s.optim() == Optim.SGD_MOMENTUM) {
          if (slot.m == null) {
            slot.m = new double[w.length];
          }
          for (int i = 0; i < w.length; i++) {
            double gi = clip(g[i]);
            double step = (gi + wd * decayed[i]) * lr;
            if (s.momentum() == 0f) {
              w[i] -= step;
            } else {
              slot.m[i] = (double) s.momentum() * slot.m[i] + step;
              w[i] -= slot.m[i];
            }
          }
        } else {
          if (slot.m == null) {
            slot.m = new double[w.length];
            slot.v = new double[w.length];
          }
          double b1 = 0.9f;
          double b2 = 0.999f;
          double eps = 1e-8f;
          double corrected = lr * Math.sqrt(1 - Math.pow(b2, t)) / (1 - Math.pow(b1, t));
          boolean decoupled = s.optim() == Optim.ADAMW;
          for (int i = 0; i < w.length; i++) {
            double gi = clip(g[i]);
            if (decoupled) {
              w[i] -= decayed[i] * lr * wd;
            } else {
              gi += wd * decayed[i];
            }
            slot.m[i] = b1 * slot.m[i] + (1 - b1) * gi;
            slot.v[i] = b2 * slot.v[i] + (1 - b2) * gi * gi;
            w[i] -= slot.m[i] * corrected / (Math.sqrt(slot.v[i]) + eps);
          }
        }
      }
    }

    private double clip(float raw) {
      double g = raw;
      if (settings.rescale() != 1f) {
        g *= settings.rescale();
      }
      if (settings.clip() >= 0) {
        g = Math.min(g, settings.clip());
      }
      return g;
    }

    // -------------------------------------------------------------------- checks

    /** The model's parameters are exactly the oracle's, with the same frozen flags. */
    void checkStructure(String when) {
      Map<Parameter, Boolean> live = new IdentityHashMap<>();
      for (Pair<String, Parameter> p : net.getParameters()) {
        live.put(p.getValue(), Boolean.TRUE);
        Slot slot = slots.get(p.getValue());
        assertNotNull(slot, name + " " + when + ": the oracle does not know " + p.getKey());
        assertEquals(
            !slot.frozen,
            p.getValue().requiresGradient(),
            name + " " + when + ": trainable flag of " + p.getKey());
      }
      assertEquals(live.size(), slots.size(), name + " " + when + ": parameter count");
    }

    void compare(String when) {
      for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
        Slot slot = e.getValue();
        float[] actual = e.getKey().getArray().toFloatArray();
        double[] expected = slot.w;
        assertEquals(expected.length, actual.length);
        double scale = 0;
        for (double x : expected) {
          scale = Math.max(scale, Math.abs(x));
        }
        for (int i = 0; i < actual.length; i++) {
          double denominator = Math.abs(expected[i]) + 0.01 * scale;
          double ratio =
              denominator == 0
                  ? Math.abs(actual[i])
                  : Math.abs(actual[i] - expected[i]) / denominator;
          if (ratio > worst) {
            worst = ratio;
            worstWhere = when + " " + describe(e.getKey(), slot) + "[" + i + "]";
          }
          if (ratio > RTOL || !Float.isFinite(actual[i])) {
            fail(
                String.format(
                    "%s %s: %s[%d] djl=%.9g oracle=%.9g (relative %.3g > %.0e); slot %s",
                    name,
                    when,
                    describe(e.getKey(), slot),
                    i,
                    actual[i],
                    expected[i],
                    ratio,
                    RTOL,
                    state(slot)));
          }
        }
      }
    }

    /**
     * The step alone: DJL's change of each weight in this step against the oracle's change, with
     * room for float32 rounding of the weight (a few ulps) and of the update (1e-4 of it, plus 1e-6
     * of the tensor's largest change for elements whose moments nearly cancel).
     */
    void compareStep(
        String when, Map<Parameter, float[]> before, Map<Parameter, double[]> oracleBefore) {
      for (Map.Entry<Parameter, float[]> e : before.entrySet()) {
        Slot slot = slots.get(e.getKey());
        float[] w0 = e.getValue();
        float[] w1 = e.getKey().getArray().toFloatArray();
        double[] o0 = oracleBefore.get(e.getKey());
        double largest = 0;
        for (int i = 0; i < w0.length; i++) {
          largest = Math.max(largest, Math.abs(slot.w[i] - o0[i]));
        }
        for (int i = 0; i < w0.length; i++) {
          double delta = slot.w[i] - o0[i];
          double error = Math.abs(w1[i] - (w0[i] + delta));
          double room =
              4 * Math.ulp(Math.max(Math.abs(w0[i]), Math.abs(w1[i])))
                  + 1e-4 * Math.abs(delta)
                  + 1e-6 * largest;
          double ratio = error / room;
          if (ratio > worstStep) {
            worstStep = ratio;
            worstStepWhere = when + " " + describe(e.getKey(), slot) + "[" + i + "]";
          }
          if (ratio > 1) {
            fail(
                String.format(
                    "%s %s: the step of %s[%d] was %.9g in DJL, %.9g in the oracle (from %.9g;"
                        + " error %.3g > room %.3g; oracle's moments after it %s); slot %s",
                    name,
                    when,
                    describe(e.getKey(), slot),
                    i,
                    w1[i] - w0[i],
                    delta,
                    w0[i],
                    error,
                    room,
                    slot.m == null
                        ? "none"
                        : slot.v == null
                            ? String.format("%.3g", slot.m[i])
                            : String.format("%.3g / sqrt(%.3g)", slot.m[i], slot.v[i]),
                    state(slot)));
          }
        }
      }
    }

    private String describe(Parameter p, Slot slot) {
      return p.getName() + " (" + slot.origin + ")";
    }

    private static String state(Slot slot) {
      return slot.frozen
          ? "frozen"
          : slot.born ? "born at " + slot.birth + ", own count " + slot.own : "survivor";
    }

    // -------------------------------------------------------------------- surgeries

    Block child(int index) {
      return net.getChildren().get(index).getValue();
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

    /** Replaces child {@code index} by a fresh Linear; its parameters are born now. */
    void fresh(int index, int units, boolean byClass) {
      Block old = child(index);
      List<Parameter> gone = params(old);
      replace(old, (b, i) -> Linear.builder().setUnits(units).build(), byClass);
      for (Parameter p : gone) {
        slots.remove(p);
      }
      for (Pair<String, Parameter> p : child(index).getParameters()) {
        Slot slot = new Slot(p.getKey() + "@born" + position, values(p.getValue()));
        slot.startFresh(position);
        slot.rateId = p.getValue().getId();
        slots.put(p.getValue(), slot);
      }
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
        Slot slot = slots.remove(oldParam);
        assertNotNull(slot);
        if (slot.frozen) {
          slot.startFresh(position);
        }
        slots.put(p.getValue(), slot);
      }
    }

    /**
     * Replaces child {@code index} by a copy ({@link WeightCopy#into}) in a surgery without the
     * trainer, then moves the old parameters' training to the copies with {@link
     * ModuleSurgery#replaceParamsInOptimizer}: state, count, birth and rate id carry over.
     */
    void copyAndMove(int index, int units) {
      Block old = child(index);
      Linear oldLinear = linearIn(old);
      List<Parameter> oldParams = params(oldLinear);
      List<Slot> oldSlots = new ArrayList<>();
      for (Parameter p : oldParams) {
        oldSlots.add(slots.remove(p));
      }
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
        Slot slot = oldSlots.get(i);
        if (slot.frozen) {
          slot.startFresh(position); // a copy of a frozen parameter that trains: nothing to carry
        }
        slots.put(newParams.get(i), slot);
      }
    }

    /** A copy with the trainer passed: the copies start fresh, with the copied values. */
    void copyFresh(int index, int units) {
      Block old = child(index);
      List<Parameter> gone = params(old);
      replace(old, (b, i) -> WeightCopy.into(Linear.builder().setUnits(units).build(), b), true);
      for (Parameter p : gone) {
        slots.remove(p);
      }
      for (Pair<String, Parameter> p : child(index).getParameters()) {
        Slot slot = new Slot(p.getKey() + "@copied" + position, values(p.getValue()));
        slot.startFresh(position);
        slot.rateId = p.getValue().getId();
        slots.put(p.getValue(), slot);
      }
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
      for (Parameter p : gone) {
        slots.remove(p);
      }
    }

    void freeze(int index) {
      List<Parameter> list = params(child(index));
      ModuleSurgery.freezeParameters(list, List.of(trainer));
      for (Parameter p : list) {
        Slot slot = slots.get(p);
        slot.frozen = true;
        slot.m = null;
        slot.v = null;
      }
    }

    void unfreeze(int index) {
      List<Parameter> list = params(child(index));
      ModuleSurgery.unfreezeParameters(list, List.of(trainer));
      for (Parameter p : list) {
        assertTrue(slots.get(p).frozen, "unfreezing a frozen parameter");
        slots.get(p).startFresh(position);
      }
    }

    /** The program's own freeze, with DJL's API, before the first step (no state yet). */
    void programFreeze(int index) {
      assertEquals(0, step, "only before training");
      child(index).freezeParameters(true);
      for (Parameter p : params(child(index))) {
        slots.get(p).frozen = true;
      }
    }
  }

  private static double[] values(Parameter p) {
    float[] f = p.getArray().toFloatArray();
    double[] d = new double[f.length];
    for (int i = 0; i < f.length; i++) {
      d[i] = f[i];
    }
    return d;
  }

  /** Generated regression data, drawn with java.util.Random so it does not depend on the engine. */
  private static List<NDList[]> batches(NDManager manager, long seed) {
    Random random = new Random(seed);
    List<NDList[]> list = new ArrayList<>();
    for (int b = 0; b < BATCHES; b++) {
      float[] x = new float[BATCH * IN];
      float[] y = new float[BATCH * OUT];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) random.nextGaussian();
      }
      for (int r = 0; r < BATCH; r++) {
        for (int o = 0; o < OUT; o++) {
          double sum = 0;
          for (int i = 0; i < IN; i++) {
            sum += x[r * IN + i] * Math.sin(1 + i + 2 * o);
          }
          y[r * OUT + o] = (float) (Math.tanh(sum) + 0.1 * random.nextGaussian());
        }
      }
      list.add(
          new NDList[] {
            new NDList(manager.create(x, new Shape(BATCH, IN))),
            new NDList(manager.create(y, new Shape(BATCH, OUT)))
          });
    }
    return list;
  }
}
