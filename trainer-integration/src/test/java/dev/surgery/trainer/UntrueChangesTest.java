package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.trainer.config.OnError;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A plugin that changes the model but returns no SurgeryChanges: its change cannot be recorded (a
 * checkpoint would replay nothing and load into the original architecture silently), so it is a
 * failure after a change, which stops training even under on_error: skip. One that returns the
 * changes of a built-in it delegates to is recorded under its own name, and trains on.
 */
class UntrueChangesTest {

  /** Blurs the model and returns nothing, or blurpool's changes. */
  private static Algorithm blurring(String name, boolean returnsChanges) {
    return TestAlgorithms.applying(
        name,
        context -> {
          SurgeryChanges blurred = BlurPool.builder().optMinChannels(0).build().apply(context);
          return returnsChanges ? blurred : null;
        });
  }

  private static SurgeryListener skipping(Algorithm algorithm) {
    return SurgeryListener.builder().add(algorithm, 1).optOnError(OnError.SKIP).build();
  }

  @Test
  void aChangeReportedAsNothingStopsTrainingEvenUnderSkip() throws Exception {
    SurgeryListener listener = skipping(blurring("t_untrue", false));
    try (Model model = TestModels.model("untrue");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryFailedException e =
          assertThrows(
              SurgeryFailedException.class,
              () -> EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null));
      assertTrue(e.getMessage().contains("returned no SurgeryChanges"), e.getMessage());
      assertTrue(e.getMessage().contains("failed after it had changed the model"), e.getMessage());
      assertEquals(SurgeryOutcome.Status.FAILED, listener.getOutcomes().get(0).status());
      assertNull(model.getProperty(SurgeryListener.PROPERTY), "nothing recorded");
    }
  }

  @Test
  void aBuiltInsChangesReturnedByADelegatingPluginAreRecordedUnderItsName() throws Exception {
    SurgeryListener listener = skipping(blurring("t_delegating", true));
    try (Model model = TestModels.model("delegating");
        NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
      assertEquals(SurgeryOutcome.Status.APPLIED, listener.getOutcomes().get(0).status());
      List<SurgeryRecord> records =
          SurgeryJson.recordsFromJson(model.getProperty(SurgeryListener.PROPERTY));
      assertEquals("t_delegating", records.get(0).algorithm(), records.toString());
    }
  }
}
