package dev.surgery.samples.data;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.translate.Transform;

/**
 * Crops the center {@code side x side} pixels of an {@code (H, W, C)} image or an {@code (N, H, W,
 * C)} batch of images. DJL's own {@code CenterCrop} takes single images only, while datasets such
 * as CIFAR-10 transform whole batches at once.
 */
public final class CenterCropTransform implements Transform {

  private final int side;

  /**
   * Creates the transform.
   *
   * @param side the height and width to keep
   */
  public CenterCropTransform(int side) {
    this.side = side;
  }

  /** {@inheritDoc} */
  @Override
  public NDArray transform(NDArray array) {
    long[] shape = array.getShape().getShape();
    int rank = shape.length;
    if (rank != 3 && rank != 4) {
      throw new IllegalArgumentException(
          "expected an HWC image or an NHWC batch, got shape " + array.getShape());
    }
    long height = shape[rank - 3];
    long width = shape[rank - 2];
    if (height < side || width < side) {
      throw new IllegalArgumentException(
          "cannot crop " + side + "x" + side + " out of " + height + "x" + width);
    }
    long top = (height - side) / 2;
    long left = (width - side) / 2;
    return array.get(new NDIndex("..., {}:{}, {}:{}, :", top, top + side, left, left + side));
  }
}
