package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.algorithms.BlurPool;
import java.lang.ref.WeakReference;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A long search whose trials leave their trainers unclosed: the listener held each such trainer's
 * state, and with it that trial's model, for the life of the JVM (DJL's finalizer does call {@code
 * close()}, but the listener had lost the trainer's weak key by then), and its log went on listing
 * the trial as training. Collected, the trainer's training now ends: its open entries are listed
 * once, and its model is let go.
 */
class DroppedTrainerTest {

  @Test
  void aTrainerCollectedUnclosedEndsAndItsModelIsLetGo() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(BlurPool.builder().build(), 3).optTotalEpochs(3).build();
    WeakReference<Block> trialBlock;
    WeakReference<Trainer> trialTrainer;
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 3);
      Object[] trial = trainOneEpochUnclosed(listener, dataset);
      trialBlock = new WeakReference<>((Block) trial[0]);
      trialTrainer = new WeakReference<>((Trainer) trial[1]);
      trial = null;
      for (int i = 0; i < 100 && trialTrainer.get() != null; i++) {
        System.gc();
        Thread.sleep(10);
      }
      assertNull(trialTrainer.get(), "the unclosed trainer was collected");

      // The next trial's trainer ends the collected one's training.
      try (Model next = TestModels.model("next");
          Trainer trainer = next.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        List<String> warnings = listener.getWarnings();
        assertEquals(
            1,
            warnings.stream()
                .filter(w -> w.contains("was dropped without close() and collected"))
                .count(),
            warnings.toString());
        assertTrue(
            warnings.stream().anyMatch(w -> w.contains("after 1 completed epoch")),
            warnings.toString());
      }
      for (int i = 0; i < 100 && trialBlock.get() != null; i++) {
        System.gc();
        Thread.sleep(10);
      }
      assertNull(trialBlock.get(), "the listener let go of the dropped trial's model");
    }
  }

  /**
   * A trainer collected unclosed that no later trainer ended is still there at the program's end:
   * listed as cut short, as a trainer never closed is (a first fix ended it there as dropped, and
   * the log lost its cut-short mark).
   */
  @Test
  void aTrainerCollectedUnclosedAtTheProgramsEndIsCutShort() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(BlurPool.builder().build(), 3).optTotalEpochs(3).build();
    try (NDManager data = NDManager.newBaseManager()) {
      WeakReference<Trainer> trialTrainer =
          new WeakReference<>(
              (Trainer) trainOneEpochUnclosed(listener, TestModels.dataset(data, 3))[1]);
      for (int i = 0; i < 100 && trialTrainer.get() != null; i++) {
        System.gc();
        Thread.sleep(10);
      }
      assertNull(trialTrainer.get(), "the unclosed trainer was collected");
      assertTrue(listener.onProgramEnd(), "the program's end cut the trainer's training short");
      List<String> warnings = listener.getWarnings();
      assertTrue(
          warnings.stream().anyMatch(w -> w.contains("the program began to end")),
          warnings.toString());
      assertTrue(
          warnings.stream().noneMatch(w -> w.contains("was dropped without close()")),
          warnings.toString());
    }
  }

  /** A trial that trains one epoch of three and leaves its model and trainer unclosed. */
  private static Object[] trainOneEpochUnclosed(SurgeryListener listener, ArrayDataset dataset)
      throws Exception {
    Model model = TestModels.model("unclosed");
    Trainer trainer = model.newTrainer(TestModels.config(listener));
    trainer.initialize(INPUT);
    EasyTrain.fit(trainer, 1, dataset, null);
    return new Object[] {model.getBlock(), trainer};
  }
}
