package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.training.initializer.Initializer;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.training.initializer.UniformInitializer;
import ai.djl.training.initializer.XavierInitializer;
import ai.djl.util.Pair;
import dev.surgery.core.internal.DjlTrainers;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The random draws of the fresh parameters an apply places, held back until nothing but the draws
 * themselves can fail: a surgery that fails before then has drawn nothing from the engine's random
 * generator, so the program's later draws (dropout, stochastic depth, the fresh layers of a later
 * surgery) are what they would have been had it never been tried.
 *
 * <p>In a replacement whose blocks initialize as DJL's do ({@link #mayHoldBack}), a parameter whose
 * initializer is one of DJL's drawing ones ({@code XavierInitializer}, {@code NormalInitializer},
 * {@code UniformInitializer}, of exactly those classes) is placed as the plan places it ({@link
 * NoDrawInitializer}: the initializer's own checks, and zeros), and noted. DJL's constant
 * initializers draw nothing and run as they are. Any other initializer, and any other replacement,
 * may draw in ways the engine cannot see, so the draws noted so far are made first: the draws keep
 * the order in which placement asks for them, and every fresh parameter gets the values it would
 * have had if drawn at once. {@link #drawAll} makes the rest at the end of the surgery. A draw
 * writes into the array placement made (the parameter, the trainers' stores and the rollback hold
 * that object), and into the copies a trainer's store keeps on other devices.
 */
final class DeferredDraws {

  /** One parameter's held-back draw: what its initializer is given. */
  private record Draw(Parameter parameter, Initializer initializer, Shape shape, DataType type) {}

  private final List<Draw> pending = new ArrayList<>();
  private final List<Trainer> trainers;
  private final Faults faults;

  DeferredDraws(List<Trainer> trainers, Faults faults) {
    this.trainers = trainers;
    this.faults = faults;
  }

  /**
   * Whether an initializer is one of DJL's that draw, whose draws this class can hold back ({@code
   * TruncatedNormalInitializer} is not: on a float16 model it gives float32, for which placement's
   * zeros could not stand).
   */
  static boolean isDeferrable(Initializer initializer) {
    Class<?> type = initializer == null ? null : initializer.getClass();
    return type == XavierInitializer.class
        || type == NormalInitializer.class
        || type == UniformInitializer.class;
  }

  /**
   * Whether a replacement's draws may be held back: every block in it initializes by running its
   * parameters' initializers and nothing else. That holds for DJL's blocks and this library's
   * layers, and for a block class of the program's own that overrides none of {@code initialize},
   * {@code initializeChildBlocks} and {@code beforeInitialize} (setting shapes in {@code prepare},
   * as DJL's layers do, is fine). A block that overrides one may read or change its drawn values
   * while it initializes, build a layer or choose an initializer then, or initialize on a manager
   * it closes: it is initialized as it always was, after the draws held back before it are made.
   */
  static boolean mayHoldBack(Block replacement) {
    ArrayDeque<Block> todo = new ArrayDeque<>();
    todo.add(replacement);
    while (!todo.isEmpty()) {
      Block block = todo.poll();
      if (!PLAIN_INITIALIZATION.get(block.getClass())) {
        return false;
      }
      for (Pair<String, Block> child : block.getChildren()) {
        todo.add(child.getValue());
      }
    }
    return true;
  }

  /** Per block class: whether it initializes as DJL's blocks do (see {@link #mayHoldBack}). */
  private static final ClassValue<Boolean> PLAIN_INITIALIZATION =
      new ClassValue<>() {
        @Override
        protected Boolean computeValue(Class<?> type) {
          for (Class<?> c = type; c != null && !isVetted(c); c = c.getSuperclass()) {
            for (java.lang.reflect.Method m : c.getDeclaredMethods()) {
              String name = m.getName();
              if (!m.isSynthetic()
                  && (name.equals("initialize")
                      || name.equals("initializeChildBlocks")
                      || name.equals("beforeInitialize"))) {
                return false;
              }
            }
          }
          return true;
        }
      };

  private static boolean isVetted(Class<?> type) {
    String name = type.getName();
    return name.startsWith("ai.djl.") || name.startsWith("dev.surgery.core.layers.");
  }

  /**
   * The initializer placement gives a fresh parameter in place of its own: a deferrable one is
   * noted and gives zeros; one of DJL's constant ones runs as it is; any other makes the draws
   * noted so far first, then runs.
   */
  Initializer standIn(Parameter parameter, Initializer own) {
    if (isDeferrable(own)) {
      NoDrawInitializer zeros = new NoDrawInitializer(own);
      return (manager, shape, type) -> {
        NDArray placed = zeros.initialize(manager, shape, type);
        pending.add(new Draw(parameter, own, shape, type));
        return placed;
      };
    }
    if (isDrawFree(own)) {
      return own; // draws nothing: its place among the draws does not matter
    }
    return (manager, shape, type) -> {
      drawAll();
      return own.initialize(manager, shape, type);
    };
  }

  /** Whether an initializer is one of DJL's constant ones, which draw nothing (a bias's zeros). */
  private static boolean isDrawFree(Initializer initializer) {
    return initializer == Initializer.ZEROS
        || initializer == Initializer.ONES
        || initializer.getClass() == ConstantInitializer.class;
  }

  /** Makes the draws held back, in the order placement asked for them. */
  void drawAll() {
    for (int i = 0; i < pending.size(); i++) {
      draw(pending.get(i));
    }
    pending.clear();
  }

  private void draw(Draw d) {
    faults.point("draw");
    Parameter p = d.parameter();
    NDArray placed = p.getArray();
    List<NDArray> copies = storeCopies(p, placed);
    // On the placed array's manager: the one a block gave at placement may have been a temporary
    // one; the values depend on the generator alone.
    NDArray drawn = d.initializer().initialize(placed.getManager(), d.shape(), d.type());
    if (drawn.getDataType() != placed.getDataType()
        || !drawn.getShape().equals(placed.getShape())) {
      String mismatch =
          "the held-back draw of parameter '"
              + p.getName()
              + "' gave "
              + drawn.getDataType()
              + " "
              + drawn.getShape()
              + " where placement made "
              + placed.getDataType()
              + " "
              + placed.getShape();
      drawn.close();
      throw new IllegalStateException(mismatch);
    }
    // The placed object keeps its identity (the store, the trainers and the rollback hold it) and
    // takes the drawn values; DJL's intern moves them over and frees the zeros.
    placed.intern(drawn);
    for (NDArray copy : copies) {
      boolean trains = copy.hasGradient();
      // toDevice to the array's own device gives a view, not a copy.
      copy.intern(
          copy.getDevice().equals(placed.getDevice())
              ? placed.duplicate()
              : placed.toDevice(copy.getDevice(), true));
      if (trains) {
        copy.setRequiresGradient(true);
      }
    }
    if (p.requiresGradient()) {
      placed.setRequiresGradient(true);
    }
  }

  /** The copies of a parameter's array that the trainers' stores keep (other devices, copying). */
  private List<NDArray> storeCopies(Parameter parameter, NDArray placed) {
    Set<NDArray> copies = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Trainer trainer : trainers) {
      Map<String, Object> entries = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer));
      Object entry = entries.get(parameter.getId());
      if (entry != null) {
        for (NDArray mirror : DjlTrainers.mirrors(entry)) {
          if (mirror != placed) {
            copies.add(mirror);
          }
        }
      }
    }
    return new ArrayList<>(copies);
  }
}
