package dev.surgery.trainer;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.nn.core.LinearCollection;
import ai.djl.nn.core.Multiplication;
import ai.djl.training.initializer.Initializer;
import ai.djl.util.Utils;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.BlockTreeSnapshot;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlShapes;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Loads checkpoints taken after surgery.
 *
 * <p>DJL's parameter files are positional: they hold no block classes, so a model changed by
 * surgery loads correctly only into the same changed architecture. {@link SurgeryListener} records
 * every applied surgery in the model's {@code surgery} property, which {@code Model.save} writes
 * into the file header before the parameters. {@link #load} reads that record back, replays it on
 * the freshly built original architecture, and only then loads the parameters.
 *
 * <pre>{@code
 * Model model = Model.newInstance("resnet");
 * model.setBlock(buildOriginalArchitecture());
 * SurgeryCheckpoint.load(model, Paths.get("build/model"), "resnet");
 * }</pre>
 */
public final class SurgeryCheckpoint {

  /** Allocates without computing values: the arrays only carry shapes until they are freed. */
  private static final Initializer ALLOCATE_ONLY =
      (manager, shape, dataType) -> manager.create(shape, dataType);

  private SurgeryCheckpoint() {}

  /**
   * The header of a DJL parameter file: everything {@code Model.save} writes before the parameters.
   *
   * @param modelName the saved model's name
   * @param dataType the model's data type
   * @param inputNames the names of the block's inputs
   * @param inputShapes the shapes of the block's inputs as it describes them ({@code
   *     Block.describeInput}): those it was initialized with, except for DJL's {@code Linear},
   *     which leaves out the last dimension, and {@code LinearCollection} and {@code
   *     Multiplication}, which keep only the first
   * @param properties the model properties, {@code surgery} and {@code Epoch} among them
   */
  public record Header(
      String modelName,
      DataType dataType,
      List<String> inputNames,
      List<Shape> inputShapes,
      Map<String, String> properties) {

    /**
     * Copies the collections.
     *
     * @param modelName the saved model's name
     * @param dataType the model's data type
     * @param inputNames the names of the block's inputs
     * @param inputShapes the shapes of the block's inputs as it describes them ({@code
     *     Block.describeInput}): those it was initialized with, except for DJL's {@code Linear},
     *     which leaves out the last dimension, and {@code LinearCollection} and {@code
     *     Multiplication}, which keep only the first
     * @param properties the model properties, {@code surgery} and {@code Epoch} among them
     */
    public Header {
      inputNames = List.copyOf(inputNames);
      inputShapes = List.copyOf(inputShapes);
      properties = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(properties));
    }
  }

  /**
   * Loads a checkpoint into a model built with the original (pre-surgery) architecture: replays the
   * surgery recorded in the file, then loads the parameters with {@code model.load(dir, name)}. A
   * checkpoint without a record loads exactly as {@code model.load} would. All or nothing: when the
   * replay is refused or the parameters cannot be read (a truncated file), the model is put back as
   * it was (its blocks, parameter arrays, frozen flags, properties and data type) and the arrays
   * the failed load read are freed. Every parameter the replay shaped (all of them in a model not
   * yet initialized, the usual case) must receive an array of that shape, else the load is refused
   * as malformed; parameters an initialized model had shaped before are loaded as DJL's {@code
   * Model.load} loads them, without comparing shapes (a program may initialize with another input
   * size than the file was trained on). The replay freezes exactly what the record says surgery
   * froze ({@link #frozenByReplay}); what the saved run's program froze itself is not in the file.
   *
   * @param model the model, with its original block set
   * @param dir the model directory
   * @param name the model name (prefix of {@code name-NNNN.params}); null for the model's name
   * @throws IOException if the file cannot be read
   * @throws MalformedModelException if the file or its surgery record is malformed
   */
  public static void load(Model model, Path dir, String name)
      throws IOException, MalformedModelException {
    load(model, dir, name, null);
  }

  /**
   * Like {@link #load(Model, Path, String)} with DJL load options (for example {@code epoch}).
   *
   * @param model the model, with its original block set
   * @param dir the model directory
   * @param name the model name; null for the model's name
   * @param options DJL load options, may be null
   * @throws IOException if the file cannot be read
   * @throws MalformedModelException if the file or its surgery record is malformed
   */
  public static void load(Model model, Path dir, String name, Map<String, ?> options)
      throws IOException, MalformedModelException {
    Objects.requireNonNull(model, "model must not be null");
    Objects.requireNonNull(dir, "dir must not be null");
    // The replay, the load and a failure's undo as one surgery: another thread's surgery must not
    // come between two replayed records, nor between the replay and the arrays it expects.
    SurgeryLock.get().lock();
    try {
      loadHoldingTheLock(model, dir, name, options);
    } finally {
      SurgeryLock.get().unlock();
    }
  }

  private static void loadHoldingTheLock(Model model, Path dir, String name, Map<String, ?> options)
      throws IOException, MalformedModelException {
    String prefix = name == null ? model.getName() : name;
    Block block = model.getBlock();
    if (block == null) {
      model.load(dir, prefix, options);
      return;
    }
    Path paramsFile = resolveParamsFile(dir, prefix, options);
    ModelLoadUndo undo = ModelLoadUndo.before(model);
    try {
      if (paramsFile != null) {
        undo.replay(paramsFile);
      }
      model.load(dir, prefix, options);
      undo.loaded(String.valueOf(paramsFile));
    } catch (
        Throwable e) { // an Error too (out of memory decoding a corrupt shape): nothing half done
      try {
        undo.failed();
      } catch (Throwable u) {
        e.addSuppressed(u);
      }
      Throwable named = ModelLoadUndo.named(paramsFile, e);
      if (named instanceof IOException io) {
        throw io; // DJL's EOFException of a truncated file names nothing
      } else if (named instanceof MalformedModelException malformed) {
        throw malformed; // nor does its refusal of a layer's version
      }
      throw e;
    }
  }

  /**
   * Finds the parameter file {@code model.load(dir, name, options)} would read: {@code
   * name-NNNN.params} with the {@code epoch} option's number or else the highest one.
   *
   * @param dir the model directory
   * @param name the model name
   * @param options DJL load options, may be null
   * @return the file, or null when there is none
   * @throws IOException if the directory cannot be listed
   */
  public static Path resolveParamsFile(Path dir, String name, Map<String, ?> options)
      throws IOException {
    Path modelDir = Utils.getNestedModelDir(dir);
    Object epochOption = options == null ? null : options.get("epoch");
    int epoch;
    if (epochOption == null) {
      epoch = Utils.getCurrentEpoch(modelDir, name);
      if (epoch < 0) {
        return null;
      }
    } else {
      epoch = Integer.parseInt(epochOption.toString());
    }
    Path file = modelDir.resolve(String.format(Locale.ROOT, "%s-%04d.params", name, epoch));
    return Files.isRegularFile(file) ? file : null;
  }

  /**
   * Replays the surgery recorded in a parameter file on a model's (original, usually uninitialized)
   * block, without loading the parameters. Algorithms that need an initialized model get an
   * uninitialized block's shapes recorded first (the root's input shapes, from the file's header or
   * the root's saved metadata, else those the program initialized it with), but no parameter
   * arrays: the load that follows sets every array, so the replay computes no weights (no random
   * initialization, no SVD of a factorization) and leaves none behind. The agent calls this before
   * letting {@code Model.load} run. A model whose own surgery record is the file's (the model that
   * was saved, loaded again) already is that architecture: nothing is replayed; one whose block
   * carries the start of the file's records (an earlier checkpoint of the same run, loaded before)
   * has only the rest replayed. A replay that fails at any point leaves a model without parameter
   * arrays as it was (its blocks, shapes, frozen flags and properties).
   *
   * @param model the model, with its original block set
   * @param paramsFile the parameter file
   * @return the replayed records; empty when the file has none
   * @throws IOException if the file cannot be read
   * @throws MalformedModelException if the record is malformed or names an unknown algorithm, or
   *     the file holds no record while this model's blocks were changed by surgery
   */
  public static List<SurgeryRecord> replay(Model model, Path paramsFile)
      throws IOException, MalformedModelException {
    Objects.requireNonNull(model, "model must not be null");
    Objects.requireNonNull(paramsFile, "paramsFile must not be null");
    // As one surgery (a review): another thread's surgery must not come between two records.
    SurgeryLock.get().lock();
    try {
      Block block = model.getBlock();
      if (block == null || !noArrays(block)) {
        return replay(model, paramsFile, true);
      }
      // The steps after the records' replay (the shapes recorded for the load's check, the record
      // noted on the block) can fail too, and the replay's own snapshot covers only the records:
      // an outside probe left the replayed blocks in a model whose replay threw. On a block
      // without arrays (the documented use) the load's undo covers every step, as in load().
      ModelLoadUndo undo = ModelLoadUndo.before(model);
      try {
        return replay(model, paramsFile, false);
      } catch (Throwable e) {
        try {
          undo.failed();
        } catch (Throwable u) {
          e.addSuppressed(u);
        }
        throw e;
      }
    } finally {
      SurgeryLock.get().unlock();
    }
  }

  /**
   * {@link #replay(Model, Path)}; {@code undoOwn} false for a caller whose {@link ModelLoadUndo}
   * already recorded the tree and puts it back on failure (no second snapshot of the whole tree).
   */
  static List<SurgeryRecord> replay(Model model, Path paramsFile, boolean undoOwn)
      throws IOException, MalformedModelException {
    Header header = readHeader(paramsFile);
    List<SurgeryRecord> records = header == null ? List.of() : records(header, paramsFile);
    if (records.isEmpty()) {
      refuseIntoChangedModel(model, paramsFile);
      forgetFreezes(model);
      return records;
    }
    int carried = carriedPrefix(model, records, paramsFile);
    if (carried < records.size()) {
      Block block = model.getBlock();
      RootShapes rootShapes = inputShapes(block, header, paramsFile);
      Shape[] inputShapes = rootShapes.shapes();
      // Entries are counted from the first one replayed: say where that one is in the file.
      String origin =
          carried == 0
              ? paramsFile.toString()
              : paramsFile
                  + " (from its record entry "
                  + (carried + 1)
                  + "; the model carries the entries before it)";
      if (rootShapes.source().startsWith("the input shapes the program")) {
        // A refusal may then come of the program's shapes, not of the file: say so.
        origin +=
            " (shaped with "
                + rootShapes.source()
                + ", "
                + Arrays.toString(inputShapes)
                + ": the file does not tell them)";
      }
      replay(
          block,
          records.subList(carried, records.size()),
          model.getNDManager(),
          model.getDataType(),
          inputShapes,
          origin,
          undoOwn,
          carried > 0);
      if (inputShapes.length > 0 && noArrays(block)) {
        // Every layer the replay built gets the shapes its arrays must have (still no array), so
        // that the load can be checked against them: DJL's own load checks no shape.
        try {
          recordShapes(block, model.getNDManager(), model.getDataType(), inputShapes);
        } catch (RuntimeException e) {
          // Only for the check after the load: without the shapes, the load goes unchecked.
          logger().debug("Surgery: no shapes recorded after the replay of {}", paramsFile, e);
        }
      }
      // After the shapes: the blocks the records made are noted with theirs (StaleRecords).
      CarriedRecords.carries(block, SurgeryJson.recordsToJson(records));
      CarriedRecords.describes(model);
    } else {
      // The model carries every record already (the run's next checkpoint, saved with no surgery
      // since): nothing to replay, but what surgery froze and a trainer lifted in between is
      // frozen again, as a replay of the rest would (a review); the program's part is not.
      ReplayFreezes.before(model.getBlock(), true).end(true);
    }
    return records;
  }

  /**
   * Refuses a file saved without surgery for a model whose blocks this JVM's surgery changed (its
   * own checkpoint from before the surgery, loaded back into it): DJL would load the weights into
   * the changed layers without a word where the layout is kept (BlurPool, weight standardization).
   */
  private static void refuseIntoChangedModel(Model model, Path paramsFile)
      throws MalformedModelException {
    String own = carriedRecords(model.getBlock());
    if (own == null || own.isBlank()) {
      return;
    }
    List<SurgeryRecord> applied;
    try {
      applied = SurgeryJson.recordsFromJson(own);
    } catch (IllegalArgumentException e) {
      return;
    }
    List<String> changed = new ArrayList<>();
    for (SurgeryRecord r : applied) {
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
  private static void forgetFreezes(Model model) {
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
   * The shapes the saved root block was initialized with. The header holds what the root describes
   * as its inputs ({@code describeInput}), the shapes themselves unless its class describes them
   * otherwise: DJL's {@code Linear} leaves out the last dimension, {@code LinearCollection} and
   * {@code Multiplication} keep only the first, a program's block may describe its input per
   * sample. For such a class they are read from the root's metadata, after the header: {@code
   * Linear}'s holds the missing dimension, and a class that saves as DJL's blocks do ({@code
   * DjlBlocks.savesInputShapesFirst}) starts with the shapes. Where the file does not tell them,
   * the shapes the program initialized the root with before the load, if it did; else the header's
   * (a class may describe its inputs itself only to name them), but none for {@code
   * LinearCollection} and {@code Multiplication}, whose description is surely not their shapes (an
   * algorithm that needs shapes is refused, and the load goes unchecked, as DJL's).
   */
  private static RootShapes inputShapes(Block root, Header header, Path paramsFile) {
    RootShapes fromHeader =
        new RootShapes(header.inputShapes().toArray(new Shape[0]), "the file's header");
    if (!DjlBlocks.describesInputItself(root.getClass())) {
      return fromHeader;
    }
    try {
      if (root instanceof Linear) {
        Shape input = ParamsFileHeader.linearRootInput(paramsFile);
        if (input != null) {
          return new RootShapes(new Shape[] {input}, "the root layer's saved metadata");
        }
      } else if (DjlBlocks.savesInputShapesFirst(root.getClass())) {
        List<Shape> saved = ParamsFileHeader.rootInputShapes(paramsFile);
        if (saved != null) {
          return new RootShapes(saved.toArray(new Shape[0]), "the root block's saved metadata");
        }
      }
    } catch (IOException e) {
      // Metadata of another layout, or a damaged file (which the load names).
      logger().debug("Surgery: the root's metadata in {} is not read", paramsFile, e);
    }
    Shape[] initialized = DjlShapes.recordedInputShapes(root);
    if (initialized != null) {
      return new RootShapes(
          initialized, "the input shapes the program initialized the model with before the load");
    }
    return root instanceof LinearCollection || root instanceof Multiplication
        ? new RootShapes(new Shape[0], "none")
        : fromHeader;
  }

  /** A root's input shapes for a replay, and where they come from (for messages). */
  private record RootShapes(Shape[] shapes, String source) {}

  private static boolean noArrays(Block block) {
    for (Parameter p : block.getParameters().values()) {
      if (p.isInitialized()) {
        return false;
      }
    }
    return true;
  }

  /**
   * The records a root block carries, as the copies of the library in the JVM know them (under the
   * agent, the program's own copy and the agent's each know only what they replayed or applied).
   */
  private static String carriedRecords(Block block) {
    return LibraryCopies.latestCarriedBy(block);
  }

  /**
   * How many of the file's records, from the first, the model's block carries already: all of them
   * when it is the model that was saved (loaded again, as a program under the agent may without
   * knowing of surgery), some when it loaded an earlier checkpoint of the same run (one model that
   * evaluates every checkpoint in turn); only the rest is replayed. Replaying what the block has
   * again would change nothing, which the check of the architecture refuses. 0 when the block
   * carries none; refused when it carries a history that is not the start of the file's.
   */
  private static int carriedPrefix(Model model, List<SurgeryRecord> records, Path origin)
      throws MalformedModelException {
    // What the block carries, not the model's property: a program that sets the original block
    // again on the same Model object keeps the property of the block it replaced.
    String own = carriedRecords(model.getBlock());
    if (own == null || own.isBlank()) {
      return 0;
    }
    List<SurgeryRecord> applied;
    try {
      applied = SurgeryJson.recordsFromJson(own);
    } catch (IllegalArgumentException e) {
      return 0;
    }
    if (applied.isEmpty()) {
      return 0;
    }
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
   * Replays records on a block.
   *
   * @param block the original architecture's root block
   * @param records the surgery to replay, in order
   * @param manager the model's manager: a scratch manager of its engine and device records the
   *     shapes when an algorithm needs them; nothing is left on either
   * @param dataType the data type for that shape recording
   * @param inputShapes the input shapes for that shape recording
   * @param origin what to name in messages (the checkpoint file)
   * @throws MalformedModelException if a record names an unknown algorithm or invalid values
   *     (checked for every record before the first is replayed), or cannot be replayed on this
   *     architecture; either way a block without arrays (the documented use) is then as it was, the
   *     records replayed before the refused one undone (on a block the caller initialized, whose
   *     replaced layers' arrays the replay frees, they stay: build it anew, or use {@link #load},
   *     which is all or nothing)
   */
  public static void replay(
      Block block,
      List<SurgeryRecord> records,
      NDManager manager,
      DataType dataType,
      Shape[] inputShapes,
      String origin)
      throws MalformedModelException {
    Objects.requireNonNull(block, "block must not be null");
    Objects.requireNonNull(records, "records must not be null");
    SurgeryLock.get().lock();
    try {
      replay(block, records, manager, dataType, inputShapes, origin, true, false);
    } finally {
      SurgeryLock.get().unlock();
    }
  }

  /**
   * {@link #replay(Block, List, NDManager, DataType, Shape[], String)}; {@code inTurn} for the rest
   * of a run's records on a block that carries the ones before them (the next checkpoint, loaded in
   * turn): what the earlier replays froze is frozen again while these replay.
   */
  private static void replay(
      Block block,
      List<SurgeryRecord> records,
      NDManager manager,
      DataType dataType,
      Shape[] inputShapes,
      String origin,
      boolean undoOwn,
      boolean inTurn)
      throws MalformedModelException {
    // Every record is checked before any is replayed, so that a file naming an algorithm this JVM
    // does not know, or values it refuses, leaves the model as it was.
    List<Algorithm> algorithms = new ArrayList<>();
    List<String> defaulted = new ArrayList<>();
    for (int i = 0; i < records.size(); i++) {
      SurgeryRecord r = records.get(i);
      String where = where(origin, i, r);
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
    // A snapshot cannot bring back arrays that a committed surgery freed: it is taken on a block
    // without arrays (the documented use, and what load() and the agent hand over).
    BlockTreeSnapshot snapshot = undoOwn && noArrays(block) ? BlockTreeSnapshot.of(block) : null;
    ReplayFreezes freezes = ReplayFreezes.before(block, inTurn);
    try {
      replayEach(
          block, records, algorithms, defaulted, manager, dataType, inputShapes, origin, freezes);
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
  private static void replayEach(
      Block block,
      List<SurgeryRecord> records,
      List<Algorithm> algorithms,
      List<String> defaulted,
      NDManager manager,
      DataType dataType,
      Shape[] inputShapes,
      String origin,
      ReplayFreezes freezes)
      throws MalformedModelException {
    for (int i = 0; i < records.size(); i++) {
      SurgeryRecord r = records.get(i);
      String where = where(origin, i, r);
      Algorithm algorithm = algorithms.get(i);
      if (algorithm.needsInitializedModel() && !block.isInitialized()) {
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
          recordShapes(block, manager, dataType, inputShapes);
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
      } catch (RuntimeException | LinkageError | AssertionError e) {
        // A plugin's own Error too (it is named by its class then), not only its exceptions.
        String why = e instanceof RuntimeException ? e.getMessage() : e.toString();
        throw new MalformedModelException(
            where + " cannot be replayed on this architecture: " + why + defaulted.get(i), e);
      }
      // The same algorithm on the original architecture replaces the same blocks; anything else
      // means another architecture, whose parameters might even load without an error.
      // Freezing is left out: it changes no block, and a layer the user froze by hand before the
      // saved run was not frozen by its layer_freezing, while the replay on a fresh model freezes
      // it.
      Map<String, String> replayed =
          changes == null ? null : FreezeChanges.structural(SurgeryRecord.changesOf(changes));
      Map<String, String> saved =
          r.changes() == null ? null : FreezeChanges.structural(r.changes());
      if (saved != null && !saved.equals(replayed)) {
        throw new MalformedModelException(
            where
                + " cannot be replayed on this architecture: "
                + firstDifference(replayed, saved)
                + "; load into the architecture the model had before surgery"
                + defaulted.get(i));
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
      String notBorn = freezes.afterRecord(r);
      if (notBorn != null) {
        throw new MalformedModelException(
            where
                + " does not describe the saved model: its record says its replacements brought "
                + notBorn
                + " frozen, which the replay did not bring (an edited record?)");
      }
      logger().debug("Surgery: replayed {} from {}", r.algorithm(), origin);
    }
  }

  /**
   * Returns the parameters that the last replay on a block froze (a recorded {@code
   * layer_freezing}), and those a {@link SurgeryListener}'s surgery froze on it since: surgery's
   * own freezes, not new parameters born frozen only because the program had frozen with DJL's API
   * the layer they replace. DJL's {@code newTrainer} unfreezes every parameter of a loaded model; a
   * {@link SurgeryListener} on the new trainer (and so the agent) freezes these again when the
   * trainer starts, and only on a loaded model. A program that trains a loaded model without one
   * can freeze them itself with {@code ModuleSurgery.freezeParameters}.
   *
   * @param root the model's root block the checkpoint was replayed on
   * @return the parameters, empty when surgery froze none
   */
  public static Set<Parameter> frozenByReplay(Block root) {
    Set<Parameter> frozen = CarriedRecords.frozenOrNull(root);
    return frozen == null ? Set.of() : frozen;
  }

  /**
   * Makes a model's {@code surgery} property the record its current block carries, so that {@code
   * model.save} writes what the saved block is: a {@code Model} given a new block with {@code
   * setBlock} (a hyperparameter search) keeps the property of the block it had, and a second {@code
   * Model} around the same block has none. The agent calls it before every save, and the listener
   * when it sees a trainer's model with another block; a program without the agent that saves a
   * {@code Model} it gave another block with {@code setBlock} before training it, or a second
   * {@code Model} around a block, calls it before {@code model.save}. A property this library did
   * not write for another block (one a plain load read from a file) is left as it is when the block
   * carries none. It warns, once per block and record, when the record no longer describes the
   * model: a block a recorded surgery made was replaced since (through the core API), so that the
   * file would not load with its replay.
   *
   * @param model the model about to be saved
   */
  public static void syncRecord(Model model) {
    CarriedRecords.syncRecord(model);
    StaleRecords.warnIfStale(model.getBlock(), RecordProperty.read(model.getProperties()));
  }

  private static String where(String origin, int i, SurgeryRecord r) {
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

  /**
   * Records the input shapes of every block and the shape of every parameter, as {@code
   * Block.initialize} does, without leaving an array: DJL has no shape-only initialization, so the
   * parameters are initialized with an allocate-only initializer on a scratch manager of the same
   * engine and device, then their arrays are freed and their own initializers restored. What the
   * algorithms see is an uninitialized block with known shapes, so replacements are built
   * structurally (a factorization computes no SVD) and {@code Model.load} sets every array exactly
   * once.
   */
  private static void recordShapes(
      Block block, NDManager manager, DataType dataType, Shape[] inputShapes) {
    Map<Parameter, Initializer> initializers = new IdentityHashMap<>();
    for (Parameter p : block.getParameters().values()) {
      if (!p.isInitialized() && !initializers.containsKey(p)) {
        initializers.put(p, p.getInitializer());
        p.setInitializer(ALLOCATE_ONLY);
      }
    }
    NDManager scratch = manager.getEngine().newBaseManager(manager.getDevice());
    try {
      block.initialize(scratch, dataType, inputShapes);
    } finally {
      for (Map.Entry<Parameter, Initializer> e : initializers.entrySet()) {
        e.getKey().close(); // frees the placeholder and makes the parameter uninitialized again
        e.getKey().setInitializer(e.getValue());
      }
      scratch.close();
    }
  }

  /**
   * Reads the surgery record of a parameter file.
   *
   * @param paramsFile a {@code .params} file written by {@code Model.save}
   * @return the records, in application order; empty when the file has none or is not a DJL
   *     parameter file (a TorchScript file, for example)
   * @throws IOException if the file cannot be read or its header is truncated
   * @throws MalformedModelException if the record is not valid
   */
  public static List<SurgeryRecord> readRecord(Path paramsFile)
      throws IOException, MalformedModelException {
    Objects.requireNonNull(paramsFile, "paramsFile must not be null");
    Header header = readHeader(paramsFile);
    return header == null ? List.of() : records(header, paramsFile);
  }

  private static List<SurgeryRecord> records(Header header, Path paramsFile)
      throws MalformedModelException {
    try {
      String json = RecordProperty.read(header.properties());
      if (json == null || json.isBlank()) {
        return List.of();
      }
      return SurgeryJson.recordsFromJson(json);
    } catch (IllegalArgumentException e) {
      throw new MalformedModelException(paramsFile + ": " + e.getMessage(), e);
    }
  }

  /**
   * Reads the header of a DJL parameter file, the way {@code BaseModel} does: {@code DJL@}, the
   * version, the model name, the data type, the input descriptions and the properties.
   *
   * @param paramsFile the file
   * @return the header, or null when the file does not start with {@code DJL@}
   * @throws IOException if the file cannot be read, is truncated or has another version
   */
  public static Header readHeader(Path paramsFile) throws IOException {
    Objects.requireNonNull(paramsFile, "paramsFile must not be null");
    return ParamsFileHeader.read(paramsFile);
  }

  /**
   * The class's logger, made when something is first logged: the agent builds the library's objects
   * before the program's {@code main}, which may still configure its logging.
   */
  private static Logger logger() {
    return LogHolder.LOGGER;
  }

  private static final class LogHolder {
    static final Logger LOGGER = LoggerFactory.getLogger(SurgeryCheckpoint.class);
  }
}
