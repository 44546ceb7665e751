package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.initializer.Initializer;
import java.util.ArrayList;
import java.util.List;

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
   *
   * @param standardized whether the original computed with its weight standardized per output
   *     channel: the SVD is then taken of that standardized weight, {@code module0} standardizes
   *     its own weight and the plain {@code module1} takes the scale each standardized row gets, so
   *     that the product is still the truncated SVD of what the original computed with
   */
  final void initializeFromSvd(
      NDArray w,
      Shape[] inputShapes,
      int out,
      int fanIn,
      int rank,
      NDArray biasOrNull,
      boolean standardized) {
    // Every array is set from the SVD below: filled without a draw, so that a factorize (or its
    // plan) leaves the engine's random generator where it was and does no work twice.
    List<Parameter> parameters = getParameters().values();
    List<Initializer> own = new ArrayList<>(parameters.size());
    for (Parameter p : parameters) {
      own.add(p.getInitializer());
      if (p.getInitializer() != null) {
        p.setInitializer(Initializer.ZEROS);
      }
    }
    try {
      initialize(w.getManager(), w.getDataType(), inputShapes);
    } finally {
      for (int i = 0; i < parameters.size(); i++) {
        parameters.get(i).setInitializer(own.get(i));
      }
    }
    try {
      // A float64 layer is decomposed and set in double precision; any other type from its float
      // values, each factor rounded to float as it is formed (a float copy of a float64 weight
      // made its factors float-exact, 4e-8 off the layer at full rank).
      boolean exact = w.getDataType() == DataType.FLOAT64;
      double[] matrix = standardized ? standardizedValues(w) : values(w);
      TruncatedSvd svd = TruncatedSvd.of(matrix, out, fanIn);
      double[] left = rounded(svd.leftFactorValues(rank), exact);
      double[] right = rounded(svd.rightFactorValues(rank), exact);
      if (standardized) {
        dropNegligibleComponents(left, right, out, fanIn, rank);
      }
      Parameter first = module0.getParameters().get("weight");
      set(first, right);
      if (standardized) {
        undoRowScale(left, right, standardizedValues(first.getArray()), out, fanIn, rank, exact);
      }
      set(module1.getParameters().get("weight"), left);
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

  /**
   * Zeroes the components whose singular value is rounding: a standardized weight has zero-mean
   * rows, so its rank is below {@code fanIn} and, at full rank, the last direction is the constant
   * one. Standardizing that row of the first layer would blow its rounding up to unit size. The row
   * of {@code right} for component {@code k} has squared norm {@code s_k}.
   */
  private static void dropNegligibleComponents(
      double[] left, double[] right, int out, int fanIn, int rank) {
    double[] singular = new double[rank];
    double largest = 0;
    for (int k = 0; k < rank; k++) {
      for (int j = 0; j < fanIn; j++) {
        singular[k] += right[k * fanIn + j] * right[k * fanIn + j];
      }
      largest = Math.max(largest, singular[k]);
    }
    for (int k = 0; k < rank; k++) {
      if (singular[k] <= 1e-6 * largest) {
        java.util.Arrays.fill(right, k * fanIn, (k + 1) * fanIn, 0);
        for (int o = 0; o < out; o++) {
          left[o * rank + k] = 0;
        }
      }
    }
  }

  /**
   * Divides each column {@code k} of {@code left} ({@code out x rank}) by the factor that
   * standardizing row {@code k} of {@code right} ({@code rank x fanIn}) multiplies it by. The rows
   * of an SVD of a standardized weight have zero mean (each row of that weight has), so
   * standardizing one only scales it; the factor is measured on the rows as the layer standardizes
   * them. A zero row (a zero singular value) contributes nothing either way.
   */
  private static void undoRowScale(
      double[] left,
      double[] right,
      double[] standardizedRight,
      int out,
      int fanIn,
      int rank,
      boolean exact) {
    for (int k = 0; k < rank; k++) {
      double along = 0;
      double norm = 0;
      for (int j = 0; j < fanIn; j++) {
        along += standardizedRight[k * fanIn + j] * right[k * fanIn + j];
        norm += right[k * fanIn + j] * right[k * fanIn + j];
      }
      double scale = norm == 0 ? 0 : along / norm;
      for (int o = 0; o < out; o++) {
        double value = left[o * rank + k] / scale;
        left[o * rank + k] = scale == 0 ? 0 : exact ? value : (float) value;
      }
    }
  }

  /** The values as they are ({@code exact}) or each rounded to float. */
  private static double[] rounded(double[] values, boolean exact) {
    if (!exact) {
      for (int i = 0; i < values.length; i++) {
        values[i] = (float) values[i];
      }
    }
    return values;
  }

  /** A convolution weight standardized per output channel, as the layers compute it. */
  private static double[] standardizedValues(NDArray w) {
    try (NDManager scratch = w.getManager().newSubManager()) {
      return values(WeightStandardizedConv2d.standardize(w, scratch));
    }
  }

  /**
   * The values of an array in double precision (those of a float64 array, else its float values),
   * without leaving a converted copy behind.
   */
  static double[] values(NDArray array) {
    if (array.getDataType() == DataType.FLOAT64) {
      return array.toDoubleArray();
    }
    float[] floats;
    if (array.getDataType() == DataType.FLOAT32) {
      floats = array.toFloatArray();
    } else {
      try (NDArray copy = array.toType(DataType.FLOAT32, true)) {
        floats = copy.toFloatArray();
      }
    }
    return TruncatedSvd.widened(floats);
  }

  static void set(Parameter parameter, double[] values) {
    NDArray array = parameter.getArray();
    try (NDArray source = array.getManager().create(values, array.getShape());
        NDArray typed = source.toType(array.getDataType(), true)) {
      array.set(typed.toByteBuffer());
    }
  }
}
