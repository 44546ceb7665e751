package dev.surgery.trainer;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.algorithms.AbstractSurgeryAlgorithm;
import dev.surgery.core.algorithms.SurgeryChanges;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;

/**
 * Where an entry's run starts from, taken just before the algorithm is called: the model's blocks
 * by identity and (where the entry's freezes are looked at) which parameters were frozen and why,
 * the gradients pending at an epoch end, where training stood, and when the run began. An algorithm
 * (a plugin above all) may change the model and fail, or return changes that do not say what it
 * did: what it did is only known against this, so the run is checked against it ({@link
 * #changedModel}, {@link #untrueChanges}) and recorded with it.
 */
final class BeforeRun {

  /** The epochs that had passed. */
  final int completed;

  /** The planned number of epochs, or 0. */
  final int planned;

  /** The gradients pending at an epoch end, or null where they were not looked for. */
  final PendingGradients pending;

  /** The mean loss of the window before the run, or null, and how many batches it averages. */
  final Double lossBefore;

  final int lossBeforeBatches;

  /** What was frozen and why, or null where the entry's freezes are not looked at. */
  final FreezeProvenance freezes;

  /**
   * The blocks as they were: a plugin may commit a surgery and fail after it, which no rollback of
   * ours can undo; the failure must then not claim the model is unchanged.
   */
  private final List<Block> blocks;

  private final long start;

  /**
   * Takes the state before a run; the clock starts last.
   *
   * @param looksForFreezes whether the entry's freezes are looked at (two parameter walks)
   */
  BeforeRun(
      int completed,
      int planned,
      PendingGradients pending,
      LossWindows losses,
      Block block,
      boolean looksForFreezes) {
    this.completed = completed;
    this.planned = planned;
    this.pending = pending;
    this.lossBefore = losses.meanBefore();
    this.lossBeforeBatches = losses.beforeBatches();
    this.blocks = blocksOf(block);
    this.freezes =
        looksForFreezes ? FreezeProvenance.of(block, CarriedRecords.frozenOrNull(block)) : null;
    this.start = System.nanoTime();
  }

  /** The time since the run began. */
  long elapsedNanos() {
    return System.nanoTime() - start;
  }

  /** Whether the model has the blocks it had before, by identity and in order. */
  boolean sameBlocks(Block now) {
    return sameBlocks(blocks, blocksOf(now));
  }

  /**
   * Whether an algorithm changed the model: its blocks, or (where the entry's freezes are looked
   * at) which parameters are frozen.
   */
  boolean changedModel(Block now) {
    return !sameBlocks(now) || (freezes != null && freezes.freezesChanged(now));
  }

  /**
   * Why the changes an algorithm returned cannot be recorded as they are, or null: none while the
   * model's blocks or freezes changed (a checkpoint would replay nothing, and load into the
   * original architecture); blocks replaced while none is named (its record and report would say it
   * changed nothing); a layer said frozen that is not (no checkpoint of the run would load). The
   * record names the entry's algorithm whatever the changes say, so a plugin may return the changes
   * of a built-in it delegates to. Freezes are looked at where the entry's are.
   */
  String untrueChanges(SurgeryChanges changes, Block now) {
    if (changes == null) {
      if (!sameBlocks(now)) {
        return "it changed the model's blocks but returned no SurgeryChanges, so the change cannot"
            + " be recorded for a checkpoint";
      }
      if (freezes != null && freezes.freezesChanged(now)) {
        return "it froze or unfroze parameters but returned no SurgeryChanges, so the change"
            + " cannot be recorded for a checkpoint (a freeze that names no layer is recorded with"
            + " empty changes)";
      }
      return null;
    }
    for (SurgeryChanges.Change c : changes.changes()) {
      if (c == null || c.path() == null || c.oldType() == null || c.newType() == null) {
        return "its changes hold one without a block path or a type: " + c;
      }
    }
    Map<String, String> named = SurgeryRecord.changesOf(changes);
    // (Changes naming a replacement that did not happen are recorded as they say: their replay
    // does the same, and the checkpoint loads.)
    // The tree walked again only where no replacement is named (a run that names one changed it).
    if (FreezeChanges.structural(named).isEmpty() && !sameBlocks(now)) {
      return "it changed the model's blocks but its changes name no replaced block, so its record"
          + " and report would say it replaced nothing";
    }
    String notFrozen = FreezeChanges.firstNotFrozen(now, named);
    if (notFrozen != null) {
      return "its changes say it froze " + notFrozen + ", so no checkpoint of the run would load";
    }
    String nowhere = firstPlaceNowhere(now, FreezeChanges.structural(named));
    if (nowhere != null) {
      return "its changes name "
          + nowhere
          + ", which is no block of the model, so its record and report would describe another"
          + " model";
    }
    return null;
  }

