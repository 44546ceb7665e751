package dev.surgery.core.layers;

import ai.djl.MalformedModelException;
import java.io.DataInputStream;
import java.io.IOException;

/**
 * A parameter-free block of this package that takes the place of a DJL {@code LambdaBlock} (a pool)
 * and computes something else: it saves a version byte of its own and its input shapes, and reads a
 * {@code LambdaBlock}'s saved metadata too ({@link LayerVersions}).
 */
abstract class LambdaStandIn extends SingleInputBlock {

  /**
   * Creates the block.
   *
   * @param version the version saved with the input shapes, not one of DJL's lambda versions
   */
  LambdaStandIn(byte version) {
    super(version);
  }

  /**
   * Reads this block's version and input shapes: its own version or a {@code LambdaBlock}'s (a file
   * saved before the surgery, or by a build that saved this block as a lambda); another layer's
   * version is refused.
   *
   * @param loadVersion the version read from the file
   * @param is the stream to read from
   * @throws IOException if reading fails
   * @throws MalformedModelException if the file holds another kind of block at this place
   */
  @Override
  protected void loadMetadata(byte loadVersion, DataInputStream is)
      throws IOException, MalformedModelException {
    if (LayerVersions.shapesFollow(this, version, LayerVersions.DJL_LAMBDA, loadVersion)) {
      readInputShapes(is);
    }
  }
}
