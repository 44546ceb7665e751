package dev.surgery.core.testing;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * A block whose forward returns its inputs and whose output shapes are its input shapes: the base
 * of the tests' own blocks that matter for what they hold, list or are marked as, not for what they
 * compute. It declares no initialization of its own (as DJL's blocks initialize), so it changes
 * nothing in how the engine treats a subclass.
 */
public abstract class PassThroughBlock extends AbstractBlock {

  /** A block of DJL's default version. */
  protected PassThroughBlock() {}

  /**
   * A block of the given version.
   *
   * @param version the version DJL saves with the block's parameters
   */
  protected PassThroughBlock(byte version) {
    super(version);
  }

  @Override
  protected NDList forwardInternal(
      ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
    return inputs;
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputs) {
    return inputs;
  }
}
