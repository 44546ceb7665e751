package dev.surgery.core.internal;

import ai.djl.BaseModel;
import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.LayoutType;
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
import ai.djl.nn.convolutional.Convolution;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.Dropout;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.LocalParameterServer;
import ai.djl.training.ParameterServer;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.optimizer.Adam;
import ai.djl.training.optimizer.AdamW;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.optimizer.Sgd;
import ai.djl.training.tracker.ParameterTracker;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.invoke.WrongMethodTypeException;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The only place in DJL Surgery that reads or writes DJL internals by reflection.
 *
 * <p>DJL has no public API to replace a child block in place, to unregister a parameter from a
 * trainer, or to inspect optimizer state, so these are reached through private fields of DJL
 * 0.36.0. Every field is resolved once, when this class is first used; {@link #verify()} reports
 * the outcome at start-up. A missing or retyped field fails with a {@link DjlInternalsException}
 * naming the DJL class and field (from {@code verify()} and from every accessor), never with a
 * class-initialization error or a confusing failure in the middle of a training run.
 */
public final class DjlInternals {

  /** Set when this DJL does not have a field surgery needs; every accessor then fails with it. */
  private static final DjlInternalsException FAILURE;

  private static Field blockChildren;
  private static Field blockParameters;
  private static Field blockInputShapes;
  private static Field lambdaFunction;
  private static Field parallelJoin;
  private static Field batchNormAxis;
  private static Field batchNormEpsilon;
  private static Field batchNormMomentum;
  private static Field batchNormCenter;
  private static Field batchNormScale;
  private static Field dropoutRate;
  private static Field linearUnits;
  private static Field linearInputFeatures;
  private static Field linearInputShape;
  private static Field parameterArray;
  private static Field parameterShape;
  private static Field trainerStore;
  private static Field modelWasLoaded;
  private static Field trainerListeners;
  private static Field trainerDevices;
  private static Field storeMap;
  private static Field storeServer;
  private static Class<?> parameterData;
  private static Field dataList;
  private static Field serverOptimizer;
  private static Field optimizerCounts;
  private static Field optimizerNumUpdate;
  private static Field dataParameter;
  private static Field optimizerRescaleGrad;
  private static Field optimizerBeginNumUpdate;
  private static Field optimizerClipGrad;
  private static Method optimizerUpdateCount;
  private static Method optimizerWithDefaultState;
  private static Method optimizerWeightDecay;
  private static Method blockBeforeInitialize;
  private static Method blockPrepare;
  private static Map<Class<?>, AdamFields> adamFields;
  private static SgdFields sgdFields;

  static {
    DjlInternalsException failure = null;
    try {
      blockChildren = field(AbstractBlock.class, "children", BlockList.class);
      blockParameters = field(AbstractBlock.class, "parameters", LinkedHashMap.class);
      blockInputShapes = field(AbstractBaseBlock.class, "inputShapes", Shape[].class);
      lambdaFunction = field(LambdaBlock.class, "lambda", java.util.function.Function.class);
      parallelJoin = field(ParallelBlock.class, "function", java.util.function.Function.class);
      batchNormAxis = field(BatchNorm.class, "axis", int.class);
      batchNormEpsilon = field(BatchNorm.class, "epsilon", float.class);
      batchNormMomentum = field(BatchNorm.class, "momentum", float.class);
      batchNormCenter = field(BatchNorm.class, "center", boolean.class);
      batchNormScale = field(BatchNorm.class, "scale", boolean.class);
      dropoutRate = field(Dropout.class, "rate", float.class);
      linearUnits = field(Linear.class, "units", long.class);
      linearInputFeatures = field(Linear.class, "inputFeatures", long.class);
      linearInputShape = field(Linear.class, "inputShape", Shape.class);
      parameterArray = field(Parameter.class, "array", NDArray.class);
      parameterShape = field(Parameter.class, "shape", Shape.class);
      trainerStore = field(Trainer.class, "parameterStore", ParameterStore.class);
      modelWasLoaded = field(BaseModel.class, "wasLoaded", boolean.class);
      trainerListeners = field(Trainer.class, "listeners", List.class);
      trainerDevices = field(Trainer.class, "devices", Device[].class);
      storeMap = field(ParameterStore.class, "parameterMap", Map.class);
      storeServer = field(ParameterStore.class, "parameterServer", ParameterServer.class);
      parameterData = nestedClass(ParameterStore.class, "ParameterData");
      dataList = field(parameterData, "list", List.class);
      serverOptimizer = field(LocalParameterServer.class, "optimizer", Optimizer.class);
      optimizerCounts = field(Optimizer.class, "updateCounts", Map.class);
      optimizerNumUpdate = field(Optimizer.class, "numUpdate", int.class);
      dataParameter = field(parameterData, "parameter", Parameter.class);
      optimizerRescaleGrad = field(Optimizer.class, "rescaleGrad", float.class);
      optimizerBeginNumUpdate = field(Optimizer.class, "beginNumUpdate", int.class);
      optimizerClipGrad = field(Optimizer.class, "clipGrad", float.class);
      optimizerUpdateCount = method(Optimizer.class, "updateCount", int.class, String.class);
      optimizerWithDefaultState =
          method(
              Optimizer.class,
              "withDefaultState",
              NDArray.class,
              Map.class,
              String.class,
              Device.class,
              java.util.function.Function.class);
      optimizerWeightDecay = method(Optimizer.class, "getWeightDecay", float.class);
      blockBeforeInitialize =
          method(AbstractBaseBlock.class, "beforeInitialize", void.class, Shape[].class);
      blockPrepare = method(AbstractBaseBlock.class, "prepare", void.class, Shape[].class);
      adamFields =
          Map.of(Adam.class, AdamFields.of(Adam.class), AdamW.class, AdamFields.of(AdamW.class));
      sgdFields = SgdFields.of();
    } catch (DjlInternalsException e) {
      failure = e;
    } catch (LinkageError e) {
      // A DJL class or a type in a signature this library names is gone (NoClassDefFoundError):
      // reported as the change it is, not as a failed initialization of this class.
      failure =
          new DjlInternalsException(
              "DJL changed: a class DJL Surgery needs is missing or does not link (built for DJL"
                  + " 0.36.0): "
                  + e,
              e);
    }
    FAILURE = failure;
  }

  /*
   * Getters of the three fields every tree walk reads, once per block: a MethodHandle in a static
   * final field is inlined by the JIT, where Field.get pays an access check per call. Null when
   * the field was not found (FAILURE is then set and every accessor reports it).
   */
  private static final MethodHandle CHILDREN =
      getter(blockChildren, () -> MethodType.methodType(BlockList.class, AbstractBlock.class));
  private static final MethodHandle PARAMETERS =
      getter(
          blockParameters, () -> MethodType.methodType(LinkedHashMap.class, AbstractBlock.class));
  private static final MethodHandle INPUT_SHAPES =
      getter(blockInputShapes, () -> MethodType.methodType(Shape[].class, AbstractBaseBlock.class));

  /** The function a {@code LambdaBlock} runs: read per lambda block by the first walk. */
  private static final MethodHandle LAMBDA_FUNCTION =
      getter(
          lambdaFunction,
          () -> MethodType.methodType(java.util.function.Function.class, LambdaBlock.class));

  /*
   * DJL's protected optimizer methods the birth-aware optimizer calls: as method handles, since
   * Method.invoke runs natively for its first calls and then spins an accessor class, a pause
   * that would fall into some surgery or step.
   */
  private static final MethodHandle UPDATE_COUNT =
      invoker(
          optimizerUpdateCount,
          () -> MethodType.methodType(int.class, Optimizer.class, String.class));
  private static final MethodHandle WITH_DEFAULT_STATE =
      invoker(
          optimizerWithDefaultState,
          () ->
              MethodType.methodType(
                  NDArray.class,
                  Optimizer.class,
                  Map.class,
                  String.class,
                  Device.class,
                  java.util.function.Function.class));
  private static final MethodHandle WEIGHT_DECAY =
      invoker(optimizerWeightDecay, () -> MethodType.methodType(float.class, Optimizer.class));

  private DjlInternals() {}

  /*
   * The handles are adapted to the types their call sites use with invokeExact: a DJL that
   * declares a field or return type more narrowly (a subtype, which the checks above accept)
   * still matches them. Those types are named only once the start-up check passed: a DJL class
   * they name may be missing (FAILURE then says so), and naming it here would fail this class's
   * initialization instead.
   */
  private static MethodHandle invoker(Method m, Supplier<MethodType> callSite) {
    if (m == null || FAILURE != null) {
      return null;
    }
    try {
      return MethodHandles.lookup().unreflect(m).asType(callSite.get()); // m is accessible
    } catch (IllegalAccessException | WrongMethodTypeException e) {
      return null; // Method.invoke below reports what is wrong
    }
  }

  static MethodHandle getter(Field f, Supplier<MethodType> callSite) {
    if (f == null || FAILURE != null) {
      return null;
    }
    try {
      return MethodHandles.lookup().unreflectGetter(f).asType(callSite.get()); // f is accessible
    } catch (IllegalAccessException | WrongMethodTypeException e) {
      return null; // Field.get below reports what is wrong
    }
  }

  /**
   * Resolves every DJL field this library depends on. Called by the trainer integration and the
   * agent at start-up so that a DJL version mismatch is reported before training starts.
   *
   * @throws DjlInternalsException naming the DJL class and field that changed
   */
  public static void verify() {
    if (FAILURE != null) {
      throw FAILURE;
    }
  }

  // ---------------------------------------------------------------- blocks

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
      restoreParameter(p, null, null);
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
        restoreParameter(parameters.get(i), arrays[i], shapes[i]);
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
    for (Parameter p : liveParameters((AbstractBlock) block).values()) {
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
    return new long[] {(long) get(linearUnits, block), input.get(input.dimension() - 1)};
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
        get(parallelJoin, block);
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
    return get(lambdaFunction, block);
  }

  /**
   * Reads a hidden {@link BatchNorm} setting.
   *
   * @param bn the batch norm block
   * @return axis, epsilon, momentum, center and scale
   */
  public static BatchNormSettings batchNormSettings(BatchNorm bn) {
    return new BatchNormSettings(
        (Integer) get(batchNormAxis, bn),
        (Float) get(batchNormEpsilon, bn),
        (Float) get(batchNormMomentum, bn),
        (Boolean) get(batchNormCenter, bn),
        (Boolean) get(batchNormScale, bn));
  }

  /**
   * The hidden settings of a {@link BatchNorm}.
   *
   * @param axis the channel axis
   * @param epsilon the variance epsilon
   * @param momentum the running-statistics momentum
   * @param center whether a shift (beta) is learned
   * @param scale whether a scale (gamma) is learned
   */
  public record BatchNormSettings(
      int axis, float epsilon, float momentum, boolean center, boolean scale) {}

  /**
   * Reads the hidden rate of a {@link Dropout}.
   *
   * @param dropout the dropout block
   * @return the drop probability
   */
  public static float dropoutRate(Dropout dropout) {
    return (Float) get(dropoutRate, dropout);
  }

  /**
   * Reads the hidden output size of a {@link Linear}.
   *
   * @param linear the linear block
   * @return its number of output units
   */
  public static long linearUnits(Linear linear) {
    return (Long) get(linearUnits, linear);
  }

  // ---------------------------------------------------------------- trainer and optimizer

  /**
   * Returns the parameter store of a trainer.
   *
   * @param trainer the trainer
   * @return its store
   */
  public static ParameterStore parameterStore(Trainer trainer) {
    return (ParameterStore) get(trainerStore, trainer);
  }

  /**
   * Returns the live listener list of a trainer.
   *
   * @param trainer the trainer
   * @return the list the trainer notifies
   */
  @SuppressWarnings("unchecked")
  public static List<TrainingListener> listeners(Trainer trainer) {
    return (List<TrainingListener>) get(trainerListeners, trainer);
  }

  /**
   * Replaces the listener list of a trainer.
   *
   * @param trainer the trainer
   * @param listeners the new list
   */
  public static void setListeners(Trainer trainer, List<TrainingListener> listeners) {
    set(trainerListeners, trainer, listeners);
  }

  /**
   * Returns the devices of a trainer, in the order its parameter store indexes them.
   *
   * @param trainer the trainer
   * @return the devices
   */
  public static Device[] devices(Trainer trainer) {
    return (Device[]) get(trainerDevices, trainer);
  }

  /**
   * Returns the live id-to-entry map of a parameter store.
   *
   * @param store the store
   * @return its map; values are opaque entries, see {@link #mirrors(Object)}
   */
  @SuppressWarnings("unchecked")
  public static Map<String, Object> storeEntries(ParameterStore store) {
    return (Map<String, Object>) get(storeMap, store);
  }

  /**
   * Returns the per-device arrays of a parameter store entry (index = device index).
   *
   * @param entry a value of {@link #storeEntries(ParameterStore)}
   * @return the live list of device arrays
   */
  @SuppressWarnings("unchecked")
  public static List<NDArray> mirrors(Object entry) {
    return (List<NDArray>) get(dataList, entry);
  }

  /**
   * Returns the parameter a store entry belongs to.
   *
   * @param entry a value of {@link #storeEntries(ParameterStore)}
   * @return its parameter
   */
  public static Parameter entryParameter(Object entry) {
    return (Parameter) get(dataParameter, entry);
  }

  /**
   * Hands a store entry (its device arrays) to another parameter object around the same array.
   *
   * @param entry a value of {@link #storeEntries(ParameterStore)}
   * @param parameter the parameter that owns the entry from now on
   */
  public static void setEntryParameter(Object entry, Parameter parameter) {
    set(dataParameter, entry, parameter);
  }

  /**
   * Returns the optimizer behind a trainer's parameter store.
   *
   * @param trainer the trainer
   * @return the optimizer
   * @throws IllegalStateException when the store does not use DJL's local parameter server
   */
  public static Optimizer optimizer(Trainer trainer) {
    Object server = get(storeServer, parameterStore(trainer));
    if (!(server instanceof LocalParameterServer)) {
      throw new IllegalStateException(
          "Surgery supports trainers whose ParameterStore uses ai.djl.training.LocalParameterServer,"
              + " found "
              + (server == null ? "none" : server.getClass().getName()));
    }
    Optimizer optimizer = (Optimizer) get(serverOptimizer, server);
    return optimizer instanceof BirthAwareOptimizer stand ? stand.getDelegate() : optimizer;
  }

  /**
   * Returns the stand-in that updates a trainer's born parameters exactly, installing it the first
   * time when the trainer's optimizer needs one (see {@link BirthAwareOptimizer#isNeededFor}).
   *
   * @param trainer the trainer
   * @param install whether to install a stand-in when there is none yet
   * @return the stand-in, or null when none is installed (or none is needed)
   */
  public static BirthAwareOptimizer birthAwareOptimizer(Trainer trainer, boolean install) {
    Object server = get(storeServer, parameterStore(trainer));
    Optimizer current = optimizer(trainer);
    Optimizer installed = (Optimizer) get(serverOptimizer, server);
    if (installed instanceof BirthAwareOptimizer stand) {
      return stand;
    }
    if (!install || !BirthAwareOptimizer.isNeededFor(current)) {
      return null;
    }
    BirthAwareOptimizer stand = BirthAwareOptimizer.wrap(current);
    set(serverOptimizer, server, stand);
    return stand;
  }

  /**
   * Puts the user's optimizer back in place of a stand-in (rollback of {@link
   * #birthAwareOptimizer}).
   *
   * @param trainer the trainer
   */
  public static void removeBirthAwareOptimizer(Trainer trainer) {
    Object server = get(storeServer, parameterStore(trainer));
    if (get(serverOptimizer, server) instanceof BirthAwareOptimizer stand) {
      set(serverOptimizer, server, stand.getDelegate());
    }
  }

  /**
   * Returns the live per-parameter update counts of an optimizer.
   *
   * @param optimizer the optimizer
   * @return parameter id to update count
   */
  @SuppressWarnings("unchecked")
  public static Map<String, Integer> updateCounts(Optimizer optimizer) {
    return (Map<String, Integer>) get(optimizerCounts, optimizer);
  }

  /**
   * Returns the global update count an optimizer passes to its trackers and bias corrections.
   *
   * @param optimizer the optimizer
   * @return the global step count
   */
  public static int globalUpdateCount(Optimizer optimizer) {
    return (Integer) get(optimizerNumUpdate, optimizer);
  }

  /**
   * Finds every per-parameter state map of an optimizer: each instance field of type {@code
   * Map<String, Map<Device, NDArray>>} anywhere in its class hierarchy (Sgd's momentum, Adam's
   * means and variances, and those of user optimizers written the same way).
   *
   * @param optimizer the optimizer
   * @return field name to live state map
   */
  @SuppressWarnings("unchecked")
  public static Map<String, Map<String, Map<Device, NDArray>>> optimizerStates(
      Optimizer optimizer) {
    Map<String, Map<String, Map<Device, NDArray>>> states = new LinkedHashMap<>();
    for (Field f : STATE_FIELDS.get(optimizer.getClass())) {
      Object value = get(f, optimizer);
      if (value != null) {
        states.put(
            f.getDeclaringClass().getSimpleName() + "." + f.getName(),
            (Map<String, Map<Device, NDArray>>) value);
      }
    }
    return states;
  }

  /** The per-parameter state fields of each optimizer class, found once per class. */
  private static final ClassValue<List<Field>> STATE_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          List<Field> fields = new ArrayList<>();
          for (Class<?> c = type; c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
              if (!Modifier.isStatic(f.getModifiers()) && isStateMapType(f.getGenericType())) {
                f.setAccessible(true);
                fields.add(f);
              }
            }
          }
          return List.copyOf(fields);
        }
      };

  /**
   * Whether a field's declared type is a per-parameter state map: a {@code Map} (or any map class,
   * a {@code ConcurrentHashMap} as well) from parameter id to a map from device to array.
   */
  private static boolean isStateMapType(Type type) {
    if (!(type instanceof ParameterizedType p) || !isMapClass(p.getRawType())) {
      return false;
    }
    Type[] args = p.getActualTypeArguments();
    if (args.length != 2
        || args[0] != String.class
        || !(args[1] instanceof ParameterizedType inner)) {
      return false;
    }
    Type[] innerArgs = inner.getActualTypeArguments();
    return isMapClass(inner.getRawType())
        && innerArgs.length == 2
        && innerArgs[0] == Device.class
        && innerArgs[1] == NDArray.class;
  }

  private static boolean isMapClass(Type raw) {
    return raw instanceof Class<?> c && Map.class.isAssignableFrom(c);
  }

  /**
   * Refuses an optimizer that keeps arrays per parameter id in a field the engine does not read as
   * per-parameter state (a {@code Map<String, NDArray>}): the engine could neither move that state
   * with a parameter ({@code replaceParamsInOptimizer}) nor drop it (a freeze, so that an unfreeze
   * starts fresh), and the parameter would train on with state that is not its own.
   *
   * @param optimizer the optimizer whose per-parameter state a surgery moves or drops
   * @throws IllegalStateException naming the optimizer's class and field
   */
  public static void requireReadableState(Optimizer optimizer) {
    Field unread = null;
    for (Field f : UNREAD_STATE_FIELDS.get(optimizer.getClass())) {
      if (isKeyedByParameter(get(f, optimizer))) {
        unread = f;
        break;
      }
    }
    if (unread != null) {
      throw new IllegalStateException(
          "the optimizer "
              + optimizer.getClass().getName()
              + " keeps arrays in field '"
              + unread.getName()
              + "' ("
              + unread.getGenericType().getTypeName()
              + "), which surgery cannot read as per-parameter state, so it can neither move it"
              + " with a parameter nor drop it; declare per-parameter state as Map<String,"
              + " Map<Device, NDArray>> (parameter id, then device), as DJL's optimizers do");
    }
  }

  /**
   * Whether a field's value holds arrays per parameter id: a map keyed by strings whose values are,
   * or hold, arrays. A lone array (a scale, a constant), null, or an empty map is no such state.
   */
  private static boolean isKeyedByParameter(Object value) {
    if (!(value instanceof Map<?, ?> map) || map.isEmpty()) {
      return false;
    }
    for (Map.Entry<?, ?> e : map.entrySet()) {
      if (e.getKey() instanceof String && holdsArrays(e.getValue())) {
        return true;
      }
    }
    return false;
  }

  private static boolean holdsArrays(Object value) {
    if (value instanceof NDArray) {
      return true;
    }
    if (value instanceof Object[] items) {
      return java.util.Arrays.stream(items).anyMatch(DjlInternals::holdsArrays);
    }
    if (value instanceof java.util.Collection<?> items) {
      return items.stream().anyMatch(DjlInternals::holdsArrays);
    }
    return value instanceof Map<?, ?> map
        && map.values().stream().anyMatch(DjlInternals::holdsArrays);
  }

  /** Per optimizer class: instance fields that may hold arrays but are not state maps. */
  private static final ClassValue<List<Field>> UNREAD_STATE_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          List<Field> fields = new ArrayList<>();
          for (Class<?> c = type;
              c != Optimizer.class && c != Object.class;
              c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
              Type declared = f.getGenericType();
              if (!Modifier.isStatic(f.getModifiers())
                  && (declared.getTypeName().contains(NDArray.class.getName())
                      || f.getType() == Object.class
                      || Map.class.isAssignableFrom(f.getType()))
                  && !isStateMapType(declared)) {
                try {
                  f.setAccessible(true);
                  fields.add(f);
                } catch (RuntimeException closed) {
                  // A field of a package its module does not open: no surgery reads it either.
                }
              }
            }
          }
          return List.copyOf(fields);
        }
      };

  /**
   * Finds the learning-rate tracker field of an optimizer (a {@link ParameterTracker}-typed field).
   *
   * @param optimizer the optimizer
   * @return the field, or null if the optimizer has none
   */
  public static Field learningRateTrackerField(Optimizer optimizer) {
    // A class may declare several (a subclass's second reference to Adam's tracker): the first that
    // holds one and can take the stand-in, else the first that holds one.
    List<Field> candidates = TRACKER_FIELDS.get(optimizer.getClass());
    Field holding = null;
    for (Field f : candidates) {
      if (get(f, optimizer) != null) {
        if (f.getType().isAssignableFrom(KeptIdTracker.class)) {
          return f;
        }
        if (holding == null) {
          holding = f;
        }
      }
    }
    return holding != null ? holding : candidates.isEmpty() ? null : candidates.get(0);
  }

  /**
   * Returns the stand-in in front of an optimizer's learning-rate tracker that keeps moved
   * parameters' first ids ({@link KeptIdTracker}), installing it when asked and when the tracker
   * may answer by id.
   *
   * @param optimizer the user's optimizer
   * @param install whether to install one when there is none
   * @return the stand-in, or null when none is installed (or none is needed, or the optimizer has
   *     no tracker field)
   */
  public static KeptIdTracker keptIdTracker(Optimizer optimizer, boolean install) {
    Field field = learningRateTrackerField(optimizer);
    if (field == null) {
      return null;
    }
    Object tracker = get(field, optimizer);
    if (tracker instanceof KeptIdTracker kept) {
      return kept;
    }
    if (!install || !(tracker instanceof ParameterTracker own) || !KeptIdTracker.answersById(own)) {
      return null;
    }
    if (!field.getType().isAssignableFrom(KeptIdTracker.class)) {
      // A field declared as the tracker's own class (FixedPerVarTracker) cannot take the stand-in:
      // a moved parameter would be asked its rate by its new id, and get the default.
      throw new IllegalStateException(
          "the optimizer "
              + optimizer.getClass().getName()
              + " asks its learning-rate tracker by parameter id through field '"
              + field.getName()
              + "', declared "
              + field.getType().getName()
              + ": surgery cannot keep a moved parameter's rate there (it answers by the"
              + " parameter's first id through a stand-in ParameterTracker); declare the field"
              + " ParameterTracker, as DJL's optimizers do");
    }
    KeptIdTracker kept = new KeptIdTracker(own);
    set(field, optimizer, kept);
    return kept;
  }

  /**
   * Puts the user's own tracker back in front of an optimizer (undoing {@link #keptIdTracker}).
   *
   * @param optimizer the user's optimizer
   */
  public static void removeKeptIdTracker(Optimizer optimizer) {
    Field field = learningRateTrackerField(optimizer);
    if (field != null && get(field, optimizer) instanceof KeptIdTracker kept) {
      set(field, optimizer, kept.getTracker());
    }
  }

  /** The learning-rate tracker fields of each optimizer class, found once per class. */
  private static final ClassValue<List<Field>> TRACKER_FIELDS =
      new ClassValue<>() {
        @Override
        protected List<Field> computeValue(Class<?> type) {
          List<Field> fields = new ArrayList<>();
          for (Class<?> c = type; c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
              if (!Modifier.isStatic(f.getModifiers())
                  && ParameterTracker.class.isAssignableFrom(f.getType())) {
                f.setAccessible(true);
                fields.add(f);
              }
            }
          }
          return List.copyOf(fields);
        }
      };

  /**
   * Tells whether a trainer has registered any parameter yet ({@code Trainer.initialize} or a first
   * forward pass does). Before that, surgery needs no trainer update: registration picks up
   * whatever the model holds then.
   *
   * @param trainer the trainer
   * @return true when its parameter store holds parameters
   */
  public static boolean hasRegisteredParameters(Trainer trainer) {
    return !storeEntries(parameterStore(trainer)).isEmpty();
  }

  /**
   * Reads any field value (used by {@link FieldSlot} and with {@link #learningRateTrackerField}).
   *
   * @param field an accessible field
   * @param target the object
   * @return the value
   */
  public static Object read(Field field, Object target) {
    return get(field, target);
  }

  /** Writes any field value: for {@link FieldSlot#set}. */
  static void write(Field field, Object target, Object value) {
    set(field, target, value);
  }

  // ---------------------------------------------------------------- optimizer internals

  /** The private fields of DJL's Adam and AdamW (the two classes declare them separately). */
  record AdamFields(
      Field learningRateTracker,
      Field beta1,
      Field beta2,
      Field epsilon,
      Field means,
      Field variances) {
    static AdamFields of(Class<?> type) {
      return new AdamFields(
          field(type, "learningRateTracker", ParameterTracker.class),
          field(type, "beta1", float.class),
          field(type, "beta2", float.class),
          field(type, "epsilon", float.class),
          field(type, "means", Map.class),
          field(type, "variances", Map.class));
    }
  }

  static AdamFields adamFields(Class<?> type) {
    verify();
    return adamFields.get(type);
  }

  /** The private fields of DJL's Sgd. */
  record SgdFields(Field learningRateTracker, Field momentum, Field momentumStates) {
    static SgdFields of() {
      return new SgdFields(
          field(Sgd.class, "learningRateTracker", ParameterTracker.class),
          field(Sgd.class, "momentum", float.class),
          field(Sgd.class, "momentumStates", Map.class));
    }
  }

  static SgdFields sgdFields() {
    verify();
    return sgdFields;
  }

  static float rescaleGrad(Optimizer optimizer) {
    return (Float) get(optimizerRescaleGrad, optimizer);
  }

  static int beginNumUpdate(Optimizer optimizer) {
    return (Integer) get(optimizerBeginNumUpdate, optimizer);
  }

  static float clipGrad(Optimizer optimizer) {
    return (Float) get(optimizerClipGrad, optimizer);
  }

  /**
   * Calls DJL's {@code Optimizer.updateCount}: counts one update of the id, returns the global
   * count.
   */
  static int countUpdate(Optimizer optimizer, String parameterId) {
    verify();
    if (UPDATE_COUNT == null) {
      return (Integer) call(optimizerUpdateCount, optimizer, parameterId);
    }
    try {
      return (int) UPDATE_COUNT.invokeExact(optimizer, parameterId);
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable e) {
      throw new IllegalStateException(e);
    }
  }

  /** Calls DJL's {@code Optimizer.withDefaultState}: the state array, created as DJL creates it. */
  static NDArray stateArray(
      Optimizer optimizer,
      Map<String, Map<Device, NDArray>> state,
      String parameterId,
      Device device,
      java.util.function.Function<String, NDArray> initial) {
    verify();
    if (WITH_DEFAULT_STATE == null) {
      return (NDArray)
          call(optimizerWithDefaultState, optimizer, state, parameterId, device, initial);
    }
    try {
      return (NDArray)
          WITH_DEFAULT_STATE.invokeExact(optimizer, state, parameterId, device, initial);
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable e) {
      throw new IllegalStateException(e);
    }
  }

  static float weightDecay(Optimizer optimizer) {
    verify();
    if (WEIGHT_DECAY == null) {
      return (Float) call(optimizerWeightDecay, optimizer);
    }
    try {
      return (float) WEIGHT_DECAY.invokeExact(optimizer);
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable e) {
      throw new IllegalStateException(e);
    }
  }

  private static Object call(Method method, Object target, Object... args) {
    verify();
    try {
      return method.invoke(target, args);
    } catch (IllegalAccessException e) {
      throw new DjlInternalsException(
          "cannot call " + method.getDeclaringClass().getName() + "." + method.getName(), e);
    } catch (InvocationTargetException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      if (e.getCause() instanceof Error err) {
        throw err;
      }
      throw new IllegalStateException(e.getCause());
    }
  }

  static Method method(Class<?> owner, String name, Class<?> returnType, Class<?>... parameters) {
    Method m;
    try {
      m = owner.getDeclaredMethod(name, parameters);
      m.setAccessible(true);
    } catch (NoSuchMethodException | RuntimeException e) {
      throw inaccessible("method", owner, name, e);
    }
    // A primitive return type must stay what it is; an object one may narrow (a subtype).
    boolean fits =
        returnType.isPrimitive()
            ? m.getReturnType() == returnType
            : returnType.isAssignableFrom(m.getReturnType());
    if (!fits) {
      throw new DjlInternalsException(
          "DJL changed: method "
              + owner.getName()
              + "."
              + name
              + " returns "
              + m.getReturnType().getName()
              + ", DJL Surgery expects "
              + returnType.getName()
              + " (built for DJL 0.36.0)",
          null);
    }
    return m;
  }

  private static DjlInternalsException inaccessible(
      String kind, Class<?> owner, String name, Exception cause) {
    return new DjlInternalsException(
        "DJL changed: cannot access "
            + kind
            + " "
            + owner.getName()
            + "."
            + name
            + " that DJL Surgery needs (built for DJL 0.36.0): "
            + cause,
        cause);
  }

  // ---------------------------------------------------------------- reflection plumbing

  static Field field(Class<?> owner, String name, Class<?> expectedType) {
    try {
      Field f = owner.getDeclaredField(name);
      if (!expectedType.isAssignableFrom(f.getType())) {
        throw new DjlInternalsException(
            "DJL changed: field "
                + owner.getName()
                + "."
                + name
                + " has type "
                + f.getType().getName()
                + ", DJL Surgery expects "
                + expectedType.getName()
                + " (built for DJL 0.36.0)",
            null);
      }
      f.setAccessible(true);
      return f;
    } catch (NoSuchFieldException | RuntimeException e) {
      if (e instanceof DjlInternalsException d) {
        throw d;
      }
      throw inaccessible("field", owner, name, e);
    }
  }

  private static Class<?> nestedClass(Class<?> owner, String simpleName) {
    for (Class<?> c : owner.getDeclaredClasses()) {
      if (c.getSimpleName().equals(simpleName)) {
        return c;
      }
    }
    throw new DjlInternalsException(
        "DJL changed: class "
            + owner.getName()
            + "$"
            + simpleName
            + " that DJL Surgery needs is missing (built for DJL 0.36.0)",
        null);
  }

  /**
   * Whether DJL's {@code newTrainer} unfreezes the model's parameters: a {@code BaseModel} that was
   * loaded and given no block since ({@code BaseModel.wasLoaded}). A model of another kind is
   * assumed to, as DJL's own models that load do.
   *
   * @param model the model
   * @return whether its {@code newTrainer} unfreezes every parameter but running statistics
   */
  public static boolean unfreezesOnNewTrainer(Model model) {
    return !(model instanceof BaseModel) || (Boolean) get(modelWasLoaded, model);
  }

  /**
   * Puts back whether DJL takes a model for loaded ({@code BaseModel.wasLoaded}, which DJL sets as
   * a load starts): a failed load's undo gives the flag back, so that the next {@code newTrainer}
   * unfreezes the model's parameters only if it was loaded before. Nothing for another kind of
   * model.
   *
   * @param model the model
   * @param loaded what the flag was before the load
   */
  public static void restoreWasLoaded(Model model, boolean loaded) {
    if (model instanceof BaseModel) {
      set(modelWasLoaded, model, loaded);
    }
  }

  private static Object get(Field f, Object target) {
    verify();
    try {
      return f.get(target);
    } catch (IllegalAccessException e) {
      throw new DjlInternalsException(
          "cannot read " + f.getDeclaringClass().getName() + "." + f.getName(), e);
    }
  }

  private static void set(Field f, Object target, Object value) {
    verify();
    try {
      f.set(target, value);
    } catch (IllegalAccessException e) {
      throw new DjlInternalsException(
          "cannot write " + f.getDeclaringClass().getName() + "." + f.getName(), e);
    }
  }
}
