package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What the models of the given trainers other than the surgery's tree still use among the
 * parameters leaving that tree, and which of those models the surgery does not touch at all: a
 * block shared by two models left one of them only. Its parameters stay in the other model's
 * trainer (state and all) and keep their arrays, and a trainer whose model reaches none of the
 * joining parameters receives none of them. Only a model whose block is not the surgery's root is
 * walked, once (a surgery on a subtree walks the whole model, already changed); the usual surgery
 * on a trainer's own model costs nothing.
 */
final class StillUsed {
  static final StillUsed NONE = new StillUsed(Map.of(), Set.of(), Set.of());

  /** Per trainer, the leaving and joining parameters its model reaches. */
  private final Map<Trainer, Set<Parameter>> byTrainer;

  /** The leaving arrays those models hold (a parameter there may wrap a leaving one's array). */
  private final Set<NDArray> arrays;

  /** Trainers of another model that reaches none of the joining parameters. */
  private final Set<Trainer> apart;

  private StillUsed(
      Map<Trainer, Set<Parameter>> byTrainer, Set<NDArray> arrays, Set<Trainer> apart) {
    this.byTrainer = byTrainer;
    this.arrays = arrays;
    this.apart = apart;
  }

  /**
   * Walks the given trainers' models that are not {@code root}.
   *
   * @param root the surgery's root, in its changed state
   * @param trainers the trainers given to the surgery
   * @param leaving the parameters leaving the tree
   * @param joining the parameters joining it
   * @return what those models still use
   */
  static StillUsed of(
      Block root,
      List<Trainer> trainers,
      Collection<Parameter> leaving,
      Collection<Parameter> joining) {
    if (leaving.isEmpty() && joining.isEmpty()) {
      return NONE;
    }
    Map<Block, Set<Parameter>> walked = null;
    Map<Trainer, Set<Parameter>> byTrainer = null;
    Set<NDArray> arrays = null;
    Set<Trainer> apart = null;
    for (Trainer t : trainers) {
      Block model = t.getModel() == null ? null : t.getModel().getBlock();
      if (model == null || model == root) {
        continue;
      }
      if (walked == null) {
        walked = new IdentityHashMap<>();
        byTrainer = new IdentityHashMap<>();
        arrays = Collections.newSetFromMap(new IdentityHashMap<>());
        apart = Collections.newSetFromMap(new IdentityHashMap<>());
      }
      Set<Parameter> reached = walked.get(model);
      if (reached == null) {
        reached = reachedFrom(model, leaving, joining, arrays);
        walked.put(model, reached);
      }
      if (!reached.isEmpty()) {
        byTrainer.put(t, reached);
      }
      if (!containsAny(reached, joining)) {
        apart.add(t);
      }
    }
    return walked == null ? NONE : new StillUsed(byTrainer, arrays, apart);
  }

  /** The leaving and joining parameters a model reaches; adds the leaving arrays it holds. */
  private static Set<Parameter> reachedFrom(
      Block model,
      Collection<Parameter> leaving,
      Collection<Parameter> joining,
      Set<NDArray> arrays) {
    Set<Parameter> asked = Collections.newSetFromMap(new IdentityHashMap<>());
    asked.addAll(leaving);
    asked.addAll(joining);
    Set<NDArray> askedArrays = BlockTrees.arraysOf(leaving);
    Set<Parameter> reached = Collections.newSetFromMap(new IdentityHashMap<>());
    BlockTrees.visitOnce(
        model,
        b -> {
          for (Parameter p : BlockTrees.directParameters(b)) {
            if (asked.contains(p)) {
              reached.add(p);
            }
            if (p.isInitialized() && askedArrays.contains(p.getArray())) {
              arrays.add(p.getArray());
            }
          }
        });
    return reached;
  }

  private static boolean containsAny(Set<Parameter> set, Collection<Parameter> items) {
    for (Parameter p : items) {
      if (set.contains(p)) {
        return true;
      }
    }
    return false;
  }

  /** Whether the trainer's model still uses a leaving parameter: it stays in that trainer. */
  boolean keeps(Trainer trainer, Parameter p) {
    Set<Parameter> reached = byTrainer.get(trainer);
    return reached != null && reached.contains(p);
  }

  /** Whether a given trainer's model still uses the array: it must not be freed. */
  boolean usesArray(NDArray array) {
    return arrays.contains(array);
  }

  /** Whether the trainer trains another model, which none of the joining parameters is in. */
  boolean isApart(Trainer trainer) {
    return apart.contains(trainer);
  }
}
