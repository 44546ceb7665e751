package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
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
import ai.djl.training.dataset.Batch;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import org.junit.jupiter.api.Test;

/** The build's first end-to-end check: DJL trains offline on the CPU engine and the loss falls. */
class TrainingSmokeTest {

  @Test
  void smallCnnLearnsGeneratedData() throws Exception {
    SequentialBlock net =
        new SequentialBlock()
            .add(
                Conv2d.builder()
                    .setKernelShape(new Shape(3, 3))
                    .optPadding(new Shape(1, 1))
                    .setFilters(8)
                    .build())
            .add(BatchNorm.builder().build())
            .add(Activation.reluBlock())
            .add(
                Conv2d.builder()
                    .setKernelShape(new Shape(3, 3))
                    .optStride(new Shape(2, 2))
                    .optPadding(new Shape(1, 1))
                    .setFilters(16)
                    .build())
            .add(Pool.maxPool2dBlock(new Shape(2, 2)))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(4).build());

    try (Model model = Model.newInstance("smoke");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      data.getEngine().setRandomSeed(7);
      // Four classes, each a distinct constant brightness pattern plus noise: learnable in two
      // epochs.
      int n = 128;
      NDArray labels = data.arange(n).toType(ai.djl.ndarray.types.DataType.INT32, false).mod(4);
      NDArray means =
          labels.toType(ai.djl.ndarray.types.DataType.FLOAT32, false).reshape(n, 1, 1, 1);
      NDArray images = data.randomNormal(new Shape(n, 3, 8, 8)).mul(0.3f).add(means.sub(1.5f));
      ArrayDataset dataset =
          new ArrayDataset.Builder()
              .setData(images)
              .optLabels(labels.toType(ai.djl.ndarray.types.DataType.FLOAT32, false))
              .setSampling(16, true)
              .build();

      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(16, 3, 8, 8));
        float before = meanLoss(trainer, dataset);
        EasyTrain.fit(trainer, 2, dataset, null);
        float after = meanLoss(trainer, dataset);
        assertTrue(Float.isFinite(after), "loss must stay finite");
        assertTrue(
            after < 0.8f * before,
            "training loss should fall: before " + before + ", after " + after);
      }
    }
  }

  /**
   * Mean loss over the whole dataset, in evaluation mode, so it measures the model and not the last
   * batch.
   */
  static float meanLoss(Trainer trainer, ArrayDataset dataset) throws Exception {
    float sum = 0;
    int batches = 0;
    for (Batch batch : trainer.iterateDataset(dataset)) {
      try (batch) {
        NDList predictions = trainer.evaluate(batch.getData());
        sum += trainer.getLoss().evaluate(batch.getLabels(), predictions).getFloat();
        batches++;
      }
    }
    return sum / batches;
  }
}
