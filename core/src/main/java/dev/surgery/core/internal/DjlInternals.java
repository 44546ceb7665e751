package dev.surgery.core.internal;

import ai.djl.BaseModel;
import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.BlockList;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.Dropout;
import ai.djl.training.LocalParameterServer;
import ai.djl.training.ParameterServer;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Every member of DJL's internals that DJL Surgery reaches by reflection, resolved and checked in
 * one place.
 *
 * <p>DJL has no public API to replace a child block in place, to unregister a parameter from a
 * trainer, or to inspect optimizer state, so these are reached through private fields and methods
 * of DJL 0.36.0. This class resolves every one of them once, when it is first used, and {@link
 * #verify()} reports the outcome at start-up; the accessors that read and write them are grouped by
 * what they reach: {@link DjlBlocks}, {@link DjlShapes}, {@link DjlTrainers} and {@link
 * DjlOptimizers}. A missing or retyped member fails with a {@link DjlInternalsException} naming the
 * DJL class and field (from {@code verify()} and from every accessor), never with a
 * class-initialization error or a confusing failure in the middle of a training run.
 */
public final class DjlInternals {

  /** Set when this DJL does not have a field surgery needs; every accessor then fails with it. */
  private static final DjlInternalsException FAILURE;

  /*
   * The members, read by the accessor classes of this package. Assigned only by the static
   * initializer below (not final: it catches the first that is missing and leaves the rest null).
   */
  static Field blockChildren;
  static Field blockParameters;
  static Field blockInputShapes;
  static Field lambdaBlockFunction;
  static Field parallelBlockJoin;
  static Field batchNormAxis;
  static Field batchNormEpsilon;
  static Field batchNormMomentum;
  static Field batchNormCenter;
  static Field batchNormScale;
  static Field dropoutBlockRate;
  static Field linearBlockUnits;
  static Field linearInputFeatures;
  static Field linearInputShape;
  static Field parameterArray;
  static Field parameterShape;
  static Field trainerStore;
  static Field modelWasLoaded;
  static Field trainerListeners;
  static Field trainerDevices;
  static Field storeMap;
  static Field storeServer;
  static Class<?> parameterData;
  static Field dataList;
  static Field serverOptimizer;
  static Field optimizerCounts;
  static Field optimizerNumUpdate;
  static Field dataParameter;
  static Field optimizerRescaleGrad;
  static Field optimizerBeginNumUpdate;
  static Field optimizerClipGrad;
  static Method optimizerUpdateCount;
  static Method optimizerWithDefaultState;
  static Method optimizerWeightDecay;
  static Method blockBeforeInitialize;
  static Method blockPrepare;
  private static Map<Class<?>, AdamFields> adamFields;
  private static SgdFields sgdFields;

  static {
    DjlInternalsException failure = null;
    try {
      blockChildren = field(AbstractBlock.class, "children", BlockList.class);
      blockParameters = field(AbstractBlock.class, "parameters", LinkedHashMap.class);
      blockInputShapes = field(AbstractBaseBlock.class, "inputShapes", Shape[].class);
      lambdaBlockFunction = field(LambdaBlock.class, "lambda", java.util.function.Function.class);
      parallelBlockJoin = field(ParallelBlock.class, "function", java.util.function.Function.class);
      batchNormAxis = field(BatchNorm.class, "axis", int.class);
      batchNormEpsilon = field(BatchNorm.class, "epsilon", float.class);
      batchNormMomentum = field(BatchNorm.class, "momentum", float.class);
      batchNormCenter = field(BatchNorm.class, "center", boolean.class);
      batchNormScale = field(BatchNorm.class, "scale", boolean.class);
      dropoutBlockRate = field(Dropout.class, "rate", float.class);
      linearBlockUnits = field(Linear.class, "units", long.class);
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

  private DjlInternals() {}

  /*
   * Method handles for the accessor classes (DjlBlocks, DjlShapes, DjlOptimizers), made when those
   * classes initialize and adapted to the types their call sites use with invokeExact: a DJL that
   * declares a field or return type more narrowly (a subtype, which the checks above accept) still
   * matches them. Those types are named only once the start-up check passed: a DJL class they name
   * may be missing (FAILURE then says so), and naming it earlier would fail the accessor class's
   * initialization instead.
   */
  static MethodHandle invoker(Method m, Supplier<MethodType> callSite) {
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

  /**
   * The hidden settings of a {@link BatchNorm}, as {@link DjlBlocks#batchNormSettings} reads them
   * (kept here: {@code BlockInspector.batchNorm} returns it).
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
   * Reads any field value (used by {@link FieldSlot} and with {@link
   * DjlOptimizers#learningRateTrackerField}).
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

  static Object call(Method method, Object target, Object... args) {
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

  static Object get(Field f, Object target) {
    verify();
    try {
      return f.get(target);
    } catch (IllegalAccessException e) {
      throw new DjlInternalsException(
          "cannot read " + f.getDeclaringClass().getName() + "." + f.getName(), e);
    }
  }

  static void set(Field f, Object target, Object value) {
    verify();
    try {
      f.set(target, value);
    } catch (IllegalAccessException e) {
      throw new DjlInternalsException(
          "cannot write " + f.getDeclaringClass().getName() + "." + f.getName(), e);
    }
  }
}
