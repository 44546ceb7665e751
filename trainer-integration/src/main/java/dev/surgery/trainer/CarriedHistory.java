package dev.surgery.trainer;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Compares the surgery a model's block already carries with a checkpoint's record, before a replay:
 * a model may load a file into a block that surgery changed already (the model that was saved,
 * loaded again; an earlier checkpoint of the same run, loaded before). Replaying what the block has
 * again would fail on its first record, naming that record instead of what is in the way, and a
 * file without a record would load into changed layers without a word: this says how many records
 * the block carries, refuses a history that is not the file's, and forgets what a freeze-only
 * history froze when a file without surgery is loaded.
 */
final class CarriedHistory {

  private CarriedHistory() {}

  /**
   * Refuses a file saved without surgery for a model whose blocks this JVM's surgery changed (its
   * own checkpoint from before the surgery, loaded back into it): DJL would load the weights into
   * the changed layers without a word where the layout is kept (BlurPool, weight standardization).
   */
  static void refuseIntoChangedModel(Model model, Path paramsFile) throws MalformedModelException {
    List<String> changed = new ArrayList<>();
    for (SurgeryRecord r : carried(model.getBlock())) {
      // A freeze changes no block: the original architecture still takes the file.
      if (r.changes() != null && !FreezeChanges.structural(r.changes()).isEmpty()) {
        changed.add(r.algorithm() + " at epoch " + r.epoch());
      }
    }
    if (!changed.isEmpty()) {
      throw new MalformedModelException(
          paramsFile
              + " holds no surgery record (it was saved from a model without surgery), but this"
              + " model's blocks were changed by "
              + String.join(", ", changed)
              + ": load it into the original architecture (a freshly built model), not into this"
              + " one");
    }
  }

  /**
   * A file saved without surgery, loaded into a model whose block only a freeze changed (which the
   * original architecture takes): the model becomes what the file says, its record and what it
   * froze forgotten, so that no later trainer freezes again nor a save writes the record. A failed
   * load puts them back ({@link ModelLoadUndo}).
   */
  static void forgetFreezes(Model model) {
    Block block = model.getBlock();
    if (CarriedRecords.carriedBy(block) == null) {
      return;
    }
    // Unfrozen too, as the file loaded into a fresh model has them (a review): no trainer would
    // ever lift them otherwise; but not what the program had frozen itself before the replay that
    // counted it as surgery's (a second review). A failed load puts the flags back with the tree.
    Set<Parameter> surgerys = CarriedRecords.frozenOrNull(block);
    Set<Parameter> held = CarriedRecords.heldByProgramOrNull(block);
    if (surgerys != null) {
      Set<Parameter> present = ParameterSets.all(block);
      for (Parameter p : surgerys) {
        if (present.contains(p) && !p.requiresGradient() && (held == null || !held.contains(p))) {
          p.freeze(false);
        }
      }
    }
    CarriedRecords.setHeldByProgram(block, null);
    CarriedRecords.carries(block, null);
    CarriedRecords.setFrozen(block, null);
    CarriedRecords.setProgramFrozen(block, null);
    CarriedRecords.takeRecordOff(model);
    CarriedRecords.describes(model);
  }

  /**
   * How many of the file's records, from the first, the model's block carries already: all of them
   * when it is the model that was saved (loaded again, as a program under the agent may without
   * knowing of surgery), some when it loaded an earlier checkpoint of the same run (one model that
   * evaluates every checkpoint in turn); only the rest is replayed. Replaying what the block has
   * again would change nothing, which the check of the architecture refuses. 0 when the block
   * carries none; refused when it carries a history that is not the start of the file's.
   */
  static int carriedPrefix(Model model, List<SurgeryRecord> records, Path origin)
      throws MalformedModelException {
    // What the block carries, not the model's property: a program that sets the original block
    // again on the same Model object keeps the property of the block it replaced.
    List<SurgeryRecord> applied = carried(model.getBlock());
    for (int i = 0; i < applied.size(); i++) {
      SurgeryRecord a = applied.get(i);
      SurgeryRecord r = i < records.size() ? records.get(i) : null;
      boolean same = r != null && a.sameApplicationAs(r);
      // Which new parameters were born frozen, where both records say (an older build's do not):
      // the same surgery with other freezes is another run's, whose freezes this model lacks.
      boolean sameBorn =
          r == null
              || a.bornFrozen() == null
              || r.bornFrozen() == null
              || a.bornFrozen().equals(r.bornFrozen());
      if (!same || !sameBorn) {
        // A replay on top of surgery the file does not describe would fail on the first record
        // (nothing left to replace), naming that record: say what is in the way instead.
        throw new MalformedModelException(
            origin
                + ": this model already carries surgery the file's record "
                + (r == null ? "does not have" : "does not start with")
                + " (its entry "
                + (i + 1)
                + ": "
                + a.algorithm()
                + " at epoch "
                + a.epoch()
                + (r == null
                    ? ""
                    : ", the file's: "
                        + r.algorithm()
                        + " at epoch "
                        + r.epoch()
                        + (!same
                            ? a.algorithm().equals(r.algorithm()) && a.epoch() == r.epoch()
                                ? ", with other hyperparameters or other layers changed"
                                : ""
                            : ", with other new parameters born frozen: "
                                + a.bornFrozen()
                                + " here, "
                                + r.bornFrozen()
                                + " in the file"))
                + "); load it into the architecture the model had before surgery, such as a"
                + " freshly built model");
      }
    }
    return applied.size();
  }

  /**
   * The records a root block carries, as the copies of the library in the JVM know them (under the
   * agent, the program's own copy and the agent's each know only what they replayed or applied);
   * empty when it carries none or a record this build cannot read.
   */
  private static List<SurgeryRecord> carried(Block block) {
    String own = LibraryCopies.latestCarriedBy(block);
    if (own == null || own.isBlank()) {
      return List.of();
    }
    try {
      return SurgeryJson.recordsFromJson(own);
    } catch (IllegalArgumentException e) {
      return List.of();
    }
  }
}
