package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryListenerFitTest.algorithm;
import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An entry whose moment passed without it running is listed under {@code not_run} in the surgery
 * log with the real reason, as the log promises for every entry that never ran: one missed because
 * the loop fired no {@code onEpoch}, and one due at the same epoch end as an entry whose failure
 * stopped training (whether the program then ends or catches the failure and trains on).
 */
class MissedEntriesReportTest {

  @TempDir Path tmp;

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
  }

  private static JsonObject read(Path report) throws Exception {
    return JsonParser.parseString(Files.readString(report)).getAsJsonObject();
  }

  /** The one not_run entry of the log, checked to be t_pool at epoch 1. */
  private static String onlyNotRunReason(Path report) throws Exception {
    JsonObject log = read(report);
    JsonArray notRun = log.getAsJsonArray("not_run");
    assertEquals(1, notRun.size(), log.toString());
    JsonObject entry = notRun.get(0).getAsJsonObject();
    assertEquals(TestAlgorithms.POOL, entry.get("algorithm").getAsString(), entry.toString());
    assertEquals(1, entry.get("epoch").getAsInt(), entry.toString());
    return entry.get("reason").getAsString();
  }

  @Test
  void anEntryMissedForWantOfOnEpochIsListedAsNotRun() throws Exception {
    Path report = tmp.resolve("no-epoch.json");
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm(TestAlgorithms.POOL, Map.of()), 1)
            .optReportPath(report)
            .build();
    try (Model model = TestModels.model("no-epoch");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        TestModels.trainEpochWithoutEvents(trainer, dataset);
        TestModels.trainEpochWithoutEvents(trainer, dataset);
      }
      assertEquals(0, TestModels.count(model.getBlock(), "ProbePool"), "never run late");
    }
    String reason = onlyNotRunReason(report);
    assertTrue(reason.contains("ended without an onEpoch event"), reason);
  }

  @Test
  void anEntryAfterAFailureThatStoppedTrainingSaysSo() throws Exception {
    Path report = tmp.resolve("stopped.json");
    SurgeryListener listener = stoppingListener(report);
    try (Model model = TestModels.model("stopped");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      assertThrows(
          SurgeryFailedException.class,
          () -> EasyTrain.fit(trainer, 3, TestModels.dataset(data, 5), null));
    }
    assertEquals(
        "t_fail at epoch 1 (builder entry 1) failed before it at the end of epoch 1 and stopped"
            + " training (on_error: fail)",
        onlyNotRunReason(report));
  }

  @Test
  void aProgramThatCatchesTheFailureAndTrainsOnGetsTheSameReason() throws Exception {
    Path report = tmp.resolve("caught.json");
    SurgeryListener listener = stoppingListener(report);
    try (Model model = TestModels.model("caught");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        for (int epoch = 0; epoch < 3; epoch++) {
          try {
            EasyTrain.fit(trainer, 1, dataset, null);
          } catch (SurgeryFailedException e) {
            // trains on, as a program that catches every exception of its loop does
          }
        }
      }
      assertEquals(0, TestModels.count(model.getBlock(), "ProbePool"), "never run late");
    }
    String reason = onlyNotRunReason(report);
    assertTrue(reason.startsWith("t_fail at epoch 1"), reason);
    assertTrue(reason.endsWith("stopped training (on_error: fail)"), reason);
  }

  /**
   * A repeating entry whose run at the failing epoch end never came (it comes after the failing
   * entry) is listed for that run; its later runs happen when the program catches and trains on.
   */
  @Test
  void aRepeatingEntrysRunThatAFailureStoppedIsListed() throws Exception {
    Path report = tmp.resolve("repeating.json");
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm(TestAlgorithms.FAIL, Map.of()), 1)
            .add(
                algorithm(TestAlgorithms.LOG, Map.of("tag", "c")), Trigger.every(Time.parse("1ep")))
            .optReportPath(report)
            .build();
    TestAlgorithms.CALLS.clear();
    try (Model model = TestModels.model("repeating");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        for (int epoch = 0; epoch < 3; epoch++) {
          try {
            EasyTrain.fit(trainer, 1, dataset, null);
          } catch (SurgeryFailedException e) {
            // trains on
          }
        }
      }
    }
    assertEquals(
        2, TestAlgorithms.CALLS.size(), "it ran at epochs 2 and 3: " + TestAlgorithms.CALLS);
    JsonArray notRun = read(report).getAsJsonArray("not_run");
    assertEquals(1, notRun.size(), notRun.toString());
    JsonObject entry = notRun.get(0).getAsJsonObject();
    assertEquals(TestAlgorithms.LOG, entry.get("algorithm").getAsString(), entry.toString());
    String reason = entry.get("reason").getAsString();
    assertTrue(reason.startsWith("t_fail at epoch 1"), reason);
    assertTrue(reason.endsWith("(its run at epoch 1)"), reason);
  }

  private static SurgeryListener stoppingListener(Path report) {
    return SurgeryListener.builder()
        .add(algorithm(TestAlgorithms.FAIL, Map.of()), 1)
        .add(algorithm(TestAlgorithms.POOL, Map.of()), 1)
        .optReportPath(report)
        .build();
  }
}
