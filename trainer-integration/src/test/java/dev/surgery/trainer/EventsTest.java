package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.dataset.Dataset;
import ai.djl.translate.TranslateException;
import ai.djl.util.Pair;
import ai.djl.util.Progress;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.SurgeryConfigException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Training events in library mode: the drop-in {@link SurgeryTrain#fit} and a hand-written loop.
 */
class EventsTest {

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
    EventRecorder.ensureRegistered();
  }

  @BeforeEach
  void clear() {
    EventRecorder.SEEN.clear();
    EventRecorder.MARKS.clear();
    EventRecorder.probe = null;
  }

  private static SurgeryListener listener(String yaml) {
    return SurgeryListener.fromConfig(
        SurgeryConfig.parse(yaml, "events.yaml"), SurgeryTrain.EVENTS);
  }

  /**
   * The documented order for 2 epochs of 4 batches with validation (counters: steps/batch/epochs).
   */
  private static List<String> expectedFitOrder() {
    List<String> expected = new ArrayList<>(List.of("INIT 0/0/0", "FIT_START 0/0/0"));
    int steps = 0;
    for (int epoch = 0; epoch < 2; epoch++) {
      expected.add("EPOCH_START " + steps + "/0/" + epoch);
      for (int b = 0; b < 4; b++) {
        expected.add("BATCH_START " + steps + "/" + b + "/" + epoch);
        expected.add("AFTER_FORWARD " + steps + "/" + b + "/" + epoch);
        expected.add("AFTER_BACKWARD " + steps + "/" + b + "/" + epoch);
        steps++;
        expected.add("BATCH_END " + steps + "/" + b + "/" + epoch);
      }
      expected.add("EVAL_START " + steps + "/4/" + epoch);
      expected.add("EVAL_END " + steps + "/4/" + epoch);
      expected.add("EPOCH_END " + steps + "/4/" + (epoch + 1));
    }
    expected.add("FIT_END 8/4/2");
    return expected;
  }

  /**
   * A hand-written loop that reports every event itself. It trains without {@code
   * EasyTrain.trainBatch}, so no {@code onTrainingBatch} arrives and no batch tells the listener
   * the data's size. It ends each epoch both ways, as under the agent ({@code onEvent(EPOCH_END)}
   * and DJL's {@code onEpoch}).
   */
  private static void handWrittenLoop(
      SurgeryListener listener,
      Trainer trainer,
      int epochs,
      ArrayDataset train,
      ArrayDataset validation)
      throws Exception {
    listener.onEvent(Event.INIT, trainer);
    listener.onEvent(Event.FIT_START, trainer);
    for (int epoch = 0; epoch < epochs; epoch++) {
      listener.onEvent(Event.EPOCH_START, trainer);
      for (Batch batch : trainer.iterateDataset(train)) {
        listener.onEvent(Event.BATCH_START, trainer);
        try (GradientCollector collector = trainer.newGradientCollector()) {
          NDList preds = trainer.forward(batch.getData(), batch.getLabels());
          NDArray loss = trainer.getLoss().evaluate(batch.getLabels(), preds);
          listener.onEvent(Event.AFTER_FORWARD, trainer);
          collector.backward(loss);
          listener.onEvent(Event.AFTER_BACKWARD, trainer);
        }
        trainer.step();
        listener.onEvent(Event.BATCH_END, trainer);
        batch.close();
      }
      if (validation != null) {
        listener.onEvent(Event.EVAL_START, trainer);
        for (Batch batch : trainer.iterateDataset(validation)) {
          EasyTrain.validateBatch(trainer, batch);
          batch.close();
        }
        listener.onEvent(Event.EVAL_END, trainer);
      }
      listener.onEvent(Event.EPOCH_END, trainer);
      trainer.notifyListeners(l -> l.onEpoch(trainer));
    }
    listener.onEvent(Event.FIT_END, trainer);
  }

  /**
   * Trains a fresh test CNN named {@code name} under the listener with {@link SurgeryTrain#fit}, on
   * the seed-1 data without validation.
   */
  private static void surgeryTrainFit(String name, SurgeryListener listener, int epochs)
      throws Exception {
    try (Model model = TestModels.model(name);
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      SurgeryTrain.fit(trainer, epochs, TestModels.dataset(manager, 1), null);
    }
  }

  /** Copies the initialized subject's weights into the control, so the twins start equal. */
  private static void copyParameters(Model subject, Model control) {
    List<Parameter> from = params(subject);
    List<Parameter> to = params(control);
    for (int i = 0; i < from.size(); i++) {
      from.get(i).getArray().copyTo(to.get(i).getArray());
    }
  }

  /**
   * The documented order, whether the program reports INIT itself (fit's second report is then
   * ignored) or leaves it to fit, which must then report it.
   */
  @ParameterizedTest(name = "program reports INIT: {0}")
  @ValueSource(booleans = {true, false})
  void surgeryTrainFitReportsEveryEventOnceInTheDocumentedOrder(boolean programReportsInit)
      throws Exception {
    SurgeryListener listener = listener("algorithms:\n  - name: t_ev_rec\n");
    try (Model model = TestModels.model("events");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      if (programReportsInit) {
        listener.onInitialized(trainer);
      }
      SurgeryTrain.fit(trainer, 2, TestModels.dataset(manager, 1), TestModels.dataset(manager, 2));
    }
    assertEquals(expectedFitOrder(), EventRecorder.SEEN);
  }

  /**
   * Validation data that fails midway: EVAL_END is still reported (a plugin swaps weights back
   * there), the evaluation's own failure is what the caller gets, and a failure at EVAL_END rides
   * along on it as suppressed rather than hiding it.
   */
  @Test
  void aFailingEvaluationStillReportsEvalEndAndKeepsItsOwnFailure() throws Exception {
    SurgeryListener listener = listener("algorithms:\n  - name: t_ev_rec\n");
    IllegalStateException broken = new IllegalStateException("validation data unreadable");
    IllegalArgumentException atEnd = new IllegalArgumentException("EVAL_END fails too");
    EventRecorder.probe =
        (event, state) -> {
          if (event == Event.EVAL_END) {
            throw atEnd;
          }
        };
    try (Model model = TestModels.model("events-eval-fails");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      Dataset failing = failingAfterOneBatch(TestModels.dataset(manager, 2), broken);

      IllegalStateException e =
          assertThrows(
              IllegalStateException.class, () -> SurgeryTrain.evaluateDataset(trainer, failing));

      assertSame(broken, e);
      assertEquals(1, e.getSuppressed().length, List.of(e.getSuppressed()).toString());
      Throwable cause = e.getSuppressed()[0];
      while (cause != null && cause != atEnd) {
        cause = cause.getCause();
      }
      assertSame(atEnd, cause, e.getSuppressed()[0].toString());
    }
    assertEquals(List.of("EVAL_START 0/0/0", "EVAL_END 0/0/0"), EventRecorder.SEEN);
  }

  /** The data's first batch, then {@code failure} where the second would come. */
  private static Dataset failingAfterOneBatch(ArrayDataset data, RuntimeException failure) {
    return new Dataset() {
      @Override
      public Iterable<Batch> getData(NDManager manager) throws IOException, TranslateException {
        Iterator<Batch> batches = data.getData(manager).iterator();
        return () ->
            new Iterator<>() {
              private boolean first = true;

              @Override
              public boolean hasNext() {
                return true;
              }

              @Override
              public Batch next() {
                if (!first) {
                  throw failure;
                }
                first = false;
                return batches.next();
              }
            };
      }

      @Override
      public void prepare(Progress progress) {}
    };
  }

  @Test
  void aHandWrittenLoopReportsEveryEventOnceEvenWithOnEpochToo() throws Exception {
    SurgeryListener listener = listener("algorithms:\n  - name: t_ev_rec\n");
    try (Model model = TestModels.model("events-loop");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      handWrittenLoop(
          listener, trainer, 2, TestModels.dataset(manager, 1), TestModels.dataset(manager, 2));
    }
    assertEquals(expectedFitOrder(), EventRecorder.SEEN);
  }

  @Test
  void stepKLandsAfterExactlyKStepsAndTheTrainerStaysExact() throws Exception {
    int k = 3;
    SurgeryListener listener =
        listener("algorithms:\n  - name: t_scale_conv\n    step: " + k + "\n    factor: 0.5\n");
    try (Model subject = TestModels.model("subject");
        Model control = TestModels.model("control");
        NDManager manager = NDManager.newBaseManager();
        Trainer subjectTrainer = subject.newTrainer(TestModels.config(listener));
        Trainer controlTrainer = control.newTrainer(TestModels.config())) {
      subjectTrainer.initialize(TestModels.INPUT);
      controlTrainer.initialize(TestModels.INPUT);
      copyParameters(subject, control);
      ArrayDataset data = TestModels.dataset(manager, 7);

      java.io.PrintStream err = System.err;
      java.io.ByteArrayOutputStream logged = new java.io.ByteArrayOutputStream();
      System.setErr(new java.io.PrintStream(logged, true, java.nio.charset.StandardCharsets.UTF_8));
      try {
        SurgeryTrain.fit(subjectTrainer, 2, data, null);
      } finally {
        System.setErr(err);
      }
      // The INFO line names the entry's schedule (it said "at epoch 0" for a step entry).
      String log = logged.toString(java.nio.charset.StandardCharsets.UTF_8);
      assertTrue(
          log.contains("Surgery: " + TestAlgorithms.SCALE_CONV + " at step 3 replaced 1 block"),
          log);

      // The control: the same surgery by hand, right after optimizer step k.
      int steps = 0;
      for (int epoch = 0; epoch < 2; epoch++) {
        for (Batch batch : controlTrainer.iterateDataset(data)) {
          EasyTrain.trainBatch(controlTrainer, batch);
          controlTrainer.step();
          batch.close();
          if (++steps == k) {
            Algorithms.spec(TestAlgorithms.SCALE_CONV)
                .create(Map.of("factor", 0.5))
                .apply(SurgeryContext.live(control.getBlock(), controlTrainer, 0, 0));
          }
        }
      }
      assertEquals(1, TestModels.count(subject.getBlock(), "ScaledConv2d"));
      ExactnessOracle.assertTwinsBitIdentical(
          params(control), controlTrainer, params(subject), subjectTrainer, "after 8 steps");
      TestModels.assertStoreMatchesModel(subjectTrainer);
      Set<String> live = params(subject).stream().map(Parameter::getId).collect(Collectors.toSet());
      Set<String> withState = new TreeSet<>();
      DjlOptimizers.optimizerStates(DjlTrainers.optimizer(subjectTrainer))
          .values()
          .forEach(m -> withState.addAll(m.keySet()));
      assertTrue(live.containsAll(withState), "optimizer state only for live parameters");
    }
  }

  /**
   * {@code SurgeryTrain.fit} is a drop-in for {@code EasyTrain.fit}, so it may drive a listener
   * built for DJL's callbacks alone ({@code fromYaml(path)}, epoch entries only): such a listener
   * counts the batches of an epoch in {@code onTrainingBatch}, and the {@code BATCH_END} that fit
   * reports as well must not count each batch a second time (the state said 8 batches of a 4-batch
   * epoch).
   */
  @Test
  void aListenerForDjlCallbacksCountsEachBatchOnceUnderSurgeryTrainFit() throws Exception {
    List<Long> batchesAtEpochEnd = new ArrayList<>();
    EventRecorder.probe = (event, state) -> batchesAtEpochEnd.add(state.batchInEpoch());
    String yaml = "algorithms:\n  - {name: t_ev_mark, tag: a, every: 1ep}\n";
    SurgeryListener callbacks =
        SurgeryListener.fromConfig(SurgeryConfig.parse(yaml, "callbacks.yaml"));
    surgeryTrainFit("callbacks-fit", callbacks, 2);
    assertEquals(List.of(4L, 4L), batchesAtEpochEnd);
    assertEquals(List.of("a@4", "a@8"), EventRecorder.MARKS);

    // The same listener under EasyTrain.fit, for comparison: the counts agree.
    batchesAtEpochEnd.clear();
    SurgeryListener easy = SurgeryListener.fromConfig(SurgeryConfig.parse(yaml, "callbacks.yaml"));
    try (Model model = TestModels.model("callbacks-easy");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(easy))) {
      trainer.initialize(TestModels.INPUT);
      EasyTrain.fit(trainer, 2, TestModels.dataset(manager, 1), null);
    }
    assertEquals(List.of(4L, 4L), batchesAtEpochEnd);
  }

  /**
   * A hand-written loop that reports only INIT, BATCH_END and EPOCH_END to a listener built with
   * {@code SurgeryTrain.EVENTS} (as the README's snippet builds it): no EPOCH_START says that an
   * epoch began, and the batch index ran on across epochs (4 to 7 in the second, 8 at its end).
   */
  @Test
  void theBatchIndexStartsOverEachEpochWithoutAnEpochStart() throws Exception {
    SurgeryListener listener = listener("algorithms:\n  - name: t_ev_rec\n");
    try (Model model = TestModels.model("events-no-epoch-start");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      listener.onEvent(Event.INIT, trainer);
      ArrayDataset data = TestModels.dataset(manager, 1);
      for (int epoch = 0; epoch < 2; epoch++) {
        for (Batch batch : trainer.iterateDataset(data)) {
          EasyTrain.trainBatch(trainer, batch);
          trainer.step();
          listener.onEvent(Event.BATCH_END, trainer);
          batch.close();
        }
        listener.onEvent(Event.EPOCH_END, trainer);
      }
    }
    List<String> expected = new ArrayList<>(List.of("INIT 0/0/0"));
    for (int epoch = 0; epoch < 2; epoch++) {
      for (int b = 0; b < 4; b++) {
        expected.add("BATCH_END " + (epoch * 4 + b + 1) + "/" + b + "/" + epoch);
      }
      expected.add("EPOCH_END " + (epoch * 4 + 4) + "/4/" + (epoch + 1));
    }
    assertEquals(expected, EventRecorder.SEEN);
  }

  @Test
  void entriesDueAtOneEventRunInYamlOrder() throws Exception {
    SurgeryListener listener =
        listener(
            "algorithms:\n"
                + "  - {name: t_ev_mark, tag: c, at_step: 2}\n"
                + "  - {name: t_ev_mark, tag: a, step: 2}\n"
                + "  - {name: t_ev_mark, tag: d, at_step: 2}\n"
                + "  - {name: t_ev_mark, tag: b, every: 2ba}\n"
                + "total_epochs: 1\n");
    surgeryTrainFit("order", listener, 1);
    assertEquals(List.of("c@2", "a@2", "d@2", "b@2", "b@4"), EventRecorder.MARKS);
  }

  /**
   * The surgery log places each application at its step: a step entry inside the first epoch, an
   * epoch entry at the first epoch's end (2 epochs of 4 batches), and in library mode without
   * events (DJL's callbacks only) at the batches trained.
   */
  @Test
  void theSurgeryLogRecordsTheStepOfEachApplication() throws Exception {
    String yaml =
        "algorithms:\n"
            + "  - {name: t_log, tag: a, step: 3}\n"
            + "  - {name: t_log, tag: b, epoch: 1}\n";
    SurgeryListener listener = listener(yaml);
    surgeryTrainFit("steps", listener, 2);
    List<SurgeryOutcome> outcomes = listener.getOutcomes();
    assertEquals(List.of(3L, 4L), outcomes.stream().map(SurgeryOutcome::step).toList());
    assertEquals(List.of(0, 1), outcomes.stream().map(SurgeryOutcome::epoch).toList());
    com.google.gson.JsonObject first =
        com.google.gson.JsonParser.parseString(SurgeryJson.log(outcomes, List.of(), false))
            .getAsJsonObject()
            .getAsJsonArray("applications")
            .get(0)
            .getAsJsonObject();
    assertEquals(3, first.get("step").getAsLong());

    SurgeryListener callbacks =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse("algorithms:\n  - {name: t_log, tag: c, epoch: 1}\n", "cb.yaml"));
    try (Model model = TestModels.model("callbacks");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(callbacks))) {
      trainer.initialize(TestModels.INPUT);
      EasyTrain.fit(trainer, 2, TestModels.dataset(manager, 1), null);
    }
    assertEquals(List.of(4L), callbacks.getOutcomes().stream().map(SurgeryOutcome::step).toList());
  }

  /**
   * Gradient accumulation (an optimizer step every second batch): a {@code step: 2} entry runs
   * after the second optimizer step, and the log, the outcome and the INFO line all say step 2, the
   * count the config uses, not the 4 batches taken.
   */
  @Test
  void underGradientAccumulationTheLogCountsStepsAsTheConfigDoes() throws Exception {
    SurgeryListener listener = listener("algorithms:\n  - {name: t_log, tag: a, step: 2}\n");
    try (Model model = TestModels.model("accumulation");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      int batches = 0;
      for (Batch batch : trainer.iterateDataset(TestModels.dataset(manager, 1))) {
        EasyTrain.trainBatch(trainer, batch); // forward, backward, onTrainingBatch; no step
        if (++batches % 2 == 0) {
          trainer.step();
          listener.onEvent(Event.BATCH_END, trainer);
        }
        batch.close();
      }
      assertEquals(4, batches);
    }
    List<SurgeryOutcome> outcomes = listener.getOutcomes();
    assertEquals(List.of(2L), outcomes.stream().map(SurgeryOutcome::step).toList());
  }

  @Test
  void timeStringsLandWhereTheySay() throws Exception {
    SurgeryListener listener =
        listener(
            "algorithms:\n"
                + "  - {name: t_ev_mark, tag: a, at: 0.75dur}\n"
                + "  - {name: t_ev_mark, tag: b, at: 5ba}\n"
                + "  - {name: t_ev_mark, tag: c, every: 1ep}\n"
                + "  - {name: t_ev_mark, tag: d, at: 1ep}\n"
                + "total_epochs: 2\n");
    surgeryTrainFit("times", listener, 2);
    // 2 epochs of 4 batches: 0.75dur is step 6; epoch ends come after steps 4 and 8.
    assertEquals(List.of("c@4", "d@4", "b@5", "a@6", "c@8"), EventRecorder.MARKS);
  }

  /**
   * A hand-written loop whose data does not report its size: the listener learns the batches per
   * epoch when the first epoch ends. A duration entry due later waits and lands on its step; one
   * whose step had passed by then fails saying so instead of running late or silently never.
   */
  @Test
  void durationEntriesWaitForTheLengthWhenOnlyTheFirstEpochTellsIt() throws Exception {
    SurgeryListener listener =
        listener(
            "algorithms:\n"
                + "  - {name: t_ev_mark, tag: a, at: 0.5dur}\n"
                + "  - {name: t_ev_mark, tag: b, at: 0.1dur}\n"
                + "  - {name: t_ev_mark, tag: c, at: 0.3333333dur}\n"
                + "total_epochs: 3\n"
                + "on_error: skip\n");
    try (Model model = TestModels.model("dur-wait");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      handWrittenLoop(listener, trainer, 3, TestModels.dataset(manager, 1), null);
    }
    // 3 epochs of 4 batches: 0.5dur is step 6; 0.3333333dur is step 4, the first epoch's last,
    // which runs at that epoch's end; 0.1dur is step 2, which that epoch's end shows had passed
    // (it fails there, not at the next batch: the epoch may be the last).
    assertEquals(List.of("c@4", "a@6"), EventRecorder.MARKS);
    List<String> outcomes =
        listener.getOutcomes().stream().map(Object::toString).collect(Collectors.toList());
    // The mark changes no block, so only the skipped entry leaves an outcome.
    assertEquals(1, outcomes.size(), outcomes.toString());
    String early = outcomes.get(0);
    assertTrue(
        early.contains("'0.1dur' is step 2 of 12, but training is already at step 4"), early);
  }

  @Test
  void aListenerForDjlCallbacksRefusesEntriesItCannotSeeAtTheirPosition() {
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n"
                + "  - name: t_log\n"
                + "    epoch: 1\n"
                + "  - name: t_log\n"
                + "    step: 10\n"
                + "  - name: t_ev_rec\n",
            "cb.yaml");
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryListener.fromConfig(config));
    String message = e.getMessage();
    assertTrue(message.contains("cb.yaml:5:11: algorithms entry 2 (t_log at step 10)"), message);
    assertTrue(
        message.contains("cb.yaml:6:5: algorithms entry 3 (t_ev_rec on its events)"), message);
    assertEquals(2, e.getProblems().size(), message);
    assertTrue(
        message.contains("DJL's TrainingListener callbacks report only epoch ends"), message);
    // The same file is fine where every event is reported.
    SurgeryListener.fromConfig(config, SurgeryTrain.EVENTS);
    // A listener built for other events is told so, not that DJL's callbacks report epoch ends
    // (an outside probe: a listener built for {batch_end} was told that of its epoch entry).
    SurgeryConfigException own =
        assertThrows(
            SurgeryConfigException.class,
            () -> SurgeryListener.fromConfig(config, EnumSet.of(Event.BATCH_END)));
    String ownMessage = own.getProblems().toString();
    assertEquals(2, own.getProblems().size(), ownMessage);
    assertTrue(
        ownMessage.contains(
            "cb.yaml:3:12: algorithms entry 1 (t_log at epoch 1) needs the event"
                + " [epoch_end], which this training mode does not report (it reports [batch_end])"),
        ownMessage);
    assertTrue(
        ownMessage.contains("cb.yaml:6:5: algorithms entry 3 (t_ev_rec on its events)"),
        ownMessage);
    assertFalse(ownMessage.contains("callbacks report only epoch ends"), ownMessage);
    assertTrue(
        ownMessage.contains("add the missing ones to the events it is built with"), ownMessage);
  }

  /**
   * Under on_error: fail, the test plugin that throws in {@code in} stops training with a failure
   * that names it and the call ({@code match} or {@code apply}) it threw in.
   */
  private static void assertFailsNamingThePlugin(String in, String call) throws Exception {
    SurgeryListener failing = listener("algorithms:\n  - name: t_ev_throw\n    in: " + in + "\n");
    try (Model model = TestModels.model("throw-" + in);
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(failing))) {
      trainer.initialize(TestModels.INPUT);
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> SurgeryTrain.fit(trainer, 1, TestModels.dataset(manager, 1), null));
      assertTrue(
          e.getMessage().contains("algorithm 't_ev_throw'")
              && e.getMessage().contains("threw in " + call + "(batch_end)")
              && e.getMessage().contains("injected in " + call),
          e.getMessage());
      // ... and its jar (README): the test plugin comes from this class's directory.
      String origin =
          EventsTest.class.getProtectionDomain().getCodeSource().getLocation().getPath();
      assertTrue(e.getMessage().contains(", from " + origin + ") threw in "), e.getMessage());
    }
  }

  @Test
  void aThrowingPluginFailsNamingItselfOrIsSkippedLeavingTrainingUnchanged() throws Exception {
    for (String in : List.of("match", "apply")) {
      assertFailsNamingThePlugin(in, in);
    }
    SurgeryListener skipping =
        listener("algorithms:\n  - name: t_ev_throw\n    in: apply\non_error: skip\n");
    try (Model subject = TestModels.model("skip");
        Model control = TestModels.model("control");
        NDManager manager = NDManager.newBaseManager();
        Trainer subjectTrainer = subject.newTrainer(TestModels.config(skipping));
        Trainer controlTrainer = control.newTrainer(TestModels.config())) {
      subjectTrainer.initialize(TestModels.INPUT);
      controlTrainer.initialize(TestModels.INPUT);
      copyParameters(subject, control);
      ArrayDataset data = TestModels.dataset(manager, 3);
      SurgeryTrain.fit(subjectTrainer, 1, data, null);
      EasyTrain.fit(controlTrainer, 1, data, null);
      ExactnessOracle.assertTwinsBitIdentical(
          params(control), controlTrainer, params(subject), subjectTrainer, "after skip");
      assertEquals(1, skipping.getOutcomes().size(), "one failure, then it is not asked again");
      assertTrue(
          skipping.getOutcomes().get(0).toString().contains("SKIPPED"),
          "the failure is reported as skipped");
    }
  }

  /**
   * A plugin's own Errors (an assert it broke, a class its jar lacks, its recursion overflowing the
   * stack) are its failures like its exceptions: on_error decides, and the message names it. They
   * stopped training under skip and named nothing (and the agent, which keeps a failing hook from
   * the program, trained on under fail).
   */
  @Test
  void aPluginsOwnErrorIsAFailureThatOnErrorDecides() throws Exception {
    for (String in : List.of("match_assert", "apply_linkage", "apply_overflow")) {
      String call = in.substring(0, in.indexOf('_'));
      assertFailsNamingThePlugin(in, call);
      SurgeryListener skipping =
          listener("algorithms:\n  - name: t_ev_throw\n    in: " + in + "\non_error: skip\n");
      try (Model model = TestModels.model("skip-" + in);
          NDManager manager = NDManager.newBaseManager();
          Trainer trainer = model.newTrainer(TestModels.config(skipping))) {
        trainer.initialize(TestModels.INPUT);
        String before = TestModels.structure(model.getBlock());
        SurgeryTrain.fit(trainer, 2, TestModels.dataset(manager, 1), null); // trains on
        assertEquals(before, TestModels.structure(model.getBlock()));
        assertEquals(1, skipping.getOutcomes().size(), in);
        assertEquals(SurgeryOutcome.Status.SKIPPED, skipping.getOutcomes().get(0).status(), in);
      }
    }
  }

  /**
   * The JVM running out of memory in an algorithm is no failure of the entry that training could go
   * on from: under skip too it stops training, recorded as failed (it was recorded as skipped and
   * went on up raw).
   */
  @Test
  void anOutOfMemoryErrorStopsTrainingUnderSkipRecordedAsFailed() throws Exception {
    SurgeryListener skipping =
        listener("algorithms:\n  - name: t_ev_throw\n    in: apply_oom\non_error: skip\n");
    try (Model model = TestModels.model("oom");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(skipping))) {
      trainer.initialize(TestModels.INPUT);
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> SurgeryTrain.fit(trainer, 1, TestModels.dataset(manager, 1), null));
      assertTrue(e.getMessage().contains("the JVM is failing"), e.getMessage());
      assertTrue(e.getCause().getCause() instanceof OutOfMemoryError, String.valueOf(e.getCause()));
      assertEquals(1, skipping.getOutcomes().size());
      assertEquals(SurgeryOutcome.Status.FAILED, skipping.getOutcomes().get(0).status());
    }
  }

  @Test
  void stateRefusesSurgeryWhileABatchIsInFlight() throws Exception {
    List<String> outcomes = new ArrayList<>();
    EventRecorder.probe =
        (event, state) -> {
          if (event == Event.AFTER_FORWARD || event == Event.BATCH_END) {
            try {
              state.surgeryContext();
              outcomes.add(event + " ok " + state.trainers().size());
            } catch (IllegalStateException e) {
              outcomes.add(event + " refused");
            }
          }
        };
    SurgeryListener listener = listener("algorithms:\n  - name: t_ev_rec\n");
    try (Model model = TestModels.model("inflight");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      try (Batch batch = trainer.iterateDataset(TestModels.dataset(manager, 1)).iterator().next()) {
        listener.onEvent(Event.BATCH_START, trainer);
        SurgeryTrain.trainBatch(trainer, batch);
        trainer.step();
        listener.onEvent(Event.BATCH_END, trainer);
      }
    }
    assertEquals(List.of("AFTER_FORWARD refused", "BATCH_END ok 1"), outcomes);
  }

  @Test
  void loadEventsOfAModelWithoutTrainerReachEventDrivenEntries() {
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n  - {name: t_ev_mark, tag: a, at_step: 0, event: after_load}\n",
            "load.yaml");
    SurgeryConfigException refused =
        assertThrows(
            SurgeryConfigException.class,
            () -> SurgeryListener.fromConfig(config, SurgeryTrain.EVENTS));
    assertTrue(refused.getMessage().contains("load.yaml:2:5"), refused.getMessage());
    // SurgeryTrain.fit never reports load events: the advice is the load call, not the loop.
    assertTrue(
        refused
            .getMessage()
            .contains(
                "build the listener with [after_load] among its events"
                    + " (SurgeryListener.fromConfig(config, events)) and call"
                    + " listener.onEvent(Event.BEFORE_LOAD, model) before and"
                    + " listener.onEvent(Event.AFTER_LOAD, model) after your own Model.load"),
        refused.getMessage());
    assertFalse(refused.getMessage().contains("train with SurgeryTrain.fit"), refused.getMessage());
    SurgeryListener listener = SurgeryListener.fromConfig(config, EnumSet.allOf(Event.class));
    try (Model model = TestModels.model("load")) {
      listener.onEvent(Event.BEFORE_LOAD, model);
      listener.onEvent(Event.AFTER_LOAD, model);
      assertThrows(IllegalArgumentException.class, () -> listener.onEvent(Event.EPOCH_END, model));
    }
    assertEquals(List.of("a@0"), EventRecorder.MARKS);
  }

  /**
   * A load reported for the model of a trainer that is still training is that trainer's event: the
   * entry sees the trainer's counts (4 steps after a 4-batch epoch), as when the event is reported
   * with the trainer, not a fresh model's.
   */
  @Test
  void aLoadReportedForTheModelOfATrainingTrainerIsThatTrainersEvent() throws Exception {
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n  - {name: t_ev_mark, tag: b, at_step: 4, event: after_load}\n",
            "load.yaml");
    SurgeryListener listener = SurgeryListener.fromConfig(config, EnumSet.allOf(Event.class));
    try (Model model = TestModels.model("load-while-training");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      SurgeryTrain.fit(trainer, 1, TestModels.dataset(manager, 1), null);
      listener.onEvent(Event.BEFORE_LOAD, model);
      listener.onEvent(Event.AFTER_LOAD, model);
    }
    assertEquals(List.of("b@4"), EventRecorder.MARKS);
  }

  static List<Parameter> params(Model model) {
    List<Parameter> out = new ArrayList<>();
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      out.add(p.getValue());
    }
    return out;
  }

  @Test
  void anEpochZeroEntryRunsAtInitForAListenerTheTrainerDoesNotList() throws Exception {
    // The trainer's config leaves the listener out, so no onTrainingBegin reaches it: the
    // program's onInitialized is the only moment before training, and the entry runs there.
    TestAlgorithms.CALLS.clear();
    SurgeryListener listener = listener("algorithms:\n  - {name: t_log, epoch: 0, tag: b}\n");
    try (Model model = TestModels.model("init-unlisted");
        Trainer trainer = model.newTrainer(TestModels.config())) {
      trainer.initialize(TestModels.INPUT);
      listener.onInitialized(trainer);
    }
    assertEquals(List.of("b@0/0"), TestAlgorithms.CALLS);
    SurgeryOutcome applied = listener.getOutcomes().get(0);
    assertEquals(SurgeryOutcome.Status.APPLIED, applied.status(), applied.toString());
    assertEquals(0, applied.epoch());
    assertEquals(0, applied.step());
  }
}
