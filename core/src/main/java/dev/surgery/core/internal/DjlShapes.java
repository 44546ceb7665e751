package dev.surgery.core.internal;

import static dev.surgery.core.internal.DjlInternals.blockBeforeInitialize;
import static dev.surgery.core.internal.DjlInternals.blockInputShapes;
import static dev.surgery.core.internal.DjlInternals.blockPrepare;
import static dev.surgery.core.internal.DjlInternals.call;
import static dev.surgery.core.internal.DjlInternals.get;
import static dev.surgery.core.internal.DjlInternals.getter;
import static dev.surgery.core.internal.DjlInternals.linearBlockUnits;
import static dev.surgery.core.internal.DjlInternals.linearInputFeatures;
import static dev.surgery.core.internal.DjlInternals.linearInputShape;
import static dev.surgery.core.internal.DjlInternals.parameterArray;
import static dev.surgery.core.internal.DjlInternals.parameterShape;
import static dev.surgery.core.internal.DjlInternals.set;
import static dev.surgery.core.internal.DjlInternals.verify;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.LayoutType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Convolution;
import ai.djl.nn.core.Linear;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The input shapes a block was initialized with and the parameter shapes its settings declare for
 * given inputs: what placement needs to give a replacement the old block's place without
 * initializing it twice, and what DJL records only in private fields (a loaded {@code Linear}'s
 * input most of all). The fields are resolved and checked once by {@link DjlInternals}.
 */
public final class DjlShapes {

  private DjlShapes() {}

  /** The recorded input shapes, read per block by the first walk: see DjlBlocks' getters. */
  private static final MethodHandle INPUT_SHAPES =
      getter(blockInputShapes, () -> MethodType.methodType(Shape[].class, AbstractBaseBlock.class));