  /**
   * The first replaced place that the model has nowhere: not after the run (by its key, or by its
   * number where the replacement renamed the key), and not below another place the changes name
   * (whose replacement took its subtree away). Null when every place is found.
   */
  private static String firstPlaceNowhere(Block now, Map<String, String> structural) {
    for (String place : structural.keySet()) {
      if (StaleRecords.resolveRenamed(now, place) != null) {
        continue;
      }
      boolean belowAnother =
          structural.keySet().stream().anyMatch(other -> place.startsWith(other + "/"));
      if (!belowAnother) {
        return place;
      }
    }
    return null;
  }

  /**
   * The changes with the model's own parameter counts where the algorithm's are not the model's: a
   * plugin's {@link SurgeryChanges} carry counts the log and the INFO line print, and an outside
   * probe found a plugin's placeholder {@code 0 -> 0} printed for a model of 290 parameters. The
   * count after the run is the model's now; the count before is taken from the blocks the model had
   * (their parameters outlive a replacement, shapes included; a parameter whose shape the plugin
   * changed in place, no block replaced, is counted at its new shape). Changes whose count after is
   * the model's are returned as they are: the built-ins' algorithms count so ({@link
   * AbstractSurgeryAlgorithm#countParameterScalarsIfKnown}).
   */
  SurgeryChanges withModelsCounts(SurgeryChanges changes, Block now) {
    if (changes == null || now == null) {
      return changes;
    }
    long after;
    long before;
    try {
      after = AbstractSurgeryAlgorithm.countParameterScalarsIfKnown(now);
      if (changes.parametersAfter() == after) {
        return changes;
      }
      before = countBefore();
    } catch (RuntimeException e) { // a block of the program's that cannot list its parameters
      return changes;
    }
    return new SurgeryChanges(
        changes.algorithm(),
        changes.hyperparameters(),
        changes.changes(),
        before,
        after,
        changes.nanos(),
        changes.warnings());
  }

  /**
   * The parameter scalars of the blocks the model had, counted as {@link
   * AbstractSurgeryAlgorithm#countParameterScalarsIfKnown} counts a tree.
   */
  private long countBefore() {
    List<Parameter> parameters = new ArrayList<>();
    for (Block b : blocks) {
      parameters.addAll(b.getDirectParameters().values());
    }
    return AbstractSurgeryAlgorithm.countParameterScalarsIfKnown(parameters);
  }

  /** The blocks of a tree in pre-order, by identity. */
  static List<Block> blocksOf(Block root) {
    List<Block> blocks = new ArrayList<>();
    if (root == null) {
      return blocks;
    }
    Deque<Block> todo = new ArrayDeque<>();
    todo.push(root);
    while (!todo.isEmpty()) {
      Block b = todo.pop();
      blocks.add(b);
      List<Block> children = BlockPaths.children(b).values(); // live: no copy per block
      for (int i = children.size() - 1; i >= 0; i--) {
        todo.push(children.get(i));
      }
    }
    return blocks;
  }

  static boolean sameBlocks(List<Block> a, List<Block> b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (int i = 0; i < a.size(); i++) {
      if (a.get(i) != b.get(i)) {
        return false;
      }
    }
    return true;
  }

  /**
   * The trainable parameters holding a gradient that a backward pass left and no optimizer step
   * took (a loop that accumulates gradients over several batches per step, its window open across
   * the epoch end), of all trainable parameters.
   */
  record PendingGradients(int pending, int trainable) {

    /**
     * Counts them: a reduction per trainable parameter, asked when an entry runs at an epoch end.
     */
    static PendingGradients of(Block block) {
      int trainable = 0;
      int pending = 0;
      if (!block.isInitialized()) {
        return new PendingGradients(0, 0);
      }
      for (Parameter parameter : block.getParameters().values()) {
        if (!parameter.isInitialized() || !parameter.requiresGradient()) {
          continue;
        }
        NDArray array = parameter.getArray();
        if (!array.hasGradient()) {
          continue; // frozen
        }
        trainable++;
        try (NDArray gradient = array.getGradient();
            NDArray nonZero = gradient.any()) {
          if (nonZero.getBoolean()) {
            pending++;
          }
        }
      }
      return new PendingGradients(pending, trainable);
    }
  }
}
