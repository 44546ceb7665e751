package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListenerAdapter;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.OnError;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Where layer freezing gets the planned number of epochs from: the training loop ({@link
 * SurgeryListener#onPlannedEpochs}), the configured number otherwise, and an error naming the
 * setting when neither is there. The oracle is Composer's schedule: with 4 layers (conv, BN, conv,
 * linear) and {@code freeze_start} 0, {@code floor(k / total * 3)} layers are frozen after {@code
 * k} epochs.
 */
class PlannedEpochsTest {

  @TempDir Path tmp;

  private static LayerFreezing freezing() {
    return LayerFreezing.builder().optFreezeStart(0.0).build();
  }

  /** layer_freezing at epoch 1 for a loop that reports every event, as SurgeryTrain.fit does. */
  private static SurgeryListener.Builder freezingAtEpoch1UnderEvents() {
    return SurgeryListener.builder().add(freezing(), 1).optObservableEvents(SurgeryTrain.EVENTS);
  }

  /**
   * A listener read from a surgery.yaml written with one layer_freezing entry (freeze_start 0) at
   * {@code trigger} and {@code total_epochs}.
   */
  private SurgeryListener freezingFromYaml(String trigger, int totalEpochs) throws Exception {
    Path yaml = tmp.resolve("surgery.yaml");
    Files.writeString(
        yaml,
        "algorithms:\n"
            + "  - name: layer_freezing\n"
            + "    "
            + trigger
            + "\n"
            + "    freeze_start: 0.0\n"
            + "total_epochs: "
            + totalEpochs
            + "\n");
    return SurgeryListener.fromYaml(yaml);
  }

  /** Counts the frozen layers at the first batch of each epoch. */
  static final class FrozenProbe extends TrainingListenerAdapter {
    final List<Integer> atFirstBatch = new ArrayList<>();
    private boolean epochStart = true;

    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
      if (epochStart) {
        atFirstBatch.add(frozenLayers(trainer.getModel().getBlock()));
        epochStart = false;
      }
    }

    @Override
    public void onEpoch(Trainer trainer) {
      epochStart = true;
    }
  }

  /** Layers none of whose parameters takes gradients (BatchNorm's running statistics never do). */
  static int frozenLayers(Block root) {
    int frozen = 0;
    for (Block layer : LayerFreezing.layers(root).keySet()) {
      if (layer.getDirectParameters().values().stream().noneMatch(Parameter::requiresGradient)) {
        frozen++;
      }
    }
    return frozen;
  }

  /** Trains 2 epochs with {@code EasyTrain.fit}, announcing them first when {@code announce}. */
  private static List<Integer> train(SurgeryListener listener, boolean announce) throws Exception {
    FrozenProbe probe = new FrozenProbe();
    try (Model model = TestModels.model("planned");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener, probe))) {
      trainer.initialize(INPUT);
      if (announce) {
        listener.onPlannedEpochs(trainer, 2);
        assertEquals(2, listener.getPlannedEpochs(trainer));
      }
      EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
      probe.atFirstBatch.add(frozenLayers(model.getBlock()));
      String recorded = model.getProperty(SurgeryListener.PROPERTY);
      for (SurgeryRecord r : SurgeryJson.recordsFromJson(recorded)) {
        assertEquals(2, r.totalEpochs(), recorded);
      }
    }
    return probe.atFirstBatch;
  }

  @Test
  void theLoopsLengthReachesAnEpochZeroEntryThatWaitedForIt() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(freezing(), 0).add(freezing(), 1).build();
    // epoch 1 trains with 0 frozen, epoch 2 with floor(1/2 * 3) = 1, and so it ends
    assertEquals(List.of(0, 1, 1), train(listener, true));
    assertEquals(2, listener.getOutcomes().size());
    // Only that the epoch-0 entry froze nothing, as layer_freezing says of every run that does not.
    assertEquals(1, listener.getWarnings().size(), listener.getWarnings().toString());
    assertTrue(
        listener
            .getWarnings()
            .get(0)
            .startsWith("Applying layer_freezing did not freeze any layers: after 0 of 2 planned"),
        listener.getWarnings().toString());
  }

  @Test
  void theBuildersTotalEpochsServesWhenTheLoopSaysNothing() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(freezing(), 0).add(freezing(), 1).optTotalEpochs(2).build();
    assertEquals(List.of(0, 1, 1), train(listener, false));
  }

  /**
   * The builder refuses what the config file refuses: an entry the planned length never reaches.
   */
  @Test
  void theBuilderRefusesAnEntryAfterTheLastEpochOrStepAsTheFileDoes() throws Exception {
    IllegalArgumentException epoch =
        assertThrows(
            IllegalArgumentException.class,
            () -> SurgeryListener.builder().add(freezing(), 5).optTotalEpochs(2).build());
    assertEquals(
        "layer_freezing at epoch 5 (builder entry 1): epoch 5 is after the last epoch"
            + " (total_epochs: 2); this entry would never run",
        epoch.getMessage());
    Path yaml = tmp.resolve("late.yaml");
    Files.writeString(
        yaml, "total_epochs: 2\nalgorithms:\n  - name: layer_freezing\n    epoch: 5\n");
    Exception fromFile = assertThrows(Exception.class, () -> SurgeryListener.fromYaml(yaml));
    assertTrue(
        fromFile
            .getMessage()
            .contains(
                "epoch 5 is after the last epoch (total_epochs: 2); this"
                    + " entry would never run"),
        fromFile.getMessage());
    IllegalArgumentException every =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                SurgeryListener.builder()
                    .add(freezing(), Trigger.every(Time.parse("3ep")))
                    .optTotalEpochs(2)
                    .build());
    assertTrue(
        every
            .getMessage()
            .endsWith(
                "every 3 epochs first runs after epoch 3, after the last"
                    + " epoch (total_epochs: 2); this entry would never run"),
        every.getMessage());
    IllegalArgumentException step =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                SurgeryListener.builder()
                    .add(freezing(), Trigger.atStep(100))
                    .optObservableEvents(SurgeryTrain.EVENTS)
                    .optTotalSteps(50)
                    .build());
    assertTrue(
        step.getMessage()
            .endsWith(
                "step 100 is after the last step (total_steps: 50); this"
                    + " entry would never run"),
        step.getMessage());
    // within the length, and without one, the same entries build
    SurgeryListener.builder().add(freezing(), 2).optTotalEpochs(2).build();
    SurgeryListener.builder().add(freezing(), 5).build();
  }

  @Test
  void aLongerLoopWinsOverTheConfiguredTotalWithAWarning() throws Exception {
    SurgeryListener listener = freezingFromYaml("epoch: 1", 1);
    // with total_epochs 1 it would be floor(1/1 * 3) = 3
    assertEquals(List.of(0, 1, 1), train(listener, true));
    assertEquals(1, listener.getWarnings().size(), listener.getWarnings().toString());
    assertTrue(
        listener.getWarnings().get(0).contains("runs 2 epochs but the configured total is 1")
            && listener.getWarnings().get(0).contains("use the loop's 2"),
        listener.getWarnings().toString());
  }

  /**
   * Training that runs past the configured total without announcing it (EasyTrain.fit with the
   * library alone announces nothing) is warned of once, when the first epoch past it ends: what
   * follows the length keeps the configured total.
   */
  @Test
  void trainingPastTheConfiguredTotalWithoutAnAnnouncementIsWarnedOfOnce() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(freezing(), 1).optTotalEpochs(1).build();
    try (Model model = TestModels.model("past-total");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 3, TestModels.dataset(data, 3), null);
      assertEquals(1, listener.getPlannedEpochs(trainer));
    }
    assertEquals(1, listener.getWarnings().size(), listener.getWarnings().toString());
    assertTrue(
        listener.getWarnings().get(0).contains("epoch 2 ended, past the 1 epochs training was"),
        listener.getWarnings().toString());
  }

  /**
   * A program that calls {@code fit} once per epoch announces one epoch at a time: the configured
   * total holds, so layer freezing follows Composer's fraction of the configured length (an outside
   * tester found every layer frozen after the first epoch, at t = 1/1).
   */
  @Test
  void fitOncePerEpochKeepsTheConfiguredTotal() throws Exception {
    SurgeryListener listener = freezingFromYaml("every: 1ep", 4);
    FrozenProbe probe = new FrozenProbe();
    try (Model model = TestModels.model("planned");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener, probe))) {
      trainer.initialize(INPUT);
      for (int epoch = 0; epoch < 4; epoch++) {
        listener.onPlannedEpochs(trainer, 1); // what the agent does at each fit(trainer, 1, ...)
        assertEquals(4, listener.getPlannedEpochs(trainer));
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      }
      probe.atFirstBatch.add(frozenLayers(model.getBlock()));
    }
    // after epoch e of 4, floor(e/4 * 3) layers: 0, 1, 2, then all three at the end
    assertEquals(List.of(0, 0, 1, 2, 3), probe.atFirstBatch);
    // The length, and the run after epoch 1 that froze nothing (floor(1/4 * 3) = 0 layers).
    assertEquals(2, listener.getWarnings().size(), listener.getWarnings().toString());
    assertTrue(
        listener.getWarnings().get(0).contains("use the configured 4"),
        listener.getWarnings().toString());
    assertTrue(
        listener
            .getWarnings()
            .get(1)
            .startsWith("Applying layer_freezing did not freeze any layers: after 1 of 4 planned"),
        listener.getWarnings().toString());
  }

  @Test
  void withoutALengthTheErrorNamesTheYamlKey() throws Exception {
    Path yaml = tmp.resolve("surgery.yaml");
    Files.writeString(yaml, "algorithms:\n  - name: layer_freezing\n    epoch: 1\n");
    SurgeryListener listener = SurgeryListener.fromYaml(yaml);
    SurgeryFailedException e =
        assertThrows(SurgeryFailedException.class, () -> train(listener, false));
    assertTrue(
        e.getMessage()
            .contains(
                "layer_freezing needs the planned number of epochs, which is unknown: set"
                    + " 'total_epochs: <n>' at the top level of "
                    + yaml),
        e.getMessage());
  }

  @Test
  void withoutALengthAnEpochZeroEntryFailsAtTheFirstBatchNamingTheBuilderSetting()
      throws Exception {
    // The constructor's onTrainingBegin does not fail: the loop may still announce the length.
    failsAtTheFirstBatch(SurgeryListener.builder().add(freezing(), 0).build(), "no-length", 2);
  }

  /**
   * Trains with a listener that must fail at the first batch, before the first step, for want of
   * the planned length, naming the builder setting that gives it.
   */
  private static void failsAtTheFirstBatch(SurgeryListener listener, String name, int epochs)
      throws Exception {
    FrozenProbe probe = new FrozenProbe();
    try (Model model = TestModels.model(name);
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(probe, listener))) {
      trainer.initialize(INPUT);
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> EasyTrain.fit(trainer, epochs, TestModels.dataset(data, 3), null));
      assertTrue(e.getMessage().contains("optTotalEpochs(n)"), e.getMessage());
      assertEquals(List.of(0), probe.atFirstBatch, "it failed at the first batch");
    }
  }

  /**
   * A later entry that needs the length, with none configured and none announced when training
   * starts: nothing announces it from then on, so it fails at the first batch, before the first
   * step, rather than epochs into training.
   */
  @Test
  void withoutALengthALaterEntryFailsAtTheFirstBatch() throws Exception {
    SurgeryListener listener = SurgeryListener.builder().add(freezing(), 2).build();
    failsAtTheFirstBatch(listener, "no-length-later", 3);
    assertEquals(1, listener.getOutcomes().size());
    assertEquals(0, listener.getOutcomes().get(0).step(), "before the first step");
    assertEquals(SurgeryOutcome.Status.FAILED, listener.getOutcomes().get(0).status());
  }

  /**
   * A loop that calls fit once per epoch, with no total configured: the first fit announces 1
   * epoch, and layer_freezing at epoch 1 follows that length (the end of training: all but the last
   * layer). The second fit shows it was not the length of training: under on_error fail it is
   * refused before its first step, and so is every later one; the report records the failure.
   */
  @Test
  void aSecondFitAfterAnEntryFollowedTheFirstFitsLengthStopsTraining() throws Exception {
    SurgeryListener listener = freezingAtEpoch1UnderEvents().build();
    FrozenProbe probe = new FrozenProbe();
    try (Model model = TestModels.model("once-per-epoch");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(probe, listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, 1, TestModels.dataset(data, 3), null); // announces 1 epoch
      assertEquals(1, listener.getOutcomes().size(), "it ran with the announced length");
      for (int attempt = 0; attempt < 2; attempt++) {
        SurgeryFailedException e =
            assertThrows(
                SurgeryFailedException.class,
                () -> SurgeryTrain.fit(trainer, 1, TestModels.dataset(data, 3), null));
        assertTrue(e.getMessage().contains("followed a length of 1 epochs"), e.getMessage());
        assertTrue(e.getMessage().contains("now announces 2 epochs in all"), e.getMessage());
        assertTrue(e.getMessage().contains("optTotalEpochs(n)"), e.getMessage());
      }
      assertEquals(List.of(0), probe.atFirstBatch, "no batch of a later fit trained");
      assertEquals(
          List.of(SurgeryOutcome.Status.APPLIED, SurgeryOutcome.Status.FAILED),
          listener.getOutcomes().stream().map(SurgeryOutcome::status).toList().subList(0, 2));
    }
  }

  /**
   * A listener whose driver reports fit starts (the agent, SurgeryTrain) under a loop that never
   * calls such a fit (an outside probe: DJL's TicTacToe example under the agent): an entry that
   * needs the planned length waits, since a fit may still announce it, and is warned of at the
   * first batch instead of failing silently epochs later. A fit that announced the length before
   * the first batch gets no warning.
   */
  @Test
  void aLoopThatAnnouncesNoLengthByTheFirstBatchIsWarnedOfThere() throws Exception {
    SurgeryListener listener = freezingAtEpoch1UnderEvents().build();
    List<Integer> warningsAtFirstBatch = new ArrayList<>();
    TrainingListenerAdapter atFirstBatch =
        new TrainingListenerAdapter() {
          @Override
          public void onTrainingBatch(Trainer trainer, BatchData batchData) {
            if (warningsAtFirstBatch.isEmpty()) {
              warningsAtFirstBatch.add(listener.getWarnings().size());
            }
          }
        };
    try (Model model = TestModels.model("no-fit-start");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener, atFirstBatch))) {
      trainer.initialize(INPUT);
      // DJL's own fit: no FIT_START reaches a listener that expects one from its driver
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null));
      assertTrue(e.getMessage().contains("needs the planned number of epochs"), e.getMessage());
    }
    assertEquals(List.of(1), warningsAtFirstBatch, "warned at the first batch, before its step");
    assertTrue(
        listener
            .getWarnings()
            .get(0)
            .startsWith(
                "Surgery: layer_freezing at epoch 1 (builder entry 1) needs the planned number of"
                    + " epochs, and nothing has announced it by the first batch: "),
        listener.getWarnings().toString());
    assertTrue(
        listener.getWarnings().get(0).endsWith("the entry fails when it is due"),
        listener.getWarnings().toString());

    SurgeryListener announced = freezingAtEpoch1UnderEvents().build();
    try (Model model = TestModels.model("fit-start");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(announced))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
    }
    assertEquals(1, announced.getOutcomes().size());
    assertTrue(
        announced.getWarnings().stream().noneMatch(w -> w.contains("by the first batch")),
        announced.getWarnings().toString());
  }

  /**
   * The same under on_error: skip: the failure is reported once (at ERROR) and training goes on,
   * with the freeze, which ran in the first fit and cannot be undone: the message says so.
   */
  @Test
  void underSkipASecondFitAfterAnAnnouncedLengthTrainsOnAfterAnError() throws Exception {
    SurgeryListener listener = freezingAtEpoch1UnderEvents().optOnError(OnError.SKIP).build();
    FrozenProbe probe = new FrozenProbe();
    try (Model model = TestModels.model("once-per-epoch-skip");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(probe, listener))) {
      trainer.initialize(INPUT);
      for (int epoch = 0; epoch < 3; epoch++) {
        SurgeryTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      }
      assertEquals(3, probe.atFirstBatch.size(), "every fit trained");
      assertEquals(
          List.of(SurgeryOutcome.Status.APPLIED, SurgeryOutcome.Status.SKIPPED),
          listener.getOutcomes().stream().map(SurgeryOutcome::status).toList());
      assertEquals(
          1,
          listener.getWarnings().stream()
              .filter(w -> w.contains("followed a length") && w.contains("cannot be undone"))
              .count(),
          listener.getWarnings().toString());
    }
  }

  /**
   * A run that changed nothing under the announced length (layer_freezing with freeze_start 0.5 at
   * epoch 1 of 2: fraction 0.5, nothing frozen) changes nothing under a longer one either: the next
   * fit is not refused.
   */
  @Test
  void aRunThatChangedNothingUnderTheAnnouncedLengthRefusesNoLaterFit() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(LayerFreezing.builder().optFreezeStart(0.5).build(), 1)
            .optObservableEvents(SurgeryTrain.EVENTS)
            .build();
    try (Model model = TestModels.model("changed-nothing");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
      SurgeryTrain.fit(trainer, 2, TestModels.dataset(data, 3), null); // trains on
      assertEquals(1, listener.getOutcomes().size());
      assertEquals(SurgeryOutcome.Status.APPLIED, listener.getOutcomes().get(0).status());
      assertTrue(listener.getOutcomes().get(0).changes().isEmpty());
    }
  }

  /** With the total configured, fit once per epoch follows it and nothing is refused. */
  @Test
  void aConfiguredTotalLetsALoopCallFitOncePerEpoch() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(freezing(), 1).optTotalEpochs(3).build();
    try (Model model = TestModels.model("once-per-epoch-total");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      for (int epoch = 0; epoch < 3; epoch++) {
        listener.onPlannedEpochs(trainer, 1);
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      }
      assertEquals(1, listener.getOutcomes().size());
      assertEquals(SurgeryOutcome.Status.APPLIED, listener.getOutcomes().get(0).status());
    }
  }

  /**
   * Counts the training batches DJL reports; listed before the surgery listener, it counts first.
   */
  static final class BatchCounter extends TrainingListenerAdapter {
    int batches;

    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
      batches++;
    }
  }

  /**
   * An algorithm that follows the planned length and changes nothing; each run is recorded as the
   * batches trained before it and the planned epochs it was given.
   */
  private static Algorithm lengthFollower(
      boolean needsInit, BatchCounter counter, List<String> runs) {
    return new TestAlgorithms.SimpleAlgorithm("t_length", Map.of(), needsInit) {
      @Override
      public boolean needsTotalEpochs() {
        return true;
      }

      @Override
      public SurgeryChanges apply(SurgeryContext context) {
        runs.add(counter.batches + " batches trained, " + context.totalEpochs() + " planned");
        return new SurgeryChanges(name(), hyperparameters(), List.of(), 0, 0, 1);
      }
    };
  }

  @Test
  void anEpochZeroEntryWaitingForTheLengthRunsWhenItIsAnnouncedBeforeTheModelIsInitialized()
      throws Exception {
    BatchCounter counter = new BatchCounter();
    List<String> runs = new ArrayList<>();
    SurgeryListener listener =
        SurgeryListener.builder().add(lengthFollower(false, counter, runs), 0).build();
    try (Model model = TestModels.model("announced-first");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(counter, listener))) {
      // The program announces the length right after newTrainer, before initialize: the entry
      // needs no initialized model, so it runs there, before training (epoch: 0).
      listener.onPlannedEpochs(trainer, 2);
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
    }
    assertEquals(List.of("0 batches trained, 2 planned"), runs);
    SurgeryOutcome outcome = listener.getOutcomes().get(0);
    assertEquals(SurgeryOutcome.Status.APPLIED, outcome.status(), outcome.toString());
    assertEquals(0, outcome.epoch());
    assertEquals(0, outcome.step());
  }

  @Test
  void anEntryWaitingForInitializationThenForTheLengthRunsWhenTheLengthComes() throws Exception {
    BatchCounter counter = new BatchCounter();
    List<String> runs = new ArrayList<>();
    SurgeryListener listener =
        SurgeryListener.builder().add(lengthFollower(true, counter, runs), 0).build();
    try (Model model = TestModels.model("init-then-length");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(counter, listener))) {
      trainer.initialize(INPUT);
      // Initialized before the length is known: the entry waits for the announcement that
      // follows, and runs there, before the first batch.
      listener.onInitialized(trainer);
      assertEquals(List.of(), runs);
      listener.onPlannedEpochs(trainer, 2);
      assertEquals(List.of("0 batches trained, 2 planned"), runs);
      EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
    }
    assertEquals(List.of("0 batches trained, 2 planned"), runs);
    assertEquals(1, listener.getOutcomes().size(), listener.getOutcomes().toString());
  }

  /**
   * Waiting for the length on an initialized model that then gets a fresh, uninitialized block:
   * when the length comes, the entry waits for that block's initialization and runs at
   * onInitialized, before the first batch, once.
   */
  @Test
  void anEntryWaitingForTheLengthWhoseModelGetsAnUninitializedBlockWaitsForItsInitialization()
      throws Exception {
    BatchCounter counter = new BatchCounter();
    List<String> runs = new ArrayList<>();
    SurgeryListener listener =
        SurgeryListener.builder().add(lengthFollower(true, counter, runs), 0).build();
    try (Model model = TestModels.model("new-block-before-length");
        NDManager data = NDManager.newBaseManager()) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      try (Trainer trainer = model.newTrainer(TestModels.config(counter, listener))) {
        model.setBlock(TestModels.cnn()); // not initialized
        listener.onPlannedEpochs(trainer, 2);
        assertEquals(List.of(), runs, "not on a model that is not initialized");
        trainer.initialize(INPUT);
        listener.onInitialized(trainer);
        assertEquals(List.of("0 batches trained, 2 planned"), runs);
        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
      }
    }
    assertEquals(List.of("0 batches trained, 2 planned"), runs);
    assertEquals(1, listener.getOutcomes().size(), listener.getOutcomes().toString());
  }
}
