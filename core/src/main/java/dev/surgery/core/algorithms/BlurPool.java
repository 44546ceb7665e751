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

  /** {@code replace_convs}: whether strided convolutions get a blur. */
  public static final HyperParameter<Boolean> REPLACE_CONVS =
      HyperParameter.ofBoolean(
          "replace_convs", true, "replace strided Conv2d blocks with BlurConv2d");

  /** {@code replace_maxpools}: whether max pools get a blur. */
  public static final HyperParameter<Boolean> REPLACE_MAXPOOLS =
      HyperParameter.ofBoolean(
          "replace_maxpools", true, "replace maxPool2d blocks with BlurMaxPool2d");

  /** {@code blur_first}: whether a blurred convolution blurs before convolving. */
  public static final HyperParameter<Boolean> BLUR_FIRST =
      HyperParameter.ofBoolean(
          "blur_first", true, "blur before the strided convolution (true) or after it (false)");

  /** {@code min_channels}: the smallest input channels of a convolution that gets a blur. */
  public static final HyperParameter<Integer> MIN_CHANNELS =
      HyperParameter.ofInt(
          "min_channels",
          16,
          0,
          null,
          "smallest number of input channels of a convolution to replace");

  /** The description the configuration layer uses to build BlurPool by name. */
  public static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(
          NAME, List.of(REPLACE_CONVS, REPLACE_MAXPOOLS, BLUR_FIRST, MIN_CHANNELS), BlurPool::new);

  /**
   * Creates BlurPool; refuses a configuration that would change nothing.
   *
   * @param values the validated hyperparameters
   * @throws IllegalArgumentException if both {@code replace_convs} and {@code replace_maxpools} are
   *     false
   */
  private BlurPool(HyperParameterValues values) {
    super(values);
    if (!values.get(REPLACE_CONVS) && !values.get(REPLACE_MAXPOOLS)) {
      throw new IllegalArgumentException(
          "replace_convs and replace_maxpools are both false: at least one must be true for "
              + NAME
              + " to change anything");
    }
  }

  /** {@return a builder with Composer's defaults} */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Builds BlurPool from config values, as {@code SPEC.create(values)} does.
   *
   * @param values hyperparameter name to value; missing ones take their defaults
   * @return the algorithm
   * @throws IllegalArgumentException naming the first unknown or invalid parameter
   */
  public static BlurPool fromConfig(Map<String, Object> values) {
    return (BlurPool) SPEC.create(values);
  }

  /**
   * Returns true when strided convolutions are replaced subject to {@code min_channels > 0}: their
   * input channels are known only once the model is initialized.
   *
   * @return whether input shapes are needed
   */
  @Override
  public boolean needsInitializedModel() {
    return value(REPLACE_CONVS) && value(MIN_CHANNELS) > 0;
  }

  /**
   * Tells whether strided convolutions are replaced.
   *
   * @return {@code replace_convs}
   */
  public boolean isReplaceConvs() {
    return value(REPLACE_CONVS);
  }

  /**
   * Tells whether max pools are replaced.
   *
   * @return {@code replace_maxpools}
   */
  public boolean isReplaceMaxpools() {
    return value(REPLACE_MAXPOOLS);
  }

  /**
   * Tells whether a {@link BlurConv2d} blurs before its convolution.
   *
   * @return {@code blur_first}
   */
  public boolean isBlurFirst() {
    return value(BLUR_FIRST);
  }

  /**
   * Returns the smallest number of input channels of a replaced convolution.
   *
   * @return {@code min_channels}
   */
  public int getMinChannels() {
    return value(MIN_CHANNELS);
  }

  /** {@inheritDoc} */
  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    LinkedHashMap<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    // Composer's order: pools first, then convolutions (the matchers are disjoint anyway).
    if (value(REPLACE_MAXPOOLS)) {
      policies.put(
          BlockMatcher.lambdaNamed("maxPool2d"),
          (block, index) -> BlurMaxPool2d.fromMaxPool2d(block));
    }
    if (value(REPLACE_CONVS)) {
      if (value(MIN_CHANNELS) > 0) {
        requireKnownChannels(context.model());
      }
      policies.put(
          BlockMatcher.byBlock(
              block ->
                  isStridedPlainConv(block)
                      && (value(MIN_CHANNELS) == 0
                          || BlockInspector.inputChannels((Conv2d) block) >= value(MIN_CHANNELS))),
          (block, index) -> BlurConv2d.fromConv2d((Conv2d) block, value(BLUR_FIRST)));
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
                + value(MIN_CHANNELS)
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
  public static final class Builder extends AlgorithmBuilder<Builder, BlurPool> {

    Builder() {
      super(SPEC);
    }

    /**
     * Sets whether strided convolutions are replaced ({@code replace_convs}, default true).
     *
     * @param replaceConvs true to replace them
     * @return this builder
     */
    public Builder optReplaceConvs(boolean replaceConvs) {
      return set(REPLACE_CONVS, replaceConvs);
    }

    /**
     * Sets whether max pools are replaced ({@code replace_maxpools}, default true).
     *
     * @param replaceMaxpools true to replace them
     * @return this builder
     */
    public Builder optReplaceMaxpools(boolean replaceMaxpools) {
      return set(REPLACE_MAXPOOLS, replaceMaxpools);
    }

    /**
     * Sets whether a {@link BlurConv2d} blurs before its convolution ({@code blur_first}, default
     * true).
     *
     * @param blurFirst true to blur first
     * @return this builder
     */
    public Builder optBlurFirst(boolean blurFirst) {
      return set(BLUR_FIRST, blurFirst);
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
      return set(MIN_CHANNELS, minChannels);
    }
  }
}
