package dev.surgery.samples.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.modality.cv.transform.ToTensor;
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
import ai.djl.training.dataset.Record;
import ai.djl.training.evaluator.Accuracy;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.Pipeline;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class SyntheticImagesTest {

  private static SyntheticImages.Builder images(long seed, long size) {
    return SyntheticImages.builder().optSeed(seed).optSize(size).setSampling(32, true);
  }

  @Test
  void sameSeedGivesTheSameImagesInAnyOrder() {
    SyntheticImages a = images(7, 100).build();
    SyntheticImages b = images(7, 100).build();
    // Read b backwards: every sample depends on (seed, index) only.
    for (int i = 99; i >= 0; i--) {
      SyntheticImages.Sample sa = a.sample(i);
      SyntheticImages.Sample sb = b.sample(i);
      assertEquals(sa.label(), sb.label());
      assertArrayEquals(sa.pixels(), sb.pixels());
    }
  }

  @Test
  void differentSeedsOrIndicesGiveDifferentImages() {
    SyntheticImages a = images(7, 100).build();
    SyntheticImages b = images(8, 100).build();
    assertFalse(Arrays.equals(a.sample(3).pixels(), b.sample(3).pixels()));
    // Same class, different sample: random phase, tilt, contrast and noise differ.
    assertEquals(a.sample(3).label(), a.sample(13).label());
    assertFalse(Arrays.equals(a.sample(3).pixels(), a.sample(13).pixels()));
  }

  @Test
  void recordsAreHwcImagesInByteRangeWithBalancedLabels() {
    SyntheticImages data = images(1, 50).optClasses(10).build();
    int[] perClass = new int[10];
    try (NDManager manager = NDManager.newBaseManager()) {
      for (int i = 0; i < 50; i++) {
        Record r = data.get(manager, i);
        assertEquals(new Shape(32, 32, 3), r.getData().head().getShape());
        float min = r.getData().head().min().getFloat();
        float max = r.getData().head().max().getFloat();
        assertTrue(min >= 0 && max <= 255 && max - min > 50, "range " + min + ".." + max);
        perClass[(int) r.getLabels().head().getFloat()]++;
      }
    }
    for (int c : perClass) {
      assertEquals(5, c);
    }
    assertEquals(10, data.getClassNames().size());
    assertThrows(IndexOutOfBoundsException.class, () -> data.sample(50));
  }

  @Test
  void classesSharingAColorDifferInOrientation() {
    // Classes 0 and 5 have the same color; their mean images must still differ in structure:
    // along a row, class 0 (vertical stripes) varies, class 5 (horizontal stripes) barely does.
    SyntheticImages data = images(3, 20).optNoise(0).build();
    assertEquals(
        rowVariation(data.sample(0).pixels()) > 4 * rowVariation(data.sample(5).pixels()), true);
  }

  private static double rowVariation(float[] pixels) {
    double sum = 0;
    for (int x = 1; x < 32; x++) {
      sum += Math.abs(pixels[(16 * 32 + x) * 3] - pixels[(16 * 32 + x - 1) * 3]);
    }
    return sum;
  }

  @Test
  void aSmallCnnLearnsIt() throws Exception {
    SyntheticImages train = images(11, 640).optPipeline(new Pipeline(new ToTensor())).build();
    SyntheticImages validation =
        SyntheticImages.builder()
            .optSeed(12)
            .optSize(256)
            .optPipeline(new Pipeline(new ToTensor()))
            .setSampling(64, false)
            .build();
    SequentialBlock net =
        new SequentialBlock()
            .add(Conv2d.builder().setKernelShape(new Shape(5, 5)).setFilters(16).build())
            .add(BatchNorm.builder().build())
            .add(Activation.reluBlock())
            .add(
                Conv2d.builder()
                    .setKernelShape(new Shape(3, 3))
                    .optStride(new Shape(2, 2))
                    .setFilters(16)
                    .build())
            .add(Activation.reluBlock())
            .add(Pool.globalAvgPool2dBlock())
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(10).build());
    try (Model model = Model.newInstance("synthetic-test")) {
      model.setBlock(net);
      model.getNDManager().getEngine().setRandomSeed(5);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .addEvaluator(new Accuracy())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build())
              .addTrainingListeners(TrainingListener.Defaults.basic());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(1, 3, 32, 32));
        EasyTrain.fit(trainer, 6, train, validation);
        float accuracy = trainer.getTrainingResult().getValidateEvaluation("Accuracy");
        // Chance is 0.1; this network reaches about 0.8 in 6 epochs.
        assertTrue(accuracy > 0.4f, "validation accuracy " + accuracy);
      }
    }
  }
}
