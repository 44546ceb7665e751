package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import com.google.gson.JsonArray;
import com.google.gson.JsonParser;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Under DJL's callbacks alone ({@code EasyTrain.fit}, no agent, no SurgeryTrain), an event-driven
 * algorithm's State counts the steps and the epoch's batches too: at each epoch end it read 0 and 0
 * after two batches, where the State's Javadoc promises the steps run and the batches trained.
 */
class CallbackCountersTest {

  /** The algorithms of the state's surgery record, in order, as text. */
  private static String recordNames(State state) {
    return state.surgeryRecord().stream().map(c -> c.algorithm()).toList().toString();
  }

  /** Trains the test CNN with blurpool at epoch 1 for two epochs and saves it as {@code name}. */
  private static void saveBlurredCheckpoint(Path dir, String name) throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model(name)) {
      SurgeryListener first =
          SurgeryListener.builder().add(BlurPool.builder().optMinChannels(0).build(), 1).build();
      try (Trainer trainer = model.newTrainer(TestModels.config(first))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
      }
      model.save(dir, name);
    }
  }

  /** An event-driven algorithm that notes what it reads of the state at each epoch end. */
  private static Algorithm epochEndReader(
      String name, Function<State, String> read, List<String> seen) {
    return reader(name, Event.EPOCH_END, read, seen);
  }

  /** An event-driven algorithm that notes what it reads of the state at each of one event. */
  private static Algorithm reader(
      String name, Event at, Function<State, String> read, List<String> seen) {
    return new Algorithm() {
      @Override
      public String name() {
        return name;
      }

      @Override
      public Map<String, Object> hyperparameters() {
        return Map.of();
      }

      @Override
      public Set<Event> events() {
        return Set.of(at);
      }

      @Override
      public boolean match(Event event, State state) {
        seen.add(read.apply(state));
        return false;
      }

      @Override
      public SurgeryChanges apply(SurgeryContext context) {
        return null;
      }
    };
  }

  @Test
  void atEachEpochEndTheStateCountsStepsAndTheEpochsBatches() throws Exception {
    List<String> seen = new ArrayList<>();
    Algorithm recorder =
        epochEndReader(
            "t_epoch_counter",
            state ->
                state.globalSteps() + "/" + state.batchInEpoch() + "/" + state.completedEpochs(),
            seen);
    SurgeryListener listener = SurgeryListener.builder().add(recorder, Trigger.onEvents()).build();
    try (Model model = TestModels.model("callback-counters");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      // TestModels.dataset: batches of TestModels.BATCH; count them from the dataset itself.
      var dataset = TestModels.dataset(data, 3);
      long batches = 0;
      for (var batch : trainer.iterateDataset(dataset)) {
        batches++;
        batch.close();
      }
      EasyTrain.fit(trainer, 2, dataset, null);
      assertEquals(
          List.of(batches + "/" + batches + "/1", 2 * batches + "/" + batches + "/2"), seen);
    }
  }

  /**
   * What the state names at an epoch end, as core's State documents it: the event, the model, the
   * trainer that reported it, the planned epochs (the builder's total), the planned steps (those
   * epochs times the data's 4 batches) and the losses of the batches trained so far (one a batch
   * for an event-driven algorithm).
   */
  @Test
  void atEachEpochEndTheStateNamesTheEventTheTrainerAndThePlannedLength() throws Exception {
    List<String> seen = new ArrayList<>();
    Algorithm recorder =
        epochEndReader(
            "t_state_names",
            state ->
                (state.event() == Event.EPOCH_END)
                    + "/"
                    + state.model().getName()
                    + "/"
                    + state.trainer().getModel().getName()
                    + "/"
                    + state.totalEpochs()
                    + "/"
                    + state.totalSteps()
                    + "/"
                    + state.recentLosses().size(),
            seen);
    SurgeryListener listener =
        SurgeryListener.builder().add(recorder, Trigger.onEvents()).optTotalEpochs(2).build();
    try (Model model = TestModels.model("state-names");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
    }
    assertEquals(
        List.of("true/state-names/state-names/2/8/4", "true/state-names/state-names/2/8/8"), seen);
  }

  /**
   * An event-driven algorithm sees the surgery its model carries, not only what this trainer's
   * listener applied: a checkpoint loaded with its record replayed, then training on with blurpool
   * at epoch 1 (an outside probe found the replayed record missing, so a plugin could not tell what
   * was done already).
   */
  @Test
  void theStateShowsTheReplayedRecordThenWhatThisTrainerApplied(@TempDir Path dir)
      throws Exception {
    saveBlurredCheckpoint(dir, "carried");
    List<String> seen = new ArrayList<>();
    Algorithm recorder =
        epochEndReader(
            "t_record_reader",
            state ->
                state.surgeryRecord().stream()
                    .map(c -> c.algorithm() + ":" + c.changes().size())
                    .toList()
                    .toString(),
            seen);
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(recorder, Trigger.onEvents())
            .add(Factorize.builder().optMinChannels(1).optLatentChannels(2).build(), 1)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model restored = TestModels.model("carried")) {
      SurgeryCheckpoint.load(restored, dir, "carried");
      String blurred = TestModels.structure(restored.getBlock());
      assertTrue(blurred.contains("BlurConv2d"), blurred);
      try (Trainer trainer = restored.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
      }
    }
    // Epoch 1: the replayed blurpool (its replaced blocks); epoch 2: factorize too, applied at
    // epoch 1 after the recorder was asked (schedule order).
    assertEquals(2, seen.size(), seen.toString());
    assertTrue(seen.get(0).matches("\\[blurpool:[1-9]\\d*\\]"), seen.toString());
    assertTrue(
        seen.get(1).matches("\\[blurpool:[1-9]\\d*, factorize:[1-9]\\d*\\]"), seen.toString());
  }

  /**
   * More applications of this trainer than the replayed record holds: the state lists them all
   * after the replayed one, in order (one replayed, two applied: counted by hand).
   */
  @Test
  void theStateListsMoreOwnApplicationsThanTheReplayedRecordHolds(@TempDir Path dir)
      throws Exception {
    saveBlurredCheckpoint(dir, "carried-more");
    List<String> seen = new ArrayList<>();
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(
                epochEndReader("t_record_names_more", CallbackCountersTest::recordNames, seen),
                Trigger.onEvents())
            .add(Factorize.builder().optMinChannels(1).optLatentChannels(2).build(), 1)
            .add(changingOnEvenEpochs(), 2)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model restored = TestModels.model("carried-more")) {
      SurgeryCheckpoint.load(restored, dir, "carried-more");
      try (Trainer trainer = restored.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 3, TestModels.dataset(data, 3), null);
      }
    }
    // The reader is asked before the entries due at the same epoch end (schedule order).
    assertEquals(
        List.of("[blurpool]", "[blurpool, factorize]", "[blurpool, factorize, t_even]"), seen);
  }

  /** An event-driven reader of the names in {@code surgeryRecord()}, then blurpool at epoch 1. */
  private static SurgeryListener recordReaderThenBlurpool(List<String> seen) {
    Algorithm recorder = epochEndReader("t_record_names", CallbackCountersTest::recordNames, seen);
    return SurgeryListener.builder()
        .add(recorder, Trigger.onEvents())
        .add(BlurPool.builder().optMinChannels(0).build(), 1)
        .build();
  }

  /**
   * A trainer whose model got another block: the state lists that block's surgery, not what this
   * trainer applied to the old one (a reviewer found blurpool listed twice after a checkpoint was
   * loaded into the model, and the old block's blurpool listed for a fresh block; and the listener
   * warned that the loaded block did not get an entry its record holds).
   */
  @Test
  void afterSetBlockTheStateListsTheNewBlocksSurgeryOnly(@TempDir Path dir) throws Exception {
    List<String> seen = new ArrayList<>();
    SurgeryListener listener = recordReaderThenBlurpool(seen);
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("rebound");
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      model.save(dir, "rebound");

      // A checkpoint of the blurred model loaded into a fresh original block.
      model.setBlock(TestModels.cnn());
      SurgeryCheckpoint.load(model, dir, "rebound");
      listener.onEpoch(trainer);
      // A fresh block without surgery.
      model.setBlock(TestModels.cnn());
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      listener.onEpoch(trainer);
    }
    assertEquals(List.of("[]", "[blurpool]", "[]"), seen);
    List<String> told =
        listener.getWarnings().stream().filter(w -> w.contains("does not get it")).toList();
    assertEquals(1, told.size(), listener.getWarnings().toString()); // the fresh block only
  }

  /**
   * What a trainer applied to its model's old block is not due again on a new one, which is said
   * once per entry however often the model is given another block: one warning, and one not_run
   * item in the surgery log naming the reason.
   */
  @Test
  void anEntryAppliedToTheOldBlockIsListedAsNotRunOnceForAllLaterBlocks(@TempDir Path dir)
      throws Exception {
    Path report = dir.resolve("surgery.json");
    SurgeryListener listener = blurPoolAfterEpochOne(report);
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("rebound-twice");
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      assertEquals(1, listener.getOutcomes().size(), "blurpool applied to the first block");
      for (int i = 0; i < 2; i++) {
        model.setBlock(TestModels.cnn());
        model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
        listener.onEpoch(trainer);
      }
    }
    List<String> told =
        listener.getWarnings().stream().filter(w -> w.contains("does not get it")).toList();
    assertEquals(1, told.size(), listener.getWarnings().toString());
    JsonArray notRun =
        JsonParser.parseString(Files.readString(report))
            .getAsJsonObject()
            .getAsJsonArray("not_run");
    List<String> reasons = new ArrayList<>();
    notRun.forEach(item -> reasons.add(item.getAsJsonObject().get("reason").getAsString()));
    assertEquals(1, reasons.size(), reasons.toString());
    assertTrue(reasons.get(0).contains("before setBlock"), reasons.get(0));
  }

  /**
   * A checkpoint loaded into the model during the first epoch, whose record holds the entry due at
   * that epoch's end: the loaded block has it already, so it does not run again.
   */
  @Test
  void anEntryTheLoadedBlockHoldsDoesNotRunAgainWhenDue(@TempDir Path dir) throws Exception {
    saveBlurredCheckpoint(dir, "loaded-midway");
    SurgeryListener listener =
        SurgeryListener.builder().add(BlurPool.builder().optMinChannels(0).build(), 1).build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("loaded-midway");
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      TestModels.trainEpochWithoutEvents(trainer, TestModels.dataset(data, 3));
      listener.onEvent(Event.BATCH_END, trainer); // the trainer's state is made
      model.setBlock(TestModels.cnn());
      SurgeryCheckpoint.load(model, dir, "loaded-midway");
      listener.onEpoch(trainer); // the end of epoch 1, where blurpool is due
    }
    assertEquals(List.of(), listener.getOutcomes());
  }

  /**
   * The other way round: an entry skipped because the loaded block's record held it runs on a fresh
   * block the model is given before it is due, and the surgery log then lists it as applied only,
   * no longer as not run for being recorded already.
   */
  @Test
  void anEntrySkippedAsRecordedRunsOnAFreshBlockAndLeavesTheNotRunList(@TempDir Path dir)
      throws Exception {
    saveBlurredCheckpoint(dir, "fresh-midway");
    Path report = dir.resolve("surgery.json");
    SurgeryListener listener = blurPoolAfterEpochOne(report);
    try (Model model = TestModels.model("fresh-midway")) {
      SurgeryCheckpoint.load(model, dir, "fresh-midway");
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        listener.onEvent(Event.BATCH_END, trainer); // the state: blurpool skipped as recorded
        model.setBlock(TestModels.cnn());
        model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
        listener.onEpoch(trainer); // the end of epoch 1: blurpool runs on the fresh block
      }
    }
    assertEquals(1, listener.getOutcomes().size(), listener.getOutcomes().toString());
    JsonArray notRun =
        JsonParser.parseString(Files.readString(report))
            .getAsJsonObject()
            .getAsJsonArray("not_run");
    assertEquals(0, notRun.size(), notRun.toString());
  }

  /**
   * Two trainers of one model sharing the listener, both built before either trained: the second
   * sees what the first applied, as its own listener does when it skips that entry (a reviewer
   * found its state empty).
   */
  @Test
  void aSecondTrainerSeesWhatTheFirstApplied() throws Exception {
    List<String> seen = new ArrayList<>();
    SurgeryListener listener = recordReaderThenBlurpool(seen);
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("two-trainers");
        Trainer first = model.newTrainer(TestModels.config(listener));
        Trainer second = model.newTrainer(TestModels.config(listener))) {
      first.initialize(INPUT);
      EasyTrain.fit(first, 1, TestModels.dataset(data, 3), null);
      listener.onEpoch(second);
    }
    assertEquals(List.of("[]", "[blurpool]"), seen);
  }

  /** Changes of one made-up block at every epoch whose number is even, none at the others. */
  private static Algorithm changingOnEvenEpochs() {
    return TestAlgorithms.applying(
        "t_even",
        context ->
            new SurgeryChanges(
                "t_even",
                Map.of(),
                context.completedEpochs() % 2 == 0
                    ? List.of(new SurgeryChanges.Change("01Conv2d", "Conv2d", "Conv2d"))
                    : List.of(),
                0,
                0,
                0));
  }

  /**
   * A repeating entry whose runs change something only sometimes: the state lists what the record
   * holds, the runs that changed something (a reviewer found every run listed, then the empty ones
   * dropped once the record was read again).
   */
  @Test
  void theStateListsOnlyTheRunsTheRecordHolds() throws Exception {
    List<String> seen = new ArrayList<>();
    Algorithm recorder = epochEndReader("t_record_names", CallbackCountersTest::recordNames, seen);
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(recorder, Trigger.onEvents())
            .add(changingOnEvenEpochs(), Trigger.every(dev.surgery.core.events.Time.parse("1ep")))
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("sometimes");
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 5, TestModels.dataset(data, 3), null);
      // Asked before the entry's run at each epoch end: epochs 2 and 4 changed something.
      assertEquals(List.of("[]", "[]", "[t_even]", "[t_even]", "[t_even, t_even]"), seen);
      assertEquals(
          2, SurgeryJson.recordsFromJson(model.getProperty(SurgeryListener.PROPERTY)).size());
    }
  }

  /**
   * An event-driven entry that changes the model at each event, on a model whose record is in a
   * later format: the record is kept, the warning said once, and the state lists nothing it cannot
   * read nor what the record does not hold (a reviewer found a warning per batch).
   */
  @Test
  void aLaterFormatRecordIsWarnedOfOnceAndListsNothing() throws Exception {
    String later = "[{\"format\":2,\"algorithm\":\"blurpool\",\"epoch\":0}]";
    List<String> seen = new ArrayList<>();
    Algorithm changing =
        new TestAlgorithms.SimpleAlgorithm("t_each_epoch", Map.of(), false) {
          @Override
          public Set<Event> events() {
            return Set.of(Event.EPOCH_END);
          }

          @Override
          public boolean match(Event event, State state) {
            seen.add(state.surgeryRecord().toString());
            return true;
          }

          @Override
          public SurgeryChanges apply(SurgeryContext context) {
            return new SurgeryChanges(
                "t_each_epoch",
                Map.of(),
                List.of(new SurgeryChanges.Change("01Conv2d", "Conv2d", "Conv2d")),
                0,
                0,
                0);
          }
        };
    SurgeryListener listener = SurgeryListener.builder().add(changing, Trigger.onEvents()).build();
    // Two models of a search, each with such a record: each is said once (a reviewer found the
    // second model's left unsaid when the set was keyed by the record's text).
    for (int trial = 0; trial < 2; trial++) {
      try (NDManager data = NDManager.newBaseManager();
          Model model = TestModels.model("later-each")) {
        model.setProperty(SurgeryListener.PROPERTY, later);
        try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
          trainer.initialize(INPUT);
          EasyTrain.fit(trainer, 3, TestModels.dataset(data, 3), null);
        }
        assertEquals(later, model.getProperty(SurgeryListener.PROPERTY));
      }
    }
    assertEquals(List.of("[]", "[]", "[]", "[]", "[]", "[]"), seen);
    assertEquals(
        2,
        listener.getWarnings().stream().filter(w -> w.contains("is not added to its")).count(),
        listener.getWarnings().toString());
  }

  /**
   * A load event of a model no trainer trains: the state lists the record the load replayed (a
   * reviewer found it empty, so a load-time plugin could not see what the checkpoint brought).
   */
  @Test
  void atAfterLoadTheStateListsTheReplayedRecord(@TempDir Path dir) throws Exception {
    saveBlurredCheckpoint(dir, "loaded");
    List<String> seen = new ArrayList<>();
    Algorithm reader =
        reader("t_load_reader", Event.AFTER_LOAD, CallbackCountersTest::recordNames, seen);
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(reader, Trigger.onEvents())
            .optObservableEvents(java.util.EnumSet.allOf(Event.class))
            .build();
    try (Model restored = TestModels.model("loaded")) {
      SurgeryCheckpoint.load(restored, dir, "loaded");
      listener.onEvent(Event.AFTER_LOAD, restored);
    }
    assertEquals(List.of("[blurpool]"), seen);
  }

  /** BlurPool on every convolution after the first epoch, with a surgery log at {@code report}. */
  private static SurgeryListener blurPoolAfterEpochOne(Path report) {
    return SurgeryListener.builder()
        .add(BlurPool.builder().optMinChannels(0).build(), 1)
        .optReportPath(report)
        .build();
  }
}
