package dev.surgery.agent.testapp;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.ParameterList;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * A user block that wraps one child but is no {@code AbstractBlock}: it lists the child, yet has no
 * children list that surgery could write into, so replacing the child fails.
 */
final class OpaqueBlock extends AbstractBaseBlock {

  private final Block inner;

  OpaqueBlock(Block inner) {
    this.inner = inner;
  }

  @Override
  protected NDList forwardInternal(
      ParameterStore parameterStore,
      NDList inputs,
      boolean training,
      PairList<String, Object> params) {
    return inner.forward(parameterStore, inputs, training, params);
  }

  @Override
  protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
    inner.initialize(manager, dataType, inputShapes);
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return inner.getOutputShapes(inputShapes);
  }

  @Override
  public BlockList getChildren() {
    BlockList children = new BlockList();
    children.add("01" + inner.getClass().getSimpleName(), inner);
    return children;
  }

  @Override
  public ParameterList getDirectParameters() {
    return new ParameterList();
  }
}
