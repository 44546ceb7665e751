package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.loss.SimpleCompositeLoss;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * DJL's L2Loss on the PyTorch engine reads a freed operand when a garbage collection falls between
 * forward and backward ({@code GcSafeL2LossTest}): the listener warns once, at the first trainer
 * that trains with it, alone or inside a composite loss, and not for other losses.
 */
class L2LossWarningTest {

  private static final String WARNING = "the trainer's loss is DJL's L2Loss";

  @Test
  void djlsL2LossIsWarnedOfOncePerListener() {
    SurgeryListener listener = listener();
    trainerWith(listener, Loss.l2Loss());
    trainerWith(listener, Loss.l2Loss());
    assertEquals(1, count(listener.getWarnings()), listener.getWarnings().toString());
  }

  @Test
  void anL2LossInsideACompositeLossIsWarnedOf() {
    SurgeryListener listener = listener();
    trainerWith(
        listener,
        new SimpleCompositeLoss()
            .addLoss(Loss.softmaxCrossEntropyLoss())
            .addLoss(new SimpleCompositeLoss().addLoss(Loss.l2Loss())));
    assertEquals(1, count(listener.getWarnings()), listener.getWarnings().toString());
  }

  @Test
  void otherLossesAreNotWarnedOf() {
    SurgeryListener listener = listener();
    trainerWith(listener, Loss.softmaxCrossEntropyLoss());
    trainerWith(listener, new GcSafeL2Loss());
    trainerWith(listener, new SimpleCompositeLoss().addLoss(Loss.l1Loss()));
    assertEquals(0, count(listener.getWarnings()), listener.getWarnings().toString());
  }

  private static SurgeryListener listener() {
    return SurgeryListener.builder().add(BlurPool.builder().build(), 3).optTotalEpochs(3).build();
  }

  private static void trainerWith(SurgeryListener listener, Loss loss) {
    DefaultTrainingConfig base = TestModels.config(listener);
    DefaultTrainingConfig config =
        new DefaultTrainingConfig(loss)
            .optOptimizer(base.getOptimizer())
            .addTrainingListeners(listener);
    try (Model model = TestModels.model("l2-warning");
        Trainer trainer = model.newTrainer(config)) {
      trainer.initialize(TestModels.INPUT);
    }
  }

  private static long count(List<String> warnings) {
    return warnings.stream().filter(w -> w.contains(WARNING)).count();
  }
}
