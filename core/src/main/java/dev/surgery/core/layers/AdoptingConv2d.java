package dev.surgery.core.layers;

import ai.djl.MalformedModelException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.ParameterList;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.surgery.core.internal.DjlShapes;
import java.io.DataInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@link Conv2d} whose subclasses change only the forward pass and can take over an existing
 * convolution's own {@code Parameter} objects. Adopting keeps the parameter ids, so a live
 * trainer's store and optimizer state carry on untouched, and keeps the saved layout of a plain
 * {@code Conv2d} (same metadata and parameters). This project's subclasses, which compute something
 * else, save with a version byte of their own (the three-argument constructor; {@link
 * LayerVersions}): their checkpoints are refused by a plain {@code Conv2d} rather than loaded into
 * a layer that computes something else, while they still load a plain convolution's parameters
 * (pretrained weights). A subclass built with the two-argument constructor saves DJL's version.
 *
 * <p>Weight standardization is a property of such a convolution rather than a class of its own (as
 * Composer makes it a parametrization of the weight): every subclass can compute with its weight
 * standardized per output channel ({@link #isWeightStandardized}). The algorithms that rebuild a
 * convolution (BlurPool, Factorize) carry the property over, and weight standardization applied to
 * a subclass asks it for a standardized twin ({@link #withWeightStandardization}), so the
 * algorithms compose in either order.
 */
public abstract class AdoptingConv2d extends Conv2d implements ConvolutionLayer {

  private final boolean weightStandardized;

  /**
   * Creates the convolution from its settings.
   *
   * @param builder the convolution settings
   * @param weightStandardized true to compute with the weight standardized per output channel
   */
  protected AdoptingConv2d(Conv2d.Builder builder, boolean weightStandardized) {
    super(builder);
    this.weightStandardized = weightStandardized;
  }

  /**
   * Creates the convolution from its settings, saving its parameters with a version byte of its
   * own, which a plain {@code Conv2d} refuses to load.
   *
   * @param builder the convolution settings
   * @param weightStandardized true to compute with the weight standardized per output channel
   * @param savedVersion the version byte written with the parameters; not one of DJL's {@code
   *     Conv2d} versions (1 and 3), which this block also reads
   * @throws IllegalArgumentException if {@code savedVersion} is one of DJL's {@code Conv2d}
   *     versions
   */
  protected AdoptingConv2d(Conv2d.Builder builder, boolean weightStandardized, byte savedVersion) {
    this(builder, weightStandardized);
    if (savedVersion == LayerVersions.DJL_FIRST || savedVersion == LayerVersions.DJL_CONV2D) {
      throw new IllegalArgumentException(
          "version " + savedVersion + " is DJL's own Conv2d encoding: choose another");
    }
    version = savedVersion;
  }

  /**
   * Reads this block's version and input shapes: its own version, or a plain {@code Conv2d}'s (a
   * convolution's weights taken over, or a file of a build that saved this layer as a plain
   * convolution). Another layer's version is refused: its weights were trained to compute something
   * else.
   *
   * @param loadVersion the version read from the file
   * @param is the stream to read from
   * @throws IOException if reading fails
   * @throws MalformedModelException if the file holds another kind of block at this place
   */
  @Override
  public void loadMetadata(byte loadVersion, DataInputStream is)
      throws IOException, MalformedModelException {
    if (LayerVersions.shapesFollow(this, version, LayerVersions.DJL_CONV2D, loadVersion)) {
      readInputShapes(is);
    }
  }

  /**
   * Tells whether this convolution computes with its weight standardized per output channel.
   *
   * @return true when the weight is standardized on every forward pass
   */
  public boolean isWeightStandardized() {
    return weightStandardized;
  }

  /**
   * Tells whether a block is a convolution of this project that standardizes its weight.
   *
   * @param block any block
   * @return true for an {@code AdoptingConv2d} with {@link #isWeightStandardized}
   */
  public static boolean isWeightStandardized(Block block) {
    return block instanceof AdoptingConv2d conv && conv.isWeightStandardized();
  }

  /**
   * Returns a convolution with the same forward pass that also standardizes its weight, taking over
   * this one's parameters; this one when it standardizes already. This block must not be used
   * afterwards.
   *
   * @return the standardized twin
   */
  public abstract AdoptingConv2d withWeightStandardization();

  /**
   * Returns the weight to convolve with on this forward pass: the stored weight, or its
   * standardized form created on the input's (per-batch) manager.
   *
   * @param parameterStore the parameter store of the forward pass
   * @param input the input of the forward pass
   * @param training whether this is a training pass
   * @return the weight
   */
  protected final NDArray weightFor(
      ParameterStore parameterStore, NDArray input, boolean training) {
    NDArray w = parameterStore.getValue(weight, input.getDevice(), training);
    // The standardized weight lives for this batch only: build it on the input's manager, not on
    // the weight's (the model's), which would keep every batch's copies alive.
    return weightStandardized ? WeightStandardizedConv2d.standardize(w, input.getManager()) : w;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardInternal(
      ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
    NDArray input = inputs.singletonOrThrow();
    NDArray w = weightFor(store, input, training);
    return convolve(input, w, store.getValue(bias, input.getDevice(), training));
  }

  /**
   * Convolves the input of one forward pass; by default a plain convolution with this block's
   * settings. Subclasses that change only how the convolution runs override this, not {@code
   * forwardInternal}.
   *
   * @param input the only input
   * @param weight the weight of this pass ({@link #weightFor})
   * @param bias the bias, or null without one
   * @return the output
   */
  protected NDList convolve(NDArray input, NDArray weight, NDArray bias) {
    return Conv2d.conv2d(input, weight, bias, stride, padding, dilation, groups);
  }

  /**
   * Returns a builder holding every setting of {@code conv}.
   *
   * @param conv a convolution
   * @return a builder with its kernel, stride, padding, dilation, filters, groups and bias
   */
  public static Conv2d.Builder settingsOf(Conv2d conv) {
    return Conv2d.builder()
        .setKernelShape(conv.getKernelShape())
        .optStride(conv.getStride())
        .optPadding(conv.getPadding())
        .optDilation(conv.getDilation())
        .setFilters(conv.getFilters())
        .optGroups(conv.getGroups())
        .optBias(conv.isIncludeBias());
  }

  /**
   * Takes over {@code conv}'s parameters, recorded input shapes and input names. The old
   * convolution must not be used afterwards (its arrays are now this block's).
   *
   * @param conv a convolution with the same settings
   * @throws IllegalArgumentException if its parameters do not match this block's
   */
  protected final void adopt(Conv2d conv) {
    ParameterList own = conv.getDirectParameters();
    if (!own.keys().equals(new ArrayList<>(parameters.keySet()))) {
      throw new IllegalArgumentException(
          "cannot adopt the parameters "
              + own.keys()
              + " of "
              + conv.getClass().getName()
              + ": a Conv2d with bias="
              + includeBias
              + " has "
              + parameters.keySet());
    }
    // Same keys in the same order, so put() keeps the map order and thus the saved layout.
    weight = own.get("weight");
    parameters.put("weight", weight);
    if (includeBias) {
      bias = own.get("bias");
      parameters.put("bias", bias);
    }
    Shape[] shapes = DjlShapes.recordedInputShapes(conv);
    if (shapes != null) {
      inputShapes = shapes.clone();
      List<String> names = conv.isInitialized() ? DjlShapes.inputNamesOf(conv) : null;
      if (names != null) {
        inputNames = names;
      }
    }
  }
}
