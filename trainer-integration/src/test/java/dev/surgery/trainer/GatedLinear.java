package dev.surgery.trainer;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.Initializer;
import ai.djl.util.PairList;

/** A plugin's replacement of a {@code Linear}: keeps the old one as a child and adds a new gate. */
final class GatedLinear extends AbstractBlock {

  private final ai.djl.nn.Block linear;
  private final Parameter gate;

  GatedLinear(Linear old) {
    super((byte) 1);
    this.linear = addChildBlock("linear", old);
    this.gate =
        addParameter(
            Parameter.builder()
                .setName("gate")
                .setType(Parameter.Type.WEIGHT)
                .optInitializer(Initializer.ONES)
                .build());
  }

  @Override
  protected NDList forwardInternal(
      ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
    NDList out = linear.forward(store, inputs, training, params);
    return new NDList(
        out.singletonOrThrow().mul(store.getValue(gate, out.head().getDevice(), training)));
  }

  @Override
  protected void prepare(Shape[] inputShapes) {
    Shape out = linear.getOutputShapes(inputShapes)[0];
    gate.setShape(new Shape(out.get(out.dimension() - 1)));
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return linear.getOutputShapes(inputShapes);
  }

  @Override
  protected void initializeChildBlocks(
      ai.djl.ndarray.NDManager manager, DataType dataType, Shape... inputShapes) {
    linear.initialize(manager, dataType, inputShapes);
  }
}
