package dev.surgery.core.layers;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * A block of this package whose two children run one after the other, the second on the first's
 * output: it owns the forward pass, the output shapes and the initialization of the pair. It reads
 * the children from DJL's child list, in the order the subclass added them, so it runs whatever
 * later surgery put in their place.
 */
abstract class TwoStageBlock extends AbstractBlock {

  private Block first() {
    return children.valueAt(0);
  }

  private Block second() {
    return children.valueAt(1);
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardInternal(
      ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
    NDList middle = first().forward(store, inputs, training, params);
    return second().forward(store, middle, training, params);
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputs) {
    return second().getOutputShapes(first().getOutputShapes(inputs));
  }

  /** {@inheritDoc} */
  @Override
  protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
    first().initialize(manager, dataType, inputShapes);
    second().initialize(manager, dataType, first().getOutputShapes(inputShapes));
  }
}
