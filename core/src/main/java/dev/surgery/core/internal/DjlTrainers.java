package dev.surgery.core.internal;

import static dev.surgery.core.internal.DjlInternals.dataList;
import static dev.surgery.core.internal.DjlInternals.dataParameter;
import static dev.surgery.core.internal.DjlInternals.get;
import static dev.surgery.core.internal.DjlInternals.modelWasLoaded;
import static dev.surgery.core.internal.DjlInternals.serverOptimizer;
import static dev.surgery.core.internal.DjlInternals.set;
import static dev.surgery.core.internal.DjlInternals.storeMap;
import static dev.surgery.core.internal.DjlInternals.storeServer;
import static dev.surgery.core.internal.DjlInternals.trainerDevices;
import static dev.surgery.core.internal.DjlInternals.trainerListeners;
import static dev.surgery.core.internal.DjlInternals.trainerStore;

import ai.djl.BaseModel;
import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import ai.djl.training.LocalParameterServer;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.optimizer.Optimizer;
import java.util.List;
import java.util.Map;

/**
 * A DJL {@code Trainer} from the inside: its parameter store and the store's entries (the
 * per-device arrays of each parameter), its listeners and devices, the optimizer behind the store
 * and the birth-aware stand-in that surgery may put in its place, and whether a model's next
 * trainer unfreezes it. The fields are resolved and checked once by {@link DjlInternals}.
 */
public final class DjlTrainers {

  private DjlTrainers() {}

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
}
