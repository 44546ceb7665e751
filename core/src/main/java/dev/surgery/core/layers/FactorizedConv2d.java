package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import dev.surgery.core.internal.DjlShapes;
import java.util.Objects;

/**
 * A low-rank {@link Conv2d}: a {@code k x k} convolution to {@code rank} channels (same stride,
 * padding and dilation, no bias) followed by a {@code 1 x 1} convolution to the output channels
 * (with the original's bias, if it had one), with no nonlinearity in between.
 *
 * <p>The two layers compute what the original did besides its weight:
 *
 * <ul>
 *   <li>when it standardized its weight ({@link AdoptingConv2d#isWeightStandardized}), the first
 *       layer standardizes its own and the plain {@code 1 x 1} layer carries the scale: a product
 *       of two standardized layers cannot equal a standardized weight (at rank 1 the {@code 1 x 1}
 *       layer would standardize to zero);
 *   <li>when it was a {@link BlurConv2d} that blurs first, the first layer blurs its input the same
 *       way;
 *   <li>when it was one that blurs after the convolution ({@code blur_s(conv_1(x) + b)}), the first
 *       layer convolves at stride 1 and the {@code 1 x 1} layer blurs after itself at the stride,
 *       so that the bias is blurred as before (next to the border a blurred constant is smaller).
 * </ul>
 *
 * <p>{@link #from(Conv2d, int)} starts it from the original's trained weights: the weight the
 * original computes with, seen as an {@code out x (in * k * k)} matrix, is replaced by its best
 * rank-{@code rank} approximation (truncated SVD), split as {@code U sqrt(S)} for the {@code 1 x 1}
 * convolution and {@code sqrt(S) V^T} for the first one. At full rank it computes what the original
 * did. Weight standardization or BlurPool applied after factorization choose among the two layers
 * by their own rules, so the two orders need not give the same layers.
 */
public class FactorizedConv2d extends FactorizedBlock<Conv2d> implements ConvolutionLayer {

  private final int filters;

  private FactorizedConv2d(Conv2d original, int rank) {
    super(firstLayer(original, rank), secondLayer(original), rank);
    filters = original.getFilters();
  }

  /**
   * Returns the output channels (those of the factorized convolution).
   *
   * @return the number of filters
   */
  public int getFilters() {
    return filters;
  }

  /**
   * Returns the input channels, known once the block is initialized or built from an initialized
   * convolution.
   *
   * @return the input channels, or -1 when unknown
   */
  public long getInputChannels() {
    Shape w = module0.getParameters().get("weight").getShape();
    return w == null ? -1 : w.get(1);
  }

  /**
   * The k x k layer to {@code rank} channels: standardized if the original was, blurring first if
   * the original did; at stride 1 if the original blurred after the convolution.
   */
  private static Conv2d firstLayer(Conv2d original, int rank) {
    boolean blurAfter = isBlurAfter(original);
    Conv2d.Builder settings =
        Conv2d.builder()
            .setKernelShape(original.getKernelShape())
            .optStride(blurAfter ? new Shape(1, 1) : original.getStride())
            .optPadding(original.getPadding())
            .optDilation(original.getDilation())
            .setFilters(rank)
            .optBias(false);
    boolean standardized = AdoptingConv2d.isWeightStandardized(original);
    if (original instanceof BlurConv2d && !blurAfter) {
      return new BlurConv2d(settings, true, standardized);
    }
    return standardized ? new WeightStandardizedConv2d(settings) : settings.build();
  }

  /** The plain 1 x 1 layer to the outputs, which blurs after itself if the original did. */
  private static Conv2d secondLayer(Conv2d original) {
    Conv2d.Builder settings =
        Conv2d.builder()
            .setKernelShape(new Shape(1, 1))
            .setFilters(original.getFilters())
            .optBias(original.isIncludeBias());
    if (isBlurAfter(original)) {
      return new BlurConv2d(settings.optStride(original.getStride()), false, false);
    }
    return settings.build();
  }

  private static boolean isBlurAfter(Conv2d conv) {
    return conv instanceof BlurConv2d blur && !blur.isBlurFirst();
  }

  /**
   * Tells whether {@link #from} knows how to rebuild a convolution's forward pass in two layers: a
   * plain {@code Conv2d}, a {@link WeightStandardizedConv2d} or a {@link BlurConv2d} (standardized
   * or not). Other subclasses have a forward pass of their own that factorizing would drop.
   *
   * @param conv a convolution
   * @return true when it can be factorized
   */
  public static boolean canFactorize(Conv2d conv) {
    Class<?> type = conv.getClass();
    return type == Conv2d.class
        || type == WeightStandardizedConv2d.class
        || type == BlurConv2d.class;
  }

  /**
   * Factorizes a convolution. When it is initialized, the new block is initialized on the same
   * manager and data type and starts from the truncated SVD of its weights; otherwise it is left
   * uninitialized, to be initialized like any new block.
   *
   * @param conv a convolution with {@code groups == 1} that {@link #canFactorize}
   * @param rank the latent channels, from 1 to {@code min(out, in * k * k)}
   * @return the factorized block
   * @throws IllegalArgumentException if the convolution is grouped or of a kind whose forward pass
   *     cannot be rebuilt, or the rank is out of range
   */
  public static FactorizedConv2d from(Conv2d conv, int rank) {
    Objects.requireNonNull(conv, "conv must not be null");
    if (!canFactorize(conv)) {
      throw new IllegalArgumentException(
          "cannot factorize a "
              + conv.getClass().getName()
              + ": only Conv2d, WeightStandardizedConv2d and BlurConv2d have a forward pass that"
              + " two layers can rebuild");
    }
    if (conv.getGroups() != 1) {
      throw new IllegalArgumentException(
          "only ungrouped convolutions can be factorized, got groups=" + conv.getGroups());
    }
    if (rank < 1) {
      throw new IllegalArgumentException("rank must be >= 1, got " + rank);
    }
    FactorizedConv2d block = new FactorizedConv2d(conv, rank);
    Parameter weight = conv.getParameters().get("weight");
    Shape[] inputShapes = DjlShapes.recordedInputShapes(conv);
    if (weight.isInitialized() && inputShapes != null) {
      NDArray w = weight.getArray();
      Shape ws = w.getShape();
      int out = (int) ws.get(0);
      int fanIn = (int) (ws.size() / out);
      if (rank > Math.min(out, fanIn)) {
        throw new IllegalArgumentException(
            "rank must be in [1, " + Math.min(out, fanIn) + "], got " + rank);
      }
      NDArray bias = conv.isIncludeBias() ? conv.getParameters().get("bias").getArray() : null;
      block.initializeFromSvd(
          w, inputShapes, out, fanIn, rank, bias, AdoptingConv2d.isWeightStandardized(conv));
    }
    return block;
  }
}
