package dev.surgery.samples;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;

/**
 * A tiny CNN trained for two epochs on generated data with DJL's own progress bar and logging. It
 * knows nothing of DJL Surgery; it is the smallest program the agent can be attached to.
 */
public final class QuickStartJob {

  private QuickStartJob() {}

  /**
   * Trains the job and prints the final block tree.
   *
   * @param args ignored
   * @throws Exception if DJL fails to train
   */
  public static void main(String[] args) throws Exception {
    SequentialBlock net =
        new SequentialBlock()
            .add(conv(16, 1))
            .add(BatchNorm.builder().build())
            .add(Activation.reluBlock())
            .add(conv(32, 2))
            .add(Pool.maxPool2dBlock(new Shape(2, 2)))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(4).build());
    try (Model model = Model.newInstance("quickstart");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      data.getEngine().setRandomSeed(42);
      int n = 512;
      NDArray labels = data.arange(n).toType(DataType.FLOAT32, false).mod(4);
      NDArray images =
          data.randomNormal(new Shape(n, 3, 16, 16)).mul(0.3f).add(labels.reshape(n, 1, 1, 1));
      ArrayDataset dataset =
          new ArrayDataset.Builder()
              .setData(images)
              .optLabels(labels)
              .setSampling(32, true)
              .build();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build())
              .addTrainingListeners(TrainingListener.Defaults.logging());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(32, 3, 16, 16));
        EasyTrain.fit(trainer, 2, dataset, null);
      }
      System.out.println(model.getBlock());
    }
  }

  private static Conv2d conv(int filters, int stride) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optStride(new Shape(stride, stride))
        .optPadding(new Shape(1, 1))
        .setFilters(filters)
        .build();
  }
}
