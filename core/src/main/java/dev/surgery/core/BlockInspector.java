package dev.surgery.core;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Convolution;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.Dropout;
import ai.djl.util.Pair;
import dev.surgery.core.internal.CapturedFunctions;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlShapes;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Reads the configuration that DJL blocks keep but do not expose, so that policies can build
 * faithful replacements: convolution input channels, {@link Linear} units, {@link BatchNorm}
 * settings, the {@link Dropout} rate, and pooling arguments captured inside {@link LambdaBlock}s.
 */
public final class BlockInspector {

  private BlockInspector() {}

  /**
   * A parameter whose array was freed, and the path of the block that holds it.
   *
   * @param blockPath the block's path (see {@link BlockPaths})
   * @param parameter the parameter
   */
  public record FreedParameter(String blockPath, Parameter parameter) {}

  /**
   * Finds the first block, in the order given, that holds an initialized parameter whose array was
   * freed (its {@code Model} or {@code NDManager} closed, or a replaced block's arrays freed): such
   * a model cannot run.
   *
   * @param paths blocks to their paths, in the order to look ({@link BlockPaths#index})
   * @return the first such parameter with its block's path, if any
   */
  public static Optional<FreedParameter> firstFreedParameter(Map<Block, String> paths) {
    for (Map.Entry<Block, String> e : paths.entrySet()) {
      for (Pair<String, Parameter> p : e.getKey().getDirectParameters()) {
        Parameter parameter = p.getValue();
        if (parameter.isInitialized() && parameter.getArray().isReleased()) {
          return Optional.of(new FreedParameter(e.getValue(), parameter));
        }
      }
    }
    return Optional.empty();
  }

  /**
   * Tells whether a block was initialized ({@code Block.initialize}, {@code Trainer.initialize} or
   * a trainer's first forward), cheaply: one field read for DJL's blocks, which record their input
   * shapes when they are initialized, where {@code Block.isInitialized} walks every parameter.
   * Other blocks are asked {@code isInitialized}.
   *
   * @param block the block
   * @return whether it was initialized
   */
  public static boolean wasInitialized(Block block) {
    if (block instanceof AbstractBaseBlock) {
      return DjlShapes.recordedInputShapes(block) != null;
    }
    return block.isInitialized();
  }

  /**
   * Returns the number of input channels of a convolution, known once it is initialized or its
   * weight shape is set.
   *
   * @param conv the convolution
   * @return the input channels, or -1 when not known yet
   */
  public static long inputChannels(Convolution conv) {
    Parameter weight = conv.getParameters().get("weight");
    if (weight != null && weight.getShape() != null) {
      return weight.getShape().get(1) * conv.getGroups();
    }
    Shape[] shapes = DjlShapes.recordedInputShapes(conv);
    if (shapes != null && shapes.length > 0) {
      return shapes[0].get(1);
    }
    return -1;
  }

  /**
   * Returns the number of output units of a {@link Linear}.
   *
   * @param linear the linear block
   * @return its units
   */
  public static long linearUnits(Linear linear) {
    return DjlBlocks.linearUnits(linear);
  }

  /**
   * Tells whether a {@link Linear} has a bias.
   *
   * @param linear the linear block
   * @return true if it has a bias parameter
   */
  public static boolean linearHasBias(Linear linear) {
    return linear.getDirectParameters().contains("bias");
  }

  /**
   * Returns the hidden settings of a {@link BatchNorm}.
   *
   * @param bn the batch norm
   * @return its axis, epsilon, momentum, center and scale
   */
  public static DjlInternals.BatchNormSettings batchNorm(BatchNorm bn) {
    return DjlBlocks.batchNormSettings(bn);
  }

  /**
   * Returns the drop probability of a {@link Dropout}.
   *
   * @param dropout the dropout block
   * @return its rate
   */
  public static float dropoutRate(Dropout dropout) {
    return DjlBlocks.dropoutRate(dropout);
  }

  /**
   * Recovers the arguments of a DJL pooling lambda ({@code maxPool1d/2d/3d}, {@code
   * avgPool1d/2d/3d}, {@code lpPool...}). Values are matched by type (three shapes, then booleans),
   * not by the JDK's synthetic field names.
   *
   * @param block a block
   * @return the settings, or empty when the block is not a pooling lambda with readable arguments
   */
  public static Optional<PoolSettings> poolSettings(Block block) {
    if (!(block instanceof LambdaBlock lambda) || !lambda.getName().contains("Pool")) {
      return Optional.empty();
    }
    List<Object> captured = CapturedFunctions.capturedValues(DjlBlocks.lambdaFunction(lambda));
    List<Shape> shapes = new ArrayList<>();
    List<Boolean> flags = new ArrayList<>();
    for (Object value : captured) {
      if (value instanceof Shape s) {
        shapes.add(s);
      } else if (value instanceof Boolean b) {
        flags.add(b);
      }
    }
    if (shapes.size() != 3 || flags.isEmpty()) {
      return Optional.empty();
    }
    Boolean countIncludePad = flags.size() > 1 ? flags.get(1) : null;
    return Optional.of(
        new PoolSettings(
            lambda.getName(),
            shapes.get(0),
            shapes.get(1),
            shapes.get(2),
            flags.get(0),
            countIncludePad));
  }

  /**
   * A parameter's shape: DJL's, or its array's for a parameter given an array without a shape (a
   * new {@code Parameter} built around an existing array, which DJL leaves without one); null when
   * it has neither (a model not initialized).
   *
   * @param parameter the parameter
   * @return its shape, or null
   */
  public static Shape shapeOf(Parameter parameter) {
    Shape shape = parameter.getShape();
    return shape != null || !parameter.isInitialized() ? shape : parameter.getArray().getShape();
  }
}
