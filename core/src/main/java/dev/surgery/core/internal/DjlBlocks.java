package dev.surgery.core.internal;

import static dev.surgery.core.internal.DjlInternals.batchNormAxis;
import static dev.surgery.core.internal.DjlInternals.batchNormCenter;
import static dev.surgery.core.internal.DjlInternals.batchNormEpsilon;
import static dev.surgery.core.internal.DjlInternals.batchNormMomentum;
import static dev.surgery.core.internal.DjlInternals.batchNormScale;
import static dev.surgery.core.internal.DjlInternals.blockChildren;
import static dev.surgery.core.internal.DjlInternals.blockParameters;
import static dev.surgery.core.internal.DjlInternals.dropoutBlockRate;
import static dev.surgery.core.internal.DjlInternals.get;
import static dev.surgery.core.internal.DjlInternals.getter;
import static dev.surgery.core.internal.DjlInternals.lambdaBlockFunction;
import static dev.surgery.core.internal.DjlInternals.linearBlockUnits;
import static dev.surgery.core.internal.DjlInternals.parallelBlockJoin;
import static dev.surgery.core.internal.DjlInternals.parameterArray;
import static dev.surgery.core.internal.DjlInternals.parameterShape;
import static dev.surgery.core.internal.DjlInternals.set;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.Dropout;
import ai.djl.nn.norm.LayerNorm;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * DJL's blocks as surgery reads and writes them: the live children list and parameter map behind
 * DJL's defensive copies, which block classes list their children or parameters themselves, how a
 * class saves its metadata, a parameter's array and shape put back without DJL's checks, and the
 * settings DJL's layers keep private (a lambda block's function, a parallel block's join, a batch
 * norm's axis and flags, a dropout's rate, a linear layer's units). The fields are resolved and
 * checked once by {@link DjlInternals}.
 */
public final class DjlBlocks {

  private DjlBlocks() {}

  /*
   * Getters of the fields every tree walk reads, once per block: a MethodHandle in a static final
   * field is inlined by the JIT, where Field.get pays an access check per call. Null when the
   * field was not found (DjlInternals' start-up check then fails and every accessor reports it).
   */
  private static final MethodHandle CHILDREN =
      getter(blockChildren, () -> MethodType.methodType(BlockList.class, AbstractBlock.class));
  private static final MethodHandle PARAMETERS =
      getter(
          blockParameters, () -> MethodType.methodType(LinkedHashMap.class, AbstractBlock.class));

  /** The function a {@code LambdaBlock} runs: read per lambda block by the first walk. */
  private static final MethodHandle LAMBDA_FUNCTION =
      getter(
          lambdaBlockFunction,
          () -> MethodType.methodType(java.util.function.Function.class, LambdaBlock.class));

  /**
   * Returns the live children list of a block (not the defensive copy {@code getChildren()} makes).
   *
   * @param block a block
   * @return its live list, or null when the block is not an {@link AbstractBlock} or its class
   *     lists its children itself ({@link #listsChildrenItself}): the live list is then not what
   *     DJL sees
   */
  public static BlockList liveChildren(Block block) {
    if (!(block instanceof AbstractBlock) || listsChildrenItself(block.getClass())) {
      return null;
    }
    return registeredChildren(block);
  }

  /**
   * Returns the list {@code addChildBlock} fills, even for a class that lists its children itself.
   *
   * @param block a block
   * @return the live list, or null when the block is not an {@link AbstractBlock}
   */
  public static BlockList registeredChildren(Block block) {
    if (!(block instanceof AbstractBlock)) {
      return null;
    }
    if (CHILDREN != null) {
      try {
        return (BlockList) CHILDREN.invokeExact((AbstractBlock) block);
      } catch (Throwable e) {
        throw new IllegalStateException(e); // a plain field read does not throw
      }
    }
    return (BlockList) get(blockChildren, block);
  }

