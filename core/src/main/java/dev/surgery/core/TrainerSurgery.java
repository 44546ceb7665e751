package dev.surgery.core;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.internal.BirthAwareOptimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.IdMarks;
import dev.surgery.core.internal.KeptIdTracker;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Keeps trainers exact while parameters come and go: parameter-store entries and their device
 * mirrors, optimizer state, update counts and Adam's per-parameter bias correction. Every change is
 * journaled; arrays are closed only when the journal commits.
 */
final class TrainerSurgery {

  private final Journal journal;
  private final Faults faults;

  /** Each trainer's internals, resolved once per surgery rather than once per parameter. */
  private final Map<Trainer, View> views = new IdentityHashMap<>();

  /**
   * What a trainer's store and optimizer resolve to. Reflection runs cold (interpreted) on a
   * surgery's path, so reading the same fields again for every parameter is what costs; these
   * objects do not change during a surgery (only the stand-in is installed, and cached here).
   */
  private static final class View {
    final Trainer trainer;
    final ParameterStore store;
    final Map<String, Object> entries;
    private Optimizer optimizer;
    private Collection<Map<String, Map<Device, NDArray>>> states;
    private Map<String, Integer> counts;
    BirthAwareOptimizer births;
    boolean birthsLooked;
    KeptIdTracker keptIds;
    boolean keptIdsLooked;
    boolean keptIdsInstallTried;

    View(Trainer trainer) {
      this.trainer = trainer;
      store = DjlTrainers.parameterStore(trainer);
      entries = DjlTrainers.storeEntries(store);
    }

    /** The optimizer, looked up when first needed (it throws for an unsupported store). */
    Optimizer optimizer() {
      if (optimizer == null) {
        optimizer = DjlTrainers.optimizer(trainer);
      }
      return optimizer;
    }

    Collection<Map<String, Map<Device, NDArray>>> states() {
      if (states == null) {
        // Asked only to move or drop a parameter's state: refused where some of it is unread.
        DjlOptimizers.requireReadableState(optimizer());
        states = DjlOptimizers.optimizerStates(optimizer()).values();
      }
      return states;
    }

    Map<String, Integer> counts() {
      if (counts == null) {
        counts = DjlOptimizers.updateCounts(optimizer());
      }
      return counts;
    }
  }

  private View view(Trainer trainer) {
    View v = views.get(trainer);
    if (v == null) {
      v = new View(trainer);
      views.put(trainer, v);
    }
    return v;
  }

  TrainerSurgery(Journal journal, Faults faults) {
    this.journal = journal;
    this.faults = faults;
  }

  /**
   * Tells whether a trainer has registered anything yet (an empty store registers on initialize).
   */
  static boolean hasRegistered(Trainer trainer) {
    return DjlTrainers.hasRegisteredParameters(trainer);
  }

