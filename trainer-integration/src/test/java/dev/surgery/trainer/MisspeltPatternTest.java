package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * An include pattern in the wrong case ({@code type:Conv2D}) selects nothing, so the entry would
 * fail when it runs, epochs into training: it fails when training begins instead, before the first
 * step, naming the pattern and the model's spelling; on_error decides as for any failure.
 */
class MisspeltPatternTest {

  private static final String YAML =
      "algorithms:\n"
          + "  - name: blurpool\n"
          + "    epoch: 2\n"
          + "    min_channels: 0\n"
          + "    include: 'type:Conv2D'\n";

  @Test
  void underFailTrainingStopsBeforeItBegins() {
    SurgeryListener listener = SurgeryListener.fromConfig(SurgeryConfig.parse(YAML, "typo.yaml"));
    try (Model model = TestModels.model("typo-fail")) {
      String before = TestModels.structure(model.getBlock());
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class, () -> model.newTrainer(TestModels.config(listener)));
      assertTrue(e.getMessage().contains("blurpool at epoch 2 (typo.yaml:2:5)"), e.getMessage());
      assertTrue(
          e.getMessage()
              .contains(
                  "include pattern 'type:Conv2D' selects no block of the model, but 'type:Conv2d'"
                      + " differs from it only in case"),
          e.getMessage());
      assertEquals(before, TestModels.structure(model.getBlock()));
      assertEquals(0, listener.getOutcomes().get(0).step());
    }
  }

  @Test
  void underSkipTheEntryIsDroppedAndTrainingRunsAsWithoutIt() throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromConfig(SurgeryConfig.parse(YAML + "on_error: skip\n", "typo.yaml"));
    try (Model model = TestModels.model("typo-skip");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      assertEquals(
          List.of(SurgeryOutcome.Status.SKIPPED),
          listener.getOutcomes().stream().map(SurgeryOutcome::status).toList(),
          "refused when training began");
      trainer.initialize(INPUT);
      String before = TestModels.structure(model.getBlock());
      EasyTrain.fit(trainer, 3, TestModels.dataset(data, 4), null);
      assertEquals(before, TestModels.structure(model.getBlock()));
      assertEquals(1, listener.getOutcomes().size(), listener.getOutcomes().toString());
    }
  }

  /**
   * A listener added to the config after the trainer was created (DJL's trainer shares the config's
   * list) hears no onTrainingBegin: its first batch is the first event with the model, and the
   * misspelt entry fails there, before the first step, leaving the model as it was.
   */
  @Test
  void aListenerAddedAfterTheTrainerWasCreatedRefusesAtTheFirstBatch() throws Exception {
    SurgeryListener listener = SurgeryListener.fromConfig(SurgeryConfig.parse(YAML, "typo.yaml"));
    DefaultTrainingConfig config = TestModels.config();
    try (Model model = TestModels.model("typo-late");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(config)) {
      config.addTrainingListeners(listener);
      trainer.initialize(INPUT);
      String before = TestModels.structure(model.getBlock());
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> EasyTrain.fit(trainer, 3, TestModels.dataset(data, 4), null));
      assertTrue(e.getMessage().contains("differs from it only in case"), e.getMessage());
      assertEquals(before, TestModels.structure(model.getBlock()));
      assertEquals(0, listener.getOutcomes().get(0).step(), "before the first step");
    }
  }

  /**
   * Such a listener told of the initialization ({@code onInitialized}, as its warning advises)
   * checks the model there: the misspelt entry is refused before the program's loop begins.
   */
  @Test
  void aListenerAddedLateAndToldOfTheInitializationRefusesThere() {
    SurgeryListener listener =
        SurgeryListener.fromConfig(SurgeryConfig.parse(YAML + "on_error: skip\n", "typo.yaml"));
    DefaultTrainingConfig config = TestModels.config();
    try (Model model = TestModels.model("typo-late-init");
        Trainer trainer = model.newTrainer(config)) {
      config.addTrainingListeners(listener);
      trainer.initialize(INPUT);
      assertEquals(List.of(), listener.getOutcomes(), "nothing checked before onInitialized");
      listener.onInitialized(trainer);
      assertEquals(
          List.of(SurgeryOutcome.Status.SKIPPED),
          listener.getOutcomes().stream().map(SurgeryOutcome::status).toList(),
          "refused at onInitialized");
    }
  }
}
