package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.internal.DjlInternals;

/**
 * A low-rank {@link Linear}: a bias-free linear map to {@code rank} features followed by a linear
 * map to the output features (with the original's bias, if it had one).
 *
 * <p>{@link #from(Linear, int)} starts it from the original's trained weight by truncated SVD
 * ({@code U sqrt(S)} and {@code sqrt(S) V^T}); at full rank it computes what the original did.
 */
public class FactorizedLinear extends AbstractBlock {

  private final Linear module0;
  private final Linear module1;
  private final int rank;

  private FactorizedLinear(Linear original, int rank) {
    this.rank = rank;
    module0 = addChildBlock("Linear", Linear.builder().setUnits(rank).optBias(false).build());
    module1 =
        addChildBlock(
            "Linear",
            Linear.builder()
                .setUnits(BlockInspector.linearUnits(original))
                .optBias(BlockInspector.linearHasBias(original))
                .build());
  }

  /**
   * Factorizes a linear layer. When it is initialized, the new block is initialized on the same
   * manager and data type and starts from the truncated SVD of its weight; otherwise it is left
   * uninitialized.
   *
   * @param linear the linear layer
   * @param rank the latent features, from 1 to {@code min(out, in)}
   * @return the factorized block
   * @throws IllegalArgumentException if the rank is out of range
   */
  public static FactorizedLinear from(Linear linear, int rank) {
    if (rank < 1) {
      throw new IllegalArgumentException("rank must be >= 1, got " + rank);
    }
    FactorizedLinear block = new FactorizedLinear(linear, rank);
    Parameter weight = linear.getParameters().get("weight");
    Shape[] inputShapes = DjlInternals.recordedInputShapes(linear);
    if (weight.isInitialized() && inputShapes != null) {
      NDArray w = weight.getArray();
      int out = (int) w.getShape().get(0);
      int in = (int) w.getShape().get(1);
      if (rank > Math.min(out, in)) {
        throw new IllegalArgumentException(
            "rank must be in [1, " + Math.min(out, in) + "], got " + rank);
      }
      NDArray bias =
          BlockInspector.linearHasBias(linear)
              ? linear.getParameters().get("bias").getArray()
              : null;
      FactorizedConv2d.initializeFromSvd(
          block, block.module0, block.module1, w, inputShapes, out, in, rank, bias);
    }
    return block;
  }

  /**
   * Returns the latent features.
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