  /**
   * Whether a block class overrides {@code getChildren()}: DJL's view of its children (its
   * parameters, save and load, the trainer) is then what the override returns, which need not be
   * the list {@code addChildBlock} fills. DJL's own blocks do not override it.
   *
   * @param type a block class
   * @return whether a class between it and {@link AbstractBlock} declares {@code getChildren()}
   *     (for a class outside {@code AbstractBlock}: between it and {@link AbstractBaseBlock}; such
   *     a block is read through its own lists anyway)
   */
  public static boolean listsChildrenItself(Class<?> type) {
    return (ownViews(type) & OWN_CHILDREN) != 0;
  }

  /**
   * Whether a block class overrides {@code getDirectParameters()}: DJL's view of its parameters
   * (initialization, save and load, the trainer) is then what the override returns, which need not
   * be the map {@code addParameter} fills. DJL's own blocks do not override it.
   *
   * @param type a block class
   * @return whether a class between it and {@link AbstractBlock} declares {@code
   *     getDirectParameters()}
   */
  public static boolean listsParametersItself(Class<?> type) {
    return (ownViews(type) & OWN_PARAMETERS) != 0;
  }

  private static final int OWN_CHILDREN = 1;
  private static final int OWN_PARAMETERS = 2;

  private static int ownViews(Class<?> type) {
    // Asked for every block of every walk (two or three times per block): DJL's common blocks,
    // which never override either, are told by identity (constants, no memory read), the rest by
    // a ClassValue, which keeps no class alive.
    if (type == SequentialBlock.class
        || type == LambdaBlock.class
        || type == Linear.class
        || type == Conv2d.class
        || type == BatchNorm.class
        || type == ParallelBlock.class
        || type == Dropout.class
        || type == LayerNorm.class) {
      return 0;
    }
    return OWN_VIEWS.get(type);
  }

  private static final ClassValue<Integer> OWN_VIEWS =
      new ClassValue<>() {
        @Override
        protected Integer computeValue(Class<?> type) {
          int views = 0;
          // Up to AbstractBlock; a class outside it (on AbstractBaseBlock) is read through its
          // own lists whatever this says.
          for (Class<?> c = type;
              c != null && c != AbstractBlock.class && c != AbstractBaseBlock.class;
              c = c.getSuperclass()) {
            views |= declares(c, "getChildren") ? OWN_CHILDREN : 0;
            views |= declares(c, "getDirectParameters") ? OWN_PARAMETERS : 0;
          }
          return views;
        }
      };

  private static boolean declares(Class<?> type, String method) {
    try {
      type.getDeclaredMethod(method);
      return true;
    } catch (NoSuchMethodException e) {
      return false;
    } catch (LinkageError e) {
      // A method of the class names a class missing at run time: its methods cannot be listed.
      // Read it through its own lists, as DJL does: correct either way, only slower.
      return true;
    }
  }

  /**
   * Whether a block class saves its input shapes first in its metadata, as a parameter file holds
   * them after its header: it inherits DJL's {@code saveParameters} (version, metadata, parameters,
   * children) and {@code saveInputShapes}, and its {@code saveMetadata} is DJL's or that of a DJL
   * block that starts with them ({@code SequentialBlock}, {@code BatchNorm}, {@code LayerNorm}).
   * DJL's {@code EncoderDecoder}, which saves its parts itself, does not. Read when a checkpoint is
   * loaded, not on a hot path.
   *
   * @param type a block class
   * @return whether the root metadata of a file saved from such a block starts with its shapes
   */
  public static boolean savesInputShapesFirst(Class<?> type) {
    Class<?> metadata = declaring(type, "saveMetadata");
    return declaring(type, "saveParameters") == AbstractBaseBlock.class
        && declaring(type, "saveInputShapes") == AbstractBaseBlock.class
        && (metadata == AbstractBaseBlock.class
            || metadata == SequentialBlock.class
            || metadata == BatchNorm.class
            || metadata == LayerNorm.class);
  }

  /**
   * Whether a block class describes its inputs ({@code describeInput}, which DJL's {@code
   * Model.save} writes into a file's header) otherwise than as the shapes it was initialized with:
   * a class below {@link AbstractBaseBlock} declares it (DJL's {@code Linear} leaves out the last
   * dimension).
   *
   * @param type a block class
   * @return whether a class between it and {@link AbstractBaseBlock} declares {@code
   *     describeInput()}
   */
  public static boolean describesInputItself(Class<?> type) {
    for (Class<?> c = type; c != null && c != AbstractBaseBlock.class; c = c.getSuperclass()) {
      if (declares(c, "describeInput")) {
        return true;
      }
    }
    return false;
  }

