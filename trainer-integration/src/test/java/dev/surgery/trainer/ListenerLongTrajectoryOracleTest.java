package dev.surgery.trainer;

import static dev.surgery.core.testing.TrajectoryOracle.forEachOptim;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.core.testing.TrajectoryOracle.Delta;
import dev.surgery.core.testing.TrajectoryOracle.Settings;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * The built-in algorithms scheduled by a {@link SurgeryListener} built from YAML, on the probe's
 * small CNN ({@link TrajectoryOracle#cnn}), checked after every step against the plain-Java oracle
 * {@link TrajectoryOracle} (double precision, DJL's gradients; tolerance explained there): under
 * DJL's own {@code EasyTrain.fit} with {@code epoch:} entries (the oracle reads the gradients in
 * {@code onTrainingBatch}, which DJL calls after backward and before the step), and in a
 * hand-written loop that reports every event with {@code step:}, {@code every:} and {@code at:}
 * entries. What each application changed is compared with what docs/algorithms.md says it changes
 * (adopted, born, born frozen, removed, frozen parameters).
 */
class ListenerLongTrajectoryOracleTest {

  static final int BATCH = 8;
  static final int PER_EPOCH = 40;
  static final Shape INPUT = new Shape(BATCH, 3, 8, 8);

  // ------------------------------------------------------------------ EasyTrain.fit, epoch:

  static final String EPOCH_YAML =
      "algorithms:\n"
          + "  - name: weight_standardization\n"
          + "    epoch: 0\n"
          + "  - name: blurpool\n"
          + "    epoch: 0\n"
          + "    min_channels: 8\n"
          + "  - name: ghost_batchnorm\n"
          + "    epoch: 1\n"
          + "    ghost_batch_size: 4\n"
          + "  - name: squeeze_excite\n"
          + "    epoch: 2\n"
          + "    min_channels: 16\n"
          + "    latent_channels: 4\n"
          + "  - name: layer_freezing\n"
          + "    epoch: 3\n"
          + "    freeze_start: 0.0\n"
          + "  - name: factorize\n"
          + "    epoch: 4\n"
          + "    min_channels: 8\n"
          + "    latent_channels: 0.25\n"
          + "  - name: stochastic_depth\n"
          + "    epoch: 4\n"
          + "    drop_rate: 0.2\n"
          + "  - name: layer_freezing\n"
          + "    epoch: 5\n"
          + "    freeze_start: 0.0\n"
          + "total_epochs: 6\n";

  /**
   * Six epochs of 40 steps under {@code EasyTrain.fit}. What docs/algorithms.md says each epoch's
   * entries change: epoch 1, ghost batch norm: adopts everything; epoch 2, squeeze-excite on unit
   * 2's two convolutions: 4 gate weights born; epoch 3, layer_freezing at 3/6 of 18 layers:
   * floor(0.5 * 17) = 8 layers, 16 parameters frozen; epoch 4, factorize (unit 1's two and the
   * strided convolution, frozen: 6 parameters leave, their 9 new ones born frozen; unit 2's two, in
   * their gates: 4 leave, 6 born) and stochastic depth (none); epoch 5, layer_freezing at 5/6 of 23
   * layers: floor(18.3) = 18 layers, the 7 not frozen yet, 10 more parameters.
   */
  @Test
  void anEpochScheduleUnderEasyTrainFitStaysOnTheOracle() {
    Map<Integer, Delta> expected = new LinkedHashMap<>();
    expected.put(1, Delta.NONE);
    expected.put(2, Delta.bornRemoved(4, 0));
    expected.put(3, Delta.frozen(16));
    expected.put(4, new Delta(6, 9, 0, 10, 0, 0));
    expected.put(5, Delta.frozen(10));
    forEachOptim(o -> fitRun("fit-" + o, Settings.preset(o), 400 + o.ordinal(), expected));
  }

  /** Follows EasyTrain.fit: finishes a step at the next batch's onTrainingBatch or at onEpoch. */
  static final class OracleListener extends TrainingListenerAdapter {
    TrajectoryOracle oracle;
    int step;
    int epoch;
    final Map<Integer, Delta> deltas = new LinkedHashMap<>();
    final Map<Integer, Delta> byStep = new TreeMap<>();

    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
      if (oracle.pending()) {
        oracle.afterStep("step " + step);
      }
      Delta d = oracle.reconcile("after epoch " + epoch + ", before step " + (step + 1));
      if (!d.equals(Delta.NONE) || (step > 0 && step % PER_EPOCH == 0)) {
        deltas.merge(epoch, d, (a, b) -> b);
      }
      if (!d.equals(Delta.NONE)) {
        byStep.put(step, d);
      }
      oracle.beforeStep(0);
      step++;
    }

    @Override
    public void onEpoch(Trainer trainer) {
      // Before the SurgeryListener's onEpoch (it was added first): the step is finished on the
      // model that took it.
      if (oracle.pending()) {
        oracle.afterStep("step " + step);
      }
      epoch++;
    }
  }

  private static void fitRun(String name, Settings s, long seed, Map<Integer, Delta> expected)
      throws Exception {
    SurgeryListener surgery =
        SurgeryListener.fromConfig(SurgeryConfig.parse(EPOCH_YAML, "epochs.yaml"));
    OracleListener follow = fit(name, s, seed, surgery, false);
    List<String> statuses = new ArrayList<>();
    for (SurgeryOutcome o : surgery.getOutcomes()) {
      statuses.add(
          o.algorithm() + "@" + o.epoch() + ":" + o.status() + ":" + o.changes().changes().size());
    }
    System.out.println(name + " " + statuses);
    assertEquals(
        List.of(
            "weight_standardization@0:APPLIED:6",
            "blurpool@0:APPLIED:2",
            "ghost_batchnorm@1:APPLIED:6",
            "squeeze_excite@2:APPLIED:2",
            "layer_freezing@3:APPLIED:8",
            "factorize@4:APPLIED:5",
            "stochastic_depth@4:APPLIED:2",
            "layer_freezing@5:APPLIED:7"),
        statuses,
        name);
    assertEquals(expected, follow.deltas, name + ": what each epoch's entries changed");
  }

  // ------------------------------------------------------------ SurgeryTrain.fit, step: / every:

  /**
   * The same step, repeating and duration schedule as the hand loop below, driven by {@code
   * SurgeryTrain.fit} (the drop-in the docs recommend for step-level entries, {@code BATCH_END}
   * right after {@code trainer.step()}): the oracle reads the gradients in {@code onTrainingBatch}
   * and finishes a step at the next one (or at {@code onEpoch}), after any {@code BATCH_END}
   * surgery, comparing the parameters still in the model. Same expected changes.
   */
  @Test
  void stepEveryAndDurationEntriesUnderSurgeryTrainFitStayOnTheOracle() {
    forEachOptim(o -> surgeryTrainRun("surgerytrain-" + o, Settings.preset(o), 450 + o.ordinal()));
  }

  private static void surgeryTrainRun(String name, Settings s, long seed) throws Exception {
    SurgeryListener surgery =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse(STEP_YAML, "steps.yaml"), SurgeryTrain.EVENTS);
    OracleListener follow = fit(name, s, seed, surgery, true);
    assertEquals(STEP_APPLIED, applied(surgery), name);
    Map<Integer, Delta> expected = new TreeMap<>();
    expected.put(55, Delta.bornRemoved(10, 0));
    expected.put(80, Delta.frozen(12));
    expected.put(90, Delta.bornRemoved(6, 4));
    expected.put(160, Delta.frozen(13));
    expected.put(240, Delta.frozen(13));
    assertEquals(expected, follow.byStep, name + ": changes by step");
  }

  /**
   * Trains the CNN 6 epochs of {@link #PER_EPOCH} steps under {@code EasyTrain.fit} (the surgery
   * listener told the trainer is initialized first: blurpool at epoch 0 needs shapes) or {@code
   * SurgeryTrain.fit}, followed by an {@link OracleListener} added before the surgery listener.
   */
  private static OracleListener fit(
      String name, Settings s, long seed, SurgeryListener surgery, boolean surgeryTrain)
      throws Exception {
    OracleListener follow = new OracleListener();
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed((int) seed);
      model.setBlock(TrajectoryOracle.cnn());
      NDList[] all =
          TrajectoryOracle.batches(data, seed, 1, BATCH * PER_EPOCH, DataType.FLOAT32).get(0);
      ArrayDataset train =
          new ArrayDataset.Builder()
              .setData(all[0].singletonOrThrow())
              .optLabels(all[1].singletonOrThrow())
              .setSampling(BATCH, false)
              .build();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(s.build())
              .addTrainingListeners(follow, surgery);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(INPUT);
        if (surgeryTrain) {
          follow.oracle = new TrajectoryOracle(name, model.getBlock(), s);
          SurgeryTrain.fit(trainer, 6, train, null);
          Delta last = follow.oracle.reconcile("after fit");
          if (!last.equals(Delta.NONE)) {
            follow.byStep.put(follow.step, last);
          }
        } else {
          surgery.onInitialized(trainer); // blurpool at epoch 0 needs shapes
          follow.oracle = new TrajectoryOracle(name, model.getBlock(), s);
          EasyTrain.fit(trainer, 6, train, null);
          assertTrue(!follow.oracle.pending(), name + ": the last step was finished at onEpoch");
          follow.oracle.compare("the end");
        }
        System.out.println(follow.oracle.summary());
      }
    }
    return follow;
  }

  /** Each outcome of a step schedule as {@code algorithm@step:status}. */
  private static List<String> applied(SurgeryListener surgery) {
    List<String> applied = new ArrayList<>();
    for (SurgeryOutcome o : surgery.getOutcomes()) {
      applied.add(o.algorithm() + "@" + o.step() + ":" + o.status());
    }
    return applied;
  }

  /** What {@link #STEP_YAML} is to apply, by step. */
  static final List<String> STEP_APPLIED =
      List.of(
          "ghost_batchnorm@20:APPLIED",
          "squeeze_excite@55:APPLIED",
          "layer_freezing@80:APPLIED",
          "factorize@90:APPLIED",
          "blurpool@144:APPLIED",
          "layer_freezing@160:APPLIED",
          "factorize@180:APPLIED",
          "layer_freezing@240:APPLIED");

  // ------------------------------------------------------------ a hand loop, step: / every: / at:

  static final String STEP_YAML =
      "algorithms:\n"
          + "  - name: ghost_batchnorm\n"
          + "    step: 20\n"
          + "    ghost_batch_size: 4\n"
          + "  - name: squeeze_excite\n"
          + "    step: 55\n"
          + "    min_channels: 8\n"
          + "    latent_channels: 2\n"
          + "  - name: factorize\n"
          + "    every: 90ba\n"
          + "    min_channels: 16\n"
          + "    latent_channels: 0.25\n"
          + "  - name: layer_freezing\n"
          + "    every: 2ep\n"
          + "    freeze_start: 0.0\n"
          + "  - name: blurpool\n"
          + "    at: \"0.6dur\"\n"
          + "    min_channels: 8\n"
          + "total_epochs: 6\n";

  /**
   * 240 steps (6 epochs of 40) in a loop that reports every event. Expected (docs/algorithms.md):
   * step 20, ghost batch norm: nothing born; step 55, squeeze-excite with min_channels 8 on five
   * convolutions (latent 2): 10 gate weights born; step 80 (end of epoch 2), layer_freezing 2/6 of
   * 24 layers: 7 layers, 12 parameters; step 90, factorize of unit 2's two convolutions (inside
   * their gates): 4 leave, 6 born; step 144 (ceil(0.6 * 240)), blurpool: nothing born; step 160,
   * layer_freezing 4/6 of 26 layers: 16 layers, the 9 not frozen yet, 13 more parameters; step 180,
   * factorize again: nothing left to factorize; step 240, layer_freezing 6/6: all but the last
   * layer, 13 more.
   */
  @Test
  void stepEveryAndDurationEntriesInAHandLoopStayOnTheOracle() {
    Map<Integer, Delta> expected = new LinkedHashMap<>();
    expected.put(20, Delta.NONE);
    expected.put(55, Delta.bornRemoved(10, 0));
    expected.put(80, Delta.frozen(12));
    expected.put(90, Delta.bornRemoved(6, 4));
    expected.put(144, Delta.NONE);
    expected.put(160, Delta.frozen(13));
    expected.put(180, Delta.NONE);
    expected.put(240, Delta.frozen(13));
    forEachOptim(o -> loopRun("loop-" + o, Settings.preset(o), 500 + o.ordinal(), expected));
  }

  private static void loopRun(String name, Settings s, long seed, Map<Integer, Delta> expected)
      throws Exception {
    SurgeryListener surgery =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse(STEP_YAML, "steps.yaml"), SurgeryTrain.EVENTS);
    Map<Integer, Delta> seen = new LinkedHashMap<>();
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed((int) seed);
      model.setBlock(TrajectoryOracle.cnn());
      List<NDList[]> batches = TrajectoryOracle.batches(data, seed, 8, BATCH, DataType.FLOAT32);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(s.build())
              .addTrainingListeners(surgery);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(INPUT);
        TrajectoryOracle oracle = new TrajectoryOracle(name, model.getBlock(), s);
        OracleLoop.run(
            surgery,
            trainer,
            oracle,
            batches,
            6,
            PER_EPOCH,
            0,
            "",
            (when, step, d) -> record(seen, step, d));
        System.out.println(oracle.summary());
      }
    }
    List<String> applied = applied(surgery);
    System.out.println(name + " " + applied + " " + seen);
    assertEquals(STEP_APPLIED, applied, name);
    for (SurgeryOutcome o : surgery.getOutcomes()) {
      seen.putIfAbsent((int) o.step(), Delta.NONE);
    }
    assertEquals(new TreeMap<>(expected), new TreeMap<>(seen), name + ": changes");
  }

  static void record(Map<Integer, Delta> seen, int step, Delta d) {
    if (!d.equals(Delta.NONE)) {
      seen.merge(
          step,
          d,
          (a, b) -> {
            throw new AssertionError("two changes at step " + step + ": " + a + ", " + b);
          });
    }
  }
}
