package dev.surgery.trainer;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.layers.AdoptingConv2d;

/**
 * A test replacement for {@link Conv2d}: the same convolution, adopting the original's Parameter
 * objects (so the trainer loses nothing), with its output multiplied by a constant factor. It adds
 * no parameters or metadata, so it saves and loads exactly like the Conv2d it replaces, while its
 * outputs differ: a checkpoint loaded without replaying the surgery gives other outputs.
 */
final class ScaledConv2d extends Conv2d {

  private final float factor;

  ScaledConv2d(Conv2d original, float factor) {
    super(AdoptingConv2d.settingsOf(original));
    this.factor = factor;
    PairList<String, Parameter> params = original.getDirectParameters();
    for (int i = 0; i < params.size(); i++) {
      DjlBlocks.liveParameters(this).put(params.keyAt(i), params.valueAt(i));
    }
    weight = params.get("weight");
    bias = params.get("bias");
    Shape[] shapes = DjlShapes.recordedInputShapes(original);
    if (shapes != null) {
      // adopted parameters are initialized already: record the shapes instead of initializing
      DjlShapes.setRecordedInputShapes(this, shapes);
    }
  }

  float getFactor() {
    return factor;
  }

  @Override
  protected NDList forwardInternal(
      ParameterStore parameterStore,
      NDList inputs,
      boolean training,
      PairList<String, Object> params) {
    NDArray out =
        super.forwardInternal(parameterStore, inputs, training, params).singletonOrThrow();
    // An engine-made factor: a Java number would be a tensor over a buffer that a collection
    // before the backward may free (see GcSafeL2Loss).
    return new NDList(out.mul(out.getManager().full(new Shape(), factor, out.getDataType())));
  }
}
