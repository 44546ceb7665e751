package dev.surgery.trainer;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import dev.surgery.core.testing.PassThroughBlock;

/**
 * A leaf whose parameters have the names it is given (DJL allows any name, ", " in it too), each of
 * shape (1, input features); its forward passes the input on. For records that name parameters.
 */
final class NamedParameterLayer extends PassThroughBlock {

  NamedParameterLayer(String... names) {
    for (String name : names) {
      addParameter(Parameter.builder().setName(name).setType(Parameter.Type.WEIGHT).build());
    }
  }

  @Override
  protected void prepare(Shape[] inputs) {
    for (Parameter p : getDirectParameters().values()) {
      p.setShape(new Shape(1, inputs[0].get(1)));
    }
  }
}
