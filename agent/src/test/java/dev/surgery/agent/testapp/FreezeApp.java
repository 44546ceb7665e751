package dev.surgery.agent.testapp;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;

/**
 * A DJL program that knows nothing of DJL Surgery: five {@code Linear} layers trained for three
 * epochs, with {@link EasyTrain#fit} or (with {@code --own-loop}) with its own loop that never says
 * how many epochs it trains. At the first batch of each epoch it prints how many of its layers are
 * frozen, so the agent tests can follow a layer-freezing schedule.
 */
public final class FreezeApp {

  private static final int EPOCHS = 3;

  private FreezeApp() {}

  /**
   * Runs the program.
   *
   * @param args {@code --own-loop} to train without {@code EasyTrain.fit}
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    boolean ownLoop = args.length > 0 && args[0].equals("--own-loop");
    System.out.println(CnnApp.MARKER);
    try (Model model = Model.newInstance("freeze-app");
        NDManager data = NDManager.newBaseManager()) {
      SequentialBlock net = new SequentialBlock();
      for (int i = 0; i < 4; i++) {
        net.add(Linear.builder().setUnits(8).build()).add(Activation.reluBlock());
      }
      net.add(Linear.builder().setUnits(4).build());
      model.setBlock(net);
      // Seeded before the weights are drawn: four small ReLU layers drawn at random could start
      // with every unit dead, and DJL's first step then refuses all-zero gradients.
      data.getEngine().setRandomSeed(5);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).build())
              .addTrainingListeners(new FrozenPrinter(net));
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(8, 6));
        ArrayDataset dataset = dataset(data);
        if (ownLoop) {
          for (int epoch = 0; epoch < EPOCHS; epoch++) {
            for (Batch batch : trainer.iterateDataset(dataset)) {
              EasyTrain.trainBatch(trainer, batch);
              trainer.step();
              batch.close();
            }
            trainer.notifyListeners(l -> l.onEpoch(trainer));
          }
        } else {
          EasyTrain.fit(trainer, EPOCHS, dataset, null);
        }
      }
      System.out.println("FREEZEAPP: frozen layers after training " + frozen(net));
    }
    System.out.println("FREEZEAPP: done");
  }

  /** The number of {@code Linear} layers whose weight no longer takes gradients. */
  static int frozen(Block net) {
    int n = 0;
    for (Pair<String, Block> child : net.getChildren()) {
      if (child.getValue() instanceof Linear l
          && !l.getParameters().get("weight").requiresGradient()) {
        n++;
      }
    }
    return n;
  }

  private static ArrayDataset dataset(NDManager data) {
    data.getEngine().setRandomSeed(5);
    int n = 32;
    NDArray labels = data.arange(n).toType(DataType.INT32, false).mod(4);
    NDArray x =
        data.randomNormal(new Shape(n, 6))
            .add(labels.toType(DataType.FLOAT32, false).reshape(n, 1));
    return new ArrayDataset.Builder()
        .setData(x)
        .optLabels(labels.toType(DataType.FLOAT32, false))
        .setSampling(8, true)
        .build();
  }

  /** Prints the frozen layers at the first batch of each epoch. */
  private static final class FrozenPrinter extends TrainingListenerAdapter {
    private final Block net;
    private int epoch;
    private boolean printed;

    FrozenPrinter(Block net) {
      this.net = net;
    }

    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
      if (!printed) {
        printed = true;
        System.out.println(
            "FREEZEAPP: epoch " + (epoch + 1) + " trains with frozen " + frozen(net));
      }
    }

    @Override
    public void onEpoch(Trainer trainer) {
      epoch++;
      printed = false;
    }
  }
}
