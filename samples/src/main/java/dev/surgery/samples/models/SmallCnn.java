package dev.surgery.samples.models;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import java.util.Arrays;

/**
 * A small convolutional network for images: a 3 x 3 convolution, a strided one (what BlurPool
 * changes), a 2 x 2 max pool, optionally more convolutions and a global average pool, and a linear
 * classifier. The GPU check and benchmark B4 train it.
 */
public final class SmallCnn {

  private SmallCnn() {}

  /**
   * Returns a builder.
   *
   * @return a builder with two convolutions of 16 filters, no global pool and 10 classes
   */
  public static Builder builder() {
    return new Builder();
  }

  /** Builds a {@link SmallCnn} network. */
  public static final class Builder {
    private int[] filters = {16, 16};
    private boolean globalPool;
    private int classes = 10;

    private Builder() {}

    /**
     * Sets the filters of each convolution: the first has stride 1, the second stride 2 (followed
     * by the max pool), the others stride 1.
     *
     * @param filters at least two filter counts, each at least 1
     * @return this builder
     */
    public Builder setFilters(int... filters) {
      if (filters.length < 2 || Arrays.stream(filters).anyMatch(f -> f < 1)) {
        throw new IllegalArgumentException(
            "expected at least two filter counts >= 1, got " + Arrays.toString(filters));
      }
      this.filters = filters.clone();
      return this;
    }

    /**
     * Sets whether a global average pool comes before the classifier (so that any image size gives
     * the same classifier input).
     *
     * @param globalPool true for a global average pool
     * @return this builder
     */
    public Builder optGlobalPool(boolean globalPool) {
      this.globalPool = globalPool;
      return this;
    }

    /**
     * Sets the number of classes.
     *
     * @param classes at least 1
     * @return this builder
     */
    public Builder setClasses(int classes) {
      if (classes < 1) {
        throw new IllegalArgumentException("classes must be >= 1, got " + classes);
      }
      this.classes = classes;
      return this;
    }

    /**
     * Builds the network (uninitialized).
     *
     * @return the block
     */
    public Block build() {
      SequentialBlock net = new SequentialBlock();
      for (int i = 0; i < filters.length; i++) {
        net.add(conv(filters[i], i == 1 ? 2 : 1)).add(Activation.reluBlock());
        if (i == 1) {
          net.add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)));
        }
      }
      if (globalPool) {
        net.add(Pool.globalAvgPool2dBlock());
      }
      return net.add(Blocks.batchFlattenBlock()).add(Linear.builder().setUnits(classes).build());
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
}
