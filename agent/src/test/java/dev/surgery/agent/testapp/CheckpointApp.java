package dev.surgery.agent.testapp;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * An ordinary DJL program that saves and resumes a checkpoint with plain {@code Model.save} and
 * {@code Model.load} (it knows nothing of DJL Surgery). {@code train <dir>} trains the test CNN for
 * two epochs and saves it; {@code load <dir>} builds the original architecture again and loads the
 * checkpoint; {@code load-failing <dir>} loads, survives a failure and prints what the model then
 * is. All print the model's structure; the first two its output on a fixed input. {@code train
 * <dir> new-block} gives the model a new original block after training and saves that one,
 * untrained (one {@code Model} per search, a new block per trial).
 */
public final class CheckpointApp {

  private CheckpointApp() {}

  /**
   * Runs the program.
   *
   * @param args {@code train} or {@code load}, then the model directory
   * @throws Exception when training, saving or loading fails
   */
  public static void main(String[] args) throws Exception {
    System.out.println(CnnApp.MARKER);
    Path dir = Path.of(args[1]);
    try (Model model = Model.newInstance("cnn-checkpoint")) {
      model.setBlock(CnnApp.network());
      if (args[0].equals("train")) {
        // Seeded before the initialization: unseeded, a rare start left every ReLU dead after
        // training, so the output was the bias alone and no load could tell two models apart.
        ai.djl.engine.Engine.getInstance().setRandomSeed(5);
        try (NDManager data = NDManager.newBaseManager()) {
          DefaultTrainingConfig config =
              new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                  .optOptimizer(
                      Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).build())
                  .addTrainingListeners(TrainingListener.Defaults.basic());
          try (Trainer trainer = model.newTrainer(config)) {
            trainer.initialize(new Shape(8, 3, 16, 16));
            EasyTrain.fit(trainer, 2, CnnApp.dataset(data), null);
          }
        }
        if (args.length > 2 && args[2].equals("new-block")) {
          // One Model per search, a new block per trial: this trial's block is saved untrained.
          model.setBlock(CnnApp.network());
          model
              .getBlock()
              .initialize(model.getNDManager(), DataType.FLOAT32, new Shape(8, 3, 16, 16));
          printOutput(model);
        }
        model.save(dir, "cnn");
      } else if (args[0].equals("load-failing")) {
        // A program that survives a failed load (a truncated file) and goes on with the model;
        // with "init", a model it initialized first, whose own arrays must survive the failure.
        boolean init = args.length > 2 && args[2].equals("init");
        java.util.List<NDArray> own = new java.util.ArrayList<>();
        if (init) {
          model
              .getBlock()
              .initialize(model.getNDManager(), DataType.FLOAT32, new Shape(2, 3, 16, 16));
          model.getBlock().getParameters().values().forEach(p -> own.add(p.getArray()));
        }
        try {
          model.load(dir, "cnn");
          System.out.println("CKPT: loaded");
        } catch (IOException | MalformedModelException e) {
          System.out.println("CKPT: failed " + e);
        }
        if (init) {
          java.util.List<NDArray> now = new java.util.ArrayList<>();
          model.getBlock().getParameters().values().forEach(p -> now.add(p.getArray()));
          boolean same = own.size() == now.size();
          for (int i = 0; same && i < own.size(); i++) {
            same = own.get(i) == now.get(i) && !now.get(i).isReleased();
          }
          System.out.println("CKPT: own arrays " + same);
          return;
        }
        long initialized =
            model.getBlock().getParameters().values().stream()
                .filter(p -> p.isInitialized())
                .count();
        System.out.println("CKPT: initialized " + initialized);
        System.out.println("CKPT: property " + model.getProperty("surgery"));
        System.out.println("CKPT: structure " + CnnApp.structure(model.getBlock()));
        return;
      } else {
        model.load(dir, "cnn");
      }
      printOutput(model);
    }
  }

  /** Prints the model's structure and its output on a fixed input. */
  static void printOutput(Model model) {
    System.out.println("CKPT: structure " + CnnApp.structure(model.getBlock()));
    try (NDManager m = model.getNDManager().newSubManager()) {
      // A ramp, not a constant: blurring a constant map changes only its border.
      NDArray x =
          m.arange(2 * 3 * 16 * 16)
              .reshape(2, 3, 16, 16)
              .toType(DataType.FLOAT32, false)
              .div(2 * 3 * 16 * 16);
      NDArray y =
          model
              .getBlock()
              .forward(new ParameterStore(m, false), new NDList(x), false)
              .singletonOrThrow();
      System.out.println("CKPT: output " + Arrays.toString(y.toFloatArray()));
    }
  }
}
