package dev.surgery.core.testing;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * A dense layer frozen into constants: the same function as the {@link TinyDense} it replaces, with
 * no {@code Parameter}s, so surgery removes the old layer's parameters from every trainer.
 */
public final class ConstantDense extends AbstractBlock {

  private final long units;
  private final NDArray weight;
  private final NDArray bias;

  /**
   * Freezes a layer's current values into constants on the same manager.
   *
   * @param from the layer to replace
   */
  public ConstantDense(TinyDense from) {
    this.units = from.getUnits();
    this.weight = from.getWeight().getArray().duplicate();
    this.bias = from.getBias().getArray().duplicate();
    weight.setRequiresGradient(false);
    bias.setRequiresGradient(false);
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardInternal(
      ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
    NDArray x = inputs.singletonOrThrow();
    return new NDList(x.matMul(weight.transpose()).add(bias));
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputs) {
    return new Shape[] {new Shape(inputs[0].get(0), units)};
  }
}
