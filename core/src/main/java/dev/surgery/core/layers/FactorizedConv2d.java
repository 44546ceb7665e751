package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import dev.surgery.core.internal.DjlInternals;

/**
 * A low-rank {@link Conv2d}: a {@code k x k} convolution to {@code rank} channels (same stride,
 * padding and dilation, no bias) followed by a {@code 1 x 1} convolution to the output channels
 * (with the original's bias, if it had one), with no nonlinearity in between.
 *
 * <p>The two layers keep what the original computed besides its weight: when it standardized its
 * weight ({@link AdoptingConv2d#isWeightStandardized}) both layers standardize theirs, and when it
 * was a {@link BlurConv2d} the first layer blurs the same way. That is the model weight
 * standardization or BlurPool would give when applied after factorization, so the algorithms
 * compose in either order.
 *
 * <p>{@link #from(Conv2d, int)} starts it from the original's trained weights: the weight, seen as
 * an {@code out x (in * k * k)} matrix, is replaced by its best rank-{@code rank} approximation
 * (truncated SVD), split as {@code U sqrt(S)} for the {@code 1 x 1} convolution and {@code sqrt(S)
 * V^T} for the first one. At full rank it computes what the original did.
 */
public class FactorizedConv2d extends FactorizedBlock<Conv2d> implements ConvolutionLayer {

  private final int filters;

  private FactorizedConv2d(Conv2d original, int rank) {
    super(
        firstLayer(original, rank),
        sameKind(
            original,
            Conv2d.builder()
                .setKernelShape(new Shape(1, 1))
                .setFilters(original.getFilters())
                .optBias(original.isIncludeBias()),
            false),
        rank);
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

  /** The k x k layer to {@code rank} channels: it blurs if the original blurred. */
  private static Conv2d firstLayer(Conv2d original, int rank) {
    Conv2d.Builder settings =
        Conv2d.builder()
            .setKernelShape(original.getKernelShape())
            .optStride(original.getStride())
            .optPadding(original.getPadding())
            .optDilation(original.getDilation())
            .setFilters(rank)
            .optBias(false);
    return sameKind(original, settings, true);
  }

  /**
   * Builds a layer that computes the way {@code original} does: standardizing its weight if the
   * original did, and (when {@code blur}) blurring as a {@link BlurConv2d} original did.
   */
  private static Conv2d sameKind(Conv2d original, Conv2d.Builder settings, boolean blur) {
    boolean standardized = AdoptingConv2d.isWeightStandardized(original);
    if (blur && original instanceof BlurConv2d blurConv) {
      return new BlurConv2d(settings, blurConv.isBlurFirst(), standardized);
    }
    return standardized ? new WeightStandardizedConv2d(settings) : settings.build();
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
    Shape[] inputShapes = DjlInternals.recordedInputShapes(conv);
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
      block.initializeFromSvd(w, inputShapes, out, fanIn, rank, bias);
    }
    return block;
  }
}
