package dev.surgery.core.layers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.nn.AbstractBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * A block of this package that takes one array and uses no forward parameters: it unwraps DJL's
 * input list once, so a subclass writes only {@link #forwardSingle}.
 */
abstract class SingleInputBlock extends AbstractBlock {

  /** Creates the block with DJL's default version. */
  SingleInputBlock() {}

  /**
   * Creates the block.
   *
   * @param version the version saved with the parameters
   */
  SingleInputBlock(byte version) {
    super(version);
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardInternal(
      ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
    return forwardSingle(store, inputs.singletonOrThrow(), training);
  }

  /**
   * Computes the output of one forward pass.
   *
   * @param store the parameter store of the forward pass
   * @param input the only input
   * @param training whether this is a training pass
   * @return the output
   */
  protected abstract NDList forwardSingle(ParameterStore store, NDArray input, boolean training);
}
