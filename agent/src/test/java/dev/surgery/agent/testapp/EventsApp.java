package dev.surgery.agent.testapp;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;

/**
 * A DJL program that knows nothing of DJL Surgery, training the test CNN ({@link CnnApp}) with Adam
 * on 32 generated images in batches of 8 (4 batches per epoch), either with {@code EasyTrain.fit}
 * ({@code fit}) or with a hand-written loop ({@code loop}: {@code newGradientCollector}, {@code
 * forward(NDList)}, {@code backward}, {@code step}, {@code evaluate} over the validation data,
 * {@code onEpoch}). Arguments: the mode, the number of epochs, and {@code validation} to evaluate
 * after every epoch.
 */
public final class EventsApp {

  /** The first line the program prints: its absence proves that {@code main} never ran. */
  public static final String MARKER = "EVENTSAPP: main started";

  private EventsApp() {}

  /**
   * Runs the program.
   *
   * @param args mode ({@code fit} or {@code loop}), epochs, optionally {@code validation}
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    System.out.println(MARKER);
    String mode = args[0];
    int epochs = Integer.parseInt(args[1]);
    boolean validation = args.length > 2 && args[2].equals("validation");
    try (Model model = Model.newInstance("events-app");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(CnnApp.network());
      ArrayDataset dataset = CnnApp.dataset(data);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(8, 3, 16, 16));
        if (mode.equals("fit")) {
          EasyTrain.fit(trainer, epochs, dataset, validation ? dataset : null);
        } else {
          for (int epoch = 0; epoch < epochs; epoch++) {
            for (Batch batch : trainer.iterateDataset(dataset)) {
              try (GradientCollector collector = trainer.newGradientCollector()) {
                NDList predictions = trainer.forward(batch.getData());
                NDArray loss = trainer.getLoss().evaluate(batch.getLabels(), predictions);
                collector.backward(loss);
              }
              trainer.step();
              batch.close();
            }
            if (validation) {
              for (Batch batch : trainer.iterateDataset(dataset)) {
                trainer.evaluate(batch.getData());
                batch.close();
              }
            }
            trainer.notifyListeners(listener -> listener.onEpoch(trainer));
          }
        }
      }
      System.out.println("EVENTSAPP: structure " + CnnApp.structure(model.getBlock()));
    }
    System.out.println("EVENTSAPP: done");
  }
}
