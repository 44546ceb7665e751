package dev.surgery.core.algorithms;

import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.layers.FactorizedConv2d;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Squeeze-excite ({@code squeeze_excite}): every {@link Conv2d} (subclasses included) and every
 * {@link FactorizedConv2d} (gated as the convolution it stands for, never its two layers) with at
 * least {@code min_channels} input and output channels is followed by a squeeze-excite gate, by
 * replacing it with a {@link SqueezeExciteConv2d} that holds the same layer object.
 *
 * <p>The convolution keeps its parameters and optimizer state; the gate's two weights are new
 * (Xavier-initialized from DJL's random generator, so replicas agree for a given seed). The gate of
 * a frozen convolution ({@link LayerFreezing}) is frozen too, unlike Composer, whose new modules
 * always train: the wrapper takes the frozen layer's place in the forward order, where freezing
 * promises a prefix that needs no backward pass (a trainable gate there would need one through
 * every later layer) and whose layers never train again. Such a gate keeps its random start: it
 * scales the channels, input by input, as an untrained gate does, and the trainable layers after it
 * adapt to that; apply squeeze-excite before freezing reaches a layer to have its gate learn.
 * Deciding which convolutions qualify needs their input channels, known once the model is
 * initialized (or its input shapes recorded). A convolution already wrapped, or inside a wrapped
 * layer, is never wrapped again.
 *
 * <p>The wrapper holds the convolution object itself, so whatever that convolution computes
 * (standardized weight, blur) carries on; BlurPool, weight standardization and Factorize later
 * replace the wrapped convolution inside the wrapper, so they compose with it in either order.
 */
public final class SqueezeExcite extends AbstractSurgeryAlgorithm {

  /** The config name. */
  public static final String NAME = "squeeze_excite";

  /** {@code latent_channels}: the gate's hidden width, or a fraction of the channels if below 1. */
  public static final HyperParameter<Double> LATENT_CHANNELS =
      HyperParameter.ofFloat(
          "latent_channels",
          64,
          0.0,
          true,
          (double) Integer.MAX_VALUE, // a width: beyond an int no gate can be built
          "hidden width of the gate; a value below 1 is a fraction of the channels");

  /** {@code min_channels}: the smallest min(in, out) channels of a convolution that gets a gate. */
  public static final HyperParameter<Integer> MIN_CHANNELS =
      HyperParameter.ofInt(
          "min_channels",
          128,
          0,
          null,
          "convolutions with fewer input or output channels than this keep no gate");

  /** The declaration used by the configuration layer. */
  public static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(NAME, List.of(LATENT_CHANNELS, MIN_CHANNELS), SqueezeExcite::new);

  private SqueezeExcite(HyperParameterValues values) {
    super(values);
  }

  /** {@return a builder with Composer's defaults} */
  public static Builder builder() {
    return new Builder();
  }

  /** Input channels are needed to apply {@code min_channels}, unless every convolution passes. */
  @Override
  public boolean needsInitializedModel() {
    return value(MIN_CHANNELS) > 1;
  }

  /** {@inheritDoc} */
  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    Map<Block, String> paths = BlockPaths.index(context.model());
    // A gated layer, and every convolution inside it (the layers of a factorized convolution),
    // already has its gate: never gate them again.
    Set<Block> wrapped = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Block b : paths.keySet()) {
      if (b instanceof SqueezeExciteConv2d se) {
        wrapped.addAll(BlockPaths.index(se.getConv()).keySet());
      }
    }
    // A factorized convolution is gated as the convolution it stands for, never its two layers.
    for (Block b : paths.keySet()) {
      if (b instanceof FactorizedConv2d f) {
        f.getChildren().values().forEach(wrapped::add);
      }
    }
    Map<Block, Long> selected = new IdentityHashMap<>();
    for (Map.Entry<Block, String> e : paths.entrySet()) {
      Block b = e.getKey();
      long in;
      long out;
      if (b instanceof Conv2d conv) {
        in = value(MIN_CHANNELS) > 1 ? BlockInspector.inputChannels(conv) : 0;
        out = conv.getFilters();
      } else if (b instanceof FactorizedConv2d f) {
        in = value(MIN_CHANNELS) > 1 ? f.getInputChannels() : 0;
        out = f.getFilters();
      } else {
        continue;
      }
      if (wrapped.contains(b) || e.getValue().isEmpty()) {
        continue;
      }
      if (value(MIN_CHANNELS) > 1) {
        if (in < 0) {
          throw new SurgeryException(
              BlockPaths.display(e.getValue()),
              NAME
                  + " needs the input channels of every Conv2d to apply min_channels="
                  + value(MIN_CHANNELS)
                  + "; initialize the model first");
        }
        if (Math.min(in, out) < value(MIN_CHANNELS)) {
          continue;
        }
      }
      selected.put(b, out);
    }
    return policy(
        BlockMatcher.byBlock(selected::containsKey),
        (block, index) -> {
          long channels = selected.get(block);
          long latent = SqueezeExciteConv2d.latentWidth(value(LATENT_CHANNELS), channels);
          return block instanceof Conv2d conv
              ? new SqueezeExciteConv2d(conv, latent)
              : new SqueezeExciteConv2d(block, channels, latent);
        });
  }

  /** Builds {@link SqueezeExcite}. */
  public static final class Builder extends AlgorithmBuilder<Builder, SqueezeExcite> {

    Builder() {
      super(SPEC);
    }

    /**
     * Sets the gate's hidden width: a value of at least 1 is a width (truncated to a whole number),
     * a value in (0, 1) a fraction of the convolution's output channels.
     *
     * @param latentChannels a positive number
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optLatentChannels(double latentChannels) {
      return set(LATENT_CHANNELS, latentChannels);
    }

    /**
     * Sets the smallest {@code min(in, out)} channels of a convolution that gets a gate.
     *
     * @param minChannels at least 0
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optMinChannels(int minChannels) {
      return set(MIN_CHANNELS, minChannels);
    }
  }
}
