package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.Trainer;
import ai.djl.training.listener.SaveModelTrainingListener;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A job restarted with its whole schedule from a model that carries a surgery record: which entry a
 * record stands for. An outside probe found a record of an {@code epoch: 2} entry credited to an
 * {@code at: "0.75dur"} entry of the same algorithm earlier in the file (which then never ran,
 * silently), and an {@code every: 3ep} entry taking the record of an {@code epoch: 2} entry after
 * it (which then ran again); and no warning that step, duration and {@code every:} entries count
 * from the new trainer's start.
 */
class RecordedEntryMatchingTest {

  private static final String FREEZE = "name: layer_freezing, freeze_start: 0.0, freeze_level: 1.0";

  private static SurgeryListener listener(String yaml) {
    return SurgeryListener.fromConfig(
        SurgeryConfig.parse(yaml, "resumed.yaml"), SurgeryTrain.EVENTS);
  }

  /** Trains the model with a new trainer and a listener of {@code yaml}; returns the listener. */
  private static SurgeryListener train(Model model, String yaml, int epochs, NDManager data)
      throws Exception {
    SurgeryListener listener = listener(yaml);
    try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, epochs, TestModels.dataset(data, 3), null);
    }
    return listener;
  }

  /**
   * One epoch with a new trainer that is not initialized (as a program resuming a loaded model may
   * train) under a listener of {@code yaml}; returns the listener.
   */
  private static SurgeryListener trainOneEpochUninitialized(
      Model model, String yaml, NDManager data) throws Exception {
    SurgeryListener listener = listener(yaml);
    try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      SurgeryTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
    }
    return listener;
  }

  /** A schedule of two layer_freezing entries, {@code first} and {@code second} their triggers. */
  private static String twoFreezeEntries(String first, String second, int totalEpochs) {
    return "algorithms:\n  - {"
        + FREEZE
        + ", "
        + first
        + "}\n  - {"
        + FREEZE
        + ", "
        + second
        + "}\ntotal_epochs: "
        + totalEpochs
        + "\n";
  }

  /** The reasons of the surgery log's {@code not_run} items, in order. */
  private static List<String> notRunReasons(Path report) throws Exception {
    List<String> reasons = new ArrayList<>();
    for (JsonElement item :
        JsonParser.parseString(Files.readString(report))
            .getAsJsonObject()
            .getAsJsonArray("not_run")) {
      reasons.add(item.getAsJsonObject().get("reason").getAsString());
    }
    return reasons;
  }

  private static List<SurgeryRecord> records(Model model) {
    return SurgeryJson.recordsFromJson(RecordedEntries.recordOf(model));
  }

  private static List<String> appliedSources(SurgeryListener listener) {
    return listener.getOutcomes().stream()
        .filter(o -> o.status() == SurgeryOutcome.Status.APPLIED)
        .map(SurgeryOutcome::source)
        .toList();
  }

  @Test
  void anEpochEntrysRecordIsNotCreditedToADurationEntryBeforeIt() throws Exception {
    String yaml = twoFreezeEntries("at: 0.75dur", "epoch: 1", 4);
    try (Model model = TestModels.model("duration-before-epoch");
        NDManager data = NDManager.newBaseManager()) {
      SurgeryListener first = train(model, yaml, 2, data);
      assertEquals(List.of("resumed.yaml:3:5"), appliedSources(first));
      assertEquals(1, records(model).size());

      SurgeryListener again = train(model, yaml, 4, data);
      // The epoch entry is the record's; the duration entry never ran, so it runs now (at its
      // fraction of this trainer's training), having been warned of as counted from here.
      assertEquals(List.of("resumed.yaml:2:5"), appliedSources(again));
      assertAWarningSays(
          again,
          "layer_freezing at 0.75dur",
          "counts its fraction of training from this trainer's");
      assertFalse(
          again.getWarnings().stream().anyMatch(w -> w.contains("layer_freezing at epoch 1")),
          again.getWarnings().toString());
      assertEquals(2, records(model).size());
    }
  }

  @Test
  void anEveryEntryDoesNotTakeTheRecordOfAnEpochEntryAfterIt(@TempDir Path dir) throws Exception {
    String yaml = twoFreezeEntries("every: 3ep", "epoch: 2", 6);
    try (Model model = TestModels.model("every-before-epoch");
        NDManager data = NDManager.newBaseManager()) {
      train(model, yaml, 2, data);
      assertEquals(1, records(model).size());
      assertEquals(2, records(model).get(0).epoch());

      Path report = dir.resolve("again.json");
      SurgeryListener again = train(model, yaml + "report: " + report + "\n", 2, data);
      // An epoch entry in the record is said to have run at its epoch (its record's step aside);
      // the every: 3ep entry never came round.
      assertEquals(
          List.of(
              RecordedEntries.ALREADY_RECORDED
                  + " (a replayed checkpoint or an earlier trainer applied it at epoch 2): not"
                  + " applied again",
              "training ended after 2 completed epochs"),
          notRunReasons(report));
      // Not applied again: no second record at epoch 2 (every: 3ep has not come round).
      assertEquals(List.of(), appliedSources(again));
      assertEquals(1, records(model).size());
      assertAWarningSays(
          again,
          "layer_freezing every 3ep",
          "counts epochs from this trainer's start",
          "every 3 epochs counted from now");
    }
  }

  @Test
  void aRestartWarnsThatStepEntriesCountFromTheTrainersStart() throws Exception {
    String yaml =
        "algorithms:\n"
            + "  - {name: blurpool, epoch: 1, min_channels: 0}\n"
            + "  - {name: weight_standardization, step: 40}\n"
            + "  - {name: ghost_batchnorm, every: 50ba}\n";
    try (Model model = TestModels.model("step-entries-restart");
        NDManager data = NDManager.newBaseManager()) {
      train(model, yaml, 1, data);
      SurgeryListener again = trainOneEpochUninitialized(model, yaml, data);
      assertAWarningSays(
          again,
          "weight_standardization at step 40",
          "counts optimizer steps from this trainer's start",
          "not at the job's step 40");
      assertAWarningSays(
          again, "ghost_batchnorm every 50ba", "every 50 optimizer steps counted from now");
    }
  }

  /**
   * A record that a repeating step entry made in the first epoch is a sign of training too: the
   * restart warning names the step entries that count from the new trainer (an outside probe's
   * restart after a record of {@code every: 3ba} at step 3 warned of nothing).
   */
  @Test
  void aRecordOfARepeatingStepEntryInTheFirstEpochIsARestart() throws Exception {
    String yaml =
        "algorithms:\n"
            + "  - {name: factorize, every: 3ba, min_channels: 4, latent_channels: 0.5,"
            + " min_features: 4, latent_features: 0.5}\n"
            + "  - {name: blurpool, step: 7, min_channels: 0}\n"
            + "total_epochs: 4\n";
    try (Model model = TestModels.model("every-ba-restart");
        NDManager data = NDManager.newBaseManager()) {
      train(model, yaml, 1, data);
      assertEquals(1, records(model).size(), "factorize at step 3");
      assertEquals(0, records(model).get(0).epoch());
      SurgeryListener again = train(model, yaml, 1, data);
      assertAWarningSays(
          again, "blurpool at step 7", "counts optimizer steps from this trainer's start");
    }
  }

  /**
   * A record says at which step it ran: a {@code step: 12} entry does not take the record a
   * repeating step entry of the same algorithm made at step 3 (an outside probe: claimed "in the
   * record already", it never ran).
   */
  @Test
  void aStepEntryDoesNotTakeTheRecordOfARepeatingEntrysEarlierRun() throws Exception {
    String yaml =
        "algorithms:\n"
            + "  - {name: weight_standardization, every: 3ba}\n"
            + "  - {name: weight_standardization, step: 12}\n"
            + "total_epochs: 3\n";
    try (Model model = TestModels.model("step-after-every");
        NDManager data = NDManager.newBaseManager()) {
      train(model, yaml, 1, data);
      assertEquals(1, records(model).size(), "weight_standardization at step 3");
      assertEquals(3, records(model).get(0).step());
      SurgeryListener again = train(model, yaml, 1, data);
      assertAWarningSays(
          again,
          "weight_standardization at step 12",
          "counts optimizer steps from this trainer's start");
    }
  }

  /**
   * A reviewer: with duration entries taking records before step entries, an {@code at:} entry took
   * the record of a {@code step:} entry of the same algorithm in its epoch, its own record was left
   * over, and the whole schedule ran again. A record that says its step goes to that step's entry
   * first.
   */
  @Test
  void aDurationEntryDoesNotTakeTheRecordOfAStepEntryInItsEpoch(@TempDir Path dir)
      throws Exception {
    // 4 batches per epoch, 2 epochs: step 1 and 0.5dur (step 4) both in the first epoch.
    String yaml = twoFreezeEntries("step: 1", "at: 0.5dur", 2);
    try (Model model = TestModels.model("duration-and-step");
        NDManager data = NDManager.newBaseManager()) {
      train(model, yaml, 2, data);
      assertEquals(2, records(model).size());
      Path report = dir.resolve("again.json");
      SurgeryListener again = train(model, yaml + "report: " + report + "\n", 2, data);
      assertEquals(List.of(), appliedSources(again), "both are in the record: none runs again");
      assertEquals(2, records(model).size());
      // Each is said to be in the record at the step it ran (an outside probe: a step entry's
      // reason named only "epoch 0").
      List<String> reasons = notRunReasons(report);
      assertEquals(
          List.of(
              RecordedEntries.ALREADY_RECORDED
                  + " (a replayed checkpoint or an earlier trainer applied it at step 1 (epoch 0)):"
                  + " not applied again",
              RecordedEntries.ALREADY_RECORDED
                  + " (a replayed checkpoint or an earlier trainer applied it at step 4 (epoch 0)):"
                  + " not applied again"),
          reasons);
    }
  }

  /**
   * A checkpoint of an older build whose records say neither their step nor their trigger: the
   * entries are matched by the epoch rules, and the reason names the epoch the record holds (it has
   * no step to name), not a step it cannot know.
   */
  @Test
  void aRecordWithoutAStepIsToldByItsEpoch(@TempDir Path dir) throws Exception {
    String yaml = twoFreezeEntries("step: 1", "at: 0.5dur", 2);
    try (Model model = TestModels.model("stepless");
        NDManager data = NDManager.newBaseManager()) {
      train(model, yaml, 2, data);
      model.save(dir, "stepless");
    }
    Path file = SurgeryCheckpoint.resolveParamsFile(dir, "stepless", null);
    Path older =
        BornFrozenRecordTest.withRecord(
            file,
            dir.resolve("older"),
            json ->
                json.replaceAll(",\\s*\"step\":\\d+", "")
                    .replaceAll(",\\s*\"trigger\":\"[^\"]*\"", ""));
    List<SurgeryRecord> stepless = SurgeryCheckpoint.readRecord(older.resolve(file.getFileName()));
    assertEquals(2, stepless.size());
    assertTrue(
        stepless.stream().allMatch(r -> r.step() < 0 && r.trigger() == null),
        "the edit took step and trigger off: " + stepless);
    try (Model resumed = TestModels.model("stepless");
        NDManager data = NDManager.newBaseManager()) {
      SurgeryCheckpoint.load(resumed, older, "stepless");
      Path report = dir.resolve("resumed.json");
      SurgeryListener again = train(resumed, yaml + "report: " + report + "\n", 2, data);
      assertEquals(List.of(), appliedSources(again), "both are in the record: none runs again");
      String reason =
          RecordedEntries.ALREADY_RECORDED
              + " (a replayed checkpoint or an earlier trainer applied it at epoch 0):"
              + " not applied again";
      assertEquals(List.of(reason, reason), notRunReasons(report));
    }
  }

  /**
   * Records name the trigger of the entry that made them: an {@code at:} entry does not take the
   * record an {@code every: Nba} entry of the same algorithm made in its epoch (an outside fuzzer:
   * it did, its own record was left over and the whole schedule ran again).
   */
  @Test
  void aDurationEntryDoesNotTakeTheRecordOfARepeatingStepEntry() throws Exception {
    // 4 batches per epoch, 5 planned: every 9ba runs at step 9, 0.5dur at step 10, both in epoch 3.
    String yaml =
        "algorithms:\n"
            + "  - {name: ghost_batchnorm, at: 0.5dur, ghost_batch_size: 4}\n"
            + "  - {name: ghost_batchnorm, every: 9ba, ghost_batch_size: 4}\n"
            + "total_epochs: 5\n";
    try (Model model = TestModels.model("duration-and-every");
        NDManager data = NDManager.newBaseManager()) {
      train(model, yaml, 3, data);
      List<SurgeryRecord> before = records(model);
      assertEquals(
          List.of("every 9ba", "at 0.5dur"),
          before.stream().map(SurgeryRecord::trigger).toList(),
          before.toString());
      SurgeryListener again = train(model, yaml, 3, data); // past step 10 again
      assertFalse(
          appliedSources(again).contains("resumed.yaml:2:5"),
          "the at: entry ran before: not again");
      assertEquals(1, records(model).stream().filter(r -> "at 0.5dur".equals(r.trigger())).count());
    }
  }

  /**
   * DJL's saver runs before the surgery listener, so its checkpoint of the epoch an entry was due
   * at holds neither that surgery nor its record: a job resumed from it with its whole schedule ran
   * the entry that many epochs later, silently. The file's {@code Epoch} property tells it is a
   * resume.
   */
  @Test
  void aJobResumedFromDjlsCheckpointOfTheDueEpochIsWarned(@TempDir Path dir) throws Exception {
    String yaml = "algorithms:\n  - {name: blurpool, epoch: 2, min_channels: 0}\n";
    try (Model model = TestModels.model("saved-by-djl");
        NDManager data = NDManager.newBaseManager()) {
      SaveModelTrainingListener saver = new SaveModelTrainingListener(dir.toString(), null, 1);
      try (Trainer trainer = model.newTrainer(TestModels.config(saver, listener(yaml)))) {
        trainer.initialize(INPUT);
        SurgeryTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
      }
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"), "applied at epoch 2");
    }
    try (Model resumed = TestModels.model("saved-by-djl");
        NDManager data = NDManager.newBaseManager()) {
      SurgeryCheckpoint.load(resumed, dir, "saved-by-djl", Map.of("epoch", "2"));
      assertEquals(0, TestModels.count(resumed.getBlock(), "BlurConv2d"), "saved before it ran");
      assertEquals("2", resumed.getProperty("Epoch"));
      SurgeryListener again = trainOneEpochUninitialized(resumed, yaml, data);
      assertAWarningSays(
          again,
          "blurpool at epoch 2",
          "counts epochs from this trainer's start",
          "no surgery record but DJL's Epoch property 2",
          "it runs 2 epochs from now (at least epoch 4");
    }
  }

  /**
   * A fine-tuning schedule whose entries all lie beyond the saved epoch hears no restart warning.
   */
  @Test
  void aScheduleBeyondDjlsSavedEpochIsNotWarned() throws Exception {
    try (Model model = TestModels.model("fine-tuned");
        NDManager data = NDManager.newBaseManager()) {
      model.setProperty("Epoch", "2");
      SurgeryListener later =
          train(model, "algorithms:\n  - {name: blurpool, epoch: 3, min_channels: 0}\n", 1, data);
      assertFalse(
          later.getWarnings().stream().anyMatch(w -> w.contains("DJL's Epoch property")),
          later.getWarnings().toString());
      SurgeryListener due =
          trainOneEpochUninitialized(
              model, "algorithms:\n  - {name: weight_standardization, epoch: 2}\n", data);
      assertAWarningSays(due, "DJL's Epoch property 2");
    }
  }

  @Test
  void aRecordsEpochTellsWhichTriggersCanHaveMadeIt() {
    SurgeryRecord atEpoch2 = new SurgeryRecord("a", Map.of(), 2, 6, Map.of(), null);
    SurgeryRecord atEpoch4 = new SurgeryRecord("a", Map.of(), 4, 6, Map.of(), null);
    SurgeryRecord noLength = new SurgeryRecord("a", Map.of(), 2, 0, Map.of(), null);
    assertTrue(RecordedEntries.couldHaveRecorded(Trigger.atEpoch(2), atEpoch2));
    assertFalse(RecordedEntries.couldHaveRecorded(Trigger.atEpoch(3), atEpoch2));
    Trigger every2 = Trigger.every(Time.parse("2ep"));
    Trigger every3 = Trigger.every(Time.parse("3ep"));
    assertTrue(RecordedEntries.couldHaveRecorded(every2, atEpoch2));
    assertFalse(RecordedEntries.couldHaveRecorded(every3, atEpoch2));
    // 0.75 of 6 epochs: step in epoch 5 (4 completed), or at an epoch's end (3 or 5 completed).
    Trigger late = Trigger.at(Time.parse("0.75dur"));
    assertFalse(RecordedEntries.couldHaveRecorded(late, atEpoch2));
    assertTrue(RecordedEntries.couldHaveRecorded(late, atEpoch4));
    assertTrue(RecordedEntries.couldHaveRecorded(late, noLength), "no planned length: open");
    // 0.5 of 5 epochs: inside the third epoch (2 completed), not at epoch 1 (an outside probe).
    Trigger half = Trigger.at(Time.parse("0.5dur"));
    SurgeryRecord ofFive = new SurgeryRecord("a", Map.of(), 1, 5, Map.of(), null);
    assertFalse(RecordedEntries.couldHaveRecorded(half, ofFive));
    assertTrue(
        RecordedEntries.couldHaveRecorded(
            half, new SurgeryRecord("a", Map.of(), 2, 5, Map.of(), null)));
    // 0.5 of 4 epochs: the second epoch's last step, at its batch end (1) or its end (2).
    assertTrue(
        RecordedEntries.couldHaveRecorded(
            half, new SurgeryRecord("a", Map.of(), 1, 4, Map.of(), null)));
    assertFalse(
        RecordedEntries.couldHaveRecorded(
            half, new SurgeryRecord("a", Map.of(), 3, 4, Map.of(), null)));
    SurgeryRecord named = new SurgeryRecord("a", Map.of(), 2, 6, Map.of(), null, 9, "every 9ba");
    assertTrue(RecordedEntries.couldHaveRecorded(Trigger.every(Time.parse("9ba")), named));
    assertFalse(RecordedEntries.couldHaveRecorded(Trigger.atStep(9), named), "another trigger");
    assertFalse(RecordedEntries.couldHaveRecorded(Trigger.at(Time.parse("0.4dur")), named));
    // A trigger no entry of the schedule has (another build's wording): the epoch and step rules.
    SurgeryRecord reworded = new SurgeryRecord("a", Map.of(), 2, 6, Map.of(), null, 9, "at 9ba");
    assertTrue(RecordedEntries.couldHaveRecorded(Trigger.atStep(9), reworded, false));
    assertFalse(RecordedEntries.couldHaveRecorded(Trigger.atStep(9), reworded, true));
    assertTrue(RecordedEntries.couldHaveRecorded(Trigger.atStep(3), atEpoch2));
    SurgeryRecord atStep3 = new SurgeryRecord("a", Map.of(), 0, 3, Map.of(), null, 3);
    assertTrue(RecordedEntries.couldHaveRecorded(Trigger.atStep(3), atStep3));
    assertFalse(RecordedEntries.couldHaveRecorded(Trigger.atStep(12), atStep3));
    assertTrue(RecordedEntries.couldHaveRecorded(Trigger.every(Time.parse("3ba")), atStep3));
    assertFalse(RecordedEntries.couldHaveRecorded(Trigger.every(Time.parse("2ba")), atStep3));
    assertFalse(RecordedEntries.couldHaveRecorded(Trigger.atStep(2), atEpoch2));
    assertTrue(RecordedEntries.couldHaveRecorded(Trigger.every(Time.parse("7ba")), atEpoch2));
  }

  /** Asserts that one of the listener's warnings says every one of {@code parts}. */
  private static void assertAWarningSays(SurgeryListener listener, String... parts) {
    List<String> warnings = listener.getWarnings();
    assertTrue(
        warnings.stream().anyMatch(w -> java.util.Arrays.stream(parts).allMatch(w::contains)),
        warnings.toString());
  }

  /**
   * The rules of {@code couldHaveRecorded} at their edges, each case worked out by hand from the
   * documented semantics: an {@code every: Nep} entry first runs after epoch N (never at 0); a
   * {@code step: S} entry's batch end comes before epoch S could end (each epoch takes a step at
   * least); an {@code every: Nba} entry runs at positive multiples of N; an {@code at: <f>dur} step
   * falls in the epoch after floor(f T) completed ones, or ends one when f T is whole, and in a
   * first epoch whose data tells its size only at its end, runs there.
   */
  @Test
  void aRecordsEpochAndStepAreMatchedAtTheEdgesOfEachRule() {
    Trigger every2 = Trigger.every(Time.parse("2ep"));
    assertEquals(
        List.of(false, false, true, false, true),
        epochs(0, 4).stream().map(e -> could(every2, e, 6, -1)).toList(),
        "every 2ep at epochs 0..4");
    Trigger step3 = Trigger.atStep(3);
    assertEquals(
        List.of(true, true, true, false, false),
        epochs(0, 4).stream().map(e -> could(step3, e, 6, -1)).toList(),
        "step 3, its step unrecorded, at epochs 0..4");
    Trigger every4ba = Trigger.every(Time.parse("4ba"));
    assertEquals(
        List.of(true, false, false, true, false, true),
        List.of(-1L, 0L, 2L, 4L, 6L, 8L).stream().map(st -> could(every4ba, 1, 6, st)).toList(),
        "every 4ba at steps unknown, 0, 2, 4, 6, 8");
    // 0.25 of 2 epochs: inside the first epoch (0 completed), or at its end for data of unknown
    // size (1 completed); never after the second.
    Trigger quarter = Trigger.at(Time.parse("0.25dur"));
    assertEquals(
        List.of(true, true, false),
        epochs(0, 2).stream().map(e -> could(quarter, e, 2, -1)).toList(),
        "0.25 of 2 epochs at epochs 0..2");
    // The whole of 3 epochs: the last step, at its batch end (2 completed) or the epoch's end (3).
    Trigger whole = Trigger.at(Time.parse("1dur"));
    assertEquals(
        List.of(false, false, true, true, false),
        epochs(0, 4).stream().map(e -> could(whole, e, 3, -1)).toList(),
        "1.0 of 3 epochs at epochs 0..4");
    // 0.5 of 3 epochs: inside the second epoch, 1 completed.
    Trigger half = Trigger.at(Time.parse("0.5dur"));
    assertEquals(
        List.of(false, true, false, false),
        epochs(0, 3).stream().map(e -> could(half, e, 3, -1)).toList(),
        "0.5 of 3 epochs at epochs 0..3");
  }

  private static List<Integer> epochs(int from, int to) {
    return java.util.stream.IntStream.rangeClosed(from, to).boxed().toList();
  }

  private static boolean could(Trigger trigger, int epoch, int totalEpochs, long step) {
    return RecordedEntries.couldHaveRecorded(
        trigger, new SurgeryRecord("a", Map.of(), epoch, totalEpochs, Map.of(), null, step));
  }
}
