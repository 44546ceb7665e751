package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;

/**
 * A squeeze-excite gate for NCHW feature maps: each channel is scaled by {@code sigmoid(W2 relu(W1
 * m))}, where {@code m} is the vector of per-channel spatial means and {@code W1} ({@code latent x
 * channels}) and {@code W2} ({@code channels x latent}) are bias-free linear layers. The two layers
 * are children like any other: a surgery may replace them (for example by factorized ones).
 */
public class SqueezeExcite2d extends SingleInputBlock {

  private final long channels;
  private final long latentChannels;
  // Typed Block, not Linear: a later surgery (factorize) may put another layer in their place.
  private final Block reduce;
  private final Block expand;

  /**
   * Creates a gate.
   *
   * @param channels the number of channels of the gated feature map
   * @param latentChannels the width of the hidden layer, at least 1
   * @throws IllegalArgumentException if a size is below 1
   */
  @SuppressWarnings("this-escape") // JDK 21+ lint: see FactorizedBlock's constructor
  public SqueezeExcite2d(long channels, long latentChannels) {
    if (channels < 1 || latentChannels < 1) {
      throw new IllegalArgumentException(
          "channels and latent channels must be >= 1, got " + channels + " and " + latentChannels);
    }
    this.channels = channels;
    this.latentChannels = latentChannels;
    reduce =
        addChildBlock("reduce", Linear.builder().setUnits(latentChannels).optBias(false).build());
    expand = addChildBlock("expand", Linear.builder().setUnits(channels).optBias(false).build());
  }

  /**
   * Returns the hidden width.
   *
   * @return the number of latent channels
   */
  public long getLatentChannels() {
    return latentChannels;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardSingle(ParameterStore parameterStore, NDArray x, boolean training) {
    long n = x.getShape().get(0);
    long c = x.getShape().get(1);
    NDArray squeezed = x.reshape(n, c, -1).mean(new int[] {2});
    NDArray hidden =
        Activation.relu(reduce.forward(parameterStore, new NDList(squeezed), training).head());
    NDArray gate =
        Activation.sigmoid(expand.forward(parameterStore, new NDList(hidden), training).head());
    return new NDList(x.mul(gate.reshape(n, c, 1, 1)));
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputs) {
    return new Shape[] {inputs[0]};
  }

  /** {@inheritDoc} */
  @Override
  protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
    long n = inputShapes[0].get(0);
    if (inputShapes[0].get(1) != channels) {
      throw new IllegalArgumentException(
          "squeeze-excite gate built for " + channels + " channels got input " + inputShapes[0]);
    }
    reduce.initialize(manager, dataType, new Shape(n, channels));
    expand.initialize(manager, dataType, new Shape(n, latentChannels));
  }
}
