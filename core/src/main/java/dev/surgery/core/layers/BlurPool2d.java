package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;

/**
 * A standalone anti-aliased subsampling block: blurs every channel with the {@link BlurFilter}
 * ({@code [1,2,1] x [1,2,1] / 16}, zero padding 1) and keeps every {@code stride}-th value. The
 * output size along each axis is {@code (length - 1) / stride + 1}, that is {@code ceil(length /
 * stride)}.
 *
 * <p>The block has no parameters and no children. It saves a version byte and its input shapes,
 * like a DJL {@code LambdaBlock}, and reads a lambda's saved metadata, so it can take the place of
 * a parameter-free lambda; its version is its own ({@link LayerVersions}), so the lambda refuses
 * its checkpoint.
 */
public class BlurPool2d extends LambdaStandIn {

  private final Shape stride;
  private final BlurFilter blur = new BlurFilter();

  /**
   * Creates a blur-pool with the given stride.
   *
   * @param stride the subsampling stride (height, width), each at least 1
   * @throws IllegalArgumentException if the stride is not two positive values
   */
  public BlurPool2d(Shape stride) {
    super(LayerVersions.BLUR_POOL);
    this.stride = checkStride(stride);
  }

  /**
   * Creates a blur-pool with the same stride along height and width.
   *
   * @param stride the stride, at least 1
   * @return the block
   * @throws IllegalArgumentException if the stride is below 1
   */
  public static BlurPool2d of(int stride) {
    return new BlurPool2d(new Shape(stride, stride));
  }

  /**
   * Returns the subsampling stride.
   *
   * @return the stride (height, width)
   */
  public Shape getStride() {
    return stride;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardSingle(ParameterStore parameterStore, NDArray input, boolean training) {
    return new NDList(blur.blur(input, stride));
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    Shape in = inputShapes[0];
    return new Shape[] {
      new Shape(
          in.get(0),
          in.get(1),
          BlurFilter.outputLength(in.get(2), stride.get(0), 1),
          BlurFilter.outputLength(in.get(3), stride.get(1), 1))
    };
  }

  static Shape checkStride(Shape stride) {
    if (stride == null
        || stride.dimension() != 2
        || stride.get(0) < 1
        || stride.get(1) < 1
        || stride.get(0) > Integer.MAX_VALUE
        || stride.get(1) > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(
          "stride must be two positive values (height, width), got " + stride);
    }
    return stride;
  }
}
