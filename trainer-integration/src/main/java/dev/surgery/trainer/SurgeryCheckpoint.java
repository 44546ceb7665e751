package dev.surgery.trainer;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Utils;
import dev.surgery.core.SurgeryLock;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
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
   * @return the file's records, in order, those the model carried already included (then fewer or
   *     none were replayed now: the block is what all of them made); empty when the file has none
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
      if (block == null || !ReplayShapes.noArrays(block)) {
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
      CarriedHistory.refuseIntoChangedModel(model, paramsFile);
      CarriedHistory.forgetFreezes(model);
      return records;
    }
    int carried = CarriedHistory.carriedPrefix(model, records, paramsFile);
    if (carried < records.size()) {
      Block block = model.getBlock();
      ReplayShapes.RootInputs rootInputs = ReplayShapes.rootInputs(block, header, paramsFile);
      Shape[] inputShapes = rootInputs.shapes();
      new RecordReplay(
              block,
              model.getNDManager(),
              model.getDataType(),
              inputShapes,
              origin(paramsFile, carried, rootInputs))
          .replay(records.subList(carried, records.size()), undoOwn, carried > 0);
      if (inputShapes.length > 0 && ReplayShapes.noArrays(block)) {
        // Every layer the replay built gets the shapes its arrays must have (still no array), so
        // that the load can be checked against them: DJL's own load checks no shape.
        try {
          ReplayShapes.record(block, model.getNDManager(), model.getDataType(), inputShapes);
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
   * What a replay's messages name: the file, where in its record the replay starts (entries are
   * counted from the first one replayed), and the program's input shapes where the file does not
   * tell them (a refusal may then come of them, not of the file).
   */
  private static String origin(Path paramsFile, int carried, ReplayShapes.RootInputs rootInputs) {
    String origin =
        carried == 0
            ? paramsFile.toString()
            : paramsFile
                + " (from its record entry "
                + (carried + 1)
                + "; the model carries the entries before it)";
    if (rootInputs.fromProgram()) {
      origin +=
          " (shaped with "
              + rootInputs.source()
              + ", "
              + Arrays.toString(rootInputs.shapes())
              + ": the file does not tell them)";
    }
    return origin;
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
      new RecordReplay(block, manager, dataType, inputShapes, origin).replay(records, true, false);
    } finally {
      SurgeryLock.get().unlock();
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
   * before the program's {@code main}, which may still configure its logging. The replay's
   * collaborators log under it too: one logger to enable for what a checkpoint load does.
   */
  static Logger logger() {
    return LogHolder.LOGGER;
  }

  private static final class LogHolder {
    static final Logger LOGGER = LoggerFactory.getLogger(SurgeryCheckpoint.class);
  }
}
