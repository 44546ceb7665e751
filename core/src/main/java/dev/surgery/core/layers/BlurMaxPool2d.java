package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.ParameterStore;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.PoolSettings;
import dev.surgery.core.internal.DjlShapes;

/**
 * BlurPool's anti-aliased max pooling (Zhang, 2019; MosaicML Composer's {@code BlurMaxPool2d}): a
 * dense max pool (the original window and padding, stride 1) followed by the {@link BlurFilter}
 * blur with the original stride. The output shape equals that of {@link Pool#maxPool2d} with the
 * same arguments, in ceil mode too: there the pooled map is zero-extended at the bottom and right
 * edges so that the last, partial window still yields an output.
 *
 * <p>The block has no parameters; it saves a version byte and its input shapes like the {@code
 * maxPool2d} {@link LambdaBlock} it replaces, and reads that block's saved metadata, but its
 * version is its own ({@link LayerVersions}): a plain max pool refuses its checkpoint.
 */
public class BlurMaxPool2d extends LambdaStandIn {

  private static final Shape DENSE = new Shape(1, 1);

  private final Shape kernelShape;
  private final Shape stride;
  private final Shape padding;
  private final boolean ceilMode;
  private final BlurFilter blur = new BlurFilter();

  /**
   * Creates the block.
   *
   * @param kernelShape the pooling window (height, width)
   * @param stride the stride (height, width) of the original pool, which the blur now applies
   * @param padding the pool's padding (height, width)
   * @param ceilMode whether the original pool rounds output sizes up
   * @throws IllegalArgumentException if a shape is not two values in range
   */
  public BlurMaxPool2d(Shape kernelShape, Shape stride, Shape padding, boolean ceilMode) {
    super(LayerVersions.BLUR_MAX_POOL);
    this.kernelShape = checkPositive("kernelShape", kernelShape);
    this.stride = BlurPool2d.checkStride(stride);
    if (padding == null
        || padding.dimension() != 2
        || padding.get(0) < 0
        || padding.get(1) < 0
        || 2 * padding.get(0) > kernelShape.get(0)
        || 2 * padding.get(1) > kernelShape.get(1)) {
      throw new IllegalArgumentException(
          "padding must be two values in [0, kernel / 2] for kernel "
              + kernelShape
              + ", got "
              + padding);
    }
    this.padding = padding;
    this.ceilMode = ceilMode;
  }

  /**
   * Builds the BlurPool replacement of a DJL {@code maxPool2d} block (made by {@link
   * Pool#maxPool2dBlock}), with the pool's window, stride, padding and ceil mode, and its recorded
   * input shapes (an initialized pool gives an initialized block).
   *
   * @param maxPool a {@link LambdaBlock} named {@code maxPool2d}
   * @return the replacement
   * @throws IllegalArgumentException if the block is not a {@code maxPool2d} lambda or its
   *     arguments cannot be read
   */
  public static BlurMaxPool2d fromMaxPool2d(Block maxPool) {
    if (!(maxPool instanceof LambdaBlock lambda) || !"maxPool2d".equals(lambda.getName())) {
      throw new IllegalArgumentException(
          "expected a maxPool2d LambdaBlock, got " + maxPool.getClass().getName());
    }
    PoolSettings settings =
        BlockInspector.poolSettings(maxPool)
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "cannot read the kernel, stride, padding and ceil mode of this maxPool2d"
                            + " lambda (built other than by Pool.maxPool2dBlock?)"));
    BlurMaxPool2d block =
        new BlurMaxPool2d(
            settings.kernelShape(), settings.stride(), settings.padding(), settings.ceilMode());
    Shape[] shapes = DjlShapes.recordedInputShapes(maxPool);
    if (shapes != null) {
      block.inputShapes = shapes.clone();
      java.util.List<String> names =
          maxPool.isInitialized() ? DjlShapes.inputNamesOf(maxPool) : null;
      if (names != null) {
        block.inputNames = names;
      }
    }
    return block;
  }

  /**
   * Returns the pooling window.
   *
   * @return the window (height, width)
   */
  public Shape getKernelShape() {
    return kernelShape;
  }

  /**
   * Returns the stride of the original pool, applied by the blur.
   *
   * @return the stride (height, width)
   */
  public Shape getStride() {
    return stride;
  }

  /**
   * Returns the pool's padding.
   *
   * @return the padding (height, width)
   */
  public Shape getPadding() {
    return padding;
  }

  /**
   * Tells whether output sizes round up, as in the original pool.
   *
   * @return the ceil mode
   */
  public boolean isCeilMode() {
    return ceilMode;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardSingle(ParameterStore parameterStore, NDArray input, boolean training) {
    NDArray pooled = Pool.maxPool2d(input, kernelShape, DENSE, padding, false);
    if (ceilMode) {
      Shape in = input.getShape();
      long extraH = ceilExtra(in.get(2), 0);
      long extraW = ceilExtra(in.get(3), 1);
      if (extraH > 0 || extraW > 0) {
        // Ceil mode keeps a last partial window; extend the pooled map with zeros (the blur's own
        // padding value) so that the strided blur still reaches it.
        pooled = pooled.pad(new Shape(0, extraW, 0, extraH), 0);
      }
    }
    return new NDList(blur.blur(pooled, stride));
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    Shape in = inputShapes[0];
    return new Shape[] {
      new Shape(in.get(0), in.get(1), pooledLength(in.get(2), 0), pooledLength(in.get(3), 1))
    };
  }

  /** The output length of the original max pool along an axis (PyTorch's rule). */
  private long pooledLength(long length, int axis) {
    long k = kernelShape.get(axis);
    long s = stride.get(axis);
    long p = padding.get(axis);
    long span = length + 2 * p - k;
    if (!ceilMode) {
      return Math.floorDiv(span, s) + 1;
    }
    long out = Math.floorDiv(span + s - 1, s) + 1;
    // The last window must start inside the input or its left padding.
    if ((out - 1) * s >= length + p) {
      out--;
    }
    return out;
  }

  /** How many zero rows (or columns) the dense pooled map needs at its end in ceil mode. */
  private long ceilExtra(long length, int axis) {
    long dense = length + 2 * padding.get(axis) - kernelShape.get(axis) + 1;
    long needed = (pooledLength(length, axis) - 1) * stride.get(axis) + 1;
    return Math.max(0, needed - dense);
  }

  private static Shape checkPositive(String name, Shape shape) {
    if (shape == null || shape.dimension() != 2 || shape.get(0) < 1 || shape.get(1) < 1) {
      throw new IllegalArgumentException(
          name + " must be two positive values (height, width), got " + shape);
    }
    return shape;
  }
}
