package dev.surgery.core.algorithms;

import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv1d;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.convolutional.Conv3d;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.LayerNorm;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.layers.AdoptingConv2d;
import dev.surgery.core.layers.BatchNormLayer;
import dev.surgery.core.layers.WeightStandardizedConv2d;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Weight standardization ({@code weight_standardization}): every plain {@link Conv2d} becomes a
 * {@link WeightStandardizedConv2d}, except the last {@code n_last_layers_ignore} convolutions.
 *
 * <p>Convolutions are counted in traversal order (pre-order over the block tree, which follows the
 * forward order of sequential models and of DJL's ResNets). Standardization is a property of the
 * project's convolutions ({@link AdoptingConv2d#isWeightStandardized}), as Composer makes it a
 * parametrization that keeps the module's class: a {@code BlurConv2d} keeps blurring and
 * standardizes too ({@link AdoptingConv2d#withWeightStandardization}), and BlurPool, Factorize and
 * squeeze-excite keep a standardized convolution standardizing, so the algorithms compose in either
 * order. Other {@code Conv2d} subclasses count but are never replaced, since their own forward
 * would be lost. The replacement keeps the convolution's parameters, so weights, optimizer state
 * and the checkpoint layout are unchanged; the algorithm works on initialized and uninitialized
 * models and is idempotent.
 */
public final class WeightStandardization extends AbstractSurgeryAlgorithm {

  /** The config name. */
  public static final String NAME = "weight_standardization";

  /** {@code n_last_layers_ignore}: how many of the last convolutions to leave as they are. */
  public static final HyperParameter<Integer> N_LAST_LAYERS_IGNORE =
      HyperParameter.ofInt(
          "n_last_layers_ignore",
          0,
          0,
          null,
          "number of convolutions, counted from the end, that are not standardized");

  /** The declaration used by the configuration layer. */
  public static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(NAME, List.of(N_LAST_LAYERS_IGNORE), WeightStandardization::new);

  private WeightStandardization(HyperParameterValues values) {
    super(values);
  }

  /** {@return a builder with Composer's defaults} */
  public static Builder builder() {
    return new Builder();
  }

  /** {@inheritDoc} */
  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    List<Conv2d> convs = new ArrayList<>();
    int otherConvs = 0;
    boolean normalizes = false;
    for (Block b : BlockPaths.index(context.model()).keySet()) {
      if (b instanceof Conv2d c && b != context.model()) {
        convs.add(c);
      } else if (b instanceof Conv1d || b instanceof Conv3d) {
        otherConvs++;
      }
      normalizes = normalizes || isNormalization(b);
    }
    if (otherConvs > 0) {
      // Composer standardizes (and counts) Conv1d and Conv3d too: said, never silent.
      warn(
          name()
              + ": the model has "
              + otherConvs
              + " Conv1d/Conv3d layer(s), which stay plain: only Conv2d is standardized (Composer"
              + " also standardizes Conv1d and Conv3d), and n_last_layers_ignore counts Conv2d"
              + " layers alone");
    }
    int target = Math.max(convs.size() - value(N_LAST_LAYERS_IGNORE), 0);
    Set<Block> selected = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Conv2d c : convs.subList(0, target)) {
      if (canStandardize(c)) {
        selected.add(c);
      }
    }
    if (!selected.isEmpty() && !normalizes) {
      // Each standardized layer scales its output by about sqrt(fan-in), and nothing brings it
      // back: on DJL's GoogLeNet, SqueezeNet, AlexNet and NiN the next loss was 6e4 to 2e20.
      warn(
          name()
              + ": the model has no normalization layer (BatchNorm, LayerNorm, ghost batch norm,"
              + " or a block of its own named as a group, instance or RMS norm), which weight"
              + " standardization is meant to precede: each of the "
              + selected.size()
              + " standardized convolutions scales its output by about the square root of its"
              + " fan-in, and the loss may grow by orders of magnitude (docs/algorithms.md)");
    }
    return policy(
        BlockMatcher.byBlock(selected::contains),
        (block, index) ->
            block instanceof AdoptingConv2d own
                ? own.withWeightStandardization()
                : WeightStandardizedConv2d.from((Conv2d) block));
  }

  /**
   * Names of blocks of the program's own (a class, or a named {@code LambdaBlock}) that normalize
   * activations: a group norm (DJL 0.36 has none, and group norm is what weight standardization is
   * usually paired with), instance, RMS, filter-response or local-response norms. Not any name
   * ending in Norm: weight and spectral norms reparametrize weights, and leave the output's scale
   * to grow.
   */
  private static final Pattern NORMALIZATION_NAME =
      Pattern.compile(
          "(?i).*(group|instance|layer|batch|rms|filterresponse|localresponse)_?norm(alization)?");

  /**
   * Whether a block normalizes its input: DJL's batch and layer norms, this library's ghost one,
   * and a block of the program's own named as one ({@link #NORMALIZATION_NAME}).
   */
  private static boolean isNormalization(Block block) {
    return block instanceof BatchNorm
        || block instanceof LayerNorm
        || block instanceof BatchNormLayer
        || NORMALIZATION_NAME.matcher(BlockPaths.typeName(block)).matches();
  }

  /**
   * Tells whether this algorithm would make a convolution standardize its weight: a plain {@code
   * Conv2d}, or one of the project's convolutions that does not standardize yet.
   *
   * @param conv a convolution
   * @return true when it would be replaced
   */
  public static boolean canStandardize(Conv2d conv) {
    return conv.getClass() == Conv2d.class
        || (conv instanceof AdoptingConv2d own && !own.isWeightStandardized());
  }

  /** Builds {@link WeightStandardization}. */
  public static final class Builder extends AlgorithmBuilder<Builder, WeightStandardization> {

    Builder() {
      super(SPEC);
    }

    /**
     * Sets how many of the last convolutions keep their plain weights.
     *
     * @param n a count, at least 0
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optNLastLayersIgnore(int n) {
      return set(N_LAST_LAYERS_IGNORE, n);
    }
  }
}
