package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A born parameter's learning-rate schedule continues at the model's position in training (birth +
 * its own updates) under a schedule that changes every step, for SGD as for Adam and AdamW, also
 * where DJL's global update count lags that position: when only born parameters train (a frozen
 * backbone, surgery on the head twice), and right after a resume with {@code optBeginNumUpdate}
 * before the first step. The oracle is a fresh DJL optimizer of the same kind and settings, with
 * the schedule shifted by the step the surgery happened at (counted by this test, not read from the
 * optimizer), fed the same gradients; it must agree bit for bit.
 */
class BornScheduleTest {

  /** A schedule whose value differs at every step, so a position off by one shows. */
  private static Tracker schedule() {
    return Tracker.warmUp()
        .optWarmUpBeginValue(0.001f)
        .optWarmUpSteps(60)
        .setMainTracker(Tracker.fixed(0.05f))
        .build();
  }

  /** DJL's optimizers with a learning-rate tracker, built with a given tracker and begin step. */
  enum Kind {
    SGD(
        (tracker, begin) ->
            Optimizer.sgd().setLearningRateTracker(tracker).optBeginNumUpdate(begin).build()),
    SGD_MOMENTUM(
        (tracker, begin) ->
            Optimizer.sgd()
                .setLearningRateTracker(tracker)
                .optMomentum(0.9f)
                .optWeightDecays(1e-3f)
                .optBeginNumUpdate(begin)
                .build()),
    ADAM(
        (tracker, begin) ->
            Optimizer.adam()
                .optLearningRateTracker(tracker)
                .optClipGrad(0.5f)
                .optBeginNumUpdate(begin)
                .build()),
    ADAMW(
        (tracker, begin) ->
            Optimizer.adamW()
                .optLearningRateTracker(tracker)
                .optWeightDecays(0.05f)
                .optBeginNumUpdate(begin)
                .build());

    final BiFunction<Tracker, Integer, Optimizer> factory;

    Kind(BiFunction<Tracker, Integer, Optimizer> factory) {
      this.factory = factory;
    }
  }

  @ParameterizedTest
  @EnumSource(Kind.class)
  void aFrozenBackboneWithTheHeadReplacedTwiceFollowsTheSchedule(Kind kind) throws Exception {
    run(kind, true, 0, List.of(6, 12), 24);
  }

  @ParameterizedTest
  @EnumSource(Kind.class)
  void surgeryRightAfterAResumeContinuesTheScheduleWhereTheResumeBegins(Kind kind)
      throws Exception {
    run(kind, false, 20, List.of(0), 12);
  }

  @ParameterizedTest
  @EnumSource(Kind.class)
  void bornAmongTrainingParametersFollowTheSchedule(Kind kind) throws Exception {
    run(kind, false, 0, List.of(5, 9), 20);
  }

  /**
   * A frozen middle layer made trainable by a new block whose new Parameters wrap its very arrays
   * (a way to unfreeze by replacement): it never trained, so it starts fresh, as a layer {@link
   * ModuleSurgery#unfreezeParameters} unfreezes does, and the plan says so ("born").
   */
  @ParameterizedTest
  @EnumSource(Kind.class)
  void aFrozenLayerMadeTrainableByNewParametersAroundItsArraysStartsFresh(Kind kind)
      throws Exception {
    List<float[]> first = run(kind, false, 0, List.of(7), 16, true);
    // the same seed gives the same bits
    List<float[]> second = run(kind, false, 0, List.of(7), 16, true);
    assertEquals(first.size(), second.size());
    for (int i = 0; i < first.size(); i++) {
      ExactnessOracle.assertBitsEqual(first.get(i), second.get(i), kind + " run twice, " + i);
    }
  }

  private static void run(
      Kind kind, boolean freezeOthers, int begin, List<Integer> surgeries, int steps)
      throws Exception {
    run(kind, freezeOthers, begin, surgeries, steps, false);
  }

