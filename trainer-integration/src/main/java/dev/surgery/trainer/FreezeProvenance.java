package dev.surgery.trainer;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.surgery.core.BlockPaths;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Tells which of the parameters a surgery froze a later trainer of a loaded model freezes again.
 * DJL's {@code newTrainer} unfreezes every parameter of a loaded model, the program's own freezes
 * included; surgery's freezes are put back, since layer_freezing's layers are never unfrozen:
 *
 * <ul>
 *   <li>a parameter the tree had before that the surgery froze (layer_freezing) is kept;
 *   <li>one born frozen in a replacement is kept where the layer it replaced was frozen by surgery
 *       (earlier, or in the same replay), not frozen at all or frozen only in part (an algorithm
 *       froze it on purpose: none follows a partial freeze), and not where the program froze that
 *       whole layer with DJL's API: the replacement then only follows the program's freeze, which
 *       DJL's {@code newTrainer} lifts, so it lifts this too.
 * </ul>
 *
 * The layer a replacement stands for is the block that held its place before (its parent and
 * index): a wrapper (squeeze-excite) holds the old layer's parameters, a factorized layer holds
 * none, so only the place tells them apart.
 */
final class FreezeProvenance {

  private final Block rootBefore;
  private final Set<Parameter> before;
  private final Set<Parameter> frozenBefore;
  private final Set<Parameter> keptBefore;

  /** Each block's children before the surgery; null when nothing was frozen then. */
  private final Map<Block, List<Block>> childrenBefore;

  private FreezeProvenance(
      Block rootBefore,
      Set<Parameter> before,
      Set<Parameter> frozenBefore,
      Set<Parameter> keptBefore,
      Map<Block, List<Block>> childrenBefore) {
    this.rootBefore = rootBefore;
    this.before = before;
    this.frozenBefore = frozenBefore;
    this.keptBefore = keptBefore == null ? Set.of() : keptBefore;
    this.childrenBefore = childrenBefore;
  }

  /**
   * Notes a tree as it is before a surgery.
   *
   * @param root the tree's root
   * @param keptBefore what earlier surgery froze that is kept frozen; null: none
   * @return the note
   */
  static FreezeProvenance of(Block root, Set<Parameter> keptBefore) {
    // One walk of the parameters for both sets (an every-batch entry asks at each batch).
    Set<Parameter> parameters = ParameterSets.identitySet();
    Set<Parameter> frozen = ParameterSets.identitySet();
    for (Parameter p : root.getParameters().values()) {
      parameters.add(p);
      if (!ParameterSets.isStatistic(p) && !p.requiresGradient()) {
        frozen.add(p);
      }
    }
    // Places matter only where a layer was frozen before: with none, every parameter born frozen
    // is surgery's own, and the tree's shape is not needed (the usual case, walked no further).
    Map<Block, List<Block>> children = null;
    if (!frozen.isEmpty()) {
      children = new IdentityHashMap<>();
      Deque<Block> todo = new ArrayDeque<>();
      todo.push(root);
      while (!todo.isEmpty()) {
        Block b = todo.pop();
        if (children.containsKey(b)) {
          continue;
        }
        List<Block> kids = new ArrayList<>(BlockPaths.children(b).values());
        children.put(b, kids);
        kids.forEach(todo::push);
      }
    }
    return new FreezeProvenance(root, parameters, frozen, keptBefore, children);
  }

  /**
   * Whether the tree's freezes differ from before the surgery: a parameter of the trainable kinds
   * frozen or unfrozen since.
   *
   * @param after the tree's root after the surgery
   * @return true when any changed
   */
  boolean freezesChanged(Block after) {
    return !ParameterSets.frozen(after).equals(frozenBefore);
  }

  /**
   * The parameters the surgery froze that a later trainer of the loaded model freezes again.
   *
   * @param after the tree's root after the surgery
   * @return a new, mutable set
   */
  Set<Parameter> keptAfter(Block after) {
    Set<Parameter> kept = ParameterSets.identitySet();
    Set<Parameter> born = ParameterSets.identitySet();
    for (Parameter p : ParameterSets.frozen(after)) {
      if (!frozenBefore.contains(p)) {
        (before.contains(p) ? kept : born).add(p);
      }
    }
    if (born.isEmpty()) {
      return kept;
    }
    if (childrenBefore == null) {
      kept.addAll(born); // nothing was frozen before: no replaced layer was the program's
      return kept;
    }
    Deque<Block> todo = new ArrayDeque<>();
    Set<Block> seen = ParameterSets.identitySet();
    if (after != rootBefore) {
      decide(after, rootBefore, born, kept, todo);
    } else {
      todo.push(after);
    }
    while (!todo.isEmpty() && !born.isEmpty()) {
      Block b = todo.pop();
      if (!seen.add(b)) {
        continue;
      }
      List<Block> old = childrenBefore.get(b);
      List<Block> now = BlockPaths.children(b).values();
      for (int i = 0; i < now.size(); i++) {
        Block child = now.get(i);
        if (childrenBefore.containsKey(child)) {
          todo.push(child);
        } else {
          decide(child, old != null && i < old.size() ? old.get(i) : null, born, kept, todo);
        }
      }
    }
    kept.addAll(born); // born in place, under no replacement: frozen on purpose
    return kept;
  }

