package dev.surgery.core.layers;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.ParameterList;
import ai.djl.nn.convolutional.Conv2d;
import dev.surgery.core.internal.DjlInternals;
import java.util.ArrayList;

/**
 * A {@link Conv2d} whose subclasses change only the forward pass and can take over an existing
 * convolution's own {@code Parameter} objects. Adopting keeps the parameter ids, so a live
 * trainer's store and optimizer state carry on untouched, and keeps the saved layout of a plain
 * {@code Conv2d} (same version, metadata and parameters), so checkpoints load both ways.
 */
public abstract class AdoptingConv2d extends Conv2d {

  /**
   * Creates the convolution from its settings.
   *
   * @param builder the convolution settings
   */
  protected AdoptingConv2d(Conv2d.Builder builder) {
    super(builder);
  }

  /**
   * Returns a builder holding every setting of {@code conv}.
   *
   * @param conv a convolution
   * @return a builder with its kernel, stride, padding, dilation, filters, groups and bias
   */
  protected static Conv2d.Builder settingsOf(Conv2d conv) {
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
    Shape[] shapes = DjlInternals.recordedInputShapes(conv);
    if (shapes != null) {
      inputShapes = shapes.clone();
      if (conv.isInitialized()) {
        inputNames = new ArrayList<>(conv.describeInput().keys());
      }
    }
  }
}
