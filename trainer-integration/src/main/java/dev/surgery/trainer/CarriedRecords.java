package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.internal.WeakIdentityMap;
import java.lang.ref.WeakReference;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * What this JVM knows about the surgery each model's block carries, which the block itself cannot
 * say: the records it was replayed or changed by, the parameters that surgery froze on it, and
 * which block a model's {@code surgery} property was written for. Kept weakly by block and by
 * model, so a dropped model frees its entries. Read and written by checkpoint loads and their undo,
 * the listener's records and the agent's saves.
 */
final class CarriedRecords {

  /** Parameters that a replay froze, or surgery froze since, by root block. */
  private static final WeakIdentityMap<Block, Set<Parameter>> FROZEN = new WeakIdentityMap<>();

  /**
   * The saved run's program's part of the layers its records froze, as a replay found it (frozen by
   * the replay beyond what the records name, and unfrozen again at its end; or frozen by the
   * program already), by root block: a later replay of the same run's records (the next checkpoint,
   * loaded in turn) freezes them while it replays, as the saved run had them.
   */
  private static final WeakIdentityMap<Block, Set<Parameter>> PROGRAM_FROZEN =
      new WeakIdentityMap<>();

  /**
   * Of what a replay counted as surgery's freezes on a root block ({@link #FROZEN}: a layer the
   * record says layer_freezing froze), the parameters the program had frozen itself before that
   * replay: a later load of a file without a record forgets surgery's freezes but leaves these, as
   * that file loaded into a fresh model the program froze so would have them.
   */
  private static final WeakIdentityMap<Block, Set<Parameter>> HELD_BY_PROGRAM =
      new WeakIdentityMap<>();

  /** The surgery records each root block carries (replayed, or applied by a listener). */
  private static final WeakIdentityMap<Block, String> CARRIED = new WeakIdentityMap<>();

  /**
   * Per model, the root block its {@code surgery} property was last written for by a listener or a
   * replay, weakly (a model reused with {@code setBlock} must not keep its old block alive).
   */
  private static final WeakIdentityMap<Model, WeakReference<Block>> DESCRIBED =
      new WeakIdentityMap<>();

  /** Which block a model's property described, as {@link #described} saw it; null: none. */
  record Described(WeakReference<Block> block) {}

  private CarriedRecords() {}

  /** The parameters surgery froze on a root block, or null when it froze none. */
  static Set<Parameter> frozenOrNull(Block root) {
    if (root == null) {
      return null;
    }
    Set<Parameter> own = FROZEN.get(root);
    // Under the agent, the other copy of the library may have replayed or frozen it.
    return own != null ? own : LibraryCopies.frozenElsewhere(root);
  }

  /** What this copy alone knows surgery froze on a root block; null when none (for the others). */
  static Set<Parameter> ownFrozenOrNull(Block root) {
    return root == null ? null : FROZEN.get(root);
  }

  /** Sets (null: clears) what surgery froze on a root block: a replay, or an undo. */
  static void setFrozen(Block root, Set<Parameter> frozen) {
    if (frozen == null) {
      FROZEN.remove(root);
    } else {
      FROZEN.put(root, frozen);
    }
  }

  /** What the saved run's program had frozen, as a replay on the root block found; null: none. */
  static Set<Parameter> programFrozenOrNull(Block root) {
    return root == null ? null : PROGRAM_FROZEN.get(root);
  }

  /** Sets (null: clears) what the saved run's program had frozen, as a replay found. */
  static void setProgramFrozen(Block root, Set<Parameter> frozen) {
    putOrRemove(PROGRAM_FROZEN, root, frozen);
  }

  /** What the program had frozen before the replays that counted it as surgery's; null: none. */
  static Set<Parameter> heldByProgramOrNull(Block root) {
    return root == null ? null : HELD_BY_PROGRAM.get(root);
  }

  /** Sets (null: clears) what the program had frozen before the replays that counted it. */
  static void setHeldByProgram(Block root, Set<Parameter> held) {
    putOrRemove(HELD_BY_PROGRAM, root, held);
  }

