package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.function.BiConsumer;

/**
 * What {@link ModuleSurgery#freezeParameters}, {@link ModuleSurgery#planFreeze} and {@link
 * ModuleSurgery#unfreezeParameters} do once the surgery lock is held: a freeze drops the trainers'
 * state of what it freezes, an unfreeze restarts what it unfreezes as a fresh optimizer would, both
 * all or nothing.
 */
final class ParameterFreezes {

  private ParameterFreezes() {}

  /** {@link ModuleSurgery#freezeParameters}, with {@link SurgeryLock} held. */
  static void freeze(Iterable<Parameter> parameters, Collection<Trainer> optimizers) {
    List<Parameter> all = withLiveArrays(parameters, "freeze", "frozen");
    allOrNothing(
        (journal, surgery) -> {
          for (Parameter p : all) {
            if (p.requiresGradient()) {
              journal.onRollback(freezeUndone(p));
              p.freeze(true);
            }
            if (optimizers != null) {
              for (Trainer t : optimizers) {
                surgery.dropState(t, p);
              }
            }
          }
        });
  }

  /** {@link ModuleSurgery#planFreeze}, with {@link SurgeryLock} held. */
  static List<SurgeryPlan.StateFate> planFreeze(
      List<Parameter> parameters, Collection<Trainer> optimizers) {
    List<Trainer> trainers = optimizers == null ? List.of() : List.copyOf(optimizers);
    List<SurgeryPlan.StateFate> fates = new ArrayList<>(parameters.size());
    for (Parameter p : parameters) {
      fates.add(StateFates.frozen(p, trainers).state());
    }
    return fates;
  }

  /** {@link ModuleSurgery#unfreezeParameters}, with {@link SurgeryLock} held. */
  static void unfreeze(Iterable<Parameter> parameters, Collection<Trainer> optimizers) {
    List<Parameter> all = withLiveArrays(parameters, "unfreeze", "unfrozen");
    allOrNothing(
        (journal, surgery) -> {
          for (Parameter p : all) {
            if (p.requiresGradient()) {
              continue;
            }
            journal.onRollback(freezeUndone(p));
            p.freeze(false);
            if (optimizers != null) {
              for (Trainer t : optimizers) {
                if (TrainerSurgery.holds(t, p)) {
                  surgery.restartTraining(t, p);
                }
              }
            }
          }
        });
  }

  /**
   * The undo of a {@code Parameter.freeze} about to be made: the flag as it is now, and whether its
   * array takes gradients as it does now. DJL's freeze sets both alike, but they can differ before
   * (a frozen wrapper built around arrays that train keeps taking gradients): undone by a freeze
   * alone, such an array would stop taking them and its gathered gradient no longer be read.
   */
  private static Runnable freezeUndone(Parameter p) {
    boolean frozen = !p.requiresGradient();
    NDArray array = p.isInitialized() ? p.getArray() : null;
    boolean takesGradients = array != null && array.hasGradient();
    return () -> {
      p.freeze(frozen);
      if (array != null && array.hasGradient() != takesGradients) {
        array.setRequiresGradient(takesGradients);
      }
    };
  }

  /**
   * The parameters as a list (an Iterable may be one-shot), refused before anything changes when
   * one's array was freed: DJL's freeze changes the flag, then fails on a freed array.
   */
  private static List<Parameter> withLiveArrays(
      Iterable<Parameter> parameters, String verb, String participle) {
    List<Parameter> all = new ArrayList<>();
    parameters.forEach(all::add);
    for (Parameter p : all) {
      if (p.isInitialized() && p.getArray().isReleased()) {
        throw new SurgeryException(
            null,
            "cannot "
                + verb
                + " parameter '"
                + p.getName()
                + "': its array was freed (was the Model or its NDManager closed?); nothing was "
                + participle);
      }
    }
    return all;
  }

  /** Runs trainer changes under one journal: committed when all succeed, else rolled back. */
  private static void allOrNothing(BiConsumer<Journal, TrainerSurgery> changes) {
    Journal journal = new Journal();
    try {
      changes.accept(journal, new TrainerSurgery(journal, Faults.NONE));
      journal.commit();
    } catch (Throwable e) { // rethrown as it is, checked or not, after the rollback
      journal.rollback(e);
      throw e;
    }
  }
}
