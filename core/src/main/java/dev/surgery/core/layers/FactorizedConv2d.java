package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
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
public class FactorizedConv2d extends AbstractBlock {

  private final Conv2d module0;
  private final Conv2d module1;
  private final int rank;

  private FactorizedConv2d(Conv2d original, int rank) {
    this.rank = rank;
    module0 =
        addChildBlock(
            "Conv2d",
            Conv2d.builder()
                .setKernelShape(original.getKernelShape())
                .optStride(original.getStride())
                .optPadding(original.getPadding())
                .optDilation(original.getDilation())
                .setFilters(rank)
                .optBias(false)
                .build());
    module1 =
        addChildBlock(
            "Conv2d",
            Conv2d.builder()
                .setKernelShape(new Shape(1, 1))
                .setFilters(original.getFilters())
                .optBias(original.isIncludeBias())
                .build());
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
      initializeFromSvd(
          block, block.module0, block.module1, w, inputShapes, out, fanIn, rank, bias);
    }
    return block;
  }

  /**
   * Initializes a two-layer factorized block where the original weight lives and sets its layers
   * from the truncated SVD of that weight: {@code module1 * module0 ~ w}. On failure the block's
   * new arrays are freed, since the block never reaches the model.
   */
  static void initializeFromSvd(
      Block block,
      Block module0,
      Block module1,
      NDArray w,
      Shape[] inputShapes,
      int out,
      int fanIn,
      int rank,
      NDArray biasOrNull) {
    block.initialize(w.getManager(), w.getDataType(), inputShapes);
    try {
      TruncatedSvd svd = TruncatedSvd.of(floatValues(w), out, fanIn);
      set(module1.getParameters().get("weight"), svd.leftFactor(rank));
      set(module0.getParameters().get("weight"), svd.rightFactor(rank));
      if (biasOrNull != null) {
        module1.getParameters().get("bias").getArray().set(biasOrNull.toByteBuffer());
      }
    } catch (RuntimeException e) {
      for (Parameter p : block.getParameters().values()) {
        if (p.isInitialized()) {
          p.getArray().close();
        }
      }
      throw e;
    }
  }

  /** The values of an array as floats, without leaving a converted copy behind. */
  static float[] floatValues(NDArray array) {
    if (array.getDataType() == DataType.FLOAT32) {
      return array.toFloatArray();
    }
    try (NDArray copy = array.toType(DataType.FLOAT32, true)) {
      return copy.toFloatArray();
    }
  }

  static void set(Parameter parameter, float[] values) {
    NDArray array = parameter.getArray();
    try (NDArray source = array.getManager().create(values, array.getShape());
        NDArray typed = source.toType(array.getDataType(), true)) {
      array.set(typed.toByteBuffer());
    }
  }

  /**
   * Returns the latent channels.
   *
   * @return the rank
   */
  public int getRank() {
    return rank;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardInternal(
      ParameterStore parameterStore,
      NDList inputs,
      boolean training,
      PairList<String, Object> params) {
    NDList latent = module0.forward(parameterStore, inputs, training, params);
    return module1.forward(parameterStore, latent, training, params);
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputs) {
    return module1.getOutputShapes(module0.getOutputShapes(inputs));
  }

  /** {@inheritDoc} */
  @Override
  protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
    module0.initialize(manager, dataType, inputShapes);
    module1.initialize(manager, dataType, module0.getOutputShapes(inputShapes));
  }
}