  /**
   * Trains three dense layers (the first and last frozen if asked) with the optimizer resumed at
   * {@code begin}; at each step in {@code surgeries} replaces the middle layer by a new one, and
   * from then on checks its parameters after every step against a fresh optimizer shifted by {@code
   * begin + step}. With {@code rewrapFrozenMiddle} the middle layer is frozen from the start and
   * replaced by a trainable one whose new Parameters wrap its arrays.
   */
  private static List<float[]> run(
      Kind kind,
      boolean freezeOthers,
      int begin,
      List<Integer> surgeries,
      int steps,
      boolean rewrapFrozenMiddle)
      throws Exception {
    try (Model model = Model.newInstance("born-schedule");
        NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(11);
      SequentialBlock net =
          new SequentialBlock()
              .add(Linear.builder().setUnits(6).build())
              .add(Linear.builder().setUnits(6).build())
              .add(Linear.builder().setUnits(3).build());
      model.setBlock(net);
      NDArray x = data.randomNormal(new Shape(4, 5));
      NDArray y = data.randomNormal(new Shape(4, 3));
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(new GcSafeL2Loss())
              .optOptimizer(kind.factory.apply(schedule(), begin));
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(4, 5));
        if (freezeOthers) {
          net.getChildren().get(0).getValue().freezeParameters(true);
          net.getChildren().get(2).getValue().freezeParameters(true);
        }
        if (rewrapFrozenMiddle) {
          net.getChildren().get(1).getValue().freezeParameters(true);
        }
        Oracle oracle = null;
        for (int step = 0; step < steps; step++) {
          if (surgeries.contains(step)) {
            Block middle = net.getChildren().get(1).getValue();
            ReplacementFunction function =
                (block, index) -> {
                  if (block != middle) {
                    return null;
                  }
                  Linear fresh = Linear.builder().setUnits(6).build();
                  if (rewrapFrozenMiddle) {
                    fresh.getParameters().forEach(p -> p.getValue().setArray(arrayOf(middle, p)));
                  }
                  return fresh;
                };
            if (rewrapFrozenMiddle) {
              SurgeryPlan plan =
                  ModuleSurgery.plan(
                      net,
                      Map.of(BlockMatcher.ofClass(Linear.class), function),
                      SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
              assertEquals(2, plan.steps().get(0).added().size(), plan.toTable("rewrap"));
              for (SurgeryPlan.PlannedParameter p : plan.steps().get(0).added()) {
                assertEquals(SurgeryPlan.StateFate.FRESH, p.state(), plan.toTable("rewrap"));
                assertEquals(true, p.bornExact(), plan.toTable("rewrap"));
              }
            }
            Map<Block, Block> replaced =
                ModuleSurgery.replaceModuleClasses(
                    net, Map.of(Linear.class, function), List.of(trainer), false, null);
            assertEquals(1, replaced.size());
            if (oracle != null) {
              oracle.close();
            }
            Block born = net.getChildren().get(1).getValue();
            // The model's position: the resumed count plus the steps this test ran.
            Tracker shifted = shiftedBy(schedule(), begin + step);
            oracle = new Oracle(kind.factory.apply(shifted, 0), born, data);
          }
          try (GradientCollector collector = trainer.newGradientCollector()) {
            NDArray prediction = trainer.forward(new NDList(x)).singletonOrThrow();
            collector.backward(trainer.getLoss().evaluate(new NDList(y), new NDList(prediction)));
          }
          if (oracle != null) {
            oracle.update();
          }
          trainer.step();
          if (oracle != null) {
            oracle.assertMatches(kind + " step " + step);
          }
        }
        if (oracle != null) {
          oracle.close();
        }
        List<float[]> values = new ArrayList<>();
        for (Parameter p : net.getParameters().values()) {
          values.add(ExactnessOracle.floats(p.getArray()));
        }
        return values; // every parameter of the model at the end, in order
      }
    }
  }

  /** The array of the parameter of the same name in another block. */
  private static NDArray arrayOf(Block block, ai.djl.util.Pair<String, Parameter> named) {
    return block.getParameters().get(named.getKey()).getArray();
  }

  private static Tracker shiftedBy(Tracker tracker, int steps) {
    return numUpdate -> tracker.getNewValue(numUpdate + steps);
  }

  /** A fresh optimizer holding copies of a block's parameters, fed the model's gradients. */
  private static final class Oracle implements AutoCloseable {
    private final Optimizer optimizer;
    private final NDManager manager;
    private final Map<Parameter, NDArray> copies = new IdentityHashMap<>();

    Oracle(Optimizer optimizer, Block born, NDManager parent) {
      this.optimizer = optimizer;
      this.manager = parent.newSubManager();
      for (Parameter p : born.getParameters().values()) {
        NDArray copy = p.getArray().duplicate();
        copy.attach(manager);
        copies.put(p, copy);
      }
    }

    /** Updates the copies with the gradients the model's parameters hold now. */
    void update() {
      List<Map.Entry<Parameter, NDArray>> entries = new ArrayList<>(copies.entrySet());
      for (Map.Entry<Parameter, NDArray> e : entries) {
        NDArray gradient = e.getKey().getArray().getGradient().duplicate();
        gradient.attach(manager);
        optimizer.update(e.getKey().getName(), e.getValue(), gradient);
      }
    }

    void assertMatches(String where) {
      for (Map.Entry<Parameter, NDArray> e : copies.entrySet()) {
        ExactnessOracle.assertBitsEqual(
            e.getValue(), e.getKey().getArray(), where + ", " + e.getKey().getName());
        for (float v : ExactnessOracle.floats(e.getKey().getArray())) {
          org.junit.jupiter.api.Assertions.assertTrue(
              Float.isFinite(v), where + ", " + e.getKey().getName() + " is finite");
        }
      }
    }

    @Override
    public void close() {
      manager.close();
    }
  }
}