  /**
   * Names the parameters the surgery's replacements brought that are in {@code kept}, as a record
   * keeps them: the model's parameter names ({@code getParameters()} keys) after the surgery, the
   * first of a parameter held at several places.
   *
   * @param after the tree's root after the surgery
   * @param kept what {@link #keptAfter} returned
   * @return the names, in the model's order
   */
  List<String> bornKeptNames(Block after, Set<Parameter> kept) {
    List<String> names = new ArrayList<>();
    Set<Parameter> named = ParameterSets.identitySet();
    for (Pair<String, Parameter> e : after.getParameters()) {
      Parameter p = e.getValue();
      if (!before.contains(p) && kept.contains(p) && named.add(p)) {
        names.add(e.getKey());
      }
    }
    return names;
  }

  /**
   * Makes the freezes of what a replayed surgery's replacements brought those its record names:
   * each named one is frozen and kept, every other one is not kept (it trained in the saved run, or
   * only followed the program's freeze, which DJL's {@code newTrainer} lifts).
   *
   * @param after the tree's root after the replay
   * @param names the record's {@code bornFrozen}
   * @param kept what {@link #keptAfter} returned, changed in place
   * @return a name the record gives that is no parameter the replay brought (an edited record),
   *     else null
   */
  String bornAsRecorded(Block after, Collection<String> names, Set<Parameter> kept) {
    Set<String> recorded = new HashSet<>(names);
    Set<String> unmatched = new LinkedHashSet<>(names);
    Map<Parameter, Boolean> born = new IdentityHashMap<>();
    for (Pair<String, Parameter> e : after.getParameters()) {
      Parameter p = e.getValue();
      if (!before.contains(p) && !ParameterSets.isStatistic(p)) {
        born.merge(p, recorded.contains(e.getKey()), Boolean::logicalOr);
        unmatched.remove(e.getKey());
      }
    }
    born.forEach(
        (p, frozen) -> {
          if (frozen) {
            if (p.requiresGradient()) {
              p.freeze(true);
            }
            kept.add(p);
          } else {
            kept.remove(p);
          }
        });
    return unmatched.isEmpty() ? null : unmatched.iterator().next();
  }

  /**
   * Decides for the parameters born frozen in one replacement, by the layer it stands for: those of
   * its new blocks. An old block inside it (a wrapper keeps what it wraps: stochastic depth's
   * residual, a squeeze-excite convolution) is walked on as part of the old tree ({@code todo}), so
   * that each replacement below it is decided by its own place.
   */
  private void decide(
      Block replacement,
      Block replaced,
      Set<Parameter> born,
      Set<Parameter> kept,
      Deque<Block> todo) {
    List<Parameter> itsBorn = new ArrayList<>();
    Deque<Block> fresh = new ArrayDeque<>();
    Set<Block> met = ParameterSets.identitySet();
    fresh.push(replacement);
    while (!fresh.isEmpty()) {
      Block b = fresh.pop();
      if (!met.add(b)) {
        continue;
      }
      for (Parameter p : b.getDirectParameters().values()) {
        if (born.contains(p)) {
          itsBorn.add(p);
        }
      }
      for (Block child : BlockPaths.children(b).values()) {
        (childrenBefore.containsKey(child) ? todo : fresh).push(child);
      }
    }
    if (itsBorn.isEmpty()) {
      return;
    }
    itsBorn.forEach(born::remove);
    boolean bySurgery = false;
    boolean byProgram = false;
    boolean trainable = false;
    if (replaced != null) {
      for (Parameter p : replaced.getParameters().values()) {
        if (ParameterSets.isStatistic(p)) {
          continue;
        }
        if (keptBefore.contains(p) || (!p.requiresGradient() && !frozenBefore.contains(p))) {
          bySurgery = true; // frozen by surgery, earlier or in this one (the same replay)
        } else if (frozenBefore.contains(p)) {
          byProgram = true;
        } else {
          trainable = true;
        }
      }
    }
    // Not kept only where the program alone froze the whole layer: a replacement born frozen there
    // follows its freeze (as the built-ins' do), which DJL's newTrainer lifts. A layer the program
    // froze in part no built-in follows: what is born frozen there was frozen on purpose.
    if (bySurgery || !byProgram || trainable) {
      kept.addAll(itsBorn);
    }
  }
}
