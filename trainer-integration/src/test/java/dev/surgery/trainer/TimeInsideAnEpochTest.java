package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
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
import dev.surgery.trainer.config.SurgeryConfig;
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
        assertTrue(
            again.getWarnings().stream()
                .anyMatch(
                    w ->
                        w.contains("weight_standardization at epoch 2")
                            && w.contains("counts epochs from this trainer's start")),
            again.getWarnings().toString());
      }
    }
  }

  @Test
  void aScheduledPluginSeesTheRecentLossesAsAnEventDrivenOneDoes() throws Exception {
    // The user guide: match and apply get the recent batch losses. They were kept only where an
    // entry was event-driven, so a plugin given a schedule always saw none.
    List<Integer> seen = new java.util.ArrayList<>();
    dev.surgery.core.algorithms.Algorithm plugin =
        new dev.surgery.core.algorithms.Algorithm() {
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
            seen.add(state.recentLosses().size());
            return null; // it changes nothing
          }

          @Override
          public dev.surgery.core.algorithms.SurgeryChanges apply(
              dev.surgery.core.algorithms.SurgeryContext context) {
            throw new AssertionError("the listener passes the state");
          }
        };
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
    assertEquals(List.of(3), seen);
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
}
