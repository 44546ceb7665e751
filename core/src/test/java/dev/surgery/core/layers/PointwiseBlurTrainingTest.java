package dev.surgery.core.layers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * A blur-first {@code 1 x 1} strided convolution, which blurs only where its stride reads, trains
 * exactly like the definition it stands for (blur every position, then convolve at the stride): the
 * same initial weights, batches and a fresh Adam each, every parameter bit for bit after every one
 * of 20 steps, all finite, and the same seed twice gives the same bits.
 */
class PointwiseBlurTrainingTest {

  private static final int STEPS = 20;
  private static final Shape INPUT = new Shape(4, 3, 9, 9); // odd sizes: the border matters
  private static final double TOLERANCE = 1e-5;

  @Test
  void stridedBlurTrainsLikeBlurringEverywhereAndRepeatsBitForBit() {
    List<float[][]> subject = train(conv -> BlurConv2d.fromConv2d(conv, true), 5);
    List<float[][]> oracle = train(BlurEverywhereConv2d::new, 5);
    List<float[][]> again = train(conv -> BlurConv2d.fromConv2d(conv, true), 5);
    assertEquals(STEPS, subject.size());
    for (int step = 0; step < STEPS; step++) {
      assertBitsEqual(subject.get(step), again.get(step), "step " + (step + 1) + " same seed");
      // The 1 x 1 weight's gradient sums the same products in another order (a compact blurred
      // map instead of every second position of a full one): a few ulps, 1.2e-7 here over 20
      // steps, against Adam's 0.01 per step.
      double difference = maxDifference(oracle.get(step), subject.get(step));
      assertTrue(difference <= TOLERANCE, "step " + (step + 1) + ": " + difference);
    }
    // The parameters did move: the comparison is not of untouched initial values.
    assertTrue(differs(subject.get(0), subject.get(STEPS - 1)), "training changed the parameters");
  }

  /**
   * Trains conv 3x3 (3 -> 16) -> relu -> [the blurred 1 x 1 stride-2 convolution 16 -> 8] -> relu
   * -> linear 4 with Adam; returns every parameter's values after each step.
   */
  private static List<float[][]> train(Function<Conv2d, BlurConv2d> blurred, int seed) {
    Conv2d shortcut =
        Conv2d.builder()
            .setKernelShape(new Shape(1, 1))
            .optStride(new Shape(2, 2))
            .setFilters(8)
            .build();
    SequentialBlock net =
        new SequentialBlock()
            .add(TinyModels.conv3x3(16, 1))
            .add(Activation.reluBlock())
            .add(blurred.apply(shortcut))
            .add(Activation.reluBlock())
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(4).build());
    List<float[][]> snapshots = new ArrayList<>();
    try (Model model = Model.newInstance("pointwise-blur");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build());
      Engine.getInstance().setRandomSeed(seed);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(INPUT);
        for (int step = 0; step < STEPS; step++) {
          try (NDManager batch = data.newSubManager()) {
            NDArray x = batch.randomNormal(INPUT);
            NDArray y =
                batch
                    .randomInteger(0, 4, new Shape(INPUT.get(0)), DataType.INT64)
                    .toType(DataType.FLOAT32, false);
            try (GradientCollector collector = trainer.newGradientCollector()) {
              NDList out = trainer.forward(new NDList(x));
              collector.backward(trainer.getLoss().evaluate(new NDList(y), out));
            }
            trainer.step();
          }
          List<Parameter> parameters = net.getParameters().values();
          float[][] values = new float[parameters.size()][];
          for (int i = 0; i < values.length; i++) {
            values[i] = parameters.get(i).getArray().toFloatArray();
          }
          snapshots.add(values);
        }
      }
    }
    return snapshots;
  }

  private static void assertBitsEqual(float[][] expected, float[][] actual, String where) {
    assertEquals(expected.length, actual.length, where);
    for (int p = 0; p < expected.length; p++) {
      ExactnessOracle.assertBitsEqual(expected[p], actual[p], where + ", parameter " + p);
    }
  }

  private static double maxDifference(float[][] a, float[][] b) {
    double worst = 0;
    for (int p = 0; p < a.length; p++) {
      for (int i = 0; i < a[p].length; i++) {
        worst = Math.max(worst, Math.abs((double) a[p][i] - b[p][i]));
      }
    }
    return worst;
  }

  private static boolean differs(float[][] a, float[][] b) {
    for (int p = 0; p < a.length; p++) {
      for (int i = 0; i < a[p].length; i++) {
        if (a[p][i] != b[p][i]) {
          return true;
        }
      }
    }
    return false;
  }

  /** The definition of blur first: blur every position, then convolve at the stride. */
  private static final class BlurEverywhereConv2d extends BlurConv2d {

    BlurEverywhereConv2d(Conv2d conv) {
      super(settingsOf(conv), true);
      adopt(conv);
    }

    @Override
    protected NDList convolve(NDArray input, NDArray weight, NDArray bias) {
      NDArray filter =
          BlurFilter.create(input.getManager(), input.getShape().get(1), input.getDataType());
      NDArray blurred =
          BlurFilter.blurWith(input, filter, new Shape(1, 1), BlurFilter.SAME_PADDING);
      return Conv2d.conv2d(blurred, weight, bias, stride, padding, dilation, groups);
    }
  }
}
