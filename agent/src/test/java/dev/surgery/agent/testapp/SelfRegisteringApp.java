package dev.surgery.agent.testapp;

import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import dev.surgery.trainer.SurgeryListener;
import java.nio.file.Path;
import java.util.List;

/**
 * A program that uses DJL Surgery as a library and registers {@link SurgeryListener} itself; under
 * the agent its trainers must still have exactly one. Argument 0 is the YAML config; the rest go to
 * {@link CnnApp}.
 */
public final class SelfRegisteringApp {

  private SelfRegisteringApp() {}

  /**
   * Runs the program.
   *
   * @param args the config path, then {@link CnnApp} options
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    System.out.println(CnnApp.MARKER);
    SurgeryListener own = SurgeryListener.fromYaml(Path.of(args[0]));
    String[] rest = java.util.Arrays.copyOfRange(args, 1, args.length);
    List<Trainer> trainers = CnnApp.run(rest, List.of(own));
    for (Trainer trainer : trainers) {
      long count = 0;
      // The trainer is closed, but its listener list is still readable.
      for (TrainingListener l : dev.surgery.core.internal.DjlTrainers.listeners(trainer)) {
        if (l.getClass().getName().equals(SurgeryListener.class.getName())) {
          count++;
        }
      }
      System.out.println("SELFREG: surgery listeners on trainer = " + count);
    }
  }
}