  /** Notes a root block's set of parameters in a map, or forgets it where there is none. */
  private static void putOrRemove(
      WeakIdentityMap<Block, Set<Parameter>> map, Block root, Set<Parameter> parameters) {
    if (parameters == null || parameters.isEmpty()) {
      map.remove(root);
    } else {
      map.put(root, parameters);
    }
  }

  /** Adds to what surgery froze on a root block, which a new trainer of the model freezes again. */
  static void addFrozen(Block root, Set<Parameter> frozen) {
    if (root == null || frozen.isEmpty()) {
      return;
    }
    Set<Parameter> all = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Parameter> earlier = FROZEN.get(root);
    if (earlier != null) {
      all.addAll(earlier);
    }
    all.addAll(frozen);
    FROZEN.put(root, Collections.unmodifiableSet(all));
  }

  /**
   * Notes that a root block now carries these records (a listener applied one more, or a replay
   * made them; null: none): a later load of a file with the same records into this block replays
   * nothing.
   */
  static void carries(Block root, String recordsJson) {
    if (root != null) {
      if (recordsJson == null) {
        CARRIED.remove(root);
      } else {
        CARRIED.put(root, recordsJson);
      }
      StaleRecords.noteCarried(root, recordsJson);
    }
  }

  /** The records a root block carries as JSON, or null. */
  static String carriedBy(Block root) {
    return root == null ? null : CARRIED.get(root);
  }

  /** Notes that the model's {@code surgery} property now describes its current block. */
  static void describes(Model model) {
    DESCRIBED.put(model, new WeakReference<>(model.getBlock()));
  }

  /** Which block the model's property describes now, for {@link #restoreDescribed}. */
  static Described described(Model model) {
    return new Described(DESCRIBED.get(model));
  }

  /** Puts back what {@link #described} returned (a failed load undoes its {@link #describes}). */
  static void restoreDescribed(Model model, Described described) {
    if (described.block() == null) {
      DESCRIBED.remove(model);
    } else {
      DESCRIBED.put(model, described.block());
    }
  }

  /**
   * The surgery record that describes a model's current block: what the block carries (a replay, or
   * a listener's application, noted it), else the model's {@code surgery} property, unless a
   * listener or a replay wrote that property for another block (a {@code Model} given a new block
   * with {@code setBlock}, as a hyperparameter search may do, keeps the property of the block it
   * had); null when there is none.
   */
  static String recordOf(Model model) {
    String carried = carriedBy(model.getBlock());
    if (carried != null) {
      return carried;
    }
    return describesAnotherBlock(model) ? null : RecordProperty.read(model.getProperties());
  }

  /** See {@link SurgeryCheckpoint#syncRecord}. */
  static void syncRecord(Model model) {
    // What the copies of the library know together: under the agent, the copy that saves may not
    // be the one whose listener recorded the latest surgery.
    String carried = LibraryCopies.latestCarriedBy(model.getBlock());
    if (carried != null) {
      if (!carried.equals(RecordProperty.read(model.getProperties()))) {
        RecordProperty.write(model, carried);
      }
      describes(model);
    } else {
      forgetRecordOfAnotherBlock(model);
    }
  }

  /**
   * Takes a {@code surgery} property that describes another block off the model (see {@link
   * #recordOf}), so that {@code model.save} does not write a record of surgery this block never
   * had, which a load would replay.
   *
   * @return whether the property was taken off
   */
  static boolean forgetRecordOfAnotherBlock(Model model) {
    if (carriedBy(model.getBlock()) != null
        || !describesAnotherBlock(model)
        || model.getProperty(SurgeryListener.PROPERTY) == null) {
      return false;
    }
    takeRecordOff(model);
    DESCRIBED.remove(model);
    return true;
  }

  /** Takes the {@code surgery} property off a model: the file it saves claims no surgery. */
  static void takeRecordOff(Model model) {
    try {
      RecordProperty.remove(model);
    } catch (UnsupportedOperationException e) {
      // A model whose properties are a copy: an empty record says the same (no surgery).
      RecordProperty.write(model, "[]");
    }
  }

  private static boolean describesAnotherBlock(Model model) {
    WeakReference<Block> described = DESCRIBED.get(model);
    return described != null && described.get() != model.getBlock();
  }
}
