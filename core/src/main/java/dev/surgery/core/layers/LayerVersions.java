package dev.surgery.core.layers;

import ai.djl.MalformedModelException;
import java.util.Map;
import java.util.Optional;

/**
 * The version bytes that this package's layers write at the head of their saved parameters, where a
 * DJL block writes its encoding version.
 *
 * <p>DJL parameter files are positional and name no block classes. A layer that keeps the layout of
 * the block it replaced but computes something else (a blurred or standardized convolution, a
 * blurred pool) therefore writes a version of its own: loaded into the original architecture (a
 * plain {@code Model.load}, DJL's {@code Criteria}, a model changed through the core API and saved
 * without a surgery record), the file is refused by DJL's {@code Conv2d} or {@code LambdaBlock}
 * ("Unsupported encoding version") instead of loading the trained weights into layers that compute
 * something else. Each layer still reads files of the block it replaces (pretrained weights, and
 * files of builds before these versions, which wrote the original block's version); it refuses a
 * file of another variant (a blur after the convolution where this one blurs before, a standardized
 * weight where this one uses it as it is).
 *
 * <p>Layers whose evaluation equals the original's ({@link GhostBatchNormBlock}, {@link
 * StochasticResidual}) keep the original's version: their checkpoints load both ways.
 */
public final class LayerVersions {

  /** DJL's first encoding of {@code Conv2d} and {@code LambdaBlock}: a version byte, no shapes. */
  static final byte DJL_FIRST = 1;

  /** DJL's {@code LambdaBlock} encoding (a version byte and the input shapes). */
  static final byte DJL_LAMBDA = 2;

  /** DJL's {@code Conv2d} encoding (a version byte and the input shapes). */
  static final byte DJL_CONV2D = 3;

  /** {@link BlurConv2d}, blurring before the convolution. */
  static final byte BLUR_CONV_BLUR_FIRST = 81;

  /** {@link BlurConv2d}, blurring before the convolution, with the weight standardized. */
  static final byte BLUR_CONV_BLUR_FIRST_STANDARDIZED = 82;

  /** {@link BlurConv2d}, blurring after the convolution. */
  static final byte BLUR_CONV_BLUR_AFTER = 83;

  /** {@link BlurConv2d}, blurring after the convolution, with the weight standardized. */
  static final byte BLUR_CONV_BLUR_AFTER_STANDARDIZED = 84;

  /** {@link WeightStandardizedConv2d}. */
  static final byte WEIGHT_STANDARDIZED_CONV = 85;

  /** {@link BlurMaxPool2d}. */
  static final byte BLUR_MAX_POOL = 86;

  /** {@link BlurPool2d}. */
  static final byte BLUR_POOL = 87;

  private static final Map<Byte, String> LAYERS =
      Map.of(
          BLUR_CONV_BLUR_FIRST, "BlurConv2d (blur before the convolution)",
          BLUR_CONV_BLUR_FIRST_STANDARDIZED,
              "BlurConv2d (blur before the convolution, weight standardized)",
          BLUR_CONV_BLUR_AFTER, "BlurConv2d (blur after the convolution)",
          BLUR_CONV_BLUR_AFTER_STANDARDIZED,
              "BlurConv2d (blur after the convolution, weight standardized)",
          WEIGHT_STANDARDIZED_CONV, "WeightStandardizedConv2d",
          BLUR_MAX_POOL, "BlurMaxPool2d",
          BLUR_POOL, "BlurPool2d");

  private LayerVersions() {}

  /**
   * Names the layer of this package that saves with a version byte.
   *
   * @param version a version byte read from a parameter file
   * @return the layer (with its variant), or empty for a version no layer of this package writes
   */
  public static Optional<String> layerSavedAs(int version) {
    return version < Byte.MIN_VALUE || version > Byte.MAX_VALUE
        ? Optional.empty()
        : Optional.ofNullable(LAYERS.get((byte) version));
  }

  /** The version a {@link BlurConv2d} saves with. */
  static byte blurConv2d(boolean blurFirst, boolean weightStandardized) {
    if (blurFirst) {
      return weightStandardized ? BLUR_CONV_BLUR_FIRST_STANDARDIZED : BLUR_CONV_BLUR_FIRST;
    }
    return weightStandardized ? BLUR_CONV_BLUR_AFTER_STANDARDIZED : BLUR_CONV_BLUR_AFTER;
  }

  /**
   * Decides how a layer reads a saved version: true when the input shapes follow (its own version,
   * or the version of the DJL block it takes the place of), false for DJL's first encoding, which
   * has none.
   *
   * @param layer the layer that loads
   * @param own the version it saves with
   * @param original the version of the DJL block it takes the place of
   * @param read the version the file holds
   * @throws MalformedModelException for any other version: the file holds another kind of block
   */
  static boolean shapesFollow(Object layer, byte own, byte original, byte read)
      throws MalformedModelException {
    if (read == own || read == original) {
      return true;
    }
    if (read == DJL_FIRST) {
      return false;
    }
    throw refused(layer, own, read);
  }

  /**
   * The refusal of a file whose block at this place is not the loading layer's variant.
   *
   * @param layer the layer that loads
   * @param own the version it saves with
   * @param read the version the file holds
   */
  static MalformedModelException refused(Object layer, byte own, byte read) {
    String held =
        layerSavedAs(read)
            .map(name -> "a " + name + " (encoding version " + read + ")")
            .orElse("a block of encoding version " + read);
    return new MalformedModelException(
        "Cannot load parameters for "
            + layerSavedAs(own).orElse(layer.getClass().getSimpleName())
            + ": the file holds "
            + held
            + " at this place, which computes something else; load the file into the"
            + " architecture it was saved from");
  }
}
