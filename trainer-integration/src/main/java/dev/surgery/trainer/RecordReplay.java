package dev.surgery.trainer;

import ai.djl.MalformedModelException;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.BlockTreeSnapshot;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.algorithms.NothingTargetedException;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One replay of surgery records on a block, all or nothing: every record is checked before the
 * first is replayed, each replayed record is checked against the blocks it says it changed and what
 * it says it froze, and a refused record leaves the block as it was, the records before it undone.
 * A parameter file holds no block classes, so only a replay that changes exactly what the saved run
 * changed may take its parameters. The caller holds the surgery lock.
 */
final class RecordReplay {

  private final Block block;
  private final NDManager manager;
  private final DataType dataType;
  private final Shape[] inputShapes;
  private final String origin;

  /**
   * Prepares a replay on a block.
   *
   * @param block the original architecture's root block
   * @param manager the model's manager: a scratch manager of its engine and device records the
   *     shapes when an algorithm needs them; nothing is left on either
   * @param dataType the data type for that shape recording
   * @param inputShapes the input shapes for that shape recording
   * @param origin what to name in messages (the checkpoint file)
   */
  RecordReplay(
      Block block, NDManager manager, DataType dataType, Shape[] inputShapes, String origin) {
    this.block = block;
    this.manager = manager;
    this.dataType = dataType;
    this.inputShapes = inputShapes;
    this.origin = origin;
  }

  /**
   * Replays records on the block ({@link SurgeryCheckpoint#replay(Block, List, NDManager, DataType,
   * Shape[], String)}).
   *
   * @param records the surgery to replay, in order
   * @param undoOwn false for a caller whose {@link ModelLoadUndo} already recorded the tree and
   *     puts it back on failure (no second snapshot of the whole tree)
   * @param inTurn for the rest of a run's records on a block that carries the ones before them (the
   *     next checkpoint, loaded in turn): what the earlier replays froze is frozen again while
   *     these replay
   */
  void replay(List<SurgeryRecord> records, boolean undoOwn, boolean inTurn)
      throws MalformedModelException {
    List<String> defaulted = new ArrayList<>();
    List<Algorithm> algorithms = algorithms(records, defaulted);
    // A snapshot cannot bring back arrays that a committed surgery freed: it is taken on a block
    // without arrays (the documented use, and what load() and the agent hand over).
    BlockTreeSnapshot snapshot =
        undoOwn && ReplayShapes.noArrays(block) ? BlockTreeSnapshot.of(block) : null;
    ReplayFreezes freezes = ReplayFreezes.before(block, inTurn);
    try {
      replayEach(records, algorithms, defaulted, freezes);
    } catch (MalformedModelException | RuntimeException | Error e) {
      // A refused record leaves the block as it was, with the records before it undone too: the
      // freezes as far as a block with arrays allows, a snapshot the rest. A failure of that must
      // not hide the refusal.
      try {
        freezes.end(false);
      } catch (RuntimeException | Error u) {
        e.addSuppressed(u);
      }
      if (snapshot != null) {
        snapshot.restore();
      }
      throw e;
    }
    freezes.end(true);
    noteFrozenByReplay(freezes);
  }

  /**
   * Every record's algorithm, checked before any is replayed, so that a file naming an algorithm
   * this JVM does not know, or values it refuses, leaves the model as it was; {@code defaulted}
   * receives each record's {@link #defaultedNote}.
   */
  private List<Algorithm> algorithms(List<SurgeryRecord> records, List<String> defaulted)
      throws MalformedModelException {
    List<Algorithm> algorithms = new ArrayList<>();
    for (int i = 0; i < records.size(); i++) {
      SurgeryRecord r = records.get(i);
      String where = where(i, r);
      AlgorithmSpec spec = Algorithms.find(r.algorithm()).orElse(null);
      if (spec == null) {
        throw new MalformedModelException(
            where
                // Under the agent the usual way in is its extensions= argument, and a
                // checkpoint loaded there (Model.load) names no other way: so name both.
                + " names an algorithm that is not registered; before loading, register it with"
                + " Algorithms.register or put its plugin jar on the class path, or, under the"
                + " surgery agent, pass the plugin's jar with the agent argument"
                + " extensions=<plugin.jar>. Known: "
                + Algorithms.names());
      }
      try {
        algorithms.add(spec.create(r.hyperparameters()));
      } catch (IllegalArgumentException e) {
        throw new MalformedModelException(where + ": " + e.getMessage(), e);
      }
      defaulted.add(defaultedNote(spec, r));
    }
    return algorithms;
  }

