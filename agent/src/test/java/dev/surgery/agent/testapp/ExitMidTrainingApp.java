package dev.surgery.agent.testapp;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;

/**
 * A plain DJL program that trains the test CNN for one epoch with {@link EasyTrain#fit} and then,
 * by its one argument: {@code exit} calls {@code System.exit(3)} with the trainer still open,
 * {@code throw} dies of an uncaught exception without closing the trainer, {@code close} closes the
 * trainer and returns normally.
 */
public final class ExitMidTrainingApp {

  /** The exit status of the {@code exit} mode. */
  public static final int EXIT_STATUS = 3;

  private ExitMidTrainingApp() {}

  /**
   * Runs the program.
   *
   * @param args {@code exit}, {@code throw} or {@code close}
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    String mode = args[0];
    try (Model model = Model.newInstance("exit-app");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(CnnApp.network());
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).build());
      Trainer trainer = model.newTrainer(config);
      trainer.initialize(new Shape(8, 3, 16, 16));
      EasyTrain.fit(trainer, 1, CnnApp.dataset(data), null);
      System.out.println("EXITAPP: trained 1 epoch, now " + mode);
      switch (mode) {
        case "exit" -> System.exit(EXIT_STATUS);
        case "throw" -> throw new IllegalStateException("EXITAPP-OWN-FAILURE");
        case "close" -> trainer.close();
        default -> throw new IllegalArgumentException("unknown mode " + mode);
      }
    }
    System.out.println("EXITAPP: done");
  }
}
