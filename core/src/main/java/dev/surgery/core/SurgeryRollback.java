package dev.surgery.core;

import static dev.surgery.core.BlockTrees.arraysOf;
import static dev.surgery.core.BlockTrees.parametersOf;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.internal.ClosedPackageException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The undoing of a surgery that failed, or of a dry run: rolls its journal back, frees the arrays
 * of the replacements it received that belong to nobody else (a job retrying a failing surgery
 * would otherwise accumulate them until the model closes), and turns a failure into the {@link
 * SurgeryException} the caller sees, naming where it happened and a freed array the rollback cannot
 * give back.
 */
final class SurgeryRollback {

  private final Block root;
  private final Journal journal;

  /** Trainers whose models keep the arrays they use (a replacement may be another model's). */
  private final List<Trainer> keepers;

  /** The blocks decided on and what the policies returned for them (same index). */
  private final List<TreeNode> decided;

  private final List<Block> returned;

  /** Replacements received and refused before they were decided on. */
  private final List<Block> refused;

  SurgeryRollback(
      Block root,
      Journal journal,
      List<Trainer> keepers,
      List<TreeNode> decided,
      List<Block> returned,
      List<Block> refused) {
    this.root = root;
    this.journal = journal;
    this.keepers = keepers;
    this.decided = decided;
    this.returned = returned;
    this.refused = refused;
  }

  /** Undoes a surgery that succeeded but must not stay (a dry run): {@code before} is required. */
  void undo(Throwable reason, Set<Parameter> before) {
    journal.rollback(reason);
    releaseDiscarded(before);
  }

  /**
   * Rolls back and frees what the surgery received, and returns the exception to throw; {@code
   * before} may be null: the rollback has put the tree back, so its parameters are then collected
   * from the root. {@code current} is the block being worked on (null if none), named by a failure
   * that does not name one itself.
   */
  RuntimeException failed(Throwable e, Set<Parameter> before, TreeNode current) {
    journal.rollback(e);
    releaseDiscarded(before != null ? before : parametersOf(root));
    String freed = freedArrayNote();
    if (e instanceof SurgeryException s) {
      if (freed == null) {
        return s;
      }
      String path = s.getBlockPath();
      String message = s.getMessage();
      if (path != null && message.startsWith("at " + path + ": ")) {
        message = message.substring(("at " + path + ": ").length());
      }
      SurgeryException noted = new SurgeryException(path, message + freed, s.getCause());
      noted.setStackTrace(s.getStackTrace());
      for (Throwable undo : s.getSuppressed()) {
        noted.addSuppressed(undo); // what failed in the rollback itself
      }
      return noted;
    }
    if (e instanceof StackOverflowError) {
      return new SurgeryException(null, ModuleSurgery.TOO_DEEP + (freed == null ? "" : freed), e);
    }
    if (e instanceof ClosedPackageException closed) {
      // The module system refused: named at the first block of that class, or where the walk was.
      String path = null;
      for (Map.Entry<Block, String> b : BlockPaths.index(root).entrySet()) {
        if (closed.getType().isInstance(b.getKey())) {
          path = b.getValue();
          break;
        }
      }
      if (path == null && current != null) {
        path = current.path();
      }
      return new SurgeryException(
          path == null ? null : BlockPaths.display(path),
          "surgery failed and was rolled back: " + e.getMessage() + (freed == null ? "" : freed),
          e);
    }
    return new SurgeryException(
        current == null ? null : BlockPaths.display(current.path()),
        "surgery failed and was rolled back: "
            + TreeSurgery.messageOf(e)
            + (freed == null ? "" : freed),
        e);
  }

  /**
   * After a rollback, says where the model as it was holds a freed array (null if nowhere): a
   * replacement function that closed the old block's arrays (the engine frees them when the surgery
   * commits) leaves a model that cannot run, which the rollback cannot undo.
   */
  private String freedArrayNote() {
    return BlockInspector.firstFreedParameter(BlockPaths.index(root))
        .map(
            freed ->
                "; after the rollback, parameter '"
                    + freed.parameter().getName()
                    + "' of "
                    + BlockPaths.display(freed.blockPath())
                    + " has no array: it was freed (by a replacement function? it must not close"
                    + " the arrays of the block it replaces: the engine frees them when the"
                    + " surgery commits), so the model as it was cannot run")
        .orElse(null);
  }

  /**
   * After a rollback, frees the arrays of the replacements this surgery received that belong to
   * nobody else (parameters the old tree had, such as adopted ones, are left alone).
   */
  private void releaseDiscarded(Set<Parameter> before) {
    Set<NDArray> kept = arraysOf(before);
    Set<Parameter> discarded = Collections.newSetFromMap(new IdentityHashMap<>());
    List<Block> received = new ArrayList<>(returned.size() + refused.size());
    for (int i = 0; i < decided.size(); i++) {
      if (returned.get(i) != decided.get(i).block) {
        received.add(returned.get(i));
      }
    }
    received.addAll(refused);
    for (Block replacement : received) {
      for (Parameter p : parametersOf(replacement)) {
        if (!before.contains(p) && p.isInitialized() && !kept.contains(p.getArray())) {
          discarded.add(p);
        }
      }
    }
    if (discarded.isEmpty()) {
      return;
    }
    // A replacement may be a block of another model (sharing a layer between two models): what a
    // given trainer's model still uses keeps its arrays, as on the success path.
    StillUsed elsewhere = StillUsed.of(root, keepers, discarded, List.of());
    for (Parameter p : discarded) {
      if (p.isInitialized() && !elsewhere.usesArray(p.getArray())) {
        try {
          p.getArray().close();
        } catch (RuntimeException e) {
          // already released with the rolled-back initialization
        }
      }
    }
  }
}
