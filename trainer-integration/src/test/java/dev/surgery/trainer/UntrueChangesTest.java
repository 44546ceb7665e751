package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
import org.junit.jupiter.api.Test;

/**
 * A plugin that changes the model but returns no SurgeryChanges, or another algorithm's: its change
 * cannot be recorded truly (a checkpoint would replay nothing, or the other algorithm), so it is a
 * failure after a change, which stops training even under on_error: skip. It was recorded as
 * returned: the first checkpoint loaded into the original architecture silently.
 */
class UntrueChangesTest {

  /** Blurs the model and returns nothing, or blurpool's changes under its own name. */
  private static Algorithm blurring(String name, boolean returnsChanges) {
    return TestAlgorithms.applying(
        name,
        context -> {
          SurgeryChanges blurred = BlurPool.builder().optMinChannels(0).build().apply(context);
          return returnsChanges ? blurred : null;
        });
  }

  @Test
  void aChangeReportedAsNothingOrAsAnotherAlgorithmStopsTrainingEvenUnderSkip() throws Exception {
    for (boolean returnsChanges : new boolean[] {false, true}) {
      SurgeryListener listener =
          SurgeryListener.builder()
              .add(blurring("t_untrue", returnsChanges), 1)
              .optOnError(OnError.SKIP)
              .build();
      try (Model model = TestModels.model("untrue");
          NDManager data = NDManager.newBaseManager();
          Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        SurgeryFailedException e =
            assertThrows(
                SurgeryFailedException.class,
                () -> EasyTrain.fit(trainer, 2, TestModels.dataset(data, 3), null));
        String m = e.getMessage();
        assertTrue(
            m.contains(
                returnsChanges
                    ? "returned the SurgeryChanges of 'blurpool'"
                    : "returned no SurgeryChanges"),
            m);
        assertTrue(m.contains("failed after it had changed the model"), m);
        assertEquals(
            SurgeryOutcome.Status.FAILED,
            listener.getOutcomes().get(0).status(),
            listener.getOutcomes().toString());
        assertEquals(null, model.getProperty(SurgeryListener.PROPERTY), "nothing recorded");
      }
    }
  }
}
