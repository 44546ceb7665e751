package dev.surgery.core.algorithms;

import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.ResNetV1;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
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
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/** Small models and a live-training harness for the algorithm tests. */
final class LiveTraining {

  private LiveTraining() {}

  /** Makes sure the built-ins are registered (Algorithms' static block does it). */
  static void registerBuiltins() {
    if (Algorithms.spec(WeightStandardization.NAME) == null) {
      throw new IllegalStateException("built-in algorithms are not registered");
    }
  }

  static Conv2d conv(int filters, int stride) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optPadding(new Shape(1, 1))
        .optStride(new Shape(stride, stride))
        .setFilters(filters)
        .build();
  }

  /** conv(8) BN relu conv(16, s2) BN relu conv(16) pool flatten linear(4): input (N, 3, 8, 8). */
  static SequentialBlock smallCnn() {
    return new SequentialBlock()
        .add(conv(8, 1))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(conv(16, 2))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(conv(16, 1))
        .add(Pool.globalAvgPool2dBlock())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  /** DJL's ResNet20 for 1x28x28 inputs and 4 classes. */
  static Block resNet20() {
    return ResNetV1.builder()
        .setImageShape(new Shape(1, 28, 28))
        .setNumLayers(20)
        .setOutSize(4)
        .build();
  }

  /** What a live run saw. */
  static final class Result {
    final List<SurgeryChanges> reports = new ArrayList<>();
    float lossBefore;
    float lossAfter;
  }

  /**
   * Trains {@code net} with Adam for {@code epochs} epochs on generated 4-class data; after each
   * completed epoch listed in {@code surgeryEpochs}, applies {@code algorithm} to the live model
   * and trainer. {@code afterSurgery} runs right after each application.
   */
  static Result fit(
      Block net,
      Shape sampleShape,
      int epochs,
      List<Integer> surgeryEpochs,
      Algorithm algorithm,
      Consumer<Trainer> afterSurgery)
      throws Exception {
    return fit(net, sampleShape, epochs, surgeryEpochs, algorithm, afterSurgery, t -> {});
  }

  /** Like the other {@code fit}, and runs {@code afterTraining} before the model closes. */
  static Result fit(
      Block net,
      Shape sampleShape,
      int epochs,
      List<Integer> surgeryEpochs,
      Algorithm algorithm,
      Consumer<Trainer> afterSurgery,
      Consumer<Trainer> afterTraining)
      throws Exception {
    Result result = new Result();
    try (Model model = Model.newInstance("live");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      Engine.getInstance().setRandomSeed(3);
      int n = 32;
      NDArray labels = data.arange(n).toType(DataType.INT32, false).mod(4);
      Shape full = new Shape(n).addAll(sampleShape);
      Shape means = new Shape(n).addAll(new Shape(1, 1, 1));
      NDArray images =
          data.randomNormal(full)
              .mul(0.3f)
              .add(labels.toType(DataType.FLOAT32, false).reshape(means).sub(1.5f));
      ArrayDataset dataset =
          new ArrayDataset.Builder()
              .setData(images)
              .optLabels(labels.toType(DataType.FLOAT32, false))
              .setSampling(16, false)
              .build();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
      int[] completed = {0};
      config.addTrainingListeners(
          new TrainingListenerAdapter() {
            @Override
            public void onEpoch(Trainer trainer) {
              completed[0]++;
              if (surgeryEpochs.contains(completed[0])) {
                result.reports.add(
                    algorithm.apply(
                        SurgeryContext.live(model.getBlock(), trainer, completed[0], epochs)));
                afterSurgery.accept(trainer);
              }
            }
          });
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(16).addAll(sampleShape));
        result.lossBefore = meanLoss(trainer, dataset);
        EasyTrain.fit(trainer, epochs, dataset, null);
        result.lossAfter = meanLoss(trainer, dataset);
        afterTraining.accept(trainer);
      }
    }
    return result;
  }

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
