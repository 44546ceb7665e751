package dev.surgery.core;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.internal.LinkedIdentityMap;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What {@link ModuleSurgery#replaceParamsInOptimizer} and {@link
 * ModuleSurgery#updateParamsInOptimizer} do once the surgery lock is held: parameters change hands
 * in the given trainers (store entries, optimizer state, update counts), all or nothing, with the
 * moves that would lose state refused before anything changes.
 */
final class ParameterMoves {

  private ParameterMoves() {}

  /** {@link ModuleSurgery#replaceParamsInOptimizer}, with {@link SurgeryLock} held. */
  static void replace(
      List<Parameter> oldParams, List<Parameter> newParams, Collection<Trainer> optimizers) {
    if (oldParams.size() != newParams.size()) {
      throw new IllegalArgumentException(
          "oldParams and newParams differ in length: "
              + oldParams.size()
              + " vs "
              + newParams.size());
    }
    if (optimizers == null || optimizers.isEmpty()) {
      ModuleSurgery.logger().info("replaceParamsInOptimizer: no trainer given, nothing to update");
      return;
    }
    checkNewParams(oldParams, newParams, optimizers);
    for (int i = 0; i < oldParams.size(); i++) {
      Parameter from = oldParams.get(i);
      Parameter to = newParams.get(i);
      if (from != to && (!to.isInitialized() || to.getArray().isReleased())) {
        throw new IllegalArgumentException(
            "newParams["
                + i
                + "] "
                + describe(to)
                + (to.isInitialized() ? " has a freed array" : " has no array")
                + ": a trainer can neither register nor update it; nothing was changed");
      }
      if (from != to && from.isInitialized() && shapeOf(from) == null) {
        throw new IllegalArgumentException(
            atPosition(from, i)
                + " has no known shape: its array was freed (by a surgery run without the trainer)"
                + " and it declares none, so its optimizer state cannot be matched to the new"
                + " parameter; swap it before that surgery, or give that surgery the trainer");
      }
    }
    // Where the trainers holding an old parameter train different models (a block shared between
    // models), the model that keeps the old block keeps its trainer's entry: moved, it would be
    // registered again, fresh, at that model's next forward, and its array updated twice per step.
    // Which model keeps it shows only once the other uses the new parameter; the models are walked
    // only then, so a call per block on one model costs no walk.
    Map<Block, Set<Parameter>> inModels = new IdentityHashMap<>();
    List<String> keptByAll = new ArrayList<>();
    Journal journal = new Journal();
    TrainerSurgery surgery = new TrainerSurgery(journal, Faults.NONE);
    // Restarts run once every pair has moved: a restart keeps the pending gradient of an array that
    // another trainable parameter of the store wraps, and an old parameter that a later pair moves
    // out does not train it any more.
    List<Map.Entry<Trainer, Parameter>> restartsDue = new ArrayList<>();
    try {
      for (int i = 0; i < oldParams.size(); i++) {
        Parameter from = oldParams.get(i);
        Parameter to = newParams.get(i);
        if (from == to) {
          continue;
        }
        List<Trainer> holders = new ArrayList<>();
        for (Trainer t : optimizers) {
          if (TrainerSurgery.holds(t, from)) {
            holders.add(t);
          }
        }
        if (holders.isEmpty()) {
          throw new IllegalStateException(
              atPosition(from, i) + " is not held by any given trainer");
        }
        Set<Trainer> keeping = keepingTrainers(i, from, to, holders, optimizers, inModels);
        if (keeping.size() == holders.size()) {
          keptByAll.add(atPosition(from, i));
        }
        for (Trainer t : holders) {
          if (keeping.contains(t)) {
            continue;
          }
          // What was frozen never trained under this optimizer: the parameter that takes its place
          // and trains starts fresh, as unfreezeParameters and a surgery with the trainer make it.
          boolean restarts = !from.requiresGradient() && to.requiresGradient();
          if (from.isInitialized() && to.isInitialized() && from.getArray() == to.getArray()) {
            surgery.rekey(t, from, to); // the same array: its device copies and state carry on
          } else {
            Shape fromShape = shapeOf(from);
            boolean sameShape = fromShape != null && fromShape.equals(shapeOf(to));
            surgery.add(t, to, !sameShape, null);
            if (sameShape) {
              surgery.moveState(t, from, to);
            } else {
              surgery.keepRate(t, from, to); // its place, as in Composer's parameter group
            }
            surgery.remove(t, from);
          }
          if (restarts) {
            restartsDue.add(Map.entry(t, to));
          }
        }
      }
      for (Map.Entry<Trainer, Parameter> r : restartsDue) {
        surgery.restartTraining(r.getKey(), r.getValue());
      }
      journal.commit();
    } catch (Throwable e) { // rethrown as it is, checked or not, after the rollback
      journal.rollback(e);
      throw e;
    }
    if (!keptByAll.isEmpty()) {
      ModuleSurgery.logger()
          .warn(
              "replaceParamsInOptimizer: {} old parameter(s) were moved by no trainer ({}{}): the"
                  + " trainers that hold one train several models, none of them using the new one"
                  + " in place of the old; a trainer's new parameter is registered fresh at its"
                  + " model's next forward",
              keptByAll.size(),
              String.join(", ", keptByAll.subList(0, Math.min(3, keptByAll.size()))),
              keptByAll.size() > 3 ? ", ..." : "");
    }
  }

  /**
   * The holders of an old parameter that keep it: where they train two or more models, those whose
   * model does not use the new one, once a given trainer's model uses it, and before that those
   * whose model uses neither. A model that uses neither had the block replaced by another new block
   * (each model swapped to a block of its own), whose own move is still to come: its trainer taking
   * this new parameter would update it at its own steps, and have nothing left for that move. Where
   * no model uses the new one and several use the old one, which will keep the old block cannot be
   * told: refused.
   */
  private static Set<Trainer> keepingTrainers(
      int i,
      Parameter from,
      Parameter to,
      List<Trainer> holders,
      Collection<Trainer> optimizers,
      Map<Block, Set<Parameter>> inModels) {
    Set<Block> models = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Trainer t : holders) {
      models.add(rootOf(t));
    }
    if (models.size() < 2) {
      return Set.of(); // one model (or trainers of one): the program swaps the block in it
    }
    boolean placed = false;
    for (Trainer t : optimizers) {
      placed |= parametersOf(rootOf(t), inModels).contains(to);
    }
    Set<Trainer> keeping = Collections.newSetFromMap(new IdentityHashMap<>());
    // Models, not trainers: two trainers of one model (a training one and an evaluator) using the
    // old parameter are one model about to be swapped.
    Set<Block> usingOld = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Trainer t : holders) {
      Set<Parameter> inModel = parametersOf(rootOf(t), inModels);
      boolean usesOld = inModel.contains(from);
      if (usesOld) {
        usingOld.add(rootOf(t));
      }
      // Placed: a model without the new parameter keeps the old one. Not yet: a model using the old
      // one is about to be swapped (it moves), and one using neither keeps it for its own move.
      if (placed ? !inModel.contains(to) : !usesOld) {
        keeping.add(t);
      }
    }
    if (!placed && usingOld.size() > 1) {
      throw new IllegalArgumentException(
          atPosition(from, i)
              + " is used by "
              + usingOld.size()
              + " models of the given trainers (a block shared between models), and none uses its"
              + " replacement yet: swap the block in the model that changes first, then move the"
              + " parameters, so that the trainers of the models keeping the block keep it; nothing"
              + " was changed");
    }
    return keeping;
  }

  /** A trainer's model's root block; null without one. */
  private static Block rootOf(Trainer trainer) {
    return trainer.getModel() == null ? null : trainer.getModel().getBlock();
  }

  /** The parameters a model's tree reaches (fields included), walked once per call. */
  private static Set<Parameter> parametersOf(Block root, Map<Block, Set<Parameter>> walked) {
    if (root == null) {
      return Set.of();
    }
    return walked.computeIfAbsent(root, BlockTrees::parametersOf);
  }

  /**
   * Refuses, before anything changes, the moves that would lose state: an old parameter listed
   * twice unless kept in place at both positions, and new parameters that are null, listed twice,
   * an old parameter at another position (a permutation: the pairs are moved one after the other)
   * or held by a given trainer already (its own state would be overwritten, and the old parameter's
   * store entry dropped).
   */
  private static void checkNewParams(
      List<Parameter> oldParams, List<Parameter> newParams, Collection<Trainer> optimizers) {
    Map<Parameter, Integer> oldAt = new IdentityHashMap<>();
    for (int i = 0; i < oldParams.size(); i++) {
      Parameter from = oldParams.get(i);
      if (from == null) {
        throw new IllegalArgumentException("oldParams[" + i + "] is null");
      }
      Integer earlier = oldAt.putIfAbsent(from, i);
      // Listed again, it must be kept in place at every position: one kept at one position and
      // moved at another would stay in the model having lost its entry and state to the new one.
      if (earlier != null && (from != newParams.get(i) || from != newParams.get(earlier))) {
        throw new IllegalArgumentException(
            describe(from)
                + " is listed twice in oldParams, at "
                + earlier
                + " and "
                + i
                + ", and moved at "
                + (from != newParams.get(earlier) && from != newParams.get(i) ? "both" : "one")
                + ": a parameter cannot both stay and move, nor move twice; nothing was changed");
      }
    }
    Map<Parameter, Integer> newAt = new IdentityHashMap<>();
    for (int i = 0; i < newParams.size(); i++) {
      Parameter to = newParams.get(i);
      if (to == null) {
        throw new IllegalArgumentException("newParams[" + i + "] is null");
      }
      if (to == oldParams.get(i)) {
        continue; // kept in place: nothing moves
      }
      Integer earlier = newAt.putIfAbsent(to, i);
      if (earlier != null) {
        throw new IllegalArgumentException(
            describe(to) + " is listed twice in newParams, at " + earlier + " and " + i);
      }
      Integer old = oldAt.get(to);
      if (old != null) {
        throw new IllegalArgumentException(
            "newParams["
                + i
                + "] "
                + describe(to)
                + " is oldParams["
                + old
                + "]: pairs are moved one after the other, so a permutation would lose state;"
                + " give new Parameter objects");
      }
      for (Trainer t : optimizers) {
        if (TrainerSurgery.holds(t, to)) {
          throw new IllegalArgumentException(
              "newParams["
                  + i
                  + "] "
                  + describe(to)
                  + " is held by a given trainer already: its own optimizer state would be"
                  + " overwritten");
        }
      }
    }
  }

  private static String describe(Parameter p) {
    return "'" + p.getName() + "' (" + p.getId() + ")";
  }

  /** Names a parameter of the old list by name, id and position, for a refusal. */
  private static String atPosition(Parameter p, int i) {
    return "parameter '" + p.getName() + "' (" + p.getId() + ") at position " + i;
  }

  /**
   * The shape of a parameter: the one it declares, else its array's (a parameter built around an
   * array declares none); null when neither is known. The declared one comes first: after a surgery
   * without the trainer, the old parameters' arrays are freed, and a freed array cannot tell its
   * shape.
   */
  private static Shape shapeOf(Parameter p) {
    if (p.getShape() != null) {
      return p.getShape();
    }
    return p.isInitialized() && !p.getArray().isReleased() ? p.getArray().getShape() : null;
  }

  /** {@link ModuleSurgery#updateParamsInOptimizer}, with {@link SurgeryLock} held. */
  static void update(
      Iterable<Parameter> oldParams,
      Iterable<Parameter> newParams,
      Collection<Trainer> optimizers) {
    Set<Parameter> before = new java.util.LinkedHashSet<>();
    oldParams.forEach(before::add);
    Set<Parameter> after = new java.util.LinkedHashSet<>();
    newParams.forEach(after::add);
    List<Parameter> removed = before.stream().filter(p -> !after.contains(p)).toList();
    List<Parameter> added = after.stream().filter(p -> !before.contains(p)).toList();
    if (removed.isEmpty() && added.isEmpty()) {
      return;
    }
    if (optimizers == null || optimizers.isEmpty()) {
      ModuleSurgery.logger().info("updateParamsInOptimizer: no trainer given, nothing to update");
      return;
    }
    for (Parameter p : added) {
      if (p.isInitialized() && p.getArray().isReleased()) {
        throw new IllegalStateException(
            "added parameter "
                + describe(p)
                + " has a freed array: a trainer can neither register nor update it; nothing was"
                + " changed");
      }
    }
    List<String> stillInModels = heldByTheirModels(removed, optimizers);
    Journal journal = new Journal();
    try {
      TrainerUpdate.apply(
          removed, added, List.copyOf(optimizers), p -> null, journal, Faults.NONE, StillUsed.NONE);
      journal.commit();
    } catch (Throwable e) { // rethrown as it is, checked or not, after the rollback
      journal.rollback(e);
      if (e instanceof SurgeryException s) {
        throw new IllegalStateException(s.getMessage(), s);
      }
      throw e;
    }
    if (!stillInModels.isEmpty()) {
      ModuleSurgery.logger()
          .warn(
              "updateParamsInOptimizer: {} parameter(s) removed from a trainer are still in its"
                  + " model ({}{}): DJL registers them again at the next forward with fresh"
                  + " optimizer state. Take them out of the model first (replaceModules does both),"
                  + " or stop training them with freezeParameters",
              stillInModels.size(),
              String.join(", ", stillInModels.subList(0, Math.min(3, stillInModels.size()))),
              stillInModels.size() > 3 ? ", ..." : "");
    }
  }

  /**
   * The parameters about to leave a trainer that holds them while its model still does, each once
   * (named by its first block path): DJL registers such a parameter again at the next forward, with
   * fresh optimizer state, so its training restarts where Composer's optimizer would stop updating
   * it. Composer's semantics are kept (its own test removes the parameters of the model the
   * optimizer trains), but said.
   */
  private static List<String> heldByTheirModels(
      List<Parameter> removed, Collection<Trainer> trainers) {
    if (removed.isEmpty()) {
      return List.of();
    }
    // By parameter, not by name: one tied into two blocks is one, two models' namesakes are two.
    Map<Parameter, String> held = new LinkedIdentityMap<>();
    for (Trainer trainer : trainers) {
      Block root = trainer == null ? null : trainer.getModel().getBlock();
      if (root == null) {
        continue;
      }
      Set<Parameter> leaving = Collections.newSetFromMap(new IdentityHashMap<>());
      for (Parameter p : removed) {
        if (TrainerSurgery.holds(trainer, p)) {
          leaving.add(p);
        }
      }
      if (leaving.isEmpty()) {
        continue;
      }
      for (Map.Entry<Block, String> e : BlockPaths.index(root).entrySet()) {
        for (Parameter p : BlockTrees.directParameters(e.getKey())) {
          if (leaving.contains(p)) {
            held.putIfAbsent(p, BlockPaths.display(e.getValue()) + "." + p.getName());
          }
        }
      }
    }
    return List.copyOf(held.values());
  }
}
