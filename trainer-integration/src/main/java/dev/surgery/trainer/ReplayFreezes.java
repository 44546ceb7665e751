package dev.surgery.trainer;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.algorithms.LayerFreezing;
import java.util.Collections;
import java.util.List;
import java.util.Set;

/**
 * The freezes of one checkpoint replay, told apart as a training run's listener tells them: what
 * the replayed surgery froze (the layers a record names, and parameters born frozen in a
 * replacement of a layer surgery froze) and what the saved run's program had frozen itself. A
 * layer_freezing record's replay on a fresh model freezes every layer it selects, also one the
 * program had frozen (which the record does not name): that part stays frozen while later records
 * replay, so that a replacement of a layer frozen whole is born frozen as in the saved run, and is
 * unfrozen at the end with what was born frozen only because of it, as the program's own freezes
 * are not in the file. What the replay found the program had frozen is kept with the block for the
 * next checkpoint of the run, loaded in turn, which replays only the records after these.
 */
final class ReplayFreezes {

  private final Block block;
  private final Set<Parameter> frozenAtStart;
  private final Set<Parameter> carried;

  /** The saved run's program's part, as this replay and earlier ones found it. */
  private final Set<Parameter> program = ParameterSets.identitySet();

  /** The parameters under the layers the records say layer_freezing froze. */
  private final Set<Parameter> recordFrozen = ParameterSets.identitySet();

  /** What the replayed surgery froze, born frozen included. */
  private final Set<Parameter> bySurgery = ParameterSets.identitySet();

  private Set<Parameter> trainableBefore = Set.of();
  private FreezeProvenance provenance;

  /** What {@link #before} froze again for an in-turn replay: a failed replay unfreezes it. */
  private final Set<Parameter> refrozen = ParameterSets.identitySet();

  private ReplayFreezes(Block block, boolean inTurn) {
    this.block = block;
    this.frozenAtStart = ParameterSets.frozen(block);
    Set<Parameter> carriedOrNull = CarriedRecords.frozenOrNull(block);
    this.carried = carriedOrNull == null ? Set.of() : carriedOrNull;
    if (!inTurn) {
      return;
    }
    // What the earlier replays of the run's records froze (by surgery, or by the saved run's
    // program, as they found it) is frozen again while the rest replays, as the saved run had it:
    // a trainer without the listener (DJL's newTrainer unfreezes a loaded model) or the program
    // may have unfrozen it in between. Surgery's stays frozen, as a load of the last checkpoint
    // alone has it; the program's is unfrozen again at the end.
    Set<Parameter> present = ParameterSets.all(block);
    Set<Parameter> programBefore = CarriedRecords.programFrozenOrNull(block);
    for (Set<Parameter> earlier :
        programBefore == null ? List.of(carried) : List.of(carried, programBefore)) {
      for (Parameter p : earlier) {
        if (present.contains(p) && p.requiresGradient()) {
          p.freeze(true);
          refrozen.add(p);
        }
      }
    }
    if (programBefore != null) {
      for (Parameter p : programBefore) {
        if (present.contains(p)) {
          program.add(p);
        }
      }
    }
  }

  /**
   * Notes the block's freezes before a replay changes any.
   *
   * @param block the root block
   * @param inTurn whether the replay continues the records the block carries (the next checkpoint
   *     of a run, loaded in turn)
   */
  static ReplayFreezes before(Block block, boolean inTurn) {
    return new ReplayFreezes(block, inTurn);
  }

  /** Notes, before a record is replayed, what it will be judged against. */
  void beforeRecord(SurgeryRecord r) {
    // Only a layer_freezing record (or one that says it froze layers) is held to what it names:
    // a program's algorithm may freeze without saying so, and its freezes stay as replayed.
    boolean heldToItsFreezes =
        r.changes() != null
            && (r.algorithm().equals(LayerFreezing.NAME)
                || r.changes().values().stream().anyMatch(FreezeChanges::isFreeze));
    trainableBefore = heldToItsFreezes ? ParameterSets.trainable(block) : Set.of();
    Set<Parameter> surgerySoFar = ParameterSets.identitySet();
    surgerySoFar.addAll(carried);
    surgerySoFar.addAll(recordFrozen);
    surgerySoFar.addAll(bySurgery);
    provenance = FreezeProvenance.of(block, surgerySoFar);
  }

  /**
   * Sorts what a record's replay (checked against its record) froze.
   *
   * @return a parameter the record says was born frozen that the replay did not bring (an edited
   *     record), else null
   */
  String afterRecord(SurgeryRecord r) {
    if (r.changes() != null) {
      recordFrozen.addAll(FreezeChanges.recordedFreezes(block, r.changes()));
      for (Parameter p : trainableBefore) {
        if (!p.requiresGradient() && !recordFrozen.contains(p) && !carried.contains(p)) {
          program.add(p);
        }
      }
    }
    Set<Parameter> frozenByThis = provenance.keptAfter(block);
    String unknown = null;
    if (r.bornFrozen() != null) {
      // The saved run said which new parameters surgery kept frozen: the program's part of a layer
      // frozen here may have been lifted there (DJL's newTrainer) before the layer was replaced.
      unknown = provenance.bornAsRecorded(block, r.bornFrozen(), frozenByThis);
    }
    frozenByThis.removeAll(program);
    bySurgery.addAll(frozenByThis);
    return unknown;
  }

  /**
   * Unfreezes what the replay froze that is not surgery's, and after a failed replay (of a block a
   * snapshot cannot restore) what it froze again for an in-turn replay; after a replay of every
   * record, keeps the program's part with the block for the next one.
   *
   * @param replayed whether every record was replayed
   */
  void end(boolean replayed) {
    for (Parameter p : ParameterSets.frozen(block)) {
      if (!frozenAtStart.contains(p) && (!surgerys(p) || !replayed && refrozen.contains(p))) {
        p.freeze(false);
      }
    }
    if (replayed) {
      Set<Parameter> stillProgram = ParameterSets.identitySet();
      Set<Parameter> present = ParameterSets.all(block);
      for (Parameter p : program) {
        if (present.contains(p) && !surgerys(p)) {
          stillProgram.add(p);
        }
      }
      CarriedRecords.setProgramFrozen(
          block, stillProgram.isEmpty() ? null : Collections.unmodifiableSet(stillProgram));
      // What the program had frozen itself before this replay counted it as surgery's (a layer
      // frozen by hand before the load that the record says layer_freezing froze), with what
      // earlier replays found so.
      Set<Parameter> held = ParameterSets.identitySet();
      Set<Parameter> heldBefore = CarriedRecords.heldByProgramOrNull(block);
      if (heldBefore != null) {
        for (Parameter p : heldBefore) {
          if (present.contains(p)) {
            held.add(p);
          }
        }
      }
      for (Parameter p : frozenBySurgery()) {
        if (frozenAtStart.contains(p) && !carried.contains(p)) {
          held.add(p);
        }
      }
      CarriedRecords.setHeldByProgram(
          block, held.isEmpty() ? null : Collections.unmodifiableSet(held));
    }
  }

  /** Whether surgery froze a parameter, by this replay's records or earlier ones. */
  private boolean surgerys(Parameter p) {
    return bySurgery.contains(p) || recordFrozen.contains(p) || carried.contains(p);
  }

  /** What this replay's surgery froze, born frozen included (a new set). */
  Set<Parameter> frozenBySurgery() {
    Set<Parameter> all = ParameterSets.identitySet();
    all.addAll(bySurgery);
    all.addAll(recordFrozen);
    return all;
  }
}
