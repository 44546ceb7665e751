package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.core.Targets;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code include}/{@code exclude} in a YAML schedule on the test CNN ({@code 01Conv2d, 02BatchNorm,
 * 03LambdaBlock, 04Conv2d} (stride 2){@code , 05LambdaBlock, 06LambdaBlock} (max pool){@code ,
 * ...}): only the targets change, the checkpoint replays the same targets, and an include that
 * matches nothing stops training under {@code on_error: fail}, naming the entry's file:line:column.
 */
class TargetsConfigTest {

  @TempDir Path tmp;

  private Path yaml(String text) throws Exception {
    Path file = tmp.resolve("surgery.yaml");
    Files.writeString(file, text, StandardCharsets.UTF_8);
    return file;
  }

  /** Trains the model under the listener with an initialized trainer of its own, closed after. */
  private static void train(Model model, SurgeryListener listener, int epochs, NDManager data)
      throws Exception {
    try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, epochs, TestModels.dataset(data, 5), null);
    }
  }

  @Test
  void onlyTheIncludedBlocksChangeAndTheCheckpointReplaysTheTargets() throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromYaml(
            yaml(
                "algorithms:\n"
                    + "  - name: blurpool\n"
                    + "    epoch: 1\n"
                    + "    min_channels: 0\n"
                    + "    include: ['type:Conv2d', '06LambdaBlock']\n"
                    + "    exclude: [06*]\n"));
    assertEquals(
        Targets.of(List.of("type:Conv2d", "06LambdaBlock"), List.of("06*")),
        listener.getSchedule().get(0).algorithm().targets());
    String saved;
    try (NDManager data = NDManager.newBaseManager()) {
      try (Model model = TestModels.model("targets")) {
        train(model, listener, 2, data);
        saved = TestModels.structure(model.getBlock());
        // the strided conv is blurred (and its key renamed after its new type); the max pool, which
        // BlurPool replaces by default, was
        // excluded (exclusions win over the include that names it)
        assertTrue(saved.contains("04BlurConv2d=BlurConv2d"), saved);
        assertTrue(saved.contains("06LambdaBlock=maxPool2d"), saved);
        assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"), saved);
        model.save(tmp, "targets");
      }
      List<SurgeryRecord> record =
          SurgeryCheckpoint.readRecord(SurgeryCheckpoint.resolveParamsFile(tmp, "targets", null));
      assertEquals(
          List.of("type:Conv2d", "06LambdaBlock"), record.get(0).hyperparameters().get("include"));
      try (Model restored = TestModels.model("targets")) {
        SurgeryCheckpoint.load(restored, tmp, "targets");
        assertEquals(saved, TestModels.structure(restored.getBlock()));
      }
    }
  }

  @Test
  void anIncludeThatMatchesNothingFailsNamingTheEntry() throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromYaml(
            yaml(
                "on_error: fail\n"
                    + "algorithms:\n"
                    + "  - name: ghost_batchnorm\n"
                    + "    epoch: 1\n"
                    + "    include: ['**/07BatchNorm']\n"));
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("nothing");
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      String before = TestModels.structure(model.getBlock());
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> EasyTrain.fit(trainer, 2, TestModels.dataset(data, 5), null));
      assertTrue(e.getMessage().contains("surgery.yaml:3:5"), e.getMessage());
      assertTrue(
          e.getMessage().contains("pattern '**/07BatchNorm' matches no block"), e.getMessage());
      assertEquals(before, TestModels.structure(model.getBlock()));
    }
  }

  @Test
  void aRepeatAfterATargetedEntryIsNoConflictButARepeatAfterAnUntargetedOneIs() throws Exception {
    SurgeryListener twoParts =
        SurgeryListener.fromYaml(
            yaml(
                "algorithms:\n"
                    + "  - {name: blurpool, epoch: 1, include: ['01Conv2d']}\n"
                    + "  - {name: blurpool, epoch: 2}\n"));
    assertEquals(2, twoParts.getSchedule().size());
    Path repeat =
        yaml(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 1}\n"
                + "  - {name: blurpool, epoch: 2, include: ['01Conv2d']}\n");
    dev.surgery.trainer.config.SurgeryConfigException e =
        assertThrows(
            dev.surgery.trainer.config.SurgeryConfigException.class,
            () -> SurgeryListener.fromYaml(repeat));
    assertTrue(e.getMessage().contains("surgery.yaml:3:5"), e.getMessage());
    assertTrue(e.getMessage().contains("already did everything"), e.getMessage());
  }

  @Test
  void aRepeatingEntryWithAnIncludeChangesNothingOnLaterRunsAndTrainsOn() throws Exception {
    // The docs: a repeating entry's runs after the first change nothing and say so at WARN; its
    // include must not turn that into a failure (the first run blurred what it selects).
    SurgeryListener listener =
        SurgeryListener.fromYaml(
            yaml(
                "algorithms:\n"
                    + "  - name: blurpool\n"
                    + "    every: 1ep\n"
                    + "    min_channels: 0\n"
                    + "    include: '*Conv2d'\n"));
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("every-include")) {
      train(model, listener, 3, data);
      List<SurgeryOutcome> outcomes = listener.getOutcomes();
      assertEquals(3, outcomes.size(), outcomes.toString());
      for (SurgeryOutcome o : outcomes) {
        assertEquals(SurgeryOutcome.Status.APPLIED, o.status(), o.toString());
      }
      assertEquals(1, outcomes.get(0).changes().changes().size(), outcomes.toString());
      assertTrue(outcomes.get(1).changes().changes().isEmpty(), outcomes.toString());
      assertTrue(
          listener.getWarnings().stream()
              .anyMatch(
                  w ->
                      w.contains("blurpool did not change any layers this time")
                          && w.contains("its earlier runs changed what it selects")),
          listener.getWarnings().toString());
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
    }
  }

  @Test
  void aRepeatingEntryWhoseIncludeNeverSelectedAnythingStillFailsItsFirstRun() throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromYaml(
            yaml(
                "algorithms:\n"
                    + "  - name: blurpool\n"
                    + "    every: 1ep\n"
                    + "    min_channels: 0\n"
                    + "    include: '*Linear'\n"));
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("every-include-typo");
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> EasyTrain.fit(trainer, 2, TestModels.dataset(data, 5), null));
      assertTrue(e.getMessage().contains("nothing among the included blocks"), e.getMessage());
    }
  }

  @Test
  void aRepeatingEntryWithAnIncludeResumedOnAModelThatHasItsRecordTrainsOn() throws Exception {
    // A second trainer (or a job restarted from a checkpoint with its schedule) meets the layers
    // the entry's earlier runs blurred: its own first run there changes nothing, as for the
    // trainer that made them.
    String yaml =
        "algorithms:\n"
            + "  - name: blurpool\n"
            + "    every: 1ep\n"
            + "    min_channels: 0\n"
            + "    include: '*Conv2d'\n";
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("every-include-resumed")) {
      train(model, SurgeryListener.fromYaml(yaml(yaml)), 1, data);
      SurgeryListener again = SurgeryListener.fromYaml(yaml(yaml));
      try (Trainer second = model.newTrainer(TestModels.config(again))) {
        EasyTrain.fit(second, 1, TestModels.dataset(data, 5), null);
      }
      List<SurgeryOutcome> outcomes = again.getOutcomes();
      assertEquals(1, outcomes.size(), outcomes.toString());
      assertEquals(SurgeryOutcome.Status.APPLIED, outcomes.get(0).status(), outcomes.toString());
      assertTrue(outcomes.get(0).changes().changes().isEmpty(), outcomes.toString());
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
    }
  }

  /** Trains the test CNN 3 epochs from one seed under a YAML schedule; its parameters' values. */
  private Map<String, float[]> trainedValues(String name, String yaml) throws Exception {
    ai.djl.engine.Engine.getInstance().setRandomSeed(11);
    Map<String, float[]> values = new java.util.TreeMap<>();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model(name)) {
      train(model, SurgeryListener.fromYaml(yaml(yaml)), 3, data);
      TestModels.parametersByPath(model.getBlock())
          .forEach((k, p) -> values.put(k, p.getArray().toFloatArray()));
    }
    return values;
  }

  @Test
  void aRepeatingEntrysLaterRunsTrainTheSameBitsAsTheEntryRunOnce() throws Exception {
    // The oracle for "changes nothing": every: 1ep with an include trains, over three epochs of
    // Adam steps, exactly what the same surgery at epoch 1 alone trains, every value finite.
    Map<String, float[]> repeating =
        trainedValues(
            "every-bits",
            "algorithms:\n  - {name: blurpool, every: 1ep, min_channels: 0, include: '*Conv2d'}\n");
    Map<String, float[]> once =
        trainedValues(
            "once-bits",
            "algorithms:\n  - {name: blurpool, epoch: 1, min_channels: 0, include: '*Conv2d'}\n");
    assertEquals(once.keySet(), repeating.keySet());
    for (Map.Entry<String, float[]> e : once.entrySet()) {
      assertTrue(
          java.util.Arrays.equals(e.getValue(), repeating.get(e.getKey())),
          e.getKey() + " differs");
      for (float v : e.getValue()) {
        assertTrue(Float.isFinite(v), e.getKey() + " holds " + v);
      }
    }
  }
}
