package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.dataset.Dataset;
import ai.djl.translate.TranslateException;
import ai.djl.util.Progress;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.OnError;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.Trigger;
import java.io.IOException;
import java.util.Iterator;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What an outside probe of schedules inside an epoch found: a duration entry whose step the only
 * epoch's end showed had passed was listed as "training ended" instead of failing; one applied at
 * the first epoch's end of data that does not tell its size logged no loss before it; a step entry
 * under a driver that reports no BATCH_END was listed as if training had taken no step; and a job
 * restarted with its schedule after a record of the first epoch was not warned that its epochs
 * count from the new trainer's start.
 */
class TimeInsideAnEpochTest {

  private static SurgeryListener listener(String yaml) {
    return SurgeryListener.fromConfig(
        SurgeryConfig.parse(yaml, "inside.yaml"), SurgeryTrain.EVENTS);
  }

  /** The test data (4 batches of 16) without its size: batches report no progress total. */
  private static Dataset unsized(ArrayDataset inner) {
    return new Dataset() {
      @Override
      public Iterable<Batch> getData(NDManager manager) throws IOException, TranslateException {
        Iterable<Batch> batches = inner.getData(manager);
        return () -> {
          Iterator<Batch> it = batches.iterator();
          return new Iterator<Batch>() {
            private long progress;

            @Override
            public boolean hasNext() {
              return it.hasNext();
            }

            @Override
            public Batch next() {
              Batch b = it.next();
              progress += b.getSize();
              return new Batch(
                  b.getManager(), b.getData(), b.getLabels(), b.getSize(), null, null, progress, 0);
            }
          };
        };
      }

      @Override
      public void prepare(Progress progress) {}
    };
  }

