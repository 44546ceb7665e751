package dev.surgery.core.testing;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.util.PairList;
import dev.surgery.core.internal.DjlShapes;

/**
 * A dense layer ({@code x W^T + b}) whose parameters can be fresh, adopted, copied or rewrapped (or
 * a copied weight beside the adopted bias): every way a replacement can treat the parameters of the
 * block it replaces.
 */
public final class TinyDense extends AbstractBlock {

  private final long units;
  private final Parameter weight;
  private final Parameter bias;

  /**
   * A fresh layer with random weights (initialized when the model or the engine initializes it).
   *
   * @param units the output width
   */
  public TinyDense(long units) {
    this.units = units;
    weight = addParameter(fresh("weight", Parameter.Type.WEIGHT, new NormalInitializer(0.3f)));
    bias = addParameter(fresh("bias", Parameter.Type.BIAS, new NormalInitializer(0.1f)));
  }

  private TinyDense(TinyDense from, Parameter weight, Parameter bias) {
    this.units = from.units;
    this.weight = addParameter(weight);
    this.bias = addParameter(bias);
    DjlShapes.setRecordedInputShapes(this, DjlShapes.recordedInputShapes(from));
  }

  /**
   * A new layer holding {@code from}'s very {@code Parameter} objects.
   *
   * @param from the layer to replace
   * @return the adopting layer
   */
  public static TinyDense adopting(TinyDense from) {
    return new TinyDense(from, from.weight, from.bias);
  }

  /**
   * A new layer with new {@code Parameter}s around {@code from}'s very arrays.
   *
   * @param from the layer to replace
   * @return the rewrapping layer
   */
  public static TinyDense rewrapping(TinyDense from) {
    return new TinyDense(
        from, around("weight", from.weight.getArray()), around("bias", from.bias.getArray()));
  }

  /**
   * A new layer with new {@code Parameter}s around copies of {@code from}'s values.
   *
   * @param from the layer to replace
   * @return the copying layer
   */
  public static TinyDense copying(TinyDense from) {
    return new TinyDense(
        from,
        around("weight", from.weight.getArray().duplicate()),
        around("bias", from.bias.getArray().duplicate()));
  }

  /**
   * A new layer with a new weight {@code Parameter} around a copy of {@code from}'s weight values,
   * and {@code from}'s very bias {@code Parameter}: a replacement that keeps part of what it
   * replaces (Composer's optimizer-surgery fixture), so one surgery both adds and keeps parameters.
   *
   * @param from the layer to replace
   * @return the layer with a copied weight and the kept bias
   */
  public static TinyDense copyingWeight(TinyDense from) {
    return new TinyDense(from, around("weight", from.weight.getArray().duplicate()), from.bias);
  }

  /**
   * Returns the weight.
   *
   * @return the weight parameter
   */
  public Parameter getWeight() {
    return weight;
  }

  /**
   * Returns the bias.
   *
   * @return the bias parameter
   */
  public Parameter getBias() {
    return bias;
  }

  /**
   * Returns the output width.
   *
   * @return the units
   */
  public long getUnits() {
    return units;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardInternal(
      ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
    NDArray x = inputs.singletonOrThrow();
    Device device = x.getDevice();
    NDArray w = store.getValue(weight, device, training);
    NDArray b = store.getValue(bias, device, training);
    return new NDList(x.matMul(w.transpose()).add(b));
  }

  /** {@inheritDoc} */
  @Override
  public void prepare(Shape[] inputShapes) {
    if (weight.getShape() == null && !weight.isInitialized()) {
      weight.setShape(new Shape(units, inputShapes[0].get(1)));
    }
    if (bias.getShape() == null && !bias.isInitialized()) {
      bias.setShape(new Shape(units));
    }
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputs) {
    return new Shape[] {new Shape(inputs[0].get(0), units)};
  }

  private static Parameter fresh(String name, Parameter.Type type, NormalInitializer init) {
    return Parameter.builder().setName(name).setType(type).optInitializer(init).build();
  }

  private static Parameter around(String name, NDArray array) {
    Parameter.Type type = "weight".equals(name) ? Parameter.Type.WEIGHT : Parameter.Type.BIAS;
    return Parameter.builder().setName(name).setType(type).optArray(array).build();
  }
}
