package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * Loops that accumulate gradients over several batches per optimizer step and let a window run
 * across an epoch end. An outside probe found two things silent: a surgery due at such an epoch end
 * meets gradients no step took yet, and an {@code at: "1.0dur"} entry ran a step before the end,
 * its length estimated from the first epoch's steps. The listener now says both, and nothing when
 * the loop stepped before the epoch ended.
 */
class GradientAccumulationTest {

  private static final int BATCHES_PER_STEP = 3; // the data has 4 batches per epoch

  @Test
  void aSurgeryInsideAnOpenAccumulationWindowIsWarnedOf() throws Exception {
    SurgeryListener listener = blurAtEpoch1();
    long trainable = train(listener, false);
    List<String> warnings = listener.getWarnings();
    assertEquals(
        List.of(
            "Surgery: blurpool at epoch 1 (builder entry 1) runs with gradients pending on "
                + trainable
                + " of "
                + trainable
                + " trainable parameters (a backward pass since the last trainer.step(), such as"
                + " a gradient-accumulation window open across the epoch end): parameters it keeps"
                + " keep theirs, parameters it replaces lose theirs and new ones start without, so"
                + " the next step mixes gradients of the model before and after the surgery. Step"
                + " (or zero the gradients) before the epoch ends, or schedule the entry by step"),
        warnings);
    assertEquals(1, listener.getOutcomes().size(), "the surgery itself still runs, as scheduled");
  }

  @Test
  void aLoopThatStepsBeforeTheEpochEndsIsNotWarnedOf() throws Exception {
    SurgeryListener listener = blurAtEpoch1();
    train(listener, true);
    assertEquals(List.of(), listener.getWarnings());
    assertEquals(1, listener.getOutcomes().size());
  }

  /**
   * Three epochs of 4 batches, a step every 3: 1, 1 and 2 steps. From the first epoch the listener
   * plans 3 steps, so "1.0dur" runs at step 3; step 4 then says so.
   */
  @Test
  void aDurationEntryThatRanBeforeTheRealEndIsWarnedOfWhenTrainingGoesPastIt() throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse(
                "algorithms:\n"
                    + "  - {name: blurpool, at: 1.0dur, min_channels: 1, replace_maxpools: false}\n"
                    + "total_epochs: 3\n",
                "accumulate.yaml"),
            SurgeryTrain.EVENTS);
    try (Model model = TestModels.model("accumulate-dur");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      listener.onEvent(Event.INIT, trainer);
      listener.onEvent(Event.FIT_START, trainer);
      ArrayDataset dataset = TestModels.dataset(data, 5);
      int batches = 0;
      for (int epoch = 0; epoch < 3; epoch++) {
        listener.onEvent(Event.EPOCH_START, trainer);
        for (Batch batch : trainer.iterateDataset(dataset)) {
          try (batch;
              GradientCollector collector = trainer.newGradientCollector()) {
            listener.onEvent(Event.BATCH_START, trainer);
            NDList predictions = trainer.forward(batch.getData(), batch.getLabels());
            NDArray loss = trainer.getLoss().evaluate(batch.getLabels(), predictions);
            listener.onEvent(Event.AFTER_FORWARD, trainer);
            collector.backward(loss);
            listener.onEvent(Event.AFTER_BACKWARD, trainer);
          }
          if (++batches % BATCHES_PER_STEP == 0) {
            trainer.step();
            listener.onEvent(Event.BATCH_END, trainer);
          }
        }
        listener.onEvent(Event.EPOCH_END, trainer);
      }
      listener.onEvent(Event.FIT_END, trainer);
    }
    assertEquals(
        List.of(3L),
        listener.getOutcomes().stream().map(SurgeryOutcome::step).collect(Collectors.toList()));
    List<String> warnings = listener.getWarnings();
    assertEquals(1, warnings.size(), warnings.toString());
    assertTrue(
        warnings
            .get(0)
            .startsWith(
                "Surgery: step 4 ran, past the 3 optimizer steps training was planned at (3"
                    + " epochs times 1, the batches per epoch as the data or the first epoch"
                    + " told), so blurpool at 1.0dur (accumulate.yaml:2:5) ran earlier"),
        warnings.get(0));
  }

  private static SurgeryListener blurAtEpoch1() {
    return SurgeryListener.builder()
        .add(BlurPool.builder().optMinChannels(1).optReplaceMaxpools(false).build(), 1)
        .build();
  }

  /**
   * Two epochs of a loop that steps every {@link #BATCHES_PER_STEP} batches and, with {@code
   * stepAtEpochEnd}, also at each epoch end; returns the number of trainable parameters.
   */
  private static long train(SurgeryListener listener, boolean stepAtEpochEnd) throws Exception {
    try (Model model = TestModels.model("accumulate");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      listener.onInitialized(trainer);
      long trainable =
          model.getBlock().getParameters().values().stream()
              .filter(Parameter::requiresGradient)
              .count();
      ArrayDataset dataset = TestModels.dataset(data, 5);
      int batches = 0;
      for (int epoch = 0; epoch < 2; epoch++) {
        for (Batch batch : trainer.iterateDataset(dataset)) {
          try (batch) {
            EasyTrain.trainBatch(trainer, batch);
            if (++batches % BATCHES_PER_STEP == 0) {
              trainer.step();
            }
          }
        }
        if (stepAtEpochEnd && batches % BATCHES_PER_STEP != 0) {
          trainer.step();
          batches = 0;
        }
        trainer.notifyListeners(l -> l.onEpoch(trainer));
      }
      return trainable;
    }
  }
}