  private static void fitUnsized(SurgeryListener listener, String name, int epochs)
      throws Exception {
    try (Model model = TestModels.model(name);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, epochs, unsized(TestModels.dataset(data, 3)), null);
    }
  }

  /** Whether a listener warned that a trainer's epochs count from its own start (a restart). */
  private static boolean warnedOfRestart(SurgeryListener listener) {
    return listener.getWarnings().stream()
        .anyMatch(w -> w.contains("counts epochs from this trainer's start"));
  }

  /** A first trainer of the model, with a listener of its own from {@code yaml}: one epoch. */
  private static void trainOneEpoch(Model model, String yaml, NDManager data) throws Exception {
    try (Trainer first = model.newTrainer(TestModels.config(listener(yaml)))) {
      first.initialize(INPUT);
      SurgeryTrain.fit(first, 1, TestModels.dataset(data, 3), null);
    }
  }

  @Test
  void aDurationWhoseStepTheOnlyEpochsEndShowsPassedFailsThere() throws Exception {
    SurgeryListener listener =
        listener(
            "algorithms:\n  - {name: blurpool, at: 0.5dur, min_channels: 0}\n"
                + "total_epochs: 1\non_error: skip\n");
    fitUnsized(listener, "passed-in-only-epoch", 1);
    List<SurgeryOutcome> outcomes = listener.getOutcomes();
    assertEquals(1, outcomes.size(), outcomes.toString());
    assertEquals(SurgeryOutcome.Status.SKIPPED, outcomes.get(0).status());
    assertTrue(
        outcomes
            .get(0)
            .error()
            .contains("'0.5dur' is step 2 of 4, but training is already at step 4"),
        outcomes.get(0).error());
  }

  /**
   * Data that does not tell its size leaves a duration's step unknown until the first epoch ends: a
   * failure that stops training at step 1 came before the duration was due, and its never-ran
   * reason says so rather than that it was due at that step.
   */
  @Test
  void aDurationOfUnsizedDataStoppedAtStepOneWasNotDueThere() throws Exception {
    TestAlgorithms.ensureRegistered();
    SurgeryListener listener =
        listener(
            "algorithms:\n  - {name: t_fail, step: 1}\n  - {name: t_log, at: 0.5dur}\n"
                + "total_epochs: 2\n");
    assertThrows(SurgeryFailedException.class, () -> fitUnsized(listener, "unsized-stopped", 2));
    List<String> never =
        listener.getWarnings().stream().filter(w -> w.contains(" never ran: ")).toList();
    assertEquals(1, never.size(), listener.getWarnings().toString());
    assertTrue(
        never
            .get(0)
            .endsWith(
                "never ran: t_fail at step 1 (inside.yaml:2:5) failed at step 1 and stopped"
                    + " training before it was due"),
        never.get(0));
  }

  @Test
  void aDurationAppliedAtTheFirstEpochsEndOfUnsizedDataLogsTheLossBefore() throws Exception {
    // 3 epochs of 4 batches: 0.3dur is step 4 (3.6 rounded up), the first epoch's last.
    SurgeryListener listener =
        listener(
            "algorithms:\n  - {name: blurpool, at: 0.3dur, min_channels: 0}\ntotal_epochs: 3\n");
    fitUnsized(listener, "loss-before", 3);
    SurgeryOutcome applied = listener.getOutcomes().get(0);
    assertEquals(SurgeryOutcome.Status.APPLIED, applied.status(), applied.toString());
    assertEquals(4, applied.step(), applied.toString());
    assertNotNull(applied.lossBefore(), applied.toString());
    assertEquals(4, applied.lossBeforeBatches(), applied.toString());
  }

  @Test
  void aStepEntryUnderADriverThatReportsNoBatchEndSaysSo() throws Exception {
    SurgeryListener listener =
        listener("algorithms:\n  - {name: blurpool, step: 3, min_channels: 0}\n");
    try (Model model = TestModels.model("no-batch-end");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
    }
    String warning =
        listener.getWarnings().stream()
            .filter(w -> w.contains("blurpool at step 3"))
            .findFirst()
            .orElseThrow(() -> new AssertionError(listener.getWarnings().toString()));
    assertTrue(
        warning.contains("saw 8 training batches but no BATCH_END event")
            && warning.contains("EasyTrain.fit reports none"),
        warning);
    assertFalse(warning.contains("after 0 optimizer steps"), warning);
  }

  @Test
  void aJobRestartedAfterARecordOfTheFirstEpochIsWarnedThatEpochsCountFromItsStart()
      throws Exception {
    String yaml =
        "algorithms:\n"
            + "  - {name: blurpool, step: 3, min_channels: 0}\n"
            + "  - {name: weight_standardization, epoch: 2}\n";
    try (Model model = TestModels.model("restarted");
        NDManager data = NDManager.newBaseManager()) {
      trainOneEpoch(model, yaml, data);
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"), "recorded at step 3");
      SurgeryListener again = listener(yaml);
      try (Trainer second = model.newTrainer(TestModels.config(again))) {
        // Said when the trainer first trains (an evaluation trainer never does).
        assertFalse(warnedOfRestart(again), again.getWarnings().toString());
        SurgeryTrain.fit(second, 1, TestModels.dataset(data, 3), null);
        // Once, at the first batch, not at each of the epoch's batches and steps.
        assertEquals(
            1,
            again.getWarnings().stream()
                .filter(
                    w ->
                        w.contains("weight_standardization at epoch 2")
                            && w.contains("counts epochs from this trainer's start"))
                .count(),
            again.getWarnings().toString());
      }
    }
  }

  @Test
  void aScheduledPluginSeesTheRecentLossesAsAnEventDrivenOneDoes() throws Exception {
    // The user guide: match and apply get the recent batch losses. They were kept only where an
    // entry was event-driven, so a plugin given a schedule always saw none.
    LossReader plugin = new LossReader();
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(plugin, dev.surgery.trainer.config.Trigger.atStep(3))
            .optObservableEvents(SurgeryTrain.EVENTS)
            .build();
    try (Model model = TestModels.model("scheduled-plugin-losses");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
    }
    assertEquals(List.of(3), plugin.seen.stream().map(List::size).toList());
  }

  @Test
  void anEvaluationTrainerAfterAnEpochZeroEntryIsNotWarnedOfARestart() throws Exception {
    // Records of epoch 0 alone are what an evaluation trainer built from the same config meets:
    // no checkpoint was taken inside training, so no restart warning.
    String yaml =
        "algorithms:\n"
            + "  - {name: weight_standardization, epoch: 0}\n"
            + "  - {name: blurpool, epoch: 2, min_channels: 0}\n";
    try (Model model = TestModels.model("evaluation-trainer");
        NDManager data = NDManager.newBaseManager()) {
      trainOneEpoch(model, yaml, data);
      SurgeryListener evaluation = listener(yaml);
      try (Trainer second = model.newTrainer(TestModels.config(evaluation))) {
        assertEquals(model, second.getModel());
      }
      assertFalse(warnedOfRestart(evaluation), evaluation.getWarnings().toString());
    }
  }

  @Test
  void anEvaluationTrainerAfterALaterEpochsEntryIsNotWarnedOfARestartEither() throws Exception {
    // A record that reaches epoch 1, then a trainer that only evaluates: the warning is said when a
    // trainer first trains, which this one never does.
    String yaml =
        "algorithms:\n"
            + "  - {name: blurpool, epoch: 1, min_channels: 0}\n"
            + "  - {name: weight_standardization, epoch: 2}\n";
    try (Model model = TestModels.model("evaluation-after-epoch-1");
        NDManager data = NDManager.newBaseManager()) {
      trainOneEpoch(model, yaml, data);
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"), "recorded at epoch 1");
      SurgeryListener evaluation = listener(yaml);
      try (Trainer second = model.newTrainer(TestModels.config(evaluation))) {
        EasyTrain.evaluateDataset(second, TestModels.dataset(data, 4));
      }
      assertFalse(warnedOfRestart(evaluation), evaluation.getWarnings().toString());
    }
  }

  /** Changes nothing: what a duration entry's moment is checked with. */
  private static Algorithm nothing() {
    return TestAlgorithms.applying(
        "t_nothing", c -> new SurgeryChanges("t_nothing", java.util.Map.of(), List.of(), 0, 0, 1));
  }

  @Test
  void aDurationAtAnEpochsLastStepRunsAtItsBatchEndBeforeTheEpochIsCounted() throws Exception {
    // 2 epochs of 4 batches: 0.5dur is step ceil(0.5 * 8) = 4, the first epoch's last; its
    // BATCH_END comes before that epoch's end, so 0 epochs have completed when it runs.
    SurgeryListener listener =
        listener(
            "algorithms:\n  - {name: blurpool, at: 0.5dur, min_channels: 0}\ntotal_epochs: 2\n");
    try (Model model = TestModels.model("dur-last-step");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
    }
    SurgeryOutcome applied = listener.getOutcomes().get(0);
    assertEquals(SurgeryOutcome.Status.APPLIED, applied.status(), applied.toString());
    assertEquals(4, applied.step(), applied.toString());
    assertEquals(0, applied.epoch(), applied.toString());
  }

  @Test
  void aDurationWithNoLengthAtAllFailsAtTheFirstStepsBatchEnd() throws Exception {
    // The builder, unlike a file, takes a duration with neither total: a loop that reports its
    // steps but announces no length leaves the planned steps unknown at step 1.
    SurgeryListener listener = halfwayWithNoLength();
    try (Model model = TestModels.model("dur-no-length");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      for (Batch batch : trainer.iterateDataset(TestModels.dataset(data, 3))) {
        try (batch) {
          listener.onEvent(Event.BATCH_START, trainer);
          EasyTrain.trainBatch(trainer, batch);
          trainer.step();
          listener.onEvent(Event.BATCH_END, trainer);
        }
      }
    }
    List<SurgeryOutcome> outcomes = listener.getOutcomes();
    assertEquals(1, outcomes.size(), outcomes.toString());
    SurgeryOutcome skipped = outcomes.get(0);
    assertEquals(SurgeryOutcome.Status.SKIPPED, skipped.status(), skipped.toString());
    assertEquals(1, skipped.step(), skipped.toString());
    assertTrue(
        skipped
            .error()
            .contains("'0.5dur' needs the planned number of optimizer steps, which is unknown"),
        skipped.error());
  }

  @Test
  void aDurationUnderADriverThatReportsNoBatchEndIsListedAsNeverRunNotFailedAtTheEpochEnd()
      throws Exception {
    // Built for a driver that reports steps, trained by EasyTrain.fit, which reports none: the
    // first epoch's end tells the batches per epoch, but with no length the planned steps stay
    // unknown and no step comes; the entry never runs, and training's end says why.
    SurgeryListener listener = halfwayWithNoLength();
    try (Model model = TestModels.model("dur-no-batch-end");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
    }
    assertEquals(List.of(), listener.getOutcomes());
    assertTrue(
        listener.getWarnings().stream()
            .anyMatch(
                w -> w.contains("never ran: the listener saw 4 training batches but no BATCH_END")),
        listener.getWarnings().toString());
  }

  /** Each training batch's loss as DJL's loss evaluates it on the batch's labels and outputs. */
  static final class LossProbe extends ai.djl.training.listener.TrainingListenerAdapter {
    final List<Float> losses = new java.util.ArrayList<>();

    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
      for (var e : batchData.getLabels().entrySet()) {
        try (ai.djl.ndarray.NDArray loss =
            trainer.getLoss().evaluate(e.getValue(), batchData.getPredictions().get(e.getKey()))) {
          losses.add(loss.getFloat());
        }
      }
    }
  }

  @Test
  void theRecentLossesAScheduledEntrySeesAreTheBatchesLossesWithOrWithoutDjlsEvaluator()
      throws Exception {
    for (boolean evaluator : new boolean[] {false, true}) {
      LossReader reader = new LossReader();
      SurgeryListener listener =
          SurgeryListener.builder()
              .add(reader, Trigger.atStep(3))
              .optObservableEvents(SurgeryTrain.EVENTS)
              .build();
      LossProbe probe = new LossProbe();
      // DJL's evaluator listener, when it comes first, has computed the loss already: read there.
      ai.djl.training.listener.TrainingListener[] listeners =
          evaluator
              ? new ai.djl.training.listener.TrainingListener[] {
                new ai.djl.training.listener.EvaluatorTrainingListener(), probe, listener
              }
              : new ai.djl.training.listener.TrainingListener[] {probe, listener};
      try (Model model = TestModels.model("losses-" + evaluator);
          NDManager data = NDManager.newBaseManager();
          Trainer trainer = model.newTrainer(TestModels.config(listeners))) {
        trainer.initialize(INPUT);
        SurgeryTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      }
      List<List<Float>> seen = reader.seen;
      assertEquals(1, seen.size(), "evaluator " + evaluator);
      List<Float> expected = probe.losses.subList(0, 3);
      assertEquals(3, seen.get(0).size(), "evaluator " + evaluator);
      for (int b = 0; b < 3; b++) {
        assertEquals(
            expected.get(b), seen.get(0).get(b), 1e-5f, "batch " + b + ", evaluator " + evaluator);
      }
    }
  }

  /**
   * A builder's '0.5dur' entry that changes nothing, with no planned length, skipped on failure.
   */
  private static SurgeryListener halfwayWithNoLength() {
    return SurgeryListener.builder()
        .add(nothing(), Trigger.at(Time.parse("0.5dur")))
        .optOnError(OnError.SKIP)
        .optObservableEvents(SurgeryTrain.EVENTS)
        .build();
  }

  /** A scheduled plugin that changes nothing and keeps the recent losses each run was given. */
  private static final class LossReader implements dev.surgery.core.algorithms.Algorithm {
    final List<List<Float>> seen = new java.util.ArrayList<>();

    @Override
    public String name() {
      return "t_reads_losses";
    }

    @Override
    public java.util.Map<String, Object> hyperparameters() {
      return java.util.Map.of();
    }

    @Override
    public dev.surgery.core.algorithms.SurgeryChanges apply(
        dev.surgery.core.events.Event event, dev.surgery.core.events.State state) {
      seen.add(state.recentLosses());
      return null; // it changes nothing
    }

    @Override
    public dev.surgery.core.algorithms.SurgeryChanges apply(
        dev.surgery.core.algorithms.SurgeryContext context) {
      throw new AssertionError("the listener passes the state");
    }
  }
}