  /** The class nearest {@code type} that declares a one-stream method of that name; else null. */
  private static Class<?> declaring(Class<?> type, String method) {
    for (Class<?> c = type; c != null; c = c.getSuperclass()) {
      try {
        c.getDeclaredMethod(method, java.io.DataOutputStream.class);
        return c;
      } catch (NoSuchMethodException e) {
        // further up
      } catch (LinkageError e) {
        return null; // its methods cannot be listed: not known to save them first
      }
    }
    return null;
  }

  /**
   * Returns the live map of a block's direct parameters.
   *
   * @param block an {@link AbstractBlock}
   * @return the live map, keyed by parameter short name
   */
  @SuppressWarnings("unchecked")
  public static LinkedHashMap<String, Parameter> liveParameters(AbstractBlock block) {
    if (PARAMETERS != null) {
      try {
        return (LinkedHashMap<String, Parameter>) PARAMETERS.invokeExact(block);
      } catch (Throwable e) {
        throw new IllegalStateException(e); // a plain field read does not throw
      }
    }
    return (LinkedHashMap<String, Parameter>) get(blockParameters, block);
  }

  /**
   * Puts a parameter's array and shape back as they were, without the checks of {@code
   * Parameter.setArray} (which refuses a parameter that has a shape): a load that failed part way
   * replaced some arrays, and a rollback restores the earlier ones.
   *
   * @param parameter the parameter
   * @param array its earlier array, or null
   * @param shape its earlier shape, or null
   */
  public static void restoreParameter(Parameter parameter, NDArray array, Shape shape) {
    set(parameterArray, parameter, array);
    set(parameterShape, parameter, shape);
  }

  /**
   * Returns the function a {@link ParallelBlock} joins its branches' outputs with.
   *
   * @param block the parallel block
   * @return its join
   */
  @SuppressWarnings("unchecked")
  public static java.util.function.Function<List<ai.djl.ndarray.NDList>, ai.djl.ndarray.NDList>
      parallelJoin(ParallelBlock block) {
    return (java.util.function.Function<List<ai.djl.ndarray.NDList>, ai.djl.ndarray.NDList>)
        get(parallelBlockJoin, block);
  }

  /**
   * Returns the function a {@link LambdaBlock} runs.
   *
   * @param block the lambda block
   * @return its function
   */
  public static Object lambdaFunction(LambdaBlock block) {
    if (LAMBDA_FUNCTION != null) {
      try {
        return (java.util.function.Function<?, ?>) LAMBDA_FUNCTION.invokeExact(block);
      } catch (Throwable e) {
        throw new IllegalStateException(e); // a plain field read does not throw
      }
    }
    return get(lambdaBlockFunction, block);
  }

  /**
   * Reads a hidden {@link BatchNorm} setting.
   *
   * @param bn the batch norm block
   * @return axis, epsilon, momentum, center and scale
   */
  public static DjlInternals.BatchNormSettings batchNormSettings(BatchNorm bn) {
    return new DjlInternals.BatchNormSettings(
        (Integer) get(batchNormAxis, bn),
        (Float) get(batchNormEpsilon, bn),
        (Float) get(batchNormMomentum, bn),
        (Boolean) get(batchNormCenter, bn),
        (Boolean) get(batchNormScale, bn));
  }

  /**
   * Reads the hidden rate of a {@link Dropout}.
   *
   * @param dropout the dropout block
   * @return the drop probability
   */
  public static float dropoutRate(Dropout dropout) {
    return (Float) get(dropoutBlockRate, dropout);
  }

  /**
   * Reads the hidden output size of a {@link Linear}.
   *
   * @param linear the linear block
   * @return its number of output units
   */
  public static long linearUnits(Linear linear) {
    return (Long) get(linearBlockUnits, linear);
  }
}
