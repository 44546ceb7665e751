package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;

/**
 * A {@link Conv2d} that standardizes its weight per output channel on every forward pass: {@code W'
 * = (W - mean(W)) / sqrt(var(W) + 1e-10)}, with the mean and the biased variance taken over the
 * input-channel and kernel dimensions, a constant filter giving exactly zero (in float16, where
 * 1e-10 is zero, {@link #HALF_PRECISION_EPSILON}, and each filter first scaled to unit range, which
 * leaves the result as it is and keeps the forward and backward within float16's range). Gradients
 * flow through the standardization.
 *
 * <p>Built from an existing convolution with {@link #from(Conv2d)}, it reuses that convolution's
 * own {@link Parameter} objects: the stored weights, their ids (so the trainer's parameter store
 * and optimizer state stay valid) and the checkpoint layout (same parameters, no extra metadata)
 * are those of the plain convolution. It reads a plain convolution's saved parameters; it saves
 * with a version of its own ({@link LayerVersions}), so a plain {@code Conv2d}, which would compute
 * with the weight as it is, refuses its checkpoint.
 *
 * <p>This class is the plain convolution with the standardization property of {@link
 * AdoptingConv2d}; the project's other convolutions ({@link BlurConv2d}, the layers of a {@link
 * FactorizedConv2d} built from a standardized convolution) standardize through the same property.
 */
public class WeightStandardizedConv2d extends AdoptingConv2d {

  /** Added to the variance, as in Composer's weight standardization. */
  public static final float EPSILON = 1e-10f;

  /**
   * Added to the variance of a half-precision weight instead of {@link #EPSILON}, which is zero in
   * float16: the smallest positive float16 (2^-24). A filter of constant weights then standardizes
   * to zero, as in float32, not to 0/0 (NaN); the variance of a filter brought to unit range (see
   * {@link #standardize}) does not see it.
   */
  public static final float HALF_PRECISION_EPSILON = 0x1p-24f;

  /** The smallest normal float16 (2^-14): below it a filter's range is taken as this. */
  private static final float HALF_PRECISION_SMALLEST_NORMAL = 0x1p-14f;

  /**
   * Creates an unconnected standardized convolution.
   *
   * @param builder the convolution settings
   */
  protected WeightStandardizedConv2d(Conv2d.Builder builder) {
    super(builder, true, LayerVersions.WEIGHT_STANDARDIZED_CONV);
  }

  /**
   * Creates a standardized convolution with the settings of {@code conv}, sharing its parameters
   * and, when it has them, its recorded input shapes (so an initialized convolution gives an
   * initialized replacement).
   *
   * @param conv the convolution to standardize; it must not be used anywhere else afterwards
   * @return the replacement
   */
  public static WeightStandardizedConv2d from(Conv2d conv) {
    Conv2d.Builder builder = settingsOf(conv);
    WeightStandardizedConv2d ws = new WeightStandardizedConv2d(builder);
    ws.adopt(conv);
    return ws;
  }

  /**
   * Returns this convolution, which standardizes already.
   *
   * @return this
   */
  @Override
  public WeightStandardizedConv2d withWeightStandardization() {
    return this;
  }

  /**
   * Standardizes a convolution weight per output channel (dimension 0).
   *
   * @param w a weight of shape (out, in/groups, kh, kw)
   * @return the standardized weight, same shape
   */
  public static NDArray standardize(NDArray w) {
    return standardize(w, w.getManager());
  }

  /**
   * Standardizes a convolution weight per output channel, creating every intermediate and the
   * result on {@code scope}.
   *
   * @param w a weight of shape (out, in/groups, kh, kw)
   * @param scope the manager that owns the computed arrays
   * @return the standardized weight, same shape
   */
  public static NDArray standardize(NDArray w, NDManager scope) {
    // PyTorch's mean reduces one axis at a time in DJL: flatten each filter into one row.
    NDArray rows = w.reshape(w.getShape().get(0), -1);
    // Results of NDArray operations join their first operand's manager.
    rows.attach(scope);
    // Each filter is first divided by the power of two at or below its largest magnitude, a
    // constant (no gradient) that changes no bit of a weight: W' is the same for a filter scaled
    // alike, epsilon with it, and no sum or square below can overflow, whatever the weights (a mean
    // of weights near 1e37 did, to NaN). The exponent is taken in float32 for float16, whose
    // log2(65504) rounds up to 16.
    boolean half = w.getDataType() == DataType.FLOAT16;
    NDArray magnitude =
        rows.abs()
            .max(new int[] {1}, true)
            .stopGradient()
            .maximum(half ? HALF_PRECISION_SMALLEST_NORMAL : Float.MIN_NORMAL);
    NDArray exponent =
        (half ? magnitude.toType(DataType.FLOAT32, false) : magnitude).log2().floor();
    NDArray scale = NDArrays.pow(2f, exponent).toType(w.getDataType(), false);
    NDArray unit = rows.div(scale);
    // Centered in two passes: a float mean rounds, so a constant filter minus its mean is some d,
    // and (W - mean) / sqrt(d^2 + 1e-10) comes out near +-1 instead of 0; the mean of what is left
    // is then d itself, and the filter exactly zero, as PyTorch's var_mean makes it in Composer.
    // The first mean is a constant (no gradient): it cancels in W - mean(W).
    NDArray shifted = unit.sub(unit.mean(new int[] {1}, true).stopGradient());
    NDArray centered = shifted.sub(shifted.mean(new int[] {1}, true));
    if (half) {
      // Brought to unit range once more after centering (no gradient): a filter of std 0.01 has
      // variance 1e-4, and the backward of its square root reaches 1e6, past float16's largest
      // value (65504). The variance of a unit-range filter does not see the epsilon.
      NDArray peak = centered.abs().max(new int[] {1}, true).stopGradient();
      centered = centered.div(peak.maximum(HALF_PRECISION_SMALLEST_NORMAL));
      NDArray variance = centered.square().mean(new int[] {1}, true);
      return centered.div(variance.add(HALF_PRECISION_EPSILON).sqrt()).reshape(w.getShape());
    }
    // 1e-10 scaled as the filter was, kept above zero so that a constant filter (variance 0)
    // divides 0 by something: 0, not NaN.
    // In float64, 1e-10 itself: the float EPSILON is 1.0000000134e-10, which moved the values of a
    // filter whose variance is near 1e-10 by up to 6.7e-9 of themselves.
    Number tiny = w.getDataType() == DataType.FLOAT64 ? (Number) 1e-10 : (Number) EPSILON;
    NDArray epsilon = scale.square().pow(-1).mul(tiny).maximum(Float.MIN_NORMAL);
    NDArray variance = centered.square().mean(new int[] {1}, true);
    return centered.div(variance.add(epsilon).sqrt()).reshape(w.getShape());
  }
}
