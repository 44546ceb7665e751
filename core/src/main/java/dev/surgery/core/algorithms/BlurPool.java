package dev.surgery.core.algorithms;

import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.BlurMaxPool2d;
import dev.surgery.core.layers.WeightStandardizedConv2d;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * BlurPool (Zhang, 2019, "Making Convolutional Networks Shift-Invariant Again"; MosaicML Composer's
 * {@code blurpool}): adds an anti-aliasing low-pass filter to every subsampling step.
 *
 * <ul>
 *   <li>{@code replace_convs}: every plain {@link Conv2d} with a stride above 1 (in either axis)
 *       and at least {@code min_channels} input channels becomes a {@link BlurConv2d} that keeps
 *       the convolution's own parameters (weights, trainer entries and optimizer state carry on);
 *   <li>{@code replace_maxpools}: every {@code maxPool2d} lambda becomes a {@link BlurMaxPool2d};
 *   <li>{@code blur_first}: a {@code BlurConv2d} blurs before its convolution (Composer's default,
 *       cheaper) or after a stride-1 convolution;
 *   <li>{@code min_channels}: keeps the stem convolution from blurring the raw image.
 * </ul>
 *
 * <p>Only convolutions whose forward pass BlurPool can rebuild are replaced: a plain {@code Conv2d}
 * and a {@link WeightStandardizedConv2d}, whose replacement keeps standardizing its weight (so
 * weight standardization and BlurPool compose in either order; see {@link
 * dev.surgery.core.layers.AdoptingConv2d}). Any other {@code Conv2d} subclass has a forward pass of
 * its own that the replacement would drop, and an existing {@code BlurConv2d} is left alone, so
 * applying BlurPool twice changes nothing the second time. Convolutions inside other blocks (the
 * layers of a factorized convolution, the convolution a squeeze-excite block gates) are replaced
 * like any other. The replacements keep output shapes and the saved-parameter layout of the blocks
 * they replace.
 */
public final class BlurPool extends AbstractSurgeryAlgorithm {

  /** The config name. */
  public static final String NAME = "blurpool";

  private static final HyperParameter REPLACE_CONVS =
      HyperParameter.ofBoolean(
          "replace_convs", true, "replace strided Conv2d blocks with BlurConv2d");
  private static final HyperParameter REPLACE_MAXPOOLS =
      HyperParameter.ofBoolean(
          "replace_maxpools", true, "replace maxPool2d blocks with BlurMaxPool2d");
  private static final HyperParameter BLUR_FIRST =
      HyperParameter.ofBoolean(
          "blur_first", true, "blur before the strided convolution (true) or after it (false)");
  private static final HyperParameter MIN_CHANNELS =
      HyperParameter.ofInt(
          "min_channels",
          16,
          0,
          null,
          "smallest number of input channels of a convolution to replace");

  /** The hyperparameter declarations, in documentation order. */
  public static final List<HyperParameter> HYPER_PARAMETERS =
      List.of(REPLACE_CONVS, REPLACE_MAXPOOLS, BLUR_FIRST, MIN_CHANNELS);

  /** The description the configuration layer uses to build BlurPool by name. */
  public static final AlgorithmSpec SPEC =
      new AlgorithmSpec(NAME, HYPER_PARAMETERS, BlurPool::fromConfig);

  private static final Logger logger = LoggerFactory.getLogger(BlurPool.class);

  private final boolean replaceConvs;
  private final boolean replaceMaxpools;
  private final boolean blurFirst;
  private final int minChannels;

  private BlurPool(Builder builder) {
    replaceConvs = builder.replaceConvs;
    replaceMaxpools = builder.replaceMaxpools;
    blurFirst = builder.blurFirst;
    minChannels = builder.minChannels;
  }

  /**
   * Creates a builder with Composer's defaults.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Builds BlurPool from config values (snake_case names; missing ones take their defaults).
   *
   * @param values hyperparameter name to value
   * @return the algorithm
   * @throws IllegalArgumentException naming the first unknown or invalid parameter
   */
  public static BlurPool fromConfig(Map<String, Object> values) {
    Builder b = builder();
    for (Map.Entry<String, Object> e : values.entrySet()) {
      Object v = e.getValue();
      switch (e.getKey()) {
        case "replace_convs" -> b.optReplaceConvs(asBoolean(REPLACE_CONVS, v));
        case "replace_maxpools" -> b.optReplaceMaxpools(asBoolean(REPLACE_MAXPOOLS, v));
        case "blur_first" -> b.optBlurFirst(asBoolean(BLUR_FIRST, v));
        case "min_channels" -> b.optMinChannels(asInt(MIN_CHANNELS, v));
        default ->
            throw new IllegalArgumentException(
                "unknown hyperparameter '"
                    + e.getKey()
                    + "' for "
                    + NAME
                    + "; valid: "
                    + SPEC.names());
      }
    }
    return b.build();
  }

  private static boolean asBoolean(HyperParameter h, Object value) {
    h.check(value);
    return (Boolean) value;
  }

  private static int asInt(HyperParameter h, Object value) {
    h.check(value);
    long v = ((Number) value).longValue();
    if (v > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(
          h.name() + " must be" + h.range() + " and fit an int, got " + value);
    }
    return (int) v;
  }

  /** {@inheritDoc} */
  @Override
  public String name() {
    return NAME;
  }

  /** {@inheritDoc} */
  @Override
  public Map<String, Object> hyperparameters() {
    Map<String, Object> values = new LinkedHashMap<>();
    values.put(REPLACE_CONVS.name(), replaceConvs);
    values.put(REPLACE_MAXPOOLS.name(), replaceMaxpools);
    values.put(BLUR_FIRST.name(), blurFirst);
    values.put(MIN_CHANNELS.name(), minChannels);
    return values;
  }

