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
 * <p>{@link #from(Conv2d, int)} starts it from the original's trained weights: the weight, seen as
 * an {@code out x (in * k * k)} matrix, is replaced by its best rank-{@code rank} approximation
 * (truncated SVD), split as {@code U sqrt(S)} for the {@code 1 x 1} convolution and {@code sqrt(S)
 * V^T} for the first one. At full rank it computes what the original did.
 */
public class FactorizedConv2d extends FactorizedBlock<Conv2d> {

  private FactorizedConv2d(Conv2d original, int rank) {
    super(
        "Conv2d",
        Conv2d.builder()
            .setKernelShape(original.getKernelShape())
            .optStride(original.getStride())
            .optPadding(original.getPadding())
            .optDilation(original.getDilation())
            .setFilters(rank)
            .optBias(false)
            .build(),
        Conv2d.builder()
            .setKernelShape(new Shape(1, 1))
            .setFilters(original.getFilters())
            .optBias(original.isIncludeBias())
            .build(),
        rank);
  }

  /**
   * Factorizes a convolution. When it is initialized, the new block is initialized on the same
   * manager and data type and starts from the truncated SVD of its weights; otherwise it is left
   * uninitialized, to be initialized like any new block.
   *
   * @param conv a convolution with {@code groups == 1}
   * @param rank the latent channels, from 1 to {@code min(out, in * k * k)}
   * @return the factorized block
   * @throws IllegalArgumentException if the convolution is grouped or the rank is out of range
   */
  public static FactorizedConv2d from(Conv2d conv, int rank) {
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
