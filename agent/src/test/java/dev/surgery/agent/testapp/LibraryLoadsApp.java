package dev.surgery.agent.testapp;

import ai.djl.Model;
import dev.surgery.trainer.SurgeryCheckpoint;
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
 *   <li>{@code checkpoint-load-twice}: {@code SurgeryCheckpoint.load}, then {@code Model.load}.
 * </ul>
 */
public final class LibraryLoadsApp {

  private LibraryLoadsApp() {}

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
        default -> throw new IllegalArgumentException("unknown mode " + args[0]);
      }
      CheckpointApp.printOutput(model);
    }
  }
}
