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
 * A user block that wraps one child but is no {@code AbstractBlock}: it lists the child, yet keeps
 * it where surgery cannot write (a thread-local; the program trains on one thread), so replacing
 * the child fails.
 */
final class OpaqueBlock extends AbstractBaseBlock {

  private final ThreadLocal<Block> inner = new ThreadLocal<>();

  OpaqueBlock(Block inner) {
    this.inner.set(inner);
  }

  @Override
  protected NDList forwardInternal(
      ParameterStore parameterStore,
      NDList inputs,
      boolean training,
      PairList<String, Object> params) {
    return inner.get().forward(parameterStore, inputs, training, params);
  }

  @Override
  protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
    inner.get().initialize(manager, dataType, inputShapes);
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return inner.get().getOutputShapes(inputShapes);
  }

  @Override
  public BlockList getChildren() {
    BlockList children = new BlockList();
    children.add("01" + inner.get().getClass().getSimpleName(), inner.get());
    return children;
  }

  @Override
  public ParameterList getDirectParameters() {
    return new ParameterList();
  }
}