  /** Tells whether the trainer's store holds the parameter. */
  static boolean holds(Trainer trainer, Parameter parameter) {
    return DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer))
        .containsKey(parameter.getId());
  }

  /**
   * Unregisters a parameter: store entry and mirrors, optimizer state, update count, birth mark.
   */
  void remove(Trainer trainer, Parameter parameter) {
    faults.point("trainer.remove");
    String id = parameter.getId();
    Map<String, Object> entries = view(trainer).entries;
    Object entry = entries.remove(id);
    if (entry != null) {
      journal.onRollback(() -> entries.put(id, entry));
      NDArray own = parameter.isInitialized() ? parameter.getArray() : null;
      for (NDArray mirror : DjlTrainers.mirrors(entry)) {
        if (mirror != own) {
          journal.closeOnCommit(mirror);
        }
      }
    }
    dropState(trainer, parameter);
    // Leaving the optimizer for good: its first id is forgotten (a frozen parameter keeps it, so
    // that it trains at its own rate once unfrozen).
    KeptIdTracker kept = keptIds(view(trainer), false);
    if (kept != null) {
      removeMark(kept.firstIds(), id);
    }
  }

  /**
   * Removes a parameter's optimizer state (closed on commit), update count and birth mark, and
   * keeps its store entry: for parameters that stay in the model but stop training.
   */
  void dropState(Trainer trainer, Parameter parameter) {
    String id = parameter.getId();
    View view = view(trainer);
    for (Map<String, Map<Device, NDArray>> state : view.states()) {
      Map<Device, NDArray> perDevice = state.remove(id);
      if (perDevice != null) {
        journal.onRollback(() -> state.put(id, perDevice));
        for (NDArray array : perDevice.values()) {
          journal.closeOnCommit(array);
        }
      }
    }
    Map<String, Integer> counts = view.counts();
    Integer count = counts.remove(id);
    if (count != null) {
      journal.onRollback(() -> counts.put(id, count));
    }
    BirthAwareOptimizer births = births(trainer, false);
    if (births != null) {
      removeMark(births.births(), id);
    }
  }

  /**
   * Lets the optimizer's learning-rate tracker go on answering a moved parameter as it answered it
   * under its first id: DJL's per-id rates ({@code FixedPerVarTracker}, a user's layer-wise rates)
   * would otherwise give it their default. Nothing is installed for a tracker that answers every id
   * alike (DJL's schedules).
   */
  private void keepFirstId(View view, String oldId, String newId) {
    KeptIdTracker kept = keptIds(view, true);
    if (kept != null) {
      String oldFirst = removeMark(kept.firstIds(), oldId); // the old id leaves with its parameter
      if (oldFirst == null && kept.firstIds().get(newId) != null) {
        // Moved already in this surgery by another trainer over the same optimizer (trainers made
        // from one TrainingConfig share it), which took the old id's mark: the new id keeps it.
        return;
      }
      putMark(kept.firstIds(), newId, oldFirst != null ? oldFirst : oldId);
    }
  }

  /**
   * Lets a per-id learning rate answer a parameter that takes another's place with the other's
   * first id, as {@link #moveState} does, where no state moves (other shapes).
   */
  void keepRate(Trainer trainer, Parameter from, Parameter to) {
    keepFirstId(view(trainer), from.getId(), to.getId());
  }

  /**
   * Returns the optimizer's {@link KeptIdTracker}, installing it (journaled) the first time it is
   * asked to install; null while there is none, and for a tracker that answers every id alike.
   */
  private KeptIdTracker keptIds(View view, boolean install) {
    if (view.keptIds != null || (view.keptIdsInstallTried || (view.keptIdsLooked && !install))) {
      return view.keptIds; // the field is read once, and an install tried once, per surgery
    }
    if (!install && !KeptIdTracker.anyMade()) {
      return null; // none exists anywhere yet
    }
    Optimizer optimizer = view.optimizer();
    if (!view.keptIdsLooked) {
      view.keptIdsLooked = true;
      view.keptIds = DjlOptimizers.keptIdTracker(optimizer, false);
    }
    if (view.keptIds == null && install) {
      view.keptIdsInstallTried = true;
      view.keptIds = DjlOptimizers.keptIdTracker(optimizer, true);
      if (view.keptIds != null) {
        journal.onRollback(() -> DjlOptimizers.removeKeptIdTracker(optimizer));
      }
    }
    return view.keptIds;
  }

  /**
   * Refuses a parameter without an array: a trainer can neither register nor update it. A plan
   * ({@link StateFates}) refuses the same parameters with the same error.
   *
   * @throws SurgeryException naming the replacement's block path
   */
  static void requireArray(Parameter parameter, String blockPath) {
    if (!parameter.isInitialized()) {
      throw new SurgeryException(
          blockPath,
          "parameter '"
              + parameter.getName()
              + "' of the replacement is not initialized, so the trainer cannot update it");
    }
  }

  /**
   * Registers a parameter on every device of the trainer through the store's {@code getValue}, as
   * {@code Trainer.initialize} does (the store lists its copies as it lists every other
   * parameter's), so the next step updates it. A fresh trainable parameter gets its own Adam bias
   * correction.
   */
  void add(Trainer trainer, Parameter parameter, boolean fresh, String blockPath) {
    requireArray(parameter, blockPath);
    View view = view(trainer);
    ParameterStore store = view.store;
    Map<String, Object> entries = view.entries;
    String id = parameter.getId();
    if (entries.containsKey(id)) {
      return;
    }
    // A replacement built around existing arrays (not through initialize) has no gradient yet.
    if (parameter.requiresGradient() && !parameter.getArray().hasGradient()) {
      NDArray array = parameter.getArray();
      array.setRequiresGradient(true);
      journal.onRollback(() -> array.setRequiresGradient(false));
    }
    journal.onRollback(
        () -> {
          Object entry = entries.remove(id);
          if (entry != null) {
            for (NDArray mirror : DjlTrainers.mirrors(entry)) {
              if (mirror != parameter.getArray()) {
                mirror.close();
              }
            }
          }
        });
    for (Device device : DjlTrainers.devices(trainer)) {
      store.getValue(parameter, device, true);
    }
    faults.point("trainer.add");
    if (fresh && parameter.requiresGradient()) {
      markBorn(trainer, id);
    }
  }

  /**
   * Lets a parameter the store already holds train again after it was frozen: its optimizer state
   * (which a freeze by hand keeps) is dropped, its device copies take gradients again (DJL fixes
   * that at registration) and it is updated as a fresh parameter. Its first id, which per-id rates
   * answer, is kept. A gradient its arrays kept taking while it was frozen (a frozen Parameter
   * around arrays that trained: DJL's freeze stops them, a wrapper built frozen does not, and no
   * update zeroes a frozen parameter's) is set to zero, so that its first update sees only the
   * gradient of its step, as after DJL's freeze; journaled. An array another trainable parameter of
   * the store also wraps (a tie) keeps its gradient: that is the other parameter's, pending until
   * its update.
   */
  void restartTraining(Trainer trainer, Parameter parameter) {
    dropState(trainer, parameter);
    View view = view(trainer);
    Object entry = view.entries.get(parameter.getId());
    for (NDArray mirror : DjlTrainers.mirrors(entry)) {
      if (!mirror.hasGradient()) {
        mirror.setRequiresGradient(true);
        journal.onRollback(() -> mirror.setRequiresGradient(false));
      } else if (!trainedByAnother(view, parameter, mirror)) {
        zeroGradient(mirror);
      }
    }
    markBorn(trainer, parameter.getId());
  }

  /** Whether another trainable parameter of the store has the array among its copies. */
  private static boolean trainedByAnother(View view, Parameter parameter, NDArray array) {
    for (Object other : view.entries.values()) {
      Parameter p = DjlTrainers.entryParameter(other);
      if (p != parameter && p.requiresGradient()) {
        for (NDArray mirror : DjlTrainers.mirrors(other)) {
          if (mirror == array) {
            return true;
          }
        }
      }
    }
    return false;
  }

  /**
   * Sets an array's gradient to exact zeros in place (a subtraction would keep an overflowed or NaN
   * sum), the rollback writing the old values back.
   */
  private void zeroGradient(NDArray array) {
    // The zero is an array of our own, closed here: NDArray.set(index, Number) would make one in
    // the gradient's manager and leave it open there for good, after a rollback too.
    try (NDArray gradient = array.getGradient();
        NDArray zero = gradient.getManager().zeros(new Shape(), gradient.getDataType())) {
      NDArray before = gradient.duplicate();
      gradient.set(new NDIndex("..."), zero);
      journal.closeOnCommit(before);
      journal.onRollback(
          () -> {
            try (NDArray g = array.getGradient()) {
              g.set(new NDIndex("..."), before);
            } finally {
              before.close();
            }
          });
    }
  }

  private void markBorn(Trainer trainer, String id) {
    BirthAwareOptimizer births = births(trainer, true);
    if (births != null) {
      putMark(births.births(), id, births.globalStep());
    }
  }

  /** Takes an id's mark off, the rollback putting it back; returns the mark it had. */
  private <V> V removeMark(IdMarks<V> marks, String id) {
    V had = marks.remove(id);
    journal.onRollback(() -> marks.restore(id, had));
    return had;
  }

  /** Sets an id's mark, the rollback putting back the one it had. */
  private <V> void putMark(IdMarks<V> marks, String id, V mark) {
    V had = marks.put(id, mark);
    journal.onRollback(() -> marks.restore(id, had));
  }

  /**
   * Moves optimizer state, update count and birth mark from one parameter to another of the same
   * shape, so the new parameter continues exactly where the old one was.
   */
  void moveState(Trainer trainer, Parameter from, Parameter to) {
    String oldId = from.getId();
    String newId = to.getId();
    View view = view(trainer);
    for (Map<String, Map<Device, NDArray>> state : view.states()) {
      Map<Device, NDArray> perDevice = state.get(oldId);
      if (perDevice != null) {
        // Each write journaled before it is made: a failure between the two (an OutOfMemoryError
        // in the map) must not lose the state taken out under the old id.
        Map<Device, NDArray> displaced = putJournaled(state, newId, perDevice);
        removeJournaled(state, oldId);
        if (displaced != null) {
          displaced.values().forEach(journal::closeOnCommit);
        }
      }
    }
    Map<String, Integer> counts = view.counts();
    Integer count = counts.get(oldId);
    if (count != null) {
      putJournaled(counts, newId, count);
      removeJournaled(counts, oldId);
    }
    keepFirstId(view, oldId, newId);
    BirthAwareOptimizer births = births(trainer, false);
    if (births != null) {
      Integer birth = removeMark(births.births(), oldId);
      if (birth != null) {
        putMark(births.births(), newId, birth);
      }
    }
  }

  /**
   * Hands a parameter's store entry (its device arrays as trained), optimizer state, update count
   * and birth mark to a new parameter object around the same array: the natural way to keep a
   * trained weight in DJL, where parameter ids cannot be chosen. Training continues bit for bit.
   */
  void rekey(Trainer trainer, Parameter from, Parameter to) {
    Map<String, Object> entries = view(trainer).entries;
    Object entry = entries.get(from.getId());
    if (entry == null) {
      return;
    }
    // Each write journaled before it is made, as in moveState: the entry must not be lost between
    // leaving the old id and arriving under the new one.
    Object displaced = putJournaled(entries, to.getId(), entry);
    removeJournaled(entries, from.getId());
    journal.onRollback(() -> DjlTrainers.setEntryParameter(entry, from));
    DjlTrainers.setEntryParameter(entry, to);
    if (displaced != null) {
      for (NDArray mirror : DjlTrainers.mirrors(displaced)) {
        if (mirror != to.getArray()) {
          journal.closeOnCommit(mirror);
        }
      }
    }
    moveState(trainer, from, to);
  }

  /**
   * Maps a key in a trainer's map (store entries, optimizer state, update counts), the rollback
   * putting back what the key mapped to before (or taking it out). The undo is registered before
   * the write, so that a write that fails (a map that cannot grow) is undone with the rest.
   */
  private <V> V putJournaled(Map<String, V> map, String key, V value) {
    V had = map.get(key);
    journal.onRollback(() -> restore(map, key, had));
    map.put(key, value);
    return had;
  }

  /**
   * Takes a key out of a trainer's map, the undo registered before the write, as {@link
   * #putJournaled} does.
   */
  private <V> void removeJournaled(Map<String, V> map, String key) {
    V had = map.get(key);
    journal.onRollback(() -> restore(map, key, had));
    map.remove(key);
  }

  private static <V> void restore(Map<String, V> map, String key, V had) {
    if (had == null) {
      map.remove(key);
    } else {
      map.put(key, had);
    }
  }

  /**
   * Returns the trainer's stand-in optimizer for born parameters, installing it (journaled) when
   * asked to; null for optimizers whose updates do not depend on a step count.
   */
  private BirthAwareOptimizer births(Trainer trainer, boolean install) {
    View view = view(trainer);
    if (view.births != null || (view.birthsLooked && !install)) {
      return view.births;
    }
    BirthAwareOptimizer existing = DjlTrainers.birthAwareOptimizer(trainer, false);
    view.birthsLooked = true;
    if (existing != null || !install) {
      view.births = existing;
      return existing;
    }
    BirthAwareOptimizer installed = DjlTrainers.birthAwareOptimizer(trainer, true);
    if (installed != null) {
      journal.onRollback(() -> DjlTrainers.removeBirthAwareOptimizer(trainer));
    }
    view.births = installed;
    return installed;
  }
}
