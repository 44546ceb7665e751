package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.core.Linear;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine's reminder that a trainer which registered the old parameters must follow a surgery
 * made without one told a listener's user, after the listener's own epoch-0 surgery on a loaded
 * model, to pass the trainer (an outside tester): the model is initialized, but the listener's
 * trainer holds nothing before its first forward. The listener's surgery now gets a reminder of
 * other trainers only (a reviewer: one the listener does not serve may have trained the model); the
 * same surgery through the core API, where the engine cannot know, gets the usual one.
 */
class NoTrainerReminderTest {

  @TempDir Path dir;

  @Test
  void theListenersEpochZeroSurgeryOnALoadedModelIsRemindedOfOtherTrainersOnly() throws Exception {
    TestModels.saveInitialized(dir, "reminder");
    SurgeryListener listener = SurgeryListener.builder().add(TestModels.blurpool(), 0).build();
    long[] listenerLines = reminders(() -> trainLoaded(listener, false));
    assertEquals(0, listenerLines[0], "no advice to pass the trainer");
    assertEquals(1, listenerLines[1], "other trainers");
    // A reviewer: the listener's line used up the once-per-process INFO reminder, and a program
    // that then changed the trained model without its trainer was told nothing before the crash.
    long[] bothLines = reminders(() -> trainLoaded(listener, true));
    assertEquals(1, bothLines[1], "the listener's line");
    assertEquals(1, bothLines[0], "then the program's, at INFO too");
    long[] coreLines =
        reminders(
            () -> {
              try (Model model = TestModels.model("reminder")) {
                model.load(dir, "reminder");
                Algorithms.spec("blurpool")
                    .create(Map.of("min_channels", 0))
                    .apply(SurgeryContext.of(model.getBlock()));
              }
            });
    assertEquals(1, coreLines[0], "the control: the engine says it where it cannot know");
    assertEquals(0, coreLines[1]);
  }

  /**
   * Trains the saved model one epoch under the listener; {@code thenReplaceHead}: then replaces its
   * head through the core API without the trainer, as a program that forgot it would.
   */
  private void trainLoaded(SurgeryListener listener, boolean thenReplaceHead) throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("reminder")) {
      model.load(dir, "reminder");
      ArrayDataset dataset = TestModels.dataset(data, 4);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, dataset, null);
        if (thenReplaceHead) {
          ModuleSurgery.replaceModules(
              model.getBlock(),
              Map.of(
                  BlockMatcher.ofClass(Linear.class),
                  (block, index) -> Linear.builder().setUnits(4).build()),
              SurgeryOptions.defaults());
        }
      }
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
    }
  }

  /**
   * The reminder's INFO lines while {@code run} runs, its once-per-process flag reset first: {the
   * usual ones, those of other trainers}.
   */
  private static long[] reminders(Stderr.Run run) throws Exception {
    for (String flag : new String[] {"TRAINERLESS_REMINDED", "LISTENER_REMINDED"}) {
      java.lang.reflect.Field once = ModuleSurgery.class.getDeclaredField(flag);
      once.setAccessible(true);
      ((AtomicBoolean) once.get(null)).set(false);
    }
    String log = Stderr.of(run);
    return new long[] {
      log.lines().filter(l -> l.contains("without a trainer")).count(),
      log.lines()
          .filter(l -> l.contains("before the trainer's first step: another Trainer"))
          .count()
    };
  }
}
