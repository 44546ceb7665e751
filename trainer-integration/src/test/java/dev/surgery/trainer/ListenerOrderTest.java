package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.listener.EarlyStoppingListener;
import ai.djl.training.listener.EarlyStoppingListener.EarlyStoppedException;
import ai.djl.training.listener.EpochTrainingListener;
import ai.djl.training.listener.SaveModelTrainingListener;
import ai.djl.training.listener.TrainingListener;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.trainer.config.SurgeryConfig;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Where the listener sits among DJL's own listeners. An outside probe found a checkpoint of DJL's
 * {@code SaveModelTrainingListener}, placed after the surgery listener, holding the changed model
 * under the metrics of the model before the surgery, and an entry stopped by {@code
 * EarlyStoppingListener} (placed before it) reported one completed epoch less than ran.
 */
class ListenerOrderTest {

  private static final String ORDER_WARNING =
      "Surgery: this SurgeryListener comes before DJL's SaveModelTrainingListener";

  @TempDir Path dir;

  @Test
  void aSaveListenerAfterTheSurgeryListenerIsWarnedOfOnce() throws Exception {
    SurgeryListener listener = blurAt(1);
    SaveModelTrainingListener save = new SaveModelTrainingListener(dir.toString(), "net", 1);
    train(listener, 2, listener, save);
    train(listener, 2, listener, save); // a second trial: not said again
    assertEquals(
        1, count(listener.getWarnings(), ORDER_WARNING), listener.getWarnings().toString());
  }

  @Test
  void aSaveListenerBeforeTheSurgeryListenerOrOnlyEpochZeroSurgeryIsNotWarnedOf() throws Exception {
    SurgeryListener after = blurAt(1);
    train(after, 2, new SaveModelTrainingListener(dir.toString(), "a", 1), after);
    assertEquals(0, count(after.getWarnings(), ORDER_WARNING), after.getWarnings().toString());

    // Epoch-0 surgery is over before the first checkpoint: nothing to warn of.
    SurgeryListener beforeTraining = blurAt(0);
    train(beforeTraining, 2, beforeTraining, new SaveModelTrainingListener(dir.toString(), "b", 1));
    assertEquals(
        0,
        count(beforeTraining.getWarnings(), ORDER_WARNING),
        beforeTraining.getWarnings().toString());
  }

  /**
   * A repeating entry ({@code every: 1ep}) runs at every epoch end, so each checkpoint saved after
   * it would hold the changed model: warned of once, as an entry at an epoch is.
   */
  @Test
  void aRepeatingEpochEntryBeforeASaveListenerIsWarnedOfOnce() throws Exception {
    TestAlgorithms.ensureRegistered();
    SurgeryListener everyEpoch =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse(
                "algorithms:\n  - {name: " + TestAlgorithms.LOG + ", every: 1ep}\n", "every.yaml"));
    train(everyEpoch, 2, everyEpoch, new SaveModelTrainingListener(dir.toString(), "e", 1));
    assertEquals(
        1, count(everyEpoch.getWarnings(), ORDER_WARNING), everyEpoch.getWarnings().toString());
  }

  /**
   * A reviewer: an event-driven entry that never runs at an epoch end (a per-batch average of the
   * weights) was warned of too. Only one whose events include the epoch end is.
   */
  @Test
  void anEventDrivenEntryIsWarnedOfOnlyWhenItMayRunAtAnEpochEnd() throws Exception {
    EventRecorder.MARKS.clear(); // registers the event-driven test algorithms
    SurgeryListener perBatch = eventDriven("t_ev_mark");
    train(perBatch, 1, perBatch, new SaveModelTrainingListener(dir.toString(), "c", 1));
    assertEquals(
        0, count(perBatch.getWarnings(), ORDER_WARNING), perBatch.getWarnings().toString());
    SurgeryListener everyEvent = eventDriven("t_ev_rec");
    train(everyEvent, 1, everyEvent, new SaveModelTrainingListener(dir.toString(), "d", 1));
    assertEquals(
        1, count(everyEvent.getWarnings(), ORDER_WARNING), everyEvent.getWarnings().toString());
  }

  @Test
  void anEntryWhoseEpochEndAnEarlierListenerStoppedNamesTheEpochsThatRan() throws Exception {
    SurgeryListener listener = blurAt(2);
    // Stops training in its onEpoch at the end of epoch 2, before the surgery listener hears it.
    EarlyStoppingListener stop =
        EarlyStoppingListener.builder().optMinEpochs(2).optMaxMillis(0).build();
    EarlyStoppedException stopped =
        assertThrows(
            EarlyStoppedException.class,
            () -> train(listener, 3, new EpochTrainingListener(), stop, listener));
    assertEquals(2, stopped.getStopEpoch());
    List<String> warnings = listener.getWarnings();
    assertEquals(1, warnings.size(), warnings.toString());
    assertTrue(
        warnings
            .get(0)
            .endsWith(
                "never ran: training ended after 1 completed epoch and all 4 batches of epoch"
                    + " 2, whose end (onEpoch) did not reach this listener: a listener before it in"
                    + " the trainer's list stopped training in its own onEpoch (as DJL's"
                    + " EarlyStoppingListener does)"),
        warnings.get(0));
  }

  private static SurgeryListener eventDriven(String algorithm) {
    return SurgeryListener.fromConfig(
        SurgeryConfig.parse("algorithms:\n  - {name: " + algorithm + "}\n", "order.yaml"),
        SurgeryTrain.EVENTS);
  }

  private static SurgeryListener blurAt(int epoch) {
    return SurgeryListener.builder()
        .add(BlurPool.builder().optMinChannels(1).optReplaceMaxpools(false).build(), epoch)
        .build();
  }

  private static void train(SurgeryListener surgery, int epochs, TrainingListener... listeners)
      throws Exception {
    try (Model model = TestModels.model("order");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listeners))) {
      trainer.initialize(INPUT);
      surgery.onInitialized(trainer);
      EasyTrain.fit(trainer, epochs, TestModels.dataset(data, 3), null);
    }
  }

  private static long count(List<String> warnings, String prefix) {
    return warnings.stream().filter(w -> w.startsWith(prefix)).count();
  }
}
