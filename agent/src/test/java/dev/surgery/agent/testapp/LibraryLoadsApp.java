package dev.surgery.agent.testapp;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.trainer.SurgeryCheckpoint;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.SurgeryRecord;
import dev.surgery.trainer.config.SurgeryConfig;
import java.nio.file.Path;

/**
 * A program that uses DJL Surgery's checkpoint API itself, next to plain {@code Model.load}: run
 * under the agent, the model is changed by two copies of the library (the program's and the
 * agent's). Each mode loads {@link CheckpointApp}'s checkpoint of {@code <dir>} into one model
 * built with the original architecture, then prints what {@link CheckpointApp} prints:
 *
 * <ul>
 *   <li>{@code replay-then-load}: {@code SurgeryCheckpoint.replay}, then {@code Model.load} (the
 *       documented way for a {@code BlockFactory});
 *   <li>{@code load-twice}: {@code Model.load}, then {@code SurgeryCheckpoint.load} of the same
 *       file;
 *   <li>{@code checkpoint-load-twice}: {@code SurgeryCheckpoint.load}, then {@code Model.load};
 *   <li>{@code load-train-save}: {@code Model.load}, an epoch with the program's own listener,
 *       whose entry records a surgery, and {@code Model.save} next to {@code <dir>}; prints the
 *       saved file's record.
 * </ul>
 */
public final class LibraryLoadsApp {

  private LibraryLoadsApp() {}

  private static int epochOf(Model model) {
    String epoch = model.getProperty("Epoch");
    return epoch == null ? 0 : Integer.parseInt(epoch);
  }

  /**
   * Runs the program.
   *
   * @param args the mode, then the model directory
   * @throws Exception when a load fails
   */
  public static void main(String[] args) throws Exception {
    System.out.println(CnnApp.MARKER);
    Path dir = Path.of(args[1]);
    try (Model model = Model.newInstance("cnn-checkpoint")) {
      model.setBlock(CnnApp.network());
      switch (args[0]) {
        case "replay-then-load" -> {
          SurgeryCheckpoint.replay(model, dir.resolve("cnn-0002.params"));
          model.load(dir, "cnn");
        }
        case "load-twice" -> {
          model.load(dir, "cnn");
          SurgeryCheckpoint.load(model, dir, "cnn");
        }
        case "checkpoint-load-twice" -> {
          SurgeryCheckpoint.load(model, dir, "cnn");
          model.load(dir, "cnn");
        }
        case "load-train-save" -> {
          // Model.load (the agent's copy replays), then the program's own listener applies a
          // surgery and records it, then Model.save (the agent's save hook writes the record).
          model.load(dir, "cnn");
          SurgeryListener listener =
              SurgeryListener.fromConfig(
                  SurgeryConfig.parse(
                      "algorithms:\n  - {name: weight_standardization, epoch: 1}\n",
                      "program.yaml"));
          try (NDManager data = NDManager.newBaseManager();
              Trainer trainer =
                  model.newTrainer(
                      new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                          .optOptimizer(
                              Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).build())
                          .addTrainingListeners(listener))) {
            EasyTrain.fit(trainer, 1, CnnApp.dataset(data), null);
          }
          Path saved = dir.resolveSibling("resaved");
          model.save(saved, "cnn");
          // DJL numbers the file from the model's Epoch property, which the load brought.
          Path file = saved.resolve("cnn-" + String.format("%04d", epochOf(model)) + ".params");
          for (SurgeryRecord r : SurgeryCheckpoint.readRecord(file)) {
            System.out.println("LOADS: saved record " + r.algorithm() + "@" + r.epoch());
          }
          return;
        }
        default -> throw new IllegalArgumentException("unknown mode " + args[0]);
      }
      CheckpointApp.printOutput(model);
    }
  }
}
