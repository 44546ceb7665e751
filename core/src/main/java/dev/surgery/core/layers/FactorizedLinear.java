package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.internal.DjlShapes;
import java.util.Objects;

/**
 * A low-rank {@link Linear}: a bias-free linear map to {@code rank} features followed by a linear
 * map to the output features (with the original's bias, if it had one).
 *
 * <p>{@link #from(Linear, int)} starts it from the original's trained weight by truncated SVD
 * ({@code U sqrt(S)} and {@code sqrt(S) V^T}); at full rank it computes what the original did.
 */
public class FactorizedLinear extends FactorizedBlock<Linear> {

  private FactorizedLinear(Linear original, int rank) {
    super(
        Linear.builder().setUnits(rank).optBias(false).build(),
        Linear.builder()
            .setUnits(BlockInspector.linearUnits(original))
            .optBias(BlockInspector.linearHasBias(original))
            .build(),
        rank);
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
    Objects.requireNonNull(linear, "linear must not be null");
    if (rank < 1) {
      throw new IllegalArgumentException("rank must be >= 1, got " + rank);
    }
    FactorizedLinear block = new FactorizedLinear(linear, rank);
    Parameter weight = linear.getParameters().get("weight");
    Shape[] inputShapes = DjlShapes.recordedInputShapes(linear);
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
      block.initializeFromSvd(w, inputShapes, out, in, rank, bias, false);
    }
    return block;
  }
}
