package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a surgery does to the trainers' parameter stores and optimizer state (Composer's {@code
 * update_params_in_optimizer}), decided by {@link #decide} before anything changes, so that a plan
 * ({@link StateFates}) tells exactly what {@link #apply} does.
 *
 * @param rekeyed added parameter to the removed one around the same array that a trainer holds: its
 *     store entry and optimizer state move over
 * @param restarted re-keyed parameters that train where the removed one around their array was
 *     frozen: they start fresh, as a parameter {@link ModuleSurgery#unfreezeParameters} unfreezes
 * @param born added parameters that start fresh
 * @param leaving removed parameters that leave every trainer holding them, with their state
 * @param receivers the trainers the born parameters join
 */
record TrainerUpdate(
    Map<Parameter, Parameter> rekeyed,
    List<Parameter> restarted,
    List<Parameter> born,
    List<Parameter> leaving,
    List<Trainer> receivers) {

  /**
   * Applies Composer's optimizer update: removed parameters leave every trainer that holds them;
   * added parameters join the trainers that held removed ones (all trainers when none were
   * removed). An added parameter around the very array of a removed one takes over its store entry
   * and optimizer state, so the trained weight continues exactly; a removed parameter that no
   * trainer registered (DJL registers lazily, on a parameter's first forward) is skipped, as
   * Composer skips parameters its optimizer does not hold. A trainer whose model {@code elsewhere}
   * says still uses a removed parameter keeps it, and receives nothing when it is apart.
   */
  static void apply(
      List<Parameter> removed,
      List<Parameter> added,
      List<Trainer> trainers,
      Function<Parameter, String> owners,
      Journal journal,
      Faults faults,
      StillUsed elsewhere) {
    TrainerSurgery surgery = new TrainerSurgery(journal, faults);
    TrainerUpdate update = decide(removed, added, trainers, elsewhere);
    for (Map.Entry<Parameter, Parameter> e : update.rekeyed().entrySet()) {
      for (Trainer t : trainers) {
        if (loses(t, e.getValue(), elsewhere)) {
          surgery.rekey(t, e.getValue(), e.getKey());
        }
      }
    }
    for (Parameter p : update.restarted()) {
      for (Trainer t : trainers) {
        if (TrainerSurgery.holds(t, p)) {
          // As ModuleSurgery.unfreezeParameters does: what was frozen starts training fresh.
          surgery.restartTraining(t, p);
        }
      }
    }
    for (Parameter p : update.leaving()) {
      boolean held = false;
      for (Trainer t : trainers) {
        if (TrainerSurgery.holds(t, p)) {
          held = true;
          if (!elsewhere.keeps(t, p)) {
            surgery.remove(t, p);
          }
        }
      }
      if (!held) {
        logger()
            .debug(
                "parameter '{}' ({}) is held by no trainer (never used in a forward pass): skipped",
                p.getName(),
                p.getId());
      }
    }
    for (Parameter p : update.born()) {
      for (Trainer t : update.receivers()) {
        // The owner's path is only for the refusal of a parameter without an array.
        surgery.add(t, p, true, p.isInitialized() ? null : owners.apply(p));
      }
    }
  }

  /**
   * Decides Composer's optimizer update: an added parameter around the very array of a removed one
   * that a trainer holds takes over its entry and state; other added ones are born; removed ones
   * not taken over leave; born ones join the trainers that held removed ones, taken over or not
   * (all trainers when none did). A trainer whose model still uses a removed parameter ({@code
   * elsewhere}: a block shared with another model) keeps it and is no target for it, and a trainer
   * of another model that holds none of the added parameters is no receiver. Reads the trainers'
   * stores only.
   */
  static TrainerUpdate decide(
      List<Parameter> removed, List<Parameter> added, List<Trainer> trainers, StillUsed elsewhere) {
    Map<NDArray, List<Parameter>> removedByArray = new IdentityHashMap<>();
    for (Parameter p : removed) {
      if (p.isInitialized()) {
        removedByArray.computeIfAbsent(p.getArray(), a -> new ArrayList<>()).add(p);
      }
    }
    Set<Parameter> rewrapped = Collections.newSetFromMap(new IdentityHashMap<>());
    Map<Parameter, Parameter> rekeyed = new LinkedHashMap<>(); // identity keys, added order
    List<Parameter> restarted = new ArrayList<>();
    List<Parameter> born = new ArrayList<>();
    for (Parameter p : added) {
      Parameter previous =
          p.isInitialized()
              ? takeMatch(removedByArray.get(p.getArray()), p, trainers, elsewhere)
              : null;
      if (previous == null) {
        born.add(p);
        continue;
      }
      rewrapped.add(previous);
      if (losesAny(trainers, previous, elsewhere)) {
        rekeyed.put(p, previous);
        if (!previous.requiresGradient() && p.requiresGradient()) {
          restarted.add(p); // a frozen layer made trainable by a new wrapper: it never trained
        }
      } else {
        born.add(p); // the old wrapper never trained: the new one starts as a fresh parameter
      }
    }
    List<Parameter> leaving = new ArrayList<>();
    Set<Trainer> targets = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Parameter p : removed) {
      if (!rewrapped.contains(p)) {
        leaving.add(p);
      }
      // A re-keyed parameter was removed too: the trainers that held it are those the added ones
      // join (Composer's group of the removed parameters), not every trainer given, whose other
      // models would update a born parameter they never use.
      for (Trainer t : trainers) {
        if (loses(t, p, elsewhere)) {
          targets.add(t);
        }
      }
    }
    List<Trainer> receivers = new ArrayList<>(targets);
    if (targets.isEmpty()) {
      for (Trainer t : trainers) {
        if (!elsewhere.isApart(t)) {
          receivers.add(t); // not the trainer of another model the new parameters are not in
        }
      }
    }
    return new TrainerUpdate(rekeyed, restarted, born, leaving, receivers);
  }

  /**
   * Takes out of {@code candidates} (removed parameters around the added one's array, in the order
   * removed) the one the added parameter goes on from: one a trainer holds before one none does,
   * and among those one that trains as it does. Several wrap one array where a frozen Parameter is
   * tied to a trainable one: the new trainable wrapper goes on from the trainable one's state,
   * whichever the lists name first, and the new frozen one from the frozen one. Null when there is
   * none.
   */
  private static Parameter takeMatch(
      List<Parameter> candidates, Parameter added, List<Trainer> trainers, StillUsed elsewhere) {
    if (candidates == null || candidates.isEmpty()) {
      return null;
    }
    int best = 0;
    int bestRank = -1;
    for (int i = 0; i < candidates.size(); i++) {
      Parameter c = candidates.get(i);
      int rank =
          (losesAny(trainers, c, elsewhere) ? 2 : 0)
              + (c.requiresGradient() == added.requiresGradient() ? 1 : 0);
      if (rank > bestRank) {
        best = i;
        bestRank = rank;
      }
    }
    return candidates.remove(best);
  }

  /** Whether some trainer holds the parameter and its model no longer uses it. */
  private static boolean losesAny(List<Trainer> trainers, Parameter p, StillUsed elsewhere) {
    for (Trainer t : trainers) {
      if (loses(t, p, elsewhere)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether the trainer holds a parameter leaving the tree and its model does not keep it (a block
   * shared with the surgery's tree stays in another model and in that model's trainer).
   */
  static boolean loses(Trainer t, Parameter p, StillUsed elsewhere) {
    return TrainerSurgery.holds(t, p) && !elsewhere.keeps(t, p);
  }

  /**
   * The class's logger, made when something is first logged: the agent builds the library's objects
   * before the program's {@code main}, which may still configure its logging.
   */
  private static Logger logger() {
    return LogHolder.LOGGER;
  }

  private static final class LogHolder {
    static final Logger LOGGER = LoggerFactory.getLogger(TrainerUpdate.class);
  }
}
