package dev.surgery.core.testing;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * Counts the NDArrays still open, for tests that show a surgery leaks nothing. Each method returns
 * an identity set (NDArray's {@code equals} compares values, not objects).
 */
public final class OpenArrays {

  private OpenArrays() {}

  /**
   * Returns the arrays a manager holds itself (not those of its sub-managers).
   *
   * @param manager the manager
   * @return its managed arrays
   */
  public static Set<NDArray> managedBy(NDManager manager) {
    Set<NDArray> open = identitySet();
    open.addAll(manager.getManagedArrays());
    return open;
  }

  /**
   * Returns every open array of the engine: all arrays of the root manager above {@code any}.
   *
   * @param any a manager of the engine
   * @return the root manager's arrays
   */
  public static Set<NDArray> ofEngine(NDManager any) {
    NDManager root = any;
    while (root.getParentManager() != null) {
      root = root.getParentManager();
    }
    return managedBy(root);
  }

  /**
   * Returns every open array of a training run: those of DJL's manager tree, plus those DJL keeps
   * outside it (Adam's state is detached from every manager and only the optimizer holds it).
   *
   * @param model the model
   * @param trainer its trainer
   * @return the open arrays
   */
  public static Set<NDArray> ofTraining(Model model, Trainer trainer) {
    Set<NDArray> open = ofEngine(model.getNDManager());
    for (NDArray a : reachable(model.getBlock(), trainer)) {
      if (!a.isReleased()) {
        open.add(a);
      }
    }
    return open;
  }

  /**
   * Returns the parameter arrays of the model, the store's mirrors and the optimizer state arrays.
   *
   * @param root the model's block
   * @param trainer its trainer
   * @return the arrays, released or not
   */
  public static Set<NDArray> reachable(Block root, Trainer trainer) {
    Set<NDArray> arrays = identitySet();
    for (Parameter p : root.getParameters().values()) {
      arrays.add(p.getArray());
    }
    for (Object entry : DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).values()) {
      arrays.addAll(DjlTrainers.mirrors(entry));
    }
    DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer))
        .values()
        .forEach(state -> state.values().forEach(perDevice -> arrays.addAll(perDevice.values())));
    return arrays;
  }

  private static Set<NDArray> identitySet() {
    return Collections.newSetFromMap(new IdentityHashMap<>());
  }
}