  /**
   * Returns true when strided convolutions are replaced subject to {@code min_channels > 0}: their
   * input channels are known only once the model is initialized.
   *
   * @return whether input shapes are needed
   */
  @Override
  public boolean needsInitializedModel() {
    return replaceConvs && minChannels > 0;
  }

  /**
   * Tells whether strided convolutions are replaced.
   *
   * @return {@code replace_convs}
   */
  public boolean isReplaceConvs() {
    return replaceConvs;
  }

  /**
   * Tells whether max pools are replaced.
   *
   * @return {@code replace_maxpools}
   */
  public boolean isReplaceMaxpools() {
    return replaceMaxpools;
  }

  /**
   * Tells whether a {@link BlurConv2d} blurs before its convolution.
   *
   * @return {@code blur_first}
   */
  public boolean isBlurFirst() {
    return blurFirst;
  }

  /**
   * Returns the smallest number of input channels of a replaced convolution.
   *
   * @return {@code min_channels}
   */
  public int getMinChannels() {
    return minChannels;
  }

  /**
   * Applies BlurPool; logs a warning when it changed nothing (as Composer's {@code
   * NoEffectWarning}). With {@code include} targets, changing nothing is an error instead (see
   * {@link AbstractSurgeryAlgorithm#apply}).
   *
   * @param context the model, its trainers and where training stands
   * @return the replaced blocks
   * @throws SurgeryException if the model is uninitialized while {@code min_channels > 0} needs
   *     channel counts, or the surgery failed; nothing was changed then
   */
  @Override
  public SurgeryReport apply(SurgeryContext context) {
    SurgeryReport report = super.apply(context);
    if (report.isEmpty()) {
      logger.warn("Applying {} did not change any layers: {}", NAME, hyperparameters());
    }
    return report;
  }

  /** {@inheritDoc} */
  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    LinkedHashMap<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    // Composer's order: pools first, then convolutions (the matchers are disjoint anyway).
    if (replaceMaxpools) {
      policies.put(
          BlockMatcher.lambdaNamed("maxPool2d"),
          (block, index) -> BlurMaxPool2d.fromMaxPool2d(block));
    }
    if (replaceConvs) {
      if (minChannels > 0) {
        requireKnownChannels(context.model());
      }
      policies.put(
          (block, path) ->
              isStridedPlainConv(block)
                  && (minChannels == 0
                      || BlockInspector.inputChannels((Conv2d) block) >= minChannels),
          (block, index) -> BlurConv2d.fromConv2d((Conv2d) block, blurFirst));
    }
    return policies;
  }

  /** Refuses to guess: {@code min_channels} needs the input channels of every strided conv. */
  private void requireKnownChannels(Block root) {
    for (Map.Entry<Block, String> e : BlockPaths.index(root).entrySet()) {
      if (isStridedPlainConv(e.getKey()) && BlockInspector.inputChannels((Conv2d) e.getKey()) < 0) {
        throw new SurgeryException(
            BlockPaths.display(e.getValue()),
            NAME
                + " with min_channels="
                + minChannels
                + " needs the input channels of this strided Conv2d, which are unknown until the"
                + " model is initialized: apply it after Trainer.initialize, or set min_channels"
                + " to 0");
      }
    }
  }

  private static boolean isStridedPlainConv(Block block) {
    if (block.getClass() != Conv2d.class && block.getClass() != WeightStandardizedConv2d.class) {
      return false;
    }
    Conv2d conv = (Conv2d) block;
    return conv.getStride().get(0) > 1 || conv.getStride().get(1) > 1;
  }

  /** Builds {@link BlurPool}; the defaults are Composer's. */
  public static final class Builder {

    private boolean replaceConvs = true;
    private boolean replaceMaxpools = true;
    private boolean blurFirst = true;
    private int minChannels = 16;

    Builder() {}

    /**
     * Sets whether strided convolutions are replaced ({@code replace_convs}, default true).
     *
     * @param replaceConvs true to replace them
     * @return this builder
     */
    public Builder optReplaceConvs(boolean replaceConvs) {
      this.replaceConvs = replaceConvs;
      return this;
    }

    /**
     * Sets whether max pools are replaced ({@code replace_maxpools}, default true).
     *
     * @param replaceMaxpools true to replace them
     * @return this builder
     */
    public Builder optReplaceMaxpools(boolean replaceMaxpools) {
      this.replaceMaxpools = replaceMaxpools;
      return this;
    }

    /**
     * Sets whether a {@link BlurConv2d} blurs before its convolution ({@code blur_first}, default
     * true).
     *
     * @param blurFirst true to blur first
     * @return this builder
     */
    public Builder optBlurFirst(boolean blurFirst) {
      this.blurFirst = blurFirst;
      return this;
    }

    /**
     * Sets the smallest number of input channels of a replaced convolution ({@code min_channels},
     * default 16, at least 0).
     *
     * @param minChannels the threshold
     * @return this builder
     * @throws IllegalArgumentException if it is negative
     */
    public Builder optMinChannels(int minChannels) {
      MIN_CHANNELS.check(minChannels);
      this.minChannels = minChannels;
      return this;
    }

    /**
     * Builds the algorithm.
     *
     * @return the algorithm
     * @throws IllegalArgumentException if both {@code replace_convs} and {@code replace_maxpools}
     *     are false, since BlurPool would then do nothing
     */
    public BlurPool build() {
      if (!replaceConvs && !replaceMaxpools) {
        throw new IllegalArgumentException(
            "replace_convs and replace_maxpools are both false: at least one must be true for "
                + NAME
                + " to change anything");
      }
      return new BlurPool(this);
    }
  }
}
