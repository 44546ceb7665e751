package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;

/**
 * A low-rank factorization of one layer into two, {@code module1(module0(x))}, with no nonlinearity
 * in between, and its start from the truncated SVD of the original's trained weight. {@link
 * FactorizedConv2d} and {@link FactorizedLinear} choose the two layers.
 *
 * @param <B> the type of the two layers
 */
public abstract class FactorizedBlock<B extends Block> extends TwoStageBlock {

  /** The layer to the latent size. */
  protected final B module0;

  /** The layer from the latent size to the output. */
  protected final B module1;

  private final int rank;

  /**
   * Creates the block around its two layers. Each child is keyed after its own class (for example
   * {@code 01BlurConv2d}, {@code 02Conv2d}), so paths and {@code toString} say what it holds.
   *
   * @param module0 the layer to {@code rank} features or channels
   * @param module1 the layer to the original's outputs
   * @param rank the latent size
   */
  // JDK 21+ lint: addChildBlock is DJL's final method and only records the child; nothing reads
  // this block's subclass state before the constructor ends.
  @SuppressWarnings("this-escape")
  protected FactorizedBlock(B module0, B module1, int rank) {
    this.module0 = addChildBlock(module0.getClass().getSimpleName(), module0);
    this.module1 = addChildBlock(module1.getClass().getSimpleName(), module1);
    this.rank = rank;
  }

  /**
   * Returns the latent size.
   *
   * @return the rank
   */
  public int getRank() {
    return rank;
  }

  /**
   * Initializes a two-layer factorized block where the original weight lives and sets its layers
   * from the truncated SVD of that weight: {@code module1 * module0 ~ w}. On failure the block's
   * new arrays are freed, since the block never reaches the model.
   */
  final void initializeFromSvd(
      NDArray w, Shape[] inputShapes, int out, int fanIn, int rank, NDArray biasOrNull) {
    initialize(w.getManager(), w.getDataType(), inputShapes);
    try {
      TruncatedSvd svd = TruncatedSvd.of(floatValues(w), out, fanIn);
      set(module1.getParameters().get("weight"), svd.leftFactor(rank));
      set(module0.getParameters().get("weight"), svd.rightFactor(rank));
      if (biasOrNull != null) {
        module1.getParameters().get("bias").getArray().set(biasOrNull.toByteBuffer());
      }
    } catch (RuntimeException e) {
      for (Parameter p : getParameters().values()) {
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
}