  /**
   * Returns the input names of an initialized block, to copy onto a block that takes its place;
   * null when it has none to give: DJL's load restores a block's input shapes but not its names, so
   * {@code describeInput()} then fails ("key value size mismatch").
   *
   * @param block an initialized block
   * @return a new list of its input names, or null
   */
  public static List<String> inputNamesOf(Block block) {
    try {
      return new ArrayList<>(block.describeInput().keys());
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  /**
   * Returns the input shapes a block was initialized with, even if it is not fully initialized.
   *
   * @param block a block
   * @return the recorded input shapes, or null
   */
  public static Shape[] recordedInputShapes(Block block) {
    if (!(block instanceof AbstractBaseBlock)) {
      return null;
    }
    Shape[] shapes;
    if (INPUT_SHAPES != null) {
      try {
        shapes = (Shape[]) INPUT_SHAPES.invokeExact((AbstractBaseBlock) block);
      } catch (Throwable e) {
        throw new IllegalStateException(e); // a plain field read does not throw
      }
    } else {
      shapes = (Shape[]) get(blockInputShapes, block);
    }
    if (shapes != null && shapes.length == 1 && block instanceof Linear linear) {
      return loadedLinearInput(linear, shapes);
    }
    return shapes;
  }

  /**
   * A {@code Linear}'s input shapes as it receives them. DJL 0.36's {@code Linear.loadMetadata}
   * records its input as the shape without the feature axis (the very {@code inputShape} object it
   * keeps, {@code (8)} for inputs of {@code (8, 4)}), so every loaded linear layer would report
   * inputs it never takes, and a replacement shaped for them would not fit. That object identity
   * tells a loaded layer from one that was initialized, and the features are appended again.
   */
  private static Shape[] loadedLinearInput(Linear linear, Shape[] shapes) {
    Shape withoutFeatures = (Shape) get(linearInputShape, linear);
    if (shapes[0] != withoutFeatures) {
      return shapes;
    }
    return new Shape[] {withoutFeatures.add((long) get(linearInputFeatures, linear))};
  }

  /**
   * Sets the recorded input shapes of a block (used when a replacement adopts initialized
   * parameters and so is initialized without running {@code initialize}).
   *
   * @param block a block
   * @param shapes the shapes to record
   */
  public static void setRecordedInputShapes(AbstractBaseBlock block, Shape[] shapes) {
    set(blockInputShapes, block, shapes);
  }

  /**
   * The shapes a block's own configuration gives its direct parameters for these inputs, computed
   * as {@code initialize} computes them (DJL's {@code beforeInitialize}, then {@code prepare}) but
   * without creating an array. The parameters are detached for the while, and the block's instance
   * fields (what {@code beforeInitialize} records: input shapes and names, a linear layer's input
   * features, a batch norm's channels, a layer norm's shape) are put back afterwards, also when the
   * block refuses the inputs; so are every parameter's array and shape. Fields are put back by
   * reference: a block whose {@code beforeInitialize} writes into an object it already holds (an
   * array filled in place) keeps what it wrote; DJL's blocks and this library's assign new values.
   * A block whose {@code prepare} sets no shape (one that shapes its parameters otherwise) answers
   * nothing for them, and one whose fields its module does not open answers nothing at all.
   *
   * @param block the block
   * @param inputShapes the inputs it is to receive
   * @return each direct parameter that {@code prepare} gave a shape, and that shape
   * @throws RuntimeException what the block throws for inputs it does not accept
   */
  public static Map<Parameter, Shape> declaredShapes(AbstractBaseBlock block, Shape[] inputShapes) {
    verify();
    Map<Parameter, Shape> standard = standardLayerShapes(block, inputShapes);
    if (standard != null) {
      return standard;
    }
    List<Field> fields;
    try {
      fields = BlockFields.instanceFieldsOf(block.getClass());
    } catch (ClosedPackageException e) {
      return Map.of(); // its state could not be put back: no answer rather than a changed block
    }
    Object[] values = new Object[fields.size()];
    for (int i = 0; i < values.length; i++) {
      values[i] = get(fields.get(i), block);
    }
    List<Parameter> parameters = new ArrayList<>(block.getDirectParameters().values());
    NDArray[] arrays = new NDArray[parameters.size()];
    Shape[] shapes = new Shape[parameters.size()];
    for (int i = 0; i < arrays.length; i++) {
      Parameter p = parameters.get(i);
      arrays[i] = (NDArray) get(parameterArray, p);
      shapes[i] = (Shape) get(parameterShape, p);
      DjlBlocks.restoreParameter(p, null, null);
    }
    Map<Parameter, Shape> declared = new IdentityHashMap<>();
    try {
      call(blockBeforeInitialize, block, (Object) inputShapes);
      call(blockPrepare, block, (Object) inputShapes);
      for (Parameter p : parameters) {
        Shape shape = (Shape) get(parameterShape, p);
        if (shape != null) {
          declared.put(p, shape);
        }
      }
    } finally {
      for (int i = 0; i < arrays.length; i++) {
        DjlBlocks.restoreParameter(parameters.get(i), arrays[i], shapes[i]);
      }
      for (int i = 0; i < values.length; i++) {
        Field f = fields.get(i);
        if (!java.lang.reflect.Modifier.isFinal(f.getModifiers())) {
          set(f, block, values[i]);
        }
      }
    }
    return declared;
  }

  /**
   * {@link #declaredShapes} for DJL's convolutions and linear layers, whose {@code prepare} is
   * known (a convolution's weight is {@code (filters, channels / groups, kernel...)}, a linear
   * layer's {@code (units, features)}, their biases the filters or units): read from their settings
   * (getters, and one field for a linear layer's units), with no reflective method call, as a
   * surgery asks it of every replacement that brings arrays. Null for any other block, for a
   * subclass that declares its own {@code beforeInitialize} or {@code prepare} or holds a parameter
   * of its own, and for inputs whose rank or stated layout DJL's {@code beforeInitialize} would
   * check.
   */
  private static Map<Parameter, Shape> standardLayerShapes(Block block, Shape[] inputShapes) {
    long[] weight = standardWeightDims(block, inputShapes);
    if (weight == null) {
      return null;
    }
    Map<Parameter, Shape> declared = new IdentityHashMap<>();
    for (Parameter p : block.getDirectParameters().values()) {
      declared.put(p, "weight".equals(p.getName()) ? new Shape(weight) : new Shape(weight[0]));
    }
    return declared;
  }

  /**
   * Whether {@code held} is the shape that {@link #declaredShapes} gives the parameter {@code p} of
   * a DJL convolution or linear layer for these inputs, told without building a shape (DJL's {@code
   * Shape} runs streams in every constructor, and a surgery asks it of every parameter a
   * replacement brings): true or false for such a layer's weight or bias, null where only {@link
   * #declaredShapes} can tell.
   *
   * @param block the block holding {@code p}
   * @param inputShapes the inputs it is to receive
   * @param p one of its direct parameters
   * @param held the shape to compare
   * @return whether the shapes are equal, or null when this cannot tell
   */
  public static Boolean declaresShape(Block block, Shape[] inputShapes, Parameter p, Shape held) {
    long[] weight = standardWeightDims(block, inputShapes);
    if (weight == null) {
      return null;
    }
    long[] dims = held.getShape();
    return "weight".equals(p.getName())
        ? Arrays.equals(weight, dims)
        : dims.length == 1 && dims[0] == weight[0];
  }

  /**
   * The weight's dimensions {@link #declaredShapes} gives a DJL convolution or linear layer (its
   * bias is the first of them), computed from the settings; null for any other block, for a
   * subclass that declares its own {@code beforeInitialize} or {@code prepare} or holds a parameter
   * other than {@code weight} and {@code bias}, and for inputs whose rank or stated layout DJL's
   * {@code beforeInitialize} would check.
   */
  private static long[] standardWeightDims(Block block, Shape[] inputShapes) {
    if (inputShapes == null || inputShapes.length != 1 || !STANDARD_SHAPES.get(block.getClass())) {
      return null;
    }
    for (Parameter p : DjlBlocks.liveParameters((AbstractBlock) block).values()) {
      if (!"weight".equals(p.getName()) && !"bias".equals(p.getName())) {
        return null; // a parameter a subclass added: only its own initialization knows its shape
      }
    }
    Shape input = inputShapes[0];
    if (block instanceof Convolution conv) {
      Shape kernel = conv.getKernelShape();
      // DJL's beforeInitialize refuses another rank or layout: the general path says so.
      if (input.dimension() != 2 + kernel.dimension()
          || layoutKnown(input)
          || conv.getGroups() < 1) {
        return null;
      }
      long[] weight = new long[2 + kernel.dimension()];
      weight[0] = conv.getFilters();
      weight[1] = input.get(1) / conv.getGroups();
      for (int i = 0; i < kernel.dimension(); i++) {
        weight[2 + i] = kernel.get(i);
      }
      return weight;
    }
    if (input.dimension() < 1) {
      return null;
    }
    return new long[] {(long) get(linearBlockUnits, block), input.get(input.dimension() - 1)};
  }

  /** {@code Shape.isLayoutKnown}, without its stream. */
  private static boolean layoutKnown(Shape shape) {
    for (LayoutType axis : shape.getLayout()) {
      if (axis != LayoutType.UNKNOWN) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether a class shapes its parameters as DJL's {@code Convolution} or {@code Linear} does: one
   * of them, with no class in between declaring {@code beforeInitialize} or {@code prepare}.
   */
  private static final ClassValue<Boolean> STANDARD_SHAPES =
      new ClassValue<>() {
        @Override
        protected Boolean computeValue(Class<?> type) {
          Class<?> base =
              Convolution.class.isAssignableFrom(type)
                  ? Convolution.class
                  : type == Linear.class ? Linear.class : null;
          if (base == null) {
            return false;
          }
          for (Class<?> c = type; c != base; c = c.getSuperclass()) {
            for (java.lang.reflect.Method m : c.getDeclaredMethods()) {
              if (m.getName().equals("beforeInitialize") || m.getName().equals("prepare")) {
                return false;
              }
            }
          }
          return true;
        }
      };
}
