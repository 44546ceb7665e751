package dev.surgery.core;

import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.SurgeryPlan.StateFate;
import dev.surgery.core.internal.BirthAwareOptimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Tells, without changing anything, what a surgery would do to each parameter's optimizer state,
 * from the decision the engine itself acts on ({@link TrainerUpdate#decide}) and the trainers'
 * stores and optimizers as they are now.
 */
final class StateFates {

  /** One parameter's fate, and whether a fresh start is Adam's exact one ("born exact"). */
  record Fate(StateFate state, boolean bornExact) {
    static final Fate NONE = new Fate(StateFate.NONE, false);
  }

  private StateFates() {}

  /**
   * The fates of the parameters a replacing surgery removes, adds and keeps, for the trainers the
   * engine would update (those that registered parameters already).
   *
   * @param removed parameters that leave the model
   * @param added parameters that join it
   * @param kept parameters of replaced blocks that stay in the model (adopted by a replacement)
   * @param trainers the trainers given to the surgery
   * @param owners each added parameter's block path, as the apply's errors name it
   * @param elsewhere what the trainers' other models still use (they keep it, state and all)
   * @return parameter to fate (identity keys); every given parameter has one
   * @throws SurgeryException where the apply would refuse a parameter, with the apply's error
   */
  static Map<Parameter, Fate> of(
      List<Parameter> removed,
      List<Parameter> added,
      Collection<Parameter> kept,
      List<Trainer> trainers,
      Map<Parameter, String> owners,
      StillUsed elsewhere) {
    Map<Parameter, Fate> fates = new IdentityHashMap<>();
    List<Trainer> active = new ArrayList<>();
    for (Trainer t : trainers) {
      if (TrainerSurgery.hasRegistered(t)) {
        active.add(t);
      }
    }
    if (active.isEmpty()) {
      removed.forEach(p -> fates.put(p, Fate.NONE));
      added.forEach(p -> fates.put(p, Fate.NONE));
      kept.forEach(p -> fates.put(p, Fate.NONE));
      return fates;
    }
    TrainerUpdate update = TrainerUpdate.decide(removed, added, active, elsewhere);
    // Re-keyed: the new parameter takes the old one's entry and state (TrainerSurgery.rekey); one
    // that trains where the old one was frozen then starts fresh, as an unfrozen parameter does.
    for (Map.Entry<Parameter, Parameter> e : update.rekeyed().entrySet()) {
      if (BlockTrees.containsIdentity(update.restarted(), e.getKey())) {
        fates.put(e.getKey(), new Fate(StateFate.FRESH, exactFreshStart(e.getValue(), active)));
        fates.put(
            e.getValue(),
            carries(e.getValue(), active) ? new Fate(StateFate.DROPPED, false) : Fate.NONE);
        continue;
      }
      Fate moved = carries(e.getValue(), active) ? new Fate(StateFate.MOVED, false) : Fate.NONE;
      fates.put(e.getKey(), moved);
      fates.put(e.getValue(), moved);
    }
    // Leaving: TrainerSurgery.remove drops whatever state each holding trainer has.
    for (Parameter p : update.leaving()) {
      boolean held = false;
      for (Trainer t : active) {
        held |= TrainerUpdate.loses(t, p, elsewhere);
      }
      fates.put(p, held && carries(p, active) ? new Fate(StateFate.DROPPED, false) : Fate.NONE);
    }
    // A rewrapped parameter that no trainer held: nothing to move (its successor is born).
    for (Parameter p : removed) {
      fates.putIfAbsent(p, Fate.NONE);
    }
    // Born: TrainerSurgery.add registers them; a trainable one starts with no state, and under
    // DJL's Sgd, Adam or AdamW the stand-in updates it as a fresh optimizer would.
    for (Parameter p : update.born()) {
      if (!update.receivers().isEmpty()) {
        TrainerSurgery.requireArray(p, owners.get(p)); // the apply's add refuses it so
      }
      fates.put(p, born(p, update.receivers()));
    }
    // Adopted: the engine leaves their entries and state alone, so training carries on.
    for (Parameter p : kept) {
      fates.put(
          p,
          heldByAny(active, p) && carries(p, active)
              ? new Fate(StateFate.MOVED, false)
              : Fate.NONE);
    }
    return fates;
  }

  /**
   * The fate of a parameter that {@link ModuleSurgery#freezeParameters} freezes: its state is
   * dropped in every given trainer.
   *
   * @param p a trainable parameter about to be frozen
   * @param trainers the trainers given to the freezing
   * @return its fate
   */
  static Fate frozen(Parameter p, List<Trainer> trainers) {
    for (Trainer t : trainers) {
      if (TrainerSurgery.holds(t, p) || hasState(t, p)) {
        return new Fate(StateFate.DROPPED, false);
      }
    }
    return Fate.NONE;
  }

  private static Fate born(Parameter p, List<Trainer> receivers) {
    if (!p.requiresGradient()) {
      return Fate.NONE; // registered, but never updated: no state ever
    }
    boolean registers = false;
    boolean exact = false;
    for (Trainer t : receivers) {
      if (TrainerSurgery.holds(t, p)) {
        continue; // TrainerSurgery.add leaves a parameter the store already holds alone
      }
      registers = true;
      exact |= BirthAwareOptimizer.isNeededFor(DjlTrainers.optimizer(t));
    }
    if (!registers) {
      return heldByAny(receivers, p) && carries(p, receivers)
          ? new Fate(StateFate.MOVED, false)
          : Fate.NONE;
    }
    return new Fate(StateFate.FRESH, exact);
  }

  /**
   * Whether the stand-in updates a restarted parameter as a fresh optimizer would, in the trainers
   * holding the frozen parameter it takes over.
   */
  private static boolean exactFreshStart(Parameter p, List<Trainer> trainers) {
    boolean exact = false;
    for (Trainer t : trainers) {
      if (TrainerSurgery.holds(t, p) || hasState(t, p)) {
        exact |= BirthAwareOptimizer.isNeededFor(DjlTrainers.optimizer(t));
      }
    }
    return exact;
  }

  /** Whether a parameter has state to carry: it trains, or an optimizer holds state for it. */
  private static boolean carries(Parameter p, List<Trainer> trainers) {
    if (p.requiresGradient()) {
      return true;
    }
    for (Trainer t : trainers) {
      if (hasState(t, p)) {
        return true;
      }
    }
    return false;
  }

  /** Whether the trainer's optimizer holds state arrays or an update count for the parameter. */
  private static boolean hasState(Trainer t, Parameter p) {
    Optimizer optimizer = DjlTrainers.optimizer(t);
    String id = p.getId();
    if (DjlOptimizers.updateCounts(optimizer).containsKey(id)) {
      return true;
    }
    for (Map<String, ?> state : DjlOptimizers.optimizerStates(optimizer).values()) {
      if (state.containsKey(id)) {
        return true;
      }
    }
    return false;
  }

  private static boolean heldByAny(List<Trainer> trainers, Parameter p) {
    for (Trainer t : trainers) {
      if (TrainerSurgery.holds(t, p)) {
        return true;
      }
    }
    return false;
  }
}
