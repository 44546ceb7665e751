package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryListenerFitTest.algorithm;
import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
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

  /** t_pool: the pooling block becomes a ProbePool, which shows whether it ran. */
  private static Algorithm pool() {
    return algorithm(TestAlgorithms.POOL, Map.of());
  }

  /** t_fail: fails, changing nothing (a failure that stops training). */
  private static Algorithm fail() {
    return algorithm(TestAlgorithms.FAIL, Map.of());
  }

  /** t_log under {@code tag}: changes nothing, records each call in TestAlgorithms.CALLS. */
  private static Algorithm log(String tag) {
    return algorithm(TestAlgorithms.LOG, Map.of("tag", tag));
  }

  /** The listener of {@code entries}, writing its surgery log to {@code report}. */
  private static SurgeryListener reporting(SurgeryListener.Builder entries, Path report) {
    return entries.optReportPath(report).build();
  }

  /** Likewise, for a loop that reports every event {@link SurgeryTrain} reports. */
  private static SurgeryListener reportingAllEvents(SurgeryListener.Builder entries, Path report) {
    return reporting(entries.optObservableEvents(SurgeryTrain.EVENTS), report);
  }

  private static JsonObject read(Path report) throws Exception {
    return JsonParser.parseString(Files.readString(report)).getAsJsonObject();
  }

  /** The log's only not_run entry. */
  private static JsonObject onlyNotRun(Path report) throws Exception {
    JsonArray notRun = read(report).getAsJsonArray("not_run");
    assertEquals(1, notRun.size(), notRun.toString());
    return notRun.get(0).getAsJsonObject();
  }

  /** The one not_run entry of the log, checked to be t_pool at epoch 1. */
  private static String onlyNotRunReason(Path report) throws Exception {
    JsonObject entry = onlyNotRun(report);
    assertEquals(TestAlgorithms.POOL, entry.get("algorithm").getAsString(), entry.toString());
    assertEquals(1, entry.get("epoch").getAsInt(), entry.toString());
    return entry.get("reason").getAsString();
  }

  /** Trains epochs with a loop that never reports an epoch end; checks that t_pool never ran. */
  private static void trainWithoutOnEpoch(SurgeryListener listener, String name, int epochs)
      throws Exception {
    Block root =
        train(
            listener,
            name,
            (trainer, l, dataset) -> {
              for (int epoch = 0; epoch < epochs; epoch++) {
                TestModels.trainEpochWithoutEvents(trainer, dataset);
              }
            });
    assertEquals(0, TestModels.count(root, "ProbePool"), "never run late");
  }

  @Test
  void anEntryMissedForWantOfOnEpochIsListedAsNotRun() throws Exception {
    Path report = tmp.resolve("no-epoch.json");
    SurgeryListener listener = reporting(SurgeryListener.builder().add(pool(), 1), report);
    trainWithoutOnEpoch(listener, "no-epoch", 2);
    String reason = onlyNotRunReason(report);
    assertTrue(reason.contains("ended without an onEpoch event"), reason);
  }

  /**
   * A listener added to the config after the trainer was created (DJL's trainer shares the config's
   * list) heard no onTrainingBegin, so its epoch-0 entry's moment passed unseen: listed at the
   * first batch, warned of once, naming the fix, and never run late.
   */
  @Test
  void anEpochZeroEntryOfAListenerAddedAfterTheTrainerWasCreatedIsListedAsNotRun()
      throws Exception {
    Path report = tmp.resolve("added-late.json");
    SurgeryListener listener = reporting(SurgeryListener.builder().add(pool(), 0), report);
    DefaultTrainingConfig config = TestModels.config();
    try (Model model = TestModels.model("added-late");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(config)) {
        config.addTrainingListeners(listener);
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 5), null);
      }
      assertEquals(0, TestModels.count(model.getBlock(), "ProbePool"), "never run late");
    }
    JsonObject entry = onlyNotRun(report);
    assertEquals(TestAlgorithms.POOL, entry.get("algorithm").getAsString(), entry.toString());
    String reason = entry.get("reason").getAsString();
    assertTrue(reason.startsWith("the listener did not see onTrainingBegin"), reason);
    List<String> warned =
        listener.getWarnings().stream().filter(w -> w.contains(" did not run: ")).toList();
    assertEquals(1, warned.size(), listener.getWarnings().toString());
    assertTrue(warned.get(0).endsWith(reason), warned.get(0));
  }

  /**
   * A repeating {@code every: 2ep} entry in a loop that never reports an epoch end: listed at the
   * end with the reason that no epoch end came, not "training ended after N optimizer steps", which
   * blamed training's end.
   */
  @Test
  void aRepeatingEpochEntryInALoopWithoutOnEpochSaysSo() throws Exception {
    Path report = tmp.resolve("every-no-epoch.json");
    SurgeryListener listener =
        reporting(
            SurgeryListener.builder().add(pool(), new Trigger(Trigger.Kind.EVERY_EPOCHS, 2, 0)),
            report);
    trainWithoutOnEpoch(listener, "every-no-epoch", 3);
    String reason = onlyNotRun(report).get("reason").getAsString();
    assertTrue(reason.contains("but no onEpoch event"), reason);
  }

  /**
   * A loop that reports its epoch ends but skips one in the middle: the data's restart counts the
   * unreported epoch, so the entry due at its end is warned of as missed and the next runs at its
   * own epoch's end, not one epoch late (a reviewer caught a version that took the restart for a
   * second pass over the data: every later entry ran late, silently).
   */
  @Test
  void anEpochEndSkippedInTheMiddleDelaysNoLaterEntry() throws Exception {
    SurgeryListener listener = SurgeryListener.builder().add(log("a"), 2).add(log("b"), 3).build();
    List<String> seen = new java.util.ArrayList<>();
    try (Model model = TestModels.model("skipped-one");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        for (int epoch = 1; epoch <= 4; epoch++) {
          TestModels.trainEpochWithoutEvents(trainer, dataset);
          if (epoch != 2) { // the loop forgets epoch 2's end
            trainer.notifyListeners(l -> l.onEpoch(trainer));
          }
          seen.add(epoch + ":" + listener.getOutcomes().size());
        }
      }
    }
    assertEquals(List.of("1:0", "2:0", "3:1", "4:1"), seen, "the epoch-3 entry runs at epoch 3");
    assertEquals(
        List.of("b@3"),
        listener.getOutcomes().stream()
            .map(o -> o.hyperparameters().get("tag") + "@" + o.epoch())
            .toList());
    assertTrue(
        listener.getWarnings().stream()
            .anyMatch(w -> w.contains("t_log at epoch 2") && w.contains("without an onEpoch")),
        listener.getWarnings().toString());
  }

  /**
   * A trainer whose training reported nothing (an evaluation trainer of the same listener, a custom
   * loop that notifies no listener): its entries, by epoch or by step, say that, not "training
   * ended after 0 ...", which reads as the training trainer's end.
   */
  @Test
  void aTrainerThatReportedNothingSaysSoForEveryKindOfEntry() throws Exception {
    Path report = tmp.resolve("nothing.json");
    SurgeryListener listener =
        reportingAllEvents(
            SurgeryListener.builder().add(pool(), 1).add(pool(), Trigger.atStep(2)), report);
    train(
        listener, "nothing", (trainer, l, dataset) -> EasyTrain.evaluateDataset(trainer, dataset));
    JsonArray notRun = read(report).getAsJsonArray("not_run");
    assertEquals(2, notRun.size(), notRun.toString());
    for (int i = 0; i < 2; i++) {
      String reason = notRun.get(i).getAsJsonObject().get("reason").getAsString();
      assertTrue(
          reason.startsWith("trainer 1 reported no training batch, step or epoch end")
              && reason.contains("custom training loop"),
          reason);
    }
  }

  @Test
  void anEntryAfterAFailureThatStoppedTrainingSaysSo() throws Exception {
    Path report = tmp.resolve("stopped.json");
    SurgeryListener listener = stoppingListener(report);
    fitUntilStopped(listener, "stopped", false, 3);
    assertEquals(
        "t_fail at epoch 1 (builder entry 1) failed before it at the end of epoch 1 and stopped"
            + " training",
        onlyNotRunReason(report));
  }

  @Test
  void aProgramThatCatchesTheFailureAndTrainsOnGetsTheSameReason() throws Exception {
    Path report = tmp.resolve("caught.json");
    SurgeryListener listener = stoppingListener(report);
    Block root = trainCatchingFailures(listener, "caught");
    assertEquals(0, TestModels.count(root, "ProbePool"), "never run late");
    String reason = onlyNotRunReason(report);
    assertTrue(reason.startsWith("t_fail at epoch 1"), reason);
    assertTrue(reason.endsWith("at the end of epoch 1 and stopped training"), reason);
  }

  /**
   * While training runs, the log written after an application lists the entries not reached yet,
   * each counted in its own unit: an epoch entry in completed epochs, a step or an every-epochs one
   * likewise by its kind; a one-shot that ran and a repeat that ran are not listed.
   */
  @Test
  void whileTrainingRunsTheLogListsTheOpenEntriesAsNotReachedYetInTheirOwnUnits() throws Exception {
    Path report = tmp.resolve("running.json");
    SurgeryListener listener =
        reportingAllEvents(
            SurgeryListener.builder()
                .add(log("a"), 1)
                .add(log("b"), 5)
                .add(log("c"), Trigger.atStep(100))
                .add(log("d"), Trigger.every(Time.parse("7ep")))
                .add(log("a"), Trigger.every(Time.parse("1ep"))),
            report);
    List<String> reasons = new java.util.ArrayList<>();
    train(
        listener,
        "running",
        (trainer, l, dataset) -> {
          // One epoch of 4 steps: the epoch-1 entries run at its end, and the log is written then.
          SurgeryTrain.fit(trainer, 1, dataset, null);
          for (var item : read(report).getAsJsonArray("not_run")) {
            JsonObject o = item.getAsJsonObject();
            reasons.add(o.get("when").getAsString() + ": " + o.get("reason").getAsString());
          }
        });
    String tail =
        " (the write at the end of training replaces this list; a job killed outright leaves it)";
    String running = "not reached yet: training was running when this log was written, after ";
    assertEquals(
        List.of(
            "at epoch 5: " + running + "1 completed epoch" + tail,
            "at step 100: " + running + "4 optimizer steps" + tail,
            "every 7ep: " + running + "1 completed epoch" + tail),
        reasons);
  }

  /**
   * A program that catches the failure and reports the next epoch end with no batch between: the
   * entry due with the failing one is missed there, saying why, not run late nor blamed on a
   * listener that came late.
   */
  @Test
  void anEpochEndRightAfterAStoppingFailureMissesWhatWasDueThenWithItsReason() throws Exception {
    Path report = tmp.resolve("next-end.json");
    SurgeryListener listener = stoppingListener(report);
    train(
        listener,
        "next-end",
        (trainer, l, dataset) -> {
          assertThrows(
              SurgeryFailedException.class, () -> EasyTrain.fit(trainer, 1, dataset, null));
          listener.onEpoch(trainer);
          // Said at that epoch end, before training ends.
          assertTrue(
              listener
                  .getWarnings()
                  .contains(
                      "Surgery: t_pool at epoch 1 (builder entry 2) did not run: t_fail at epoch 1"
                          + " (builder entry 1) failed before it at the end of epoch 1 and stopped"
                          + " training"),
              listener.getWarnings().toString());
          assertEquals(
              0, TestModels.count(trainer.getModel().getBlock(), "ProbePool"), "never run late");
        });
    assertTrue(onlyNotRunReason(report).endsWith("at the end of epoch 1 and stopped training"));
  }

  /**
   * A repeating entry whose run at the failing epoch end never came (it comes after the failing
   * entry) is listed for that run; its later runs happen when the program catches and trains on.
   */
  @Test
  void aRepeatingEntrysRunThatAFailureStoppedIsListed() throws Exception {
    Path report = tmp.resolve("repeating.json");
    SurgeryListener listener = failThenLogEveryEpoch(report);
    TestAlgorithms.CALLS.clear();
    trainCatchingFailures(listener, "repeating");
    assertEquals(
        2, TestAlgorithms.CALLS.size(), "it ran at epochs 2 and 3: " + TestAlgorithms.CALLS);
    JsonObject entry = onlyNotRun(report);
    assertEquals(TestAlgorithms.LOG, entry.get("algorithm").getAsString(), entry.toString());
    String reason = entry.get("reason").getAsString();
    assertTrue(reason.startsWith("t_fail at epoch 1"), reason);
    assertTrue(reason.endsWith("(its run at the end of epoch 1)"), reason);
    // The user sees it as a warning too, as for any entry that did not run.
    assertTrue(
        listener
            .getWarnings()
            .contains("Surgery: t_log every 1ep (builder entry 2) did not run: " + reason),
        listener.getWarnings().toString());
  }

  /**
   * A failure at a step stops training there: the one-shot entry due at that step and the run of a
   * repeating entry due there are each listed once, naming the failure, with no epoch and their
   * schedule under "when".
   */
  @Test
  void aFailureAtAStepNamesItselfForWhatWasDueAtThatStep() throws Exception {
    Path report = tmp.resolve("step.json");
    SurgeryListener listener =
        reportingAllEvents(
            SurgeryListener.builder()
                .add(fail(), Trigger.atStep(2))
                .add(pool(), Trigger.atStep(2))
                .add(log("d"), Trigger.every(Time.parse("2ba"))),
            report);
    TestAlgorithms.CALLS.clear();
    fitUntilStopped(listener, "step-stop", true, 2);
    assertEquals(0, TestAlgorithms.CALLS.size(), TestAlgorithms.CALLS.toString());
    assertEquals(2, read(report).getAsJsonArray("not_run").size(), read(report).toString());
    String stopped =
        "t_fail at step 2 (builder entry 1) failed before it at step 2 and stopped training";
    JsonObject pool = notRunOf(report, TestAlgorithms.POOL);
    JsonObject log = notRunOf(report, TestAlgorithms.LOG);
    assertEquals(stopped, pool.get("reason").getAsString(), pool.toString());
    assertFalse(pool.has("epoch"), pool.toString());
    assertEquals("at step 2", pool.get("when").getAsString(), pool.toString());
    assertEquals(TestAlgorithms.LOG, log.get("algorithm").getAsString(), log.toString());
    assertEquals(stopped + " (its run at step 2)", log.get("reason").getAsString());
    assertEquals("every 2ba", log.get("when").getAsString(), log.toString());
  }

  /**
   * A loop that reports its steps and epoch starts, and breaks off inside epoch 2 after a batch's
   * forward and backward but before its step: no batch of epoch 2 counts, so the entry at epoch 2
   * never ran because training ended after 1 completed epoch, with no batches of epoch 2 to blame
   * on a lost epoch end.
   */
  @Test
  void aLoopThatBreaksOffBeforeTheFirstStepOfAnEpochEndedAfterTheEpochsBefore() throws Exception {
    Path report = tmp.resolve("broke-off.json");
    SurgeryListener listener = reportingAllEvents(SurgeryListener.builder().add(pool(), 2), report);
    train(
        listener,
        "broke-off",
        (trainer, surgery, dataset) -> {
          stepsWithoutAnEpochEnd(trainer, surgery, dataset); // epoch 1: 4 steps
          surgery.onEvent(dev.surgery.core.events.Event.EPOCH_END, trainer);
          surgery.onEvent(dev.surgery.core.events.Event.EPOCH_START, trainer);
          for (ai.djl.training.dataset.Batch batch : trainer.iterateDataset(dataset)) {
            try (batch) {
              EasyTrain.trainBatch(trainer, batch); // onTrainingBatch, then no step
            }
            break;
          }
        });
    JsonObject entry = onlyNotRun(report);
    assertEquals(2, entry.get("epoch").getAsInt(), entry.toString());
    assertEquals("training ended after 1 completed epoch", entry.get("reason").getAsString());
  }

  /** A duration whose step is the one where a failure stopped training names that failure. */
  @Test
  void aDurationDueAtTheStepOfAStoppingFailureNamesIt() throws Exception {
    Path report = tmp.resolve("duration-stop.json");
    // 0.25dur of 8 steps is step ceil(0.25 * 8) = 2, where t_fail stops training.
    SurgeryListener listener =
        reportingAllEvents(
            SurgeryListener.builder()
                .add(fail(), Trigger.atStep(2))
                .add(log("c"), Trigger.at(Time.parse("0.25dur")))
                .optTotalSteps(8),
            report);
    fitUntilStopped(listener, "duration-stop", true, 2);
    assertEquals(
        "t_fail at step 2 (builder entry 1) failed before it at step 2 and stopped training",
        onlyReason(report, TestAlgorithms.LOG));
  }

  /** What {@link #train} runs on the trainer it builds. */
  private interface Loop {
    void run(Trainer trainer, SurgeryListener listener, ArrayDataset dataset) throws Exception;
  }

  /**
   * Builds a trainer for {@code listener}, runs {@code loop} on it, and closes it; returns the
   * model's block as the loop and the trainer's close left it. The data is drawn (its seed set)
   * before the trainer initializes the model.
   */
  private static Block train(SurgeryListener listener, String name, Loop loop) throws Exception {
    try (Model model = TestModels.model(name);
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        loop.run(trainer, listener, dataset);
      }
      return model.getBlock();
    }
  }

  /** Trains each batch (DJL's onTrainingBatch) and reports its step, with no epoch end. */
  private static void stepsWithoutAnEpochEnd(
      Trainer trainer, SurgeryListener listener, ArrayDataset dataset) throws Exception {
    listener.onEvent(dev.surgery.core.events.Event.EPOCH_START, trainer);
    for (ai.djl.training.dataset.Batch batch : trainer.iterateDataset(dataset)) {
      try (batch) {
        EasyTrain.trainBatch(trainer, batch);
        trainer.step();
        listener.onEvent(dev.surgery.core.events.Event.BATCH_END, trainer);
      }
    }
  }

  private static SurgeryListener logAt(Trigger trigger) {
    return SurgeryListener.builder()
        .add(log("a"), trigger)
        .optObservableEvents(SurgeryTrain.EVENTS)
        .build();
  }

  /** The warning that an entry never ran, for the only entry of a listener. */
  private static String neverRan(SurgeryListener listener) {
    List<String> never =
        listener.getWarnings().stream().filter(w -> w.contains(" never ran: ")).toList();
    assertEquals(1, never.size(), listener.getWarnings().toString());
    return never.get(0);
  }

  @Test
  void aWholeEpochWhoseEndNeverCameIsSaidToBeWhole() throws Exception {
    SurgeryListener listener = logAt(Trigger.atEpoch(2));
    train(
        listener,
        "whole-epoch",
        (trainer, l, dataset) -> {
          SurgeryTrain.fit(trainer, 1, dataset, null);
          stepsWithoutAnEpochEnd(trainer, l, dataset);
        });
    // All 4 batches of epoch 2 trained, and no onEpoch: an earlier listener stopped it there.
    assertEquals(
        "Surgery: t_log at epoch 2 (builder entry 1) never ran: training ended after 1 completed"
            + " epoch and all 4 batches of epoch 2, whose end (onEpoch) did not reach this"
            + " listener: a listener before it in the trainer's list stopped training in its own"
            + " onEpoch (as DJL's EarlyStoppingListener does)",
        neverRan(listener));
  }

  @Test
  void stepsReportedWithoutTheirBatchesAreCountedAsBatchesOfAnUnfinishedEpoch() throws Exception {
    SurgeryListener listener = logAt(Trigger.atEpoch(1));
    // A loop of its own forward and backward: it reports each step's BATCH_END, never a batch
    // (onTrainingBatch) nor an epoch end; the size of its epochs is unknown.
    train(
        listener,
        "steps-only",
        (trainer, l, dataset) -> {
          for (int s = 0; s < 3; s++) {
            l.onEvent(dev.surgery.core.events.Event.BATCH_END, trainer);
          }
        });
    assertEquals(
        "Surgery: t_log at epoch 1 (builder entry 1) never ran: training ended after 0 completed"
            + " epochs and 3 batches of epoch 1, whose end (onEpoch) did not reach this listener: a"
            + " listener before it in the trainer's list stopped training in its own onEpoch (as"
            + " DJL's EarlyStoppingListener does), or the loop stopped within the epoch",
        neverRan(listener));
  }

  @Test
  void aStepEntryOfALoopThatReportsEpochEndsOnlySaysNoStepCame() throws Exception {
    SurgeryListener listener = logAt(Trigger.atStep(3));
    train(listener, "epochs-only", (trainer, l, dataset) -> l.onEpoch(trainer));
    assertEquals(
        "Surgery: t_log at step 3 (builder entry 1) never ran: training ended after 0 optimizer"
            + " steps (BATCH_END events)",
        neverRan(listener));
  }

  /** A repeating entry whose first run a stopping failure prevented is listed once, not twice. */
  @Test
  void aRepeatingEntryThatNeverRanIsListedOnce() throws Exception {
    Path report = tmp.resolve("once.json");
    SurgeryListener listener = failThenLogEveryEpoch(report);
    fitUntilStopped(listener, "once", false, 3);
    JsonObject entry = onlyNotRun(report);
    assertTrue(
        entry.get("reason").getAsString().endsWith("(its run at the end of epoch 1)"),
        entry.toString());
  }

  /** A repeating entry's stopping failure at an epoch end names itself for what was due then. */
  @Test
  void aRepeatingEntrysStoppingFailureNamesItself() throws Exception {
    Path report = tmp.resolve("every-fails.json");
    SurgeryListener listener =
        reporting(
            SurgeryListener.builder().add(fail(), Trigger.every(Time.parse("1ep"))).add(pool(), 1),
            report);
    trainCatchingFailures(listener, "every-fails");
    assertEquals(
        "t_fail every 1ep (builder entry 1) failed before it at the end of epoch 1 and stopped"
            + " training",
        onlyNotRunReason(report));
  }

  /**
   * A failure before the first step (an entry that needs the length nobody gave, at the first
   * batch) is no epoch end: nothing is said to have been due "at the end of epoch 0".
   */
  @Test
  void aFailureBeforeTheFirstStepClaimsNoEpochEnd() throws Exception {
    Path report = tmp.resolve("first-batch.json");
    SurgeryListener listener =
        reporting(
            SurgeryListener.builder()
                .add(TestModels.layerFreezingFromStart(), 2)
                .add(log("c"), Trigger.every(Time.parse("1ep"))),
            report);
    fitUntilStopped(listener, "first-batch", false, 3);
    String log = read(report).toString();
    assertFalse(log.contains("epoch 0"), log);
    assertTrue(
        onlyReason(report, TestAlgorithms.LOG)
            .endsWith("failed before the first step and stopped training before it was due"),
        log);
  }

  /**
   * A failure before training is at no step: a step repeat after it is not said to have had a run
   * there (as -1 steps, a multiple of every interval of 1, would claim), only to have never run.
   */
  @Test
  void aFailureBeforeTrainingClaimsNoRunOfAStepRepeat() throws Exception {
    Path report = tmp.resolve("before-training.json");
    SurgeryListener listener =
        reportingAllEvents(
            SurgeryListener.builder()
                .add(fail(), 0)
                .add(log("c"), Trigger.every(Time.parse("1ba"))),
            report);
    try (Model model = TestModels.model("before-training")) {
      assertThrows(
          SurgeryFailedException.class, () -> model.newTrainer(TestModels.config(listener)));
    }
    String reason = onlyReason(report, TestAlgorithms.LOG);
    assertTrue(reason.endsWith("and stopped training before it was due"), reason);
    assertFalse(reason.contains("its run"), reason);
  }

  /**
   * A failure at a step stops training before an epoch entry's epoch: its reason names that
   * failure, not a loop without onEpoch (SurgeryTrain.fit reports every epoch end).
   */
  @Test
  void anEpochEntryAfterAFailureAtAStepNamesTheFailure() throws Exception {
    Path report = tmp.resolve("step-then-epoch.json");
    SurgeryListener listener =
        reportingAllEvents(
            SurgeryListener.builder().add(fail(), Trigger.atStep(2)).add(pool(), 1), report);
    fitUntilStopped(listener, "step-then-epoch", true, 2);
    assertEquals(
        "t_fail at step 2 (builder entry 1) failed at step 2 and stopped training before it was"
            + " due",
        onlyReason(report, TestAlgorithms.POOL));
  }

  /** The one not_run line of an algorithm. */
  private static JsonObject notRunOf(Path report, String algorithm) throws Exception {
    JsonObject found = null;
    for (var e : read(report).getAsJsonArray("not_run")) {
      JsonObject o = e.getAsJsonObject();
      if (o.get("algorithm").getAsString().equals(algorithm)) {
        assertEquals(null, found, "listed once: " + algorithm);
        found = o;
      }
    }
    assertTrue(found != null, algorithm + " is listed");
    return found;
  }

  /** The reason of the one not_run line of an algorithm. */
  private static String onlyReason(Path report, String algorithm) throws Exception {
    return notRunOf(report, algorithm).get("reason").getAsString();
  }

  /**
   * Trains until a surgery failure stops the run (which it must), with {@code SurgeryTrain.fit}
   * (every event reported) or {@code EasyTrain.fit}.
   */
  private static void fitUntilStopped(
      SurgeryListener listener, String name, boolean surgeryTrain, int epochs) throws Exception {
    train(
        listener,
        name,
        (trainer, l, dataset) ->
            assertThrows(
                SurgeryFailedException.class,
                () -> {
                  if (surgeryTrain) {
                    SurgeryTrain.fit(trainer, epochs, dataset, null);
                  } else {
                    EasyTrain.fit(trainer, epochs, dataset, null);
                  }
                }));
  }

  /**
   * Trains three epochs, one fit each, catching each failure and training on, as a program that
   * catches every exception of its loop does; returns the model's block.
   */
  private static Block trainCatchingFailures(SurgeryListener listener, String name)
      throws Exception {
    return train(
        listener,
        name,
        (trainer, l, dataset) -> {
          for (int epoch = 0; epoch < 3; epoch++) {
            try {
              EasyTrain.fit(trainer, 1, dataset, null);
            } catch (SurgeryFailedException e) {
              // trains on
            }
          }
        });
  }

  private static SurgeryListener stoppingListener(Path report) {
    return reporting(SurgeryListener.builder().add(fail(), 1).add(pool(), 1), report);
  }

  /** t_fail at epoch 1, then t_log (tag c) every epoch: a repeating entry after a failing one. */
  private static SurgeryListener failThenLogEveryEpoch(Path report) {
    return reporting(
        SurgeryListener.builder().add(fail(), 1).add(log("c"), Trigger.every(Time.parse("1ep"))),
        report);
  }

  /**
   * Builds a trainer under a config whose failure stops training in DJL's Trainer constructor
   * (onTrainingBegin): no trainer reaches the program to close. Checks the refusal and that the log
   * is not left cut short, as if training were running; returns the log.
   */
  private JsonObject stoppedInTheConstructor(String name, String algorithms, String refusal)
      throws Exception {
    Path report = tmp.resolve(name + ".json");
    Path yaml = tmp.resolve(name + ".yaml");
    Files.writeString(
        yaml, "report: " + report.toString().replace('\\', '/') + "\nalgorithms:\n" + algorithms);
    SurgeryListener listener = SurgeryListener.fromYaml(yaml);
    try (Model model = TestModels.model(name)) {
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class, () -> model.newTrainer(TestModels.config(listener)));
      assertTrue(e.getMessage().contains(refusal), e.getMessage());
    }
    JsonObject log = read(report);
    assertFalse(log.has("cut_short") && log.get("cut_short").getAsBoolean(), log.toString());
    assertFalse(log.toString().contains("training was running"), log.toString());
    return log;
  }

  @Test
  void anEpochZeroFailureInTheTrainerConstructorEndsThatTrainingInTheLog() throws Exception {
    JsonObject log =
        stoppedInTheConstructor(
            "stopped-at-begin",
            "  - {name: weight_standardization, epoch: 0, include: 'type:BatchNorm'}\n"
                + "  - {name: blurpool, epoch: 1, min_channels: 0}\n",
            "nothing among the included blocks");
    JsonArray notRun = log.getAsJsonArray("not_run");
    assertEquals(1, notRun.size(), log.toString());
    String reason = notRun.get(0).getAsJsonObject().get("reason").getAsString();
    assertTrue(
        reason.contains("weight_standardization at epoch 0") && reason.contains("stopped training"),
        reason);
  }

  @Test
  void aStartCheckThatStopsTrainingInTheTrainerConstructorEndsThatTrainingInTheLog()
      throws Exception {
    // A pattern that differs from the model's spelling only in case is refused when training
    // begins: the same ending as an epoch-0 entry's failure there.
    stoppedInTheConstructor(
        "refused-at-begin",
        "  - {name: blurpool, epoch: 1, min_channels: 0, include: 'type:Conv2D'}\n"
            + "  - {name: weight_standardization, epoch: 2}\n",
        "differs from it only in case");
  }
}
