package dev.surgery.core.testing;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.loss.Loss;

/**
 * DJL's L2 loss, {@code mean(0.5 * (label - prediction)^2)}, with its 0.5 an array the engine owns.
 *
 * <p>DJL's own {@code L2Loss} multiplies by the Java number 0.5. On the PyTorch engine a number
 * operand becomes a tensor over a Java direct buffer that the tensor does not own, and the product
 * keeps it for the backward pass: a garbage collection between forward and backward frees the
 * buffer, and the backward scales every gradient by whatever the memory holds then (DJL 0.36.0;
 * {@code GcSafeL2LossTest} shows it). A test that compares two runs bit for bit used to fail when a
 * collection fell there in one of them. Same name, same values, same kernels otherwise.
 */
public final class GcSafeL2Loss extends Loss {

  /** Creates the loss, named {@code L2Loss} as DJL's is. */
  public GcSafeL2Loss() {
    super("L2Loss");
  }

  /** {@inheritDoc} */
  @Override
  public NDArray evaluate(NDList label, NDList prediction) {
    NDArray pred = prediction.singletonOrThrow();
    NDArray labelReshaped = label.singletonOrThrow().reshape(pred.getShape());
    NDArray half = pred.getManager().full(new Shape(), 0.5f, pred.getDataType());
    return labelReshaped.sub(pred).square().mul(half).mean();
  }
}