  /**
   * Notes with the block what the replay froze, so that a trainer freezes it again ({@link
   * SurgeryCheckpoint#frozenByReplay}).
   */
  private void noteFrozenByReplay(ReplayFreezes freezes) {
    Set<Parameter> byReplay = ParameterSets.identitySet();
    // What an earlier replay on this block froze stays frozen by replay (a model that loads the
    // checkpoints of one run in turn replays only the records it did not carry yet).
    // Still in the block is enough: a trainer without the listener (DJL's newTrainer unfreezes a
    // loaded model) may have unfrozen them in between; the next listener's trainer freezes again.
    Set<Parameter> earlier = CarriedRecords.frozenOrNull(block);
    if (earlier != null) {
      Set<Parameter> present = ParameterSets.all(block);
      for (Parameter p : earlier) {
        if (present.contains(p)) {
          byReplay.add(p);
        }
      }
    }
    // What the replayed surgery froze (born frozen included, where the layer it replaced was
    // frozen by surgery, as a training run's listener decides it), and what the records say
    // layer_freezing froze, also where the program had frozen it by hand before the load (the
    // place alone would take it for the program's); each record's paths were read right after its
    // own replay, in the tree as it then was.
    Set<Parameter> present = ParameterSets.all(block);
    for (Parameter p : freezes.frozenBySurgery()) {
      if (present.contains(p) && !p.requiresGradient()) {
        byReplay.add(p);
      }
    }
    CarriedRecords.setFrozen(
        block, byReplay.isEmpty() ? null : Collections.unmodifiableSet(byReplay));
  }

  /**
   * Says which of the algorithm's hyperparameters the record does not give, and so took their
   * defaults (empty when it gives them all): a record written by another version of DJL Surgery,
   * before a hyperparameter existed, may have meant another value, which a refused replay names.
   */
  private static String defaultedNote(AlgorithmSpec spec, SurgeryRecord r) {
    List<String> missing = new ArrayList<>();
    for (HyperParameter<?> h : spec.hyperParameters()) {
      if (!r.hyperparameters().containsKey(h.name())) {
        missing.add(h.name() + " (default " + h.defaultValue() + ")");
      }
    }
    return missing.isEmpty()
        ? ""
        : " (the record does not give "
            + String.join(", ", missing)
            + ", which took the default: a record written by another version of DJL Surgery may"
            + " have meant another value)";
  }

  /** Replays the records in turn, each checked against what it says it changed. */
  private void replayEach(
      List<SurgeryRecord> records,
      List<Algorithm> algorithms,
      List<String> defaulted,
      ReplayFreezes freezes)
      throws MalformedModelException {
    for (int i = 0; i < records.size(); i++) {
      SurgeryRecord r = records.get(i);
      String where = where(i, r);
      Algorithm algorithm = algorithms.get(i);
      if (algorithm.needsInitializedModel() && !block.isInitialized()) {
        shapeFor(where);
      }
      freezes.beforeRecord(r);
      SurgeryChanges changes;
      try {
        changes = algorithm.apply(new SurgeryContext(block, List.of(), r.epoch(), r.totalEpochs()));
      } catch (UnsupportedOperationException e) {
        // An event-driven plugin that changed blocks from apply(Event, State) only.
        throw new MalformedModelException(
            where
                + " cannot be replayed: its algorithm ("
                + algorithm.getClass().getName()
                + ") does not support apply(SurgeryContext), which a checkpoint's replay calls ("
                + e.getMessage()
                + "); an algorithm that changes blocks must implement it for its checkpoints to"
                + " load",
            e);
      } catch (NothingTargetedException e) {
        if (!changedNothingHere(r, algorithm)) {
          throw new MalformedModelException(
              where
                  + " cannot be replayed on this architecture: "
                  + e.getMessage()
                  + defaulted.get(i),
              e);
        }
        // The record says the entry changed nothing, and its includes select blocks here: an
        // earlier build ran it so (layer_freezing of too few included layers froze nothing; this
        // one refuses such an include before training). Nothing to replay, as the record says.
        changes =
            new SurgeryChanges(
                r.algorithm(),
                r.hyperparameters(),
                List.of(),
                SurgeryChanges.UNKNOWN_PARAMETERS,
                SurgeryChanges.UNKNOWN_PARAMETERS,
                0);
      } catch (RuntimeException | LinkageError | AssertionError e) {
        // A plugin's own Error too (it is named by its class then), not only its exceptions.
        String why = e instanceof RuntimeException ? e.getMessage() : e.toString();
        throw new MalformedModelException(
            where + " cannot be replayed on this architecture: " + why + defaulted.get(i), e);
      }
      checkAgainstRecord(r, changes, where, defaulted.get(i));
      String notBorn = freezes.afterRecord(r);
      if (notBorn != null) {
        throw new MalformedModelException(
            where
                + " does not describe the saved model: its record says its replacements brought "
                + notBorn
                + " frozen, which the replay did not bring (an edited record?)");
      }
      SurgeryCheckpoint.logger().debug("Surgery: replayed {} from {}", r.algorithm(), origin);
    }
  }

