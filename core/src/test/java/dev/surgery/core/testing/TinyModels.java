package dev.surgery.core.testing;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;

/** Small models the tests of every module build. */
public final class TinyModels {

  private TinyModels() {}

  /**
   * Opens a model around a block.
   *
   * @param name the model's name
   * @param block its block
   * @return the model (the caller closes it)
   */
  public static Model model(String name, Block block) {
    Model model = Model.newInstance(name);
    model.setBlock(block);
    return model;
  }

  /**
   * DJL's ResNetV1 with 20 layers for 1 x 28 x 28 inputs and 4 classes: the real network of the
   * plan, target and live-algorithm tests.
   *
   * @return the uninitialized network
   */
  public static Block resNet20() {
    return ai.djl.basicmodelzoo.cv.classification.ResNetV1.builder()
        .setImageShape(new Shape(1, 28, 28))
        .setNumLayers(20)
        .setOutSize(4)
        .build();
  }

  /**
   * A CNN with one of each block the algorithms look for: conv(3x3, {@code filters}) - BN - ReLU -
   * conv(3x3, stride 2, {@code 2 * filters}) - ReLU - maxPool(2) - flatten - linear(4).
   *
   * @param filters the first convolution's output channels
   * @return the uninitialized network
   */
  public static SequentialBlock cnn(int filters) {
    return new SequentialBlock()
        .add(
            Conv2d.builder()
                .setKernelShape(new Shape(3, 3))
                .optPadding(new Shape(1, 1))
                .setFilters(filters)
                .build())
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(
            Conv2d.builder()
                .setKernelShape(new Shape(3, 3))
                .optStride(new Shape(2, 2))
                .optPadding(new Shape(1, 1))
                .setFilters(2 * filters)
                .build())
        .add(Activation.reluBlock())
        .add(Pool.maxPool2dBlock(new Shape(2, 2)))
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  /**
   * A 3 x 3 convolution with padding 1 and the given stride.
   *
   * @param filters its output channels
   * @param stride its stride in both axes
   * @return the convolution, uninitialized
   */
  public static ai.djl.nn.convolutional.Conv2d conv3x3(int filters, int stride) {
    return ai.djl.nn.convolutional.Conv2d.builder()
        .setKernelShape(new ai.djl.ndarray.types.Shape(3, 3))
        .optStride(new ai.djl.ndarray.types.Shape(stride, stride))
        .optPadding(new ai.djl.ndarray.types.Shape(1, 1))
        .setFilters(filters)
        .build();
  }

  /**
   * Something for every built-in algorithm to change: strided and plain convolutions of 8 to 32
   * channels with batch norms (one that neither scales nor centers), a max pool, a residual unit
   * and two linears, for samples of shape (8, 16, 16) and 4 classes.
   *
   * @return the uninitialized network
   */
  public static SequentialBlock everyAlgorithmNet() {
    return everyAlgorithmNet(true);
  }

  /**
   * {@link #everyAlgorithmNet()}, with or without its batch norm that neither scales nor centers
   * (after DJL's {@code Model.load}, its {@code newTrainer} makes every parameter but running
   * statistics trainable, that batch norm's fixed gamma and beta too: a loaded model trains them
   * where the model it was saved from did not, with or without surgery).
   *
   * @param fixedBatchNorm whether to hold the batch norm that neither scales nor centers
   * @return the uninitialized network
   */
  public static SequentialBlock everyAlgorithmNet(boolean fixedBatchNorm) {
    SequentialBlock net =
        new SequentialBlock()
            .add(TrajectoryOracle.conv(8, 1))
            .add(BatchNorm.builder().build())
            .add(Activation.reluBlock())
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(TrajectoryOracle.conv(16, 2))
            .add(BatchNorm.builder().build())
            .add(Activation.reluBlock())
            .add(TrajectoryOracle.residualUnit(16))
            .add(TrajectoryOracle.conv(32, 1));
    if (fixedBatchNorm) {
      net.add(BatchNorm.builder().optScale(false).optCenter(false).build());
    }
    return net.add(Pool.globalAvgPool2dBlock())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(32).build())
        .add(Activation.reluBlock())
        .add(Linear.builder().setUnits(4).build());
  }
}
