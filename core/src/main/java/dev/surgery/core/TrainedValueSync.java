package dev.surgery.core;

import static dev.surgery.core.BlockTrees.parametersOf;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.internal.DjlTrainers;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The first step of a surgery: makes each model parameter's own array hold what the trainers
 * trained, before any replacement function reads it. A trainer that trains on copies (devices other
 * than the model's, or a store that copies) updates its store's arrays, not {@code
 * Parameter.getArray()}; a weight-copying replacement would capture stale values, and removing the
 * parameter would close the trained copy.
 */
final class TrainedValueSync {

  private TrainedValueSync() {}

  /**
   * Copies the trained values into the model's arrays. The copy on the trainer's first device is
   * taken as the trained value, as DJL's own {@code ParameterStore.sync} does (with several devices
   * DJL's Adam counts one update per copy, so the copies can differ in their last bits); the first
   * given trainer that holds the parameter decides. Journaled: a rollback puts the model's previous
   * values back. {@code known} is every parameter of the model when the caller has it already, else
   * null (then it is collected only if a trainer trains on copies).
   */
  static void sync(Block root, List<Trainer> trainers, Set<Parameter> known, Journal journal) {
    Set<Parameter> synced = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Parameter> parameters = known;
    for (Trainer trainer : trainers) {
      Map<String, Object> entries = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer));
      if (!trainsOnCopies(entries)) {
        continue; // every trained array is the model's own: nothing is stale (nor registered)
      }
      if (parameters == null) {
        parameters = parametersOf(root);
      }
      for (Parameter p : parameters) {
        Object entry = entries.get(p.getId());
        if (entry == null || !p.isInitialized() || !synced.add(p)) {
          continue;
        }
        List<NDArray> mirrors = DjlTrainers.mirrors(entry);
        NDArray array = p.getArray();
        NDArray trained = mirrors.isEmpty() ? array : mirrors.get(0);
        if (trained == array) {
          continue;
        }
        NDArray previous = array.duplicate();
        journal.closeOnCommit(previous);
        journal.closeOnRollback(previous);
        journal.onRollback(() -> previous.copyTo(array));
        trained.copyTo(array);
      }
    }
  }

  /**
   * Tells whether a store holds, for any parameter, a first-device array other than the parameter's
   * own: then {@code getArray()} may be stale. A scan of the store's entries, cheaper than the walk
   * of the whole model that the sync needs, which the usual single-device trainer (training on the
   * model's own arrays) thus never pays. A parameter's id is unique to it, so the entry's parameter
   * is the model's parameter of that id.
   */
  private static boolean trainsOnCopies(Map<String, Object> entries) {
    for (Object entry : entries.values()) {
      if (trainsOnCopy(entry)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether a store entry trains an array other than its parameter's own. A method of its own, as
   * are the other steps of a walk: a surgery scans the store once, so a loop body inside the scan
   * stays interpreted for many surgeries, while a method called once per entry is compiled during
   * the first.
   */
  private static boolean trainsOnCopy(Object entry) {
    List<NDArray> mirrors = DjlTrainers.mirrors(entry);
    if (mirrors.isEmpty()) {
      return false;
    }
    Parameter p = DjlTrainers.entryParameter(entry);
    return !p.isInitialized() || mirrors.get(0) != p.getArray();
  }
}