  /**
   * Whether a record says its entry changed nothing (its changes known and empty) and the
   * algorithm's include patterns each select a block here: a refusal to apply for want of anything
   * to change then agrees with the record, rather than telling of another architecture.
   */
  private boolean changedNothingHere(SurgeryRecord r, Algorithm algorithm) {
    return r.changes() != null
        && r.changes().isEmpty()
        && algorithm.targets().select(block).unmatchedIncludes().isEmpty();
  }

  /**
   * Records the block's shapes for an algorithm that needs an initialized model, from the root's
   * input shapes; refused when there are none or they do not fit.
   */
  private void shapeFor(String where) throws MalformedModelException {
    if (inputShapes == null || inputShapes.length == 0) {
      throw new MalformedModelException(
          where
              + " needs an initialized model, but no input shapes of its root block ("
              + BlockPaths.typeName(block)
              + ") are known: the file does not tell them (its header holds what the block"
              + " describes as its input); initialize the model with its input shapes before"
              + " loading");
    }
    try {
      ReplayShapes.record(block, manager, dataType, inputShapes);
    } catch (RuntimeException e) {
      // The shapes do not fit this block (another architecture, or a root block whose saved
      // description is not its inputs): named as a refusal of this file, not DJL's message.
      throw new MalformedModelException(
          where
              + " needs an initialized model, but the model cannot be shaped from the input"
              + " shapes it was given ("
              + Arrays.toString(inputShapes)
              + "): "
              + e.getMessage()
              + "; initialize the model with its input shapes before loading",
          e);
    }
  }

  /**
   * Refuses a replayed record whose changes are not those the record says: another architecture, or
   * an edited record.
   */
  private void checkAgainstRecord(
      SurgeryRecord r, SurgeryChanges changes, String where, String defaulted)
      throws MalformedModelException {
    // The same algorithm on the original architecture replaces the same blocks; anything else
    // means another architecture, whose parameters might even load without an error.
    // Freezing is left out: it changes no block, and a layer the user froze by hand before the
    // saved run was not frozen by its layer_freezing, while the replay on a fresh model freezes
    // it.
    Map<String, String> replayed =
        changes == null ? null : FreezeChanges.structural(SurgeryRecord.changesOf(changes));
    Map<String, String> saved = r.changes() == null ? null : FreezeChanges.structural(r.changes());
    if (saved != null && !saved.equals(replayed)) {
      throw new MalformedModelException(
          where
              + " cannot be replayed on this architecture: "
              + firstDifference(replayed, saved)
              + "; load into the architecture the model had before surgery"
              + defaulted);
    }
    if (r.changes() != null) {
      String notFrozen = FreezeChanges.firstNotFrozen(block, r.changes());
      if (notFrozen != null) {
        // The other way round is no proof: a layer the saved run froze by hand before its
        // layer_freezing is not in its record, and the replay on a fresh model freezes it
        // (unfrozen once every record is replayed).
        throw new MalformedModelException(
            where
                + " does not describe the saved model: its record says it froze "
                + notFrozen
                + " (an edited record?)");
      }
    }
  }

  private String where(int i, SurgeryRecord r) {
    return origin + ": surgery record entry " + (i + 1) + " (" + r.algorithm() + ")";
  }

  /** The first block the replay and the record disagree on, in words. */
  private static String firstDifference(Map<String, String> replayed, Map<String, String> saved) {
    Map<String, String> got = replayed == null ? Map.of() : replayed;
    for (Map.Entry<String, String> e : saved.entrySet()) {
      String there = got.get(e.getKey());
      if (!e.getValue().equals(there)) {
        return "the saved model's surgery replaced "
            + e.getKey()
            + " ("
            + e.getValue()
            + "), the replay "
            + (there == null ? "did not" : "made it " + there)
            + " (it replaced "
            + (got.isEmpty() ? "nothing" : String.join(", ", got.keySet()))
            + ")";
      }
    }
    for (Map.Entry<String, String> e : got.entrySet()) {
      if (!saved.containsKey(e.getKey())) {
        return "the replay also replaced "
            + e.getKey()
            + " ("
            + e.getValue()
            + "), which the saved model's surgery did not";
      }
    }
    return "the replay's changes differ from the record's";
  }
}
