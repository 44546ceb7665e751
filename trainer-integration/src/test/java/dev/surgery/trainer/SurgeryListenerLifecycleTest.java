package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryListenerFitTest.algorithm;
import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.config.OnError;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Lifecycle corners: deferred epoch-0 surgery, failures, custom loops, shared listeners. */
class SurgeryListenerLifecycleTest {

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
  }

  @BeforeEach
  void clearCalls() {
    TestAlgorithms.CALLS.clear();
  }

  /**
   * One listener listed twice in a trainer's config heard every event twice (two steps per batch,
   * two epochs per epoch): a step-6 entry ran after step 3, an epoch-2 entry after epoch 1. The
   * trainer is refused when it is built; listed once, the same listener serves it.
   */
  @Test
  void aListenerRegisteredTwiceWithOneTrainerIsRefused() {
    SurgeryListener listener = logAtEpoch1();
    try (Model model = TestModels.model("twice")) {
      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () -> model.newTrainer(TestModels.config(listener, listener)));
      assertTrue(e.getMessage().contains("registered 2 times with one trainer"), e.getMessage());
      model.newTrainer(TestModels.config(listener)).close();
    }
  }

  /**
   * Events for a trainer after its training ended used to start a fresh state, restarting every
   * count, so a step entry ran late without a word: they are refused naming the trainer.
   */
  @Test
  void eventsAfterTheTrainingEndedAreRefused() throws Exception {
    SurgeryListener listener = logAtEpoch1();
    try (Model model = TestModels.model("ended");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      ArrayDataset dataset = TestModels.dataset(data, 5);
      EasyTrain.fit(trainer, 1, dataset, null);
      listener.onTrainingEnd(trainer);
      IllegalStateException e =
          assertThrows(IllegalStateException.class, () -> EasyTrain.fit(trainer, 1, dataset, null));
      assertTrue(
          e.getMessage().contains("gets training events after its training ended"), e.getMessage());
      // A load into its model afterwards is the model's event (the agent reports it so).
      listener.onEvent(Event.BEFORE_LOAD, trainer);
      listener.onEvent(Event.AFTER_LOAD, trainer);
    }
  }

  @Test
  void epochZeroThatNeedsShapesWaitsForOnInitialized() throws Exception {
    SurgeryListener listener = shapeDependentAtEpoch0().build();
    try (Model model = TestModels.model("deferred");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        assertEquals(0, TestModels.count(model.getBlock(), "ScaledConv2d"), "must wait");
        trainer.initialize(INPUT);
        listener.onInitialized(trainer);
        assertEquals(1, TestModels.count(model.getBlock(), "ScaledConv2d"));
        TestModels.assertStoreMatchesModel(trainer);
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
        listener.onInitialized(trainer); // nothing waits any more: no second application
        assertEquals(1, listener.getOutcomes().size());
      }
      assertTrue(listener.getWarnings().isEmpty(), listener.getWarnings().toString());
    }
  }

  @Test
  void forgettingOnInitializedFailsAtTheFirstBatchNamingTheEntry() throws Exception {
    SurgeryListener listener = shapeDependentAtEpoch0().build();
    try (Model model = TestModels.model("forgot");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        String before = TestModels.structure(model.getBlock());
        IllegalStateException e =
            assertThrows(
                IllegalStateException.class,
                () -> EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null));
        assertTrue(e.getMessage().contains("t_scale_conv_min at epoch 0"), e.getMessage());
        assertTrue(e.getMessage().contains("onInitialized(trainer)"), e.getMessage());
        assertEquals(before, TestModels.structure(model.getBlock()));
      }
      // Recorded as what stopped training (it was listed as "never ran", and entries after it as
      // if the loop had reported nothing: a newcomer was sent to look at EasyTrain.fit).
      assertEquals(1, listener.getOutcomes().size());
      SurgeryOutcome failed = listener.getOutcomes().get(0);
      assertEquals(SurgeryOutcome.Status.FAILED, failed.status());
      assertTrue(failed.error().contains("onInitialized(trainer)"), failed.error());
    }
  }

  /**
   * The entries an epoch-0 entry kept from running when it stopped training for want of {@code
   * onInitialized} are listed as stopped by it, not as entries of a loop that reported nothing.
   */
  @Test
  void entriesAfterAStopForWantOfOnInitializedNameIt() throws Exception {
    SurgeryListener listener =
        shapeDependentAtEpoch0().add(algorithm(TestAlgorithms.LOG, Map.of()), 1).build();
    try (Model model = TestModels.model("forgot-then");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        assertThrows(
            IllegalStateException.class,
            () -> EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null));
      }
      List<String> later =
          listener.getWarnings().stream().filter(w -> w.contains("t_log at epoch 1")).toList();
      assertEquals(1, later.size(), listener.getWarnings().toString());
      assertTrue(
          later.get(0).contains("t_scale_conv_min at epoch 0")
              && later.get(0).contains("before the first step"),
          later.get(0));
      assertFalse(later.get(0).contains("reported no training batch"), later.get(0));
    }
  }

  /**
   * A listener built and given {@code onInitialized} but never added to the trainer's config ran
   * its epoch-0 entry and silently none after (a newcomer's mistake): warned of once, naming the
   * fix. A listener the config lists is not warned of.
   */
  @Test
  void onInitializedForATrainerThatDoesNotListTheListenerIsWarnedOf() throws Exception {
    SurgeryListener listener = logAtEpoch1();
    List<String> warned = notListedWarnings(listener, "unlisted", TestModels.config(), 2);
    assertEquals(1, warned.size(), listener.getWarnings().toString());
    assertTrue(warned.get(0).contains("config.addTrainingListeners(listener)"), warned.get(0));

    SurgeryListener listed = logAtEpoch1();
    assertEquals(
        List.of(),
        notListedWarnings(listed, "listed", TestModels.config(listed), 1),
        listed.getWarnings().toString());

    // A reviewer: a listener of the program's that forwards DJL's events to it is no mistake.
    SurgeryListener fed = logAtEpoch1();
    ai.djl.training.listener.TrainingListener forwarding =
        new ai.djl.training.listener.TrainingListenerAdapter() {
          @Override
          public void onTrainingBegin(Trainer trainer) {
            fed.onTrainingBegin(trainer);
          }
        };
    assertEquals(
        List.of(),
        notListedWarnings(fed, "forwarded", TestModels.config(forwarding), 1),
        fed.getWarnings().toString());
  }

  /** An entry at epoch 0 that needs the input shapes, so it waits for {@code onInitialized}. */
  private static SurgeryListener.Builder shapeDependentAtEpoch0() {
    return SurgeryListener.builder()
        .add(algorithm(TestAlgorithms.SCALE_CONV_MIN, Map.of("min_channels", 4)), 0);
  }

  /** A listener whose one entry logs after the first epoch. */
  private static SurgeryListener logAtEpoch1() {
    return SurgeryListener.builder().add(algorithm(TestAlgorithms.LOG, Map.of()), 1).build();
  }

  /**
   * Initializes a trainer built from {@code config} and calls {@code listener.onInitialized} {@code
   * calls} times; returns the listener's warnings that it is not one of the trainer's listeners.
   */
  private static List<String> notListedWarnings(
      SurgeryListener listener,
      String name,
      ai.djl.training.DefaultTrainingConfig config,
      int calls) {
    try (Model model = TestModels.model(name);
        Trainer trainer = model.newTrainer(config)) {
      trainer.initialize(INPUT);
      for (int i = 0; i < calls; i++) {
        listener.onInitialized(trainer);
      }
    }
    return listener.getWarnings().stream()
        .filter(w -> w.contains("is not one of trainer"))
        .toList();
  }

  @Test
  void epochZeroOnAnInitializedModelRunsBeforeTheTrainerIsInitialized() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm(TestAlgorithms.FRESH_CONV, Map.of("stride", 2)), 0)
            .build();
    try (Model model = TestModels.model("pretrained");
        NDManager data = NDManager.newBaseManager()) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        assertEquals(1, TestModels.count(model.getBlock(), "FreshConv2d"));
        assertTrue(model.getBlock().isInitialized(), "the engine initializes the replacement");
        trainer.initialize(INPUT);
        TestModels.assertStoreMatchesModel(trainer);
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
        TestModels.assertStoreMatchesModel(trainer);
      }
    }
  }

  /**
   * A YAML file's settings (README, Config) are what the listener reports back; a trainer it has
   * not seen gets the configured length.
   */
  @Test
  void aYamlFileGivesTheListenerItsSettings(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("surgery.yaml");
    Path report = dir.resolve("log.json");
    Files.writeString(
        file,
        "algorithms:\n  - name: t_log\n    epoch: 1\n    tag: a\n  - name: t_log\n    epoch: 2\n"
            + "    tag: b\non_error: skip\nreport: "
            + report
            + "\ntotal_epochs: 4\n");
    SurgeryListener listener = SurgeryListener.fromYaml(file, SurgeryTrain.EVENTS);
    assertEquals(OnError.SKIP, listener.getOnError());
    assertEquals(report.toAbsolutePath(), listener.getReportPath().orElseThrow().toAbsolutePath());
    assertEquals(4, listener.getTotalEpochs());
    assertEquals(SurgeryTrain.EVENTS, listener.getObservableEvents());
    assertEquals(
        List.of("a", "b"),
        listener.getSchedule().stream().map(e -> e.algorithm().settings().get("tag")).toList());
    try (Model model = TestModels.model("settings");
        Trainer unseen = model.newTrainer(TestModels.config())) {
      assertEquals(4, listener.getPlannedEpochs(unseen));
    }
  }

  @Test
  void onErrorFailStopsTrainingNamingAlgorithmEpochAndBlock() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm(TestAlgorithms.LOG, Map.of("tag", "a")), 1)
            .add(algorithm(TestAlgorithms.FAIL, Map.of()), 1)
            .add(algorithm(TestAlgorithms.LOG, Map.of("tag", "b")), 2)
            .optOnError(OnError.FAIL)
            .build();
    try (Model model = TestModels.model("fail");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        String before = TestModels.structure(model.getBlock());
        SurgeryFailedException e =
            assertThrows(
                SurgeryFailedException.class,
                () -> EasyTrain.fit(trainer, 3, TestModels.dataset(data, 3), null));
        assertEquals("t_fail", e.getAlgorithm());
        assertEquals(1, e.getEpoch());
        assertEquals("01Conv2d", e.getBlockPath());
        assertTrue(e.getMessage().contains("t_fail at epoch 1"), e.getMessage());
        assertTrue(e.getMessage().contains("01Conv2d"), e.getMessage());
        assertTrue(e.getMessage().contains("injected failure"), e.getMessage());
        // The block named once (the cause names it already), no step for an epoch entry, and what
        // a plugin's failure leaves: its blocks and freezes, not values it wrote itself.
        assertTrue(
            e.getMessage()
                .contains(
                    " failed: at 01Conv2d: injected failure. The model's blocks and frozen layers"
                        + " are as they were before t_fail (values it wrote into parameter arrays"
                        + " itself are not undone) (on_error: fail stops training; use on_error:"
                        + " skip to train on without it)"),
            e.getMessage());
        assertEquals(before, TestModels.structure(model.getBlock()));
        assertEquals(List.of("a@1/0"), TestAlgorithms.CALLS, "training stopped at the failure");
      }
      List<SurgeryOutcome> apps = listener.getOutcomes();
      assertEquals(SurgeryOutcome.Status.FAILED, apps.get(1).status());
      assertTrue(apps.get(1).error().contains("injected failure"));
    }
  }

  @Test
  void onErrorSkipLogsAndTrainsOn() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm(TestAlgorithms.FAIL, Map.of()), 1)
            .add(algorithm(TestAlgorithms.LOG, Map.of("tag", "b")), 2)
            .optOnError(OnError.SKIP)
            .build();
    try (Model model = TestModels.model("skip");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        String before = TestModels.structure(model.getBlock());
        EasyTrain.fit(trainer, 3, TestModels.dataset(data, 3), null);
        assertEquals(before, TestModels.structure(model.getBlock()));
        assertEquals(List.of("b@2/0"), TestAlgorithms.CALLS);
      }
      assertEquals(
          List.of(SurgeryOutcome.Status.SKIPPED, SurgeryOutcome.Status.APPLIED),
          listener.getOutcomes().stream().map(SurgeryOutcome::status).toList());
      // a skipped surgery is not recorded for checkpoint replay
      assertEquals(1, SurgeryJson.recordsFromJson(model.getProperty("surgery")).size());
    }
  }

  @Test
  void customLoopThatNotifiesOnEpochGetsItsSurgery() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(algorithm(TestAlgorithms.SCALE_CONV, Map.of()), 1).build();
    try (Model model = TestModels.model("custom");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 3);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        for (int epoch = 0; epoch < 2; epoch++) {
          TestModels.trainEpochWithoutEvents(trainer, dataset);
          assertEquals(epoch, TestModels.count(model.getBlock(), "ScaledConv2d"));
          trainer.notifyListeners(l -> l.onEpoch(trainer));
          assertEquals(1, TestModels.count(model.getBlock(), "ScaledConv2d"));
        }
        TestModels.assertStoreMatchesModel(trainer);
      }
      assertTrue(listener.getWarnings().isEmpty(), listener.getWarnings().toString());
    }
  }

  @Test
  void customLoopThatNeverNotifiesOnEpochIsWarnedAboutOnceNamingTheEntry() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm(TestAlgorithms.SCALE_CONV, Map.of()), 1)
            .add(algorithm(TestAlgorithms.LOG, Map.of("tag", "c")), 2)
            .add(algorithm(TestAlgorithms.LOG, Map.of("tag", "d")), 9)
            .build();
    try (Model model = TestModels.model("silent");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 3);
      String before;
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        before = TestModels.structure(model.getBlock());
        for (int epoch = 0; epoch < 4; epoch++) {
          TestModels.trainEpochWithoutEvents(trainer, dataset);
          if (epoch == 1) {
            // the first batch of the second pass showed that one epoch had ended unseen
            List<String> w = listener.getWarnings();
            assertEquals(1, w.size(), w.toString());
            assertTrue(w.get(0).contains("t_scale_conv at epoch 1 (builder entry 1)"), w.get(0));
            assertTrue(w.get(0).contains("onEpoch"), w.get(0));
          }
        }
        assertEquals(before, TestModels.structure(model.getBlock()), "nothing ran late");
      }
      List<String> w = listener.getWarnings();
      assertEquals(3, w.size(), w.toString());
      assertTrue(w.get(1).contains("t_log at epoch 2 (builder entry 2) did not run"), w.get(1));
      assertTrue(w.get(2).contains("t_log at epoch 9 (builder entry 3) never ran"), w.get(2));
      assertTrue(w.get(2).contains("no onEpoch event"), w.get(2));
      assertTrue(TestAlgorithms.CALLS.isEmpty());
    }
  }

  @Test
  void anEpochThatEndedUnseenStillCountsForLaterEntries() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(algorithm(TestAlgorithms.SCALE_CONV, Map.of()), 3).build();
    try (Model model = TestModels.model("partly-silent");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 3);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        for (int epoch = 0; epoch < 3; epoch++) {
          TestModels.trainEpochWithoutEvents(trainer, dataset);
          if (epoch > 0) { // the first epoch ends without onEpoch
            trainer.notifyListeners(l -> l.onEpoch(trainer));
          }
          assertEquals(
              epoch == 2 ? 1 : 0,
              TestModels.count(model.getBlock(), "ScaledConv2d"),
              "the epoch-3 entry runs when the third epoch ends, epoch " + (epoch + 1));
        }
      }
    }
  }

  @Test
  void aYamlScheduleRunsInsideFitWithItsTotalEpochs(@TempDir Path dir) throws Exception {
    Path yaml = dir.resolve("surgery.yaml");
    Files.writeString(
        yaml,
        "algorithms:\n"
            + "  - name: t_log\n"
            + "    epoch: 1\n"
            + "    tag: b\n"
            + "  - name: t_scale_conv\n"
            + "    epoch: 2\n"
            + "    factor: 0.5\n"
            + "total_epochs: 2\n"
            + "report: "
            + dir.resolve("not-a-dir").resolve("report.json")
            + "\n");
    SurgeryListener listener = SurgeryListener.fromYaml(yaml);
    // The report's parent becomes a file after the config was checked (which refuses that):
    // writing fails, which must not disturb training.
    Files.writeString(dir.resolve("not-a-dir"), "x");
    try (Model model = TestModels.model("yaml");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
        assertEquals(List.of("b@1/2"), TestAlgorithms.CALLS);
        assertEquals(1, TestModels.count(model.getBlock(), "ScaledConv2d"));
        TestModels.assertStoreMatchesModel(trainer);
      }
      assertEquals(
          List.of(yaml + ":2:5", yaml + ":5:5"),
          listener.getOutcomes().stream().map(SurgeryOutcome::source).toList());
      // The write failure is said once; the other warning is of the entry at the last epoch's
      // end, which changed the model after its last training step.
      List<String> warnings = listener.getWarnings();
      assertEquals(2, warnings.size(), warnings.toString());
      assertTrue(
          warnings.get(0).startsWith("Surgery: cannot write the surgery log "),
          warnings.toString());
      assertTrue(
          warnings
              .get(1)
              .startsWith(
                  "Surgery: t_scale_conv at epoch 2 ("
                      + yaml
                      + ":5:5) changed the model after its last training step"),
          warnings.toString());
    }
  }

  @Test
  void oneListenerServesSeveralTrainersEachWithItsOwnEpochs() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm(TestAlgorithms.LOG, Map.of("tag", "a")), 1)
            .add(algorithm(TestAlgorithms.FRESH_CONV, Map.of("stride", 1)), 2)
            .build();
    try (Model m1 = TestModels.model("first");
        Model m2 = TestModels.model("second");
        NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 3);
      try (Trainer t1 = m1.newTrainer(TestModels.config(listener));
          Trainer t2 = m2.newTrainer(TestModels.config(listener))) {
        t1.initialize(INPUT);
        t2.initialize(INPUT);
        EasyTrain.fit(t1, 1, dataset, null);
        assertEquals(List.of("a@1/0"), TestAlgorithms.CALLS);
        EasyTrain.fit(t2, 1, dataset, null);
        assertEquals(List.of("a@1/0", "a@1/0"), TestAlgorithms.CALLS, "t2 counts its own epochs");
        EasyTrain.fit(t1, 1, dataset, null);
        assertEquals(1, TestModels.count(m1.getBlock(), "FreshConv2d"));
        assertEquals(0, TestModels.count(m2.getBlock(), "FreshConv2d"), "t2 is at epoch 1");
        EasyTrain.fit(t2, 1, dataset, null);
        assertEquals(1, TestModels.count(m2.getBlock(), "FreshConv2d"));
        TestModels.assertStoreMatchesModel(t1);
        TestModels.assertStoreMatchesModel(t2);
      }
      List<SurgeryOutcome> apps = listener.getOutcomes();
      assertEquals(List.of(1, 2, 1, 2), apps.stream().map(SurgeryOutcome::trainer).toList());
      // Each trainer's epoch-2 entry ran at its last epoch's end: said once per trainer.
      List<String> warnings = listener.getWarnings();
      assertEquals(2, warnings.size(), warnings.toString());
      assertTrue(
          warnings.stream()
              .allMatch(
                  w ->
                      w.startsWith(
                          "Surgery: t_fresh_conv at epoch 2 (builder entry 2) changed the model"
                              + " after its last training step")),
          warnings.toString());
    }
  }
}
