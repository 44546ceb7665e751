package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyModels;
import org.junit.jupiter.api.Test;

/** The build's first end-to-end check: DJL trains offline on the CPU engine and the loss falls. */
class TrainingSmokeTest {

  @Test
  void smallCnnLearnsGeneratedData() throws Exception {
    SequentialBlock net = TinyModels.cnn(8);

    try (Model model = Model.newInstance("smoke");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      data.getEngine().setRandomSeed(7);
      // Four classes, each a distinct constant brightness pattern plus noise: learnable in two
      // epochs.
      ArrayDataset dataset = TinyData.images(data, 128, 3, 8, 16);

      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(16, 3, 8, 8));
        float before = TinyData.meanLoss(trainer, dataset);
        EasyTrain.fit(trainer, 2, dataset, null);
        float after = TinyData.meanLoss(trainer, dataset);
        assertTrue(Float.isFinite(after), "loss must stay finite");
        assertTrue(
            after < 0.8f * before,
            "training loss should fall: before " + before + ", after " + after);
      }
    }
  }
}
