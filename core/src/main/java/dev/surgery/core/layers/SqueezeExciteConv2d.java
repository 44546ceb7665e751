package dev.surgery.core.layers;

import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;

/**
 * A convolution followed by a {@link SqueezeExcite2d} gate on its output. It holds the original
 * {@link Conv2d} object itself (same parameters, same optimizer state) as its first child, keyed
 * after its class (for example {@code 01WeightStandardizedConv2d}); only the gate's two weights are
 * new. Later surgery may replace that layer by another one with the same output channels (a {@link
 * BlurConv2d}, a {@link FactorizedConv2d}), which the block then gates.
 */
public class SqueezeExciteConv2d extends TwoStageBlock implements ConvolutionLayer {

  private final Block conv;
  private final SqueezeExcite2d gate;

  /**
   * Wraps a convolution.
   *
   * @param conv the convolution, kept as it is
   * @param latentChannels the gate's hidden width, at least 1
   * @throws IllegalArgumentException if the width is below 1
   */
  public SqueezeExciteConv2d(Conv2d conv, long latentChannels) {
    this(conv, conv.getFilters(), latentChannels);
  }

  /**
   * Wraps a convolution layer that is not a {@code Conv2d} itself, such as a {@link
   * FactorizedConv2d}.
   *
   * @param layer the layer, kept as it is; its output has {@code channels} channels (NCHW)
   * @param channels the layer's output channels
   * @param latentChannels the gate's hidden width, at least 1
   * @throws IllegalArgumentException if the channels or the width are below 1
   */
  @SuppressWarnings("this-escape") // JDK 21+ lint: see FactorizedBlock's constructor
  public SqueezeExciteConv2d(Block layer, long channels, long latentChannels) {
    this.conv = addChildBlock(layer.getClass().getSimpleName(), layer);
    this.gate = addChildBlock("SqueezeExcite2d", new SqueezeExcite2d(channels, latentChannels));
  }

  /**
   * Computes the gate's hidden width the way Composer does: a value of at least 1 is a width
   * (truncated), a smaller one a fraction of the channels (truncated, at least 1 here, where
   * Composer would build a zero-width layer).
   *
   * @param latentChannels the configured value, positive
   * @param channels the convolution's output channels
   * @return the hidden width
   * @throws IllegalArgumentException for a value that is not positive and finite, or no channels
   */
  public static long latentWidth(double latentChannels, long channels) {
    if (!(latentChannels > 0 && Double.isFinite(latentChannels)) || channels < 1) {
      throw new IllegalArgumentException(
          "latent channels must be positive and finite and channels at least 1, got "
              + latentChannels
              + " and "
              + channels);
    }
    long width = (long) (latentChannels >= 1 ? latentChannels : latentChannels * channels);
    return Math.max(1, width);
  }

  /**
   * Returns the gated layer: the wrapped convolution, or what later surgery replaced it with.
   *
   * @return the layer before the gate
   */
  public Block getConv() {
    return conv;
  }

  /**
   * Returns the gate.
   *
   * @return the squeeze-excite gate
   */
  public SqueezeExcite2d getGate() {
    return gate;
  }
}
