package dev.surgery.core.algorithms;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.layers.FactorizedConv2d;
import dev.surgery.core.layers.FactorizedLinear;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Factorization ({@code factorize}): replaces a {@link Conv2d} by a {@link FactorizedConv2d} and a
 * {@link Linear} by a {@link FactorizedLinear} of lower rank, where that lowers the multiply-adds.
 *
 * <p>Composer's rule: the latent size is {@code max(1, floor(l * min(in, out)))} for a fraction
 * {@code l < 1}, else {@code floor(l)}; a layer is factorized only if {@code min(in, out)} reaches
 * {@code min_channels} (convolutions) or {@code min_features} (linears), the convolution is not
 * grouped, and the latent size is at most {@code ceil(fan_in * out / (fan_in + out) - 1)}, with
 * {@code fan_in = in * kh * kw} (the largest rank that is still cheaper). Factorized are plain
 * {@code Linear}s and the convolutions whose forward pass two layers can rebuild ({@link
 * FactorizedConv2d#canFactorize}: plain, weight-standardized or blurred); the new layers keep the
 * standardization and the blur (so BlurPool and weight standardization compose with it in either
 * order). Other subclasses and the layers inside a factorized block are never factorized, so
 * applying it again with the same settings changes nothing.
 *
 * <p>Better than Composer, which starts the new layers from random weights: on an initialized model
 * the new layers start from the truncated SVD of the trained weights, so a factorization during
 * training keeps what was learned up to the discarded singular values. The optimizer drops the old
 * weights' state and starts the new ones fresh (through the engine); the new layers of a frozen
 * layer ({@link LayerFreezing}) are frozen too, so they keep the SVD of the frozen weight and are
 * never updated. The decision needs each layer's input size, so the model must be initialized (or
 * have its input shapes recorded).
 */
public final class Factorize extends AbstractSurgeryAlgorithm {

  /** The config name. */
  public static final String NAME = "factorize";

  /** {@code factorize_convs}. */
  public static final HyperParameter<Boolean> FACTORIZE_CONVS =
      HyperParameter.ofBoolean("factorize_convs", true, "whether to factorize Conv2d layers");

  /** {@code factorize_linears}. */
  public static final HyperParameter<Boolean> FACTORIZE_LINEARS =
      HyperParameter.ofBoolean("factorize_linears", true, "whether to factorize Linear layers");

  /** {@code min_channels}. */
  public static final HyperParameter<Integer> MIN_CHANNELS =
      HyperParameter.ofInt(
          "min_channels", 512, 1, null, "smallest min(in, out) channels of a factorized Conv2d");

  /** {@code latent_channels}. */
  public static final HyperParameter<Double> LATENT_CHANNELS =
      HyperParameter.ofFloat(
          "latent_channels",
          0.25,
          0.0,
          true,
          null,
          "latent channels of a factorized Conv2d; below 1 a fraction of min(in, out)");

  /** {@code min_features}. */
  public static final HyperParameter<Integer> MIN_FEATURES =
      HyperParameter.ofInt(
          "min_features", 512, 1, null, "smallest min(in, out) features of a factorized Linear");

  /** {@code latent_features}. */
  public static final HyperParameter<Double> LATENT_FEATURES =
      HyperParameter.ofFloat(
          "latent_features",
          0.25,
          0.0,
          true,
          null,
          "latent features of a factorized Linear; below 1 a fraction of min(in, out)");

  /** The declaration used by the configuration layer. */
  public static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(
          NAME,
          List.of(
              FACTORIZE_CONVS,
              FACTORIZE_LINEARS,
              MIN_CHANNELS,
              LATENT_CHANNELS,
              MIN_FEATURES,
              LATENT_FEATURES),
          Factorize::new);

  /**
   * Creates Factorize; refuses a configuration that would change nothing.
   *
   * @param values the validated hyperparameters
   * @throws IllegalArgumentException if both {@code factorize_convs} and {@code factorize_linears}
   *     are false
   */
  private Factorize(HyperParameterValues values) {
    super(values);
    // As BlurPool refuses both of its kinds off: an entry that can change nothing is a mistake.
    if (!values.get(FACTORIZE_CONVS) && !values.get(FACTORIZE_LINEARS)) {
      throw new IllegalArgumentException(
          "factorize_convs and factorize_linears are both false: at least one must be true for "
              + NAME
              + " to change anything");
    }
  }

  /**
   * {@return a builder with the defaults of Composer's functional {@code apply_factorization}
   * (min_channels and min_features 512, latent_channels and latent_features 0.25), not those of its
   * {@code Factorize} class (256, 0.25, 256 and 128)}
   */
  public static Builder builder() {
    return new Builder();
  }

  /** Input sizes decide which layers are factorized. */
  @Override
  public boolean needsInitializedModel() {
    return value(FACTORIZE_CONVS) || value(FACTORIZE_LINEARS);
  }

  /**
   * Computes the latent size: a fraction of {@code min(in, out)} (at least 1) below 1, else the
   * truncated value.
   *
   * @param latent the configured value
   * @param in input size
   * @param out output size
   * @return the latent size
   */
  static long latentSize(double latent, long in, long out) {
    return latent < 1 ? Math.max(1, (long) (latent * Math.min(in, out))) : (long) latent;
  }

  /**
   * Returns the largest rank whose factorization costs fewer multiply-adds than the dense layer.
   *
   * @param fanIn inputs per output (in * kh * kw for a convolution)
   * @param out outputs
   * @return the largest rank worth factorizing to
   */
  static long maxRank(long fanIn, long out) {
    double breakeven = (double) fanIn * out / (fanIn + out);
    return (long) Math.ceil(breakeven - 1);
  }

  /** {@inheritDoc} */
  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    Map<Block, String> paths = BlockPaths.index(context.model());
    Map<Block, Boolean> inside = new IdentityHashMap<>();
    for (Block b : paths.keySet()) {
      if (b instanceof FactorizedConv2d || b instanceof FactorizedLinear) {
        b.getChildren().values().forEach(child -> inside.put(child, true));
      }
    }
    Map<Block, Integer> ranks = new IdentityHashMap<>();
    for (Map.Entry<Block, String> e : paths.entrySet()) {
      Block b = e.getKey();
      if (e.getValue().isEmpty() || inside.containsKey(b)) {
        continue;
      }
      if (value(FACTORIZE_CONVS)
          && b instanceof Conv2d conv
          && FactorizedConv2d.canFactorize(conv)) {
        long in = BlockInspector.inputChannels(conv);
        require(in, e.getValue());
        long out = conv.getFilters();
        long latent = latentSize(value(LATENT_CHANNELS), in, out);
        long fanIn = in * conv.getKernelShape().size();
        if (conv.getGroups() == 1
            && Math.min(in, out) >= value(MIN_CHANNELS)
            && latent <= maxRank(fanIn, out)) {
          ranks.put(b, (int) latent);
        }
      } else if (value(FACTORIZE_LINEARS) && b.getClass() == Linear.class) {
        Linear linear = (Linear) b;
        long in = inputFeatures(linear);
        require(in, e.getValue());
        long out = BlockInspector.linearUnits(linear);
        long latent = latentSize(value(LATENT_FEATURES), in, out);
        if (Math.min(in, out) >= value(MIN_FEATURES) && latent <= maxRank(in, out)) {
          ranks.put(b, (int) latent);
        }
      }
    }
    return policy(
        BlockMatcher.byBlock(ranks::containsKey),
        (block, index) ->
            block instanceof Conv2d conv
                ? FactorizedConv2d.from(conv, ranks.get(block))
                : FactorizedLinear.from((Linear) block, ranks.get(block)));
  }

  private static long inputFeatures(Linear linear) {
    var weight = linear.getParameters().get("weight");
    if (weight.getShape() != null) {
      return weight.getShape().get(1);
    }
    Shape[] shapes = DjlShapes.recordedInputShapes(linear);
    return shapes == null ? -1 : shapes[0].tail();
  }

  private static void require(long in, String path) {
    if (in < 0) {
      throw new SurgeryException(
          BlockPaths.display(path),
          NAME
              + " needs the input size of every layer it may factorize; initialize the model first");
    }
  }

  /** Builds {@link Factorize}. */
  public static final class Builder extends AlgorithmBuilder<Builder, Factorize> {

    Builder() {
      super(SPEC);
    }

    /**
     * Sets whether convolutions are factorized.
     *
     * @param factorizeConvs true to factorize them
     * @return this builder
     */
    public Builder optFactorizeConvs(boolean factorizeConvs) {
      return set(FACTORIZE_CONVS, factorizeConvs);
    }

    /**
     * Sets whether linear layers are factorized.
     *
     * @param factorizeLinears true to factorize them
     * @return this builder
     */
    public Builder optFactorizeLinears(boolean factorizeLinears) {
      return set(FACTORIZE_LINEARS, factorizeLinears);
    }

    /**
     * Sets the smallest {@code min(in, out)} channels of a factorized convolution.
     *
     * @param minChannels at least 1
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optMinChannels(int minChannels) {
      return set(MIN_CHANNELS, minChannels);
    }

    /**
     * Sets the latent channels: below 1 a fraction of {@code min(in, out)}, else a count.
     *
     * @param latentChannels positive
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optLatentChannels(double latentChannels) {
      return set(LATENT_CHANNELS, latentChannels);
    }

    /**
     * Sets the smallest {@code min(in, out)} features of a factorized linear layer.
     *
     * @param minFeatures at least 1
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optMinFeatures(int minFeatures) {
      return set(MIN_FEATURES, minFeatures);
    }

    /**
     * Sets the latent features: below 1 a fraction of {@code min(in, out)}, else a count.
     *
     * @param latentFeatures positive
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optLatentFeatures(double latentFeatures) {
      return set(LATENT_FEATURES, latentFeatures);
    }
  }
}
