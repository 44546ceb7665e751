package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import java.util.Objects;

/**
 * A {@link Conv2d} with BlurPool's anti-aliasing (Zhang, 2019; MosaicML Composer's {@code
 * BlurConv2d}): the input is low-pass filtered before the strided convolution ({@code blurFirst},
 * Composer's default: {@code conv_s(blur_1(x))}), or the convolution runs with stride 1 and its
 * output is blurred and subsampled ({@code conv} then {@code blur_s}, closer to the paper, about
 * {@code stride^2} times the convolution cost). The output shape equals the plain convolution's in
 * both orders. Before a {@code 1 x 1} convolution without padding the blur runs only where the
 * stride reads, as {@code conv_1(blur_s(x))}: the same output values ({@link #getBlurStride}); the
 * weight's gradient sums the same products in another order, so it may differ in the last bits.
 *
 * <p>The blur filter is a constant, not a {@link Parameter}: this block has the metadata and
 * parameters of the {@code Conv2d} it replaces, and reads that convolution's saved parameters. It
 * saves with a version of its own per variant ({@link LayerVersions}), so a plain {@code Conv2d},
 * which computes without the blur, refuses its checkpoint. {@link #fromConv2d} adopts the
 * convolution's own {@code Parameter} objects, so weights, parameter ids, trainer parameter-store
 * entries and optimizer state carry over unchanged.
 *
 * <p>A blurred convolution can also standardize its weight ({@link #isWeightStandardized}): {@link
 * #fromConv2d} keeps the standardization of a {@link WeightStandardizedConv2d}, and {@link
 * #withWeightStandardization} adds it, so BlurPool and weight standardization compose in either
 * order.
 */
public class BlurConv2d extends AdoptingConv2d {

  private static final Shape UNIT_STRIDE = new Shape(1, 1);

  private final boolean blurFirst;
  private final BlurFilter blur = new BlurFilter();

  /**
   * Creates the block from a convolution builder.
   *
   * @param conv the configured convolution builder
   * @param blurFirst true to blur before the convolution, false to blur after it
   */
  protected BlurConv2d(Conv2d.Builder conv, boolean blurFirst) {
    this(conv, blurFirst, false);
  }

  /**
   * Creates the block from a convolution builder.
   *
   * @param conv the configured convolution builder
   * @param blurFirst true to blur before the convolution, false to blur after it
   * @param weightStandardized true to standardize the weight per output channel
   */
  protected BlurConv2d(Conv2d.Builder conv, boolean blurFirst, boolean weightStandardized) {
    super(conv, weightStandardized, LayerVersions.blurConv2d(blurFirst, weightStandardized));
    this.blurFirst = blurFirst;
  }

  /**
   * Creates a builder for a new, uninitialized {@code BlurConv2d}.
   *
   * @return a new builder
   */
  public static Builder blurBuilder() {
    return new Builder();
  }

  /**
   * Builds the BlurPool replacement of a convolution: the same kernel, stride, padding, dilation,
   * filters, groups and bias, using the convolution's own {@link Parameter} objects and recorded
   * input shapes. An initialized convolution gives an initialized block that computes with the same
   * weights; an uninitialized one gives a block that initializes those parameters later. The
   * convolution must not be cleared or closed afterwards, since both share the parameter arrays. A
   * convolution that standardizes its weight ({@link AdoptingConv2d#isWeightStandardized}) gives a
   * block that standardizes too.
   *
   * @param conv the convolution to replace
   * @param blurFirst true to blur before the convolution (Composer's default), false after
   * @return the replacement
   */
  public static BlurConv2d fromConv2d(Conv2d conv, boolean blurFirst) {
    Objects.requireNonNull(conv, "conv must not be null");
    Conv2d.Builder config = settingsOf(conv);
    BlurConv2d blurConv =
        new BlurConv2d(config, blurFirst, AdoptingConv2d.isWeightStandardized(conv));
    blurConv.adopt(conv);
    return blurConv;
  }

  /**
   * Returns a block that blurs as this one does and standardizes its weight, taking over this
   * block's parameters; this block when it standardizes already.
   *
   * @return the standardized twin
   */
  @Override
  public BlurConv2d withWeightStandardization() {
    if (isWeightStandardized()) {
      return this;
    }
    BlurConv2d standardized = new BlurConv2d(settingsOf(this), blurFirst, true);
    standardized.adopt(this);
    return standardized;
  }

