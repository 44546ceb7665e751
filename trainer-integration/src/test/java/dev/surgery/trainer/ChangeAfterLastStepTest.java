package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * An outside probe ran DJL's EasyHpo example (TrainWithHpo) under a schedule whose {@code epoch:}
 * entry was the run's last epoch: the surgery ran after the last step and the last validation, and
 * the example saved the changed model with the accuracy of the model before it (0.09375 in the
 * file, 0.15625 measured on the saved model), without a word.
 */
class ChangeAfterLastStepTest {

  private static final String WARNING = "changed the model after its last training step";

  @Test
  void anEntryThatReplacesBlocksAtTheLastEpochEndIsWarnedOf() throws Exception {
    SurgeryListener last = blurAt(2);
    train(last, 2);
    List<String> warnings = last.getWarnings();
    assertEquals(1, count(warnings), warnings.toString());
    String w = warnings.stream().filter(s -> s.contains(WARNING)).findFirst().orElseThrow();
    assertTrue(w.startsWith("Surgery: blurpool at epoch 2 ("), w);
  }

  @Test
  void anEntryBeforeTheLastEpochEndOrOneThatOnlyFreezesIsNotWarnedOf() throws Exception {
    SurgeryListener earlier = blurAt(1);
    train(earlier, 2);
    assertEquals(0, count(earlier.getWarnings()), earlier.getWarnings().toString());

    SurgeryListener freezing =
        SurgeryListener.builder()
            .add(LayerFreezing.builder().optFreezeStart(0).build(), 2)
            .optTotalEpochs(2)
            .build();
    train(freezing, 2);
    assertEquals(0, count(freezing.getWarnings()), freezing.getWarnings().toString());
  }

  @Test
  void aStepEntryAtTheLastStepIsWarnedOfAndOneBeforeItIsNot() throws Exception {
    // 4 batches per epoch, 2 epochs: 8 optimizer steps.
    SurgeryListener last = stepEntry(8);
    trainWithEvents(last, 2);
    assertEquals(1, count(last.getWarnings()), last.getWarnings().toString());
    assertTrue(
        last.getWarnings().get(0).startsWith("Surgery: blurpool at step 8 (steps.yaml:2:5)"),
        last.getWarnings().toString());

    SurgeryListener before = stepEntry(7);
    trainWithEvents(before, 2);
    assertEquals(0, count(before.getWarnings()), before.getWarnings().toString());
  }

  private static SurgeryListener stepEntry(int step) {
    return SurgeryListener.fromConfig(
        SurgeryConfig.parse(
            "algorithms:\n  - name: blurpool\n    step: "
                + step
                + "\n    min_channels: 1\n    replace_maxpools: false\n",
            "steps.yaml"),
        SurgeryTrain.EVENTS);
  }

  private static void trainWithEvents(SurgeryListener surgery, int epochs) throws Exception {
    try (Model model = TestModels.model("steps");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(surgery))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, epochs, TestModels.dataset(data, 3), null);
    }
  }

  private static SurgeryListener blurAt(int epoch) {
    return SurgeryListener.builder()
        .add(BlurPool.builder().optMinChannels(1).optReplaceMaxpools(false).build(), epoch)
        .build();
  }

  private static void train(SurgeryListener surgery, int epochs) throws Exception {
    try (Model model = TestModels.model("last");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(surgery))) {
      trainer.initialize(INPUT);
      surgery.onInitialized(trainer);
      EasyTrain.fit(trainer, epochs, TestModels.dataset(data, 3), null);
    }
  }

  private static long count(List<String> warnings) {
    return warnings.stream().filter(w -> w.contains(WARNING)).count();
  }
}
