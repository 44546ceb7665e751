package dev.surgery.core.internal;

import static dev.surgery.core.internal.DjlInternals.call;
import static dev.surgery.core.internal.DjlInternals.get;
import static dev.surgery.core.internal.DjlInternals.invoker;
import static dev.surgery.core.internal.DjlInternals.optimizerBeginNumUpdate;
import static dev.surgery.core.internal.DjlInternals.optimizerClipGrad;
import static dev.surgery.core.internal.DjlInternals.optimizerCounts;
import static dev.surgery.core.internal.DjlInternals.optimizerNumUpdate;
import static dev.surgery.core.internal.DjlInternals.optimizerRescaleGrad;
import static dev.surgery.core.internal.DjlInternals.optimizerUpdateCount;
import static dev.surgery.core.internal.DjlInternals.optimizerWeightDecay;
import static dev.surgery.core.internal.DjlInternals.optimizerWithDefaultState;
import static dev.surgery.core.internal.DjlInternals.set;
import static dev.surgery.core.internal.DjlInternals.verify;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.ParameterTracker;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A DJL {@code Optimizer}'s private state: update counts, the per-parameter state maps found by
 * their type (Sgd's momentum, Adam's means and variances, and those of optimizers written the same
 * way), the learning-rate tracker and the stand-in that keeps born parameters' ids, and DJL's
 * protected update methods the birth-aware optimizer calls. The fields are resolved and checked
 * once by {@link DjlInternals}.
 */
public final class DjlOptimizers {

  private DjlOptimizers() {}

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
      return java.util.Arrays.stream(items).anyMatch(DjlOptimizers::holdsArrays);
    }
    if (value instanceof java.util.Collection<?> items) {
      return items.stream().anyMatch(DjlOptimizers::holdsArrays);
    }
    return value instanceof Map<?, ?> map
        && map.values().stream().anyMatch(DjlOptimizers::holdsArrays);
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
}