  /**
   * Tells whether the blur runs before the convolution.
   *
   * @return true for blur then convolution, false for convolution then blur
   */
  public boolean isBlurFirst() {
    return blurFirst;
  }

  /**
   * Returns the stride of the blur: (1, 1) for a blur before the convolution, except before a
   * {@code 1 x 1} convolution without padding, which reads only the positions its stride lands on
   * and is therefore blurred only there (the same values, fewer of them); the convolution's stride
   * for a blur after it.
   *
   * @return the stride the blur runs at
   */
  public Shape getBlurStride() {
    return blurFirst && !isPointwise() ? UNIT_STRIDE : stride;
  }

  /** A 1 x 1 kernel without padding: its output at a position reads the input there alone. */
  private boolean isPointwise() {
    return kernelShape.get(0) == 1
        && kernelShape.get(1) == 1
        && padding.get(0) == 0
        && padding.get(1) == 0;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList convolve(NDArray input, NDArray weight, NDArray bias) {
    if (blurFirst) {
      if (isPointwise()) {
        // A blur's value at a position does not depend on the stride, so blurring only where the
        // 1 x 1 convolution reads gives the same values for a quarter of the blur (stride 2),
        // forward and backward.
        NDArray blurred = blur.blur(input, stride);
        return conv2d(blurred, weight, bias, UNIT_STRIDE, padding, dilation, groups);
      }
      NDArray blurred = blur.blur(input, UNIT_STRIDE);
      return conv2d(blurred, weight, bias, stride, padding, dilation, groups);
    }
    NDArray dense =
        conv2d(input, weight, bias, UNIT_STRIDE, padding, dilation, groups).singletonOrThrow();
    return new NDList(blur.blur(dense, stride));
  }

  /**
   * Builds a new {@link BlurConv2d}; the settings and defaults are those of {@link Conv2d.Builder}
   * plus {@link #optBlurFirst}.
   */
  public static final class Builder {

    private final Conv2d.Builder conv = Conv2d.builder();
    private Shape kernelShape;
    private int filters;
    private boolean blurFirst = true;

    Builder() {}

    /**
     * Sets the kernel shape (height, width). Required.
     *
     * @param kernelShape the kernel shape
     * @return this builder
     */
    public Builder setKernelShape(Shape kernelShape) {
      this.kernelShape = kernelShape;
      conv.setKernelShape(kernelShape);
      return this;
    }

    /**
     * Sets the number of output channels. Required.
     *
     * @param filters the number of filters
     * @return this builder
     */
    public Builder setFilters(int filters) {
      this.filters = filters;
      conv.setFilters(filters);
      return this;
    }

    /**
     * Sets the stride (height, width); default (1, 1).
     *
     * @param stride the stride
     * @return this builder
     */
    public Builder optStride(Shape stride) {
      conv.optStride(stride);
      return this;
    }

    /**
     * Sets the zero padding (height, width); default (0, 0).
     *
     * @param padding the padding
     * @return this builder
     */
    public Builder optPadding(Shape padding) {
      conv.optPadding(padding);
      return this;
    }

    /**
     * Sets the dilation (height, width); default (1, 1).
     *
     * @param dilation the dilation
     * @return this builder
     */
    public Builder optDilation(Shape dilation) {
      conv.optDilation(dilation);
      return this;
    }

    /**
     * Sets the number of groups; default 1.
     *
     * @param groups the groups
     * @return this builder
     */
    public Builder optGroups(int groups) {
      conv.optGroups(groups);
      return this;
    }

    /**
     * Sets whether the convolution adds a bias; default true.
     *
     * @param includeBias true for a bias
     * @return this builder
     */
    public Builder optBias(boolean includeBias) {
      conv.optBias(includeBias);
      return this;
    }

    /**
     * Sets whether to blur before the convolution (Composer's default, true) or after it.
     *
     * @param blurFirst true to blur first
     * @return this builder
     */
    public Builder optBlurFirst(boolean blurFirst) {
      this.blurFirst = blurFirst;
      return this;
    }

    /**
     * Builds the block.
     *
     * @return a new, uninitialized block
     * @throws IllegalArgumentException if the kernel shape or the filters are missing
     */
    public BlurConv2d build() {
      if (kernelShape == null || filters <= 0) {
        throw new IllegalArgumentException(
            "kernelShape and filters (> 0) must be set, got kernelShape="
                + kernelShape
                + ", filters="
                + filters);
      }
      return new BlurConv2d(conv, blurFirst);
    }
  }
}
