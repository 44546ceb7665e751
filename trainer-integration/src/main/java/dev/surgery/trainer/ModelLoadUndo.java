package dev.surgery.trainer;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.surgery.core.BlockTreeSnapshot;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.layers.LayerVersions;
import java.io.EOFException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Makes a checkpoint load all or nothing. DJL's {@code Model.load} writes as it reads (the model's
 * properties and data type, then one parameter after another) and keeps no undo, and the surgery
 * replay before it changes the tree: taken before both, this puts the model back as it was when
 * either fails ({@link SurgeryCheckpoint#load}, and the agent around a plain {@code Model.load}):
 * its blocks, parameter arrays, frozen flags, properties, data type and whether DJL takes it for
 * loaded (DJL's input description and model directory keep what the failed load set; the agent's
 * undo, taken inside DJL's load, finds the loaded mark set already).
 *
 * <p>An initialized model's arrays are taken off its parameters for the time of the load, so that
 * the replay's surgeries free none of them (they free the arrays of the blocks they replace); a
 * failure puts them back, and so does a load that left a parameter without an array (DJL skips a
 * parameter saved uninitialized). After a load that replaced them they are left open and
 * unreferenced, as DJL's own load leaves the arrays it replaces.
 */
public final class ModelLoadUndo {

  private final Model model;
  private final Block block;
  private final BlockTreeSnapshot snapshot;
  private final Map<String, String> properties;
  private final DataType dataType;
  private final Set<Parameter> frozenByReplay;
  private final Set<Parameter> programFrozen;
  private final Set<Parameter> heldByProgram;

  /** Whether DJL took the model for loaded (a load sets it before it reads anything). */
  private final boolean wasLoaded;

  /** What {@link StaleRecords} had noted of the blocks the carried records made. */
  private final StaleRecords.Noted madeNoted;

  private final String carried;

  /** Which block the model's surgery property described before the load, as a token to restore. */
  private final CarriedRecords.Described described;

  /** The arrays taken off their parameters for the load. */
  private final Map<Parameter, NDArray> detached = new IdentityHashMap<>();

  /** Parameters that had a shape before the replay. */
  private final Set<Parameter> shapedBefore = Collections.newSetFromMap(new IdentityHashMap<>());

  /** The parameters the replay gave a shape they had not (new layers, recorded shapes), by name. */
  private final Map<String, Built> builtByReplay = new LinkedHashMap<>();

  /** A parameter the replay shaped, and that shape: the one the load must fill. */
  private record Built(Parameter parameter, Shape shape) {}

  private ModelLoadUndo(Model model) {
    this.model = model;
    this.block = model.getBlock();
    this.snapshot = BlockTreeSnapshot.of(block);
    this.properties = new LinkedHashMap<>(model.getProperties());
    this.dataType = model.getDataType();
    this.frozenByReplay = CarriedRecords.frozenOrNull(block);
    this.programFrozen = CarriedRecords.programFrozenOrNull(block);
    this.heldByProgram = CarriedRecords.heldByProgramOrNull(block);
    this.wasLoaded = DjlTrainers.unfreezesOnNewTrainer(model);
    this.carried = CarriedRecords.carriedBy(block);
    this.madeNoted = StaleRecords.noted(block);
    this.described = CarriedRecords.described(model);
    List<Parameter> parameters = block.getParameters().values();
    for (Parameter p : parameters) {
      if (p.getShape() != null) {
        shapedBefore.add(p);
      }
    }
    // Last, once everything that could fail has run: the model is only then changed.
    for (Parameter p : parameters) {
      if (p.isInitialized() && !detached.containsKey(p)) {
        detached.put(p, p.getArray());
        DjlBlocks.restoreParameter(p, null, p.getShape());
      }
    }
  }

  /**
   * Records a model with its block set, before the replay and the load, and takes its arrays off
   * its parameters until {@link #loaded} or {@link #failed}. One of the two must follow, in a
   * {@code finally} or a catch: until then the model has no weights. {@link SurgeryCheckpoint#load}
   * does this for a program; the agent around a plain {@code Model.load}.
   *
   * @param model the model
   * @return the undo
   */
  public static ModelLoadUndo before(Model model) {
    // Each step holds the surgery lock, as every surgery does (a review: the agent's load path
    // replayed without it); DJL's read of the parameters between them is the program's call.
    return SurgeryLock.holding(() -> new ModelLoadUndo(model));
  }

  /**
   * Replays a checkpoint's surgery record on the model ({@link SurgeryCheckpoint#replay(Model,
   * Path)}) and notes the shapes it gave parameters, which the load must then fill. The tree is
   * recorded once, here: on failure the caller calls {@link #failed}, which puts it back.
   *
   * @param paramsFile the parameter file the load will read
   * @return the file's records, in order, those the model carried already included (then fewer or
   *     none were replayed now: the block is what all of them made); empty when the file has none
   * @throws IOException if the file cannot be read
   * @throws MalformedModelException if the record is malformed or cannot be replayed
   */
  public List<SurgeryRecord> replay(Path paramsFile) throws IOException, MalformedModelException {
    SurgeryLock.get().lock();
    try {
      List<SurgeryRecord> records = SurgeryCheckpoint.replay(model, paramsFile, false);
      for (Pair<String, Parameter> named : block.getParameters()) {
        Parameter p = named.getValue();
        if (p.getShape() != null && !shapedBefore.contains(p)) {
          builtByReplay.put(named.getKey(), new Built(p, p.getShape()));
        }
      }
      return records;
    } finally {
      SurgeryLock.get().unlock();
    }
  }

  /**
   * After DJL's load returned: puts back an array the load did not replace, then checks that every
   * parameter the replay shaped received an array of that shape (DJL's load does not check shapes:
   * a record that does not describe the saved model, such as an edited latent size, would load
   * arrays into layers built for others).
   *
   * @param origin the file, for the message
   * @throws MalformedModelException when an array does not fit the layer the replay built; the
   *     caller then calls {@link #failed}
   */
  public void loaded(String origin) throws MalformedModelException {
    SurgeryLock.get().lock();
    try {
      checkLoaded(origin);
    } finally {
      SurgeryLock.get().unlock();
    }
  }

  private void checkLoaded(String origin) throws MalformedModelException {
    for (Map.Entry<Parameter, NDArray> e : detached.entrySet()) {
      if (!e.getKey().isInitialized()) {
        DjlBlocks.restoreParameter(e.getKey(), e.getValue(), e.getValue().getShape());
      }
    }
    for (Map.Entry<String, Built> built : builtByReplay.entrySet()) {
      Shape loaded = built.getValue().parameter().getShape();
      Shape expected = built.getValue().shape();
      if (loaded != null && !loaded.equals(expected)) {
        throw new MalformedModelException(
            origin
                + ": parameter "
                + built.getKey()
                + " holds "
                + loaded
                + " in the file, but the replayed surgery built it as "
                + expected
                + ": this model is not the architecture the file was saved from (other layer"
                + " sizes?), or the file's surgery record does not describe the model saved in it"
                + " (edited?)");
      }
    }
  }

  /**
   * The exception a failed load throws, named where DJL's names nothing:
   *
   * <ul>
   *   <li>DJL's {@code EOFException} of a truncated parameter file becomes one that names the file;
   *   <li>DJL's refusal of an unknown encoding version ("Unsupported encoding version: 81") where
   *       the version is one a layer of this library saves with ({@link LayerVersions}) becomes one
   *       that says what happened: the file was saved from a model changed by surgery and is being
   *       loaded into the original architecture, without the replay that would change it first.
   *   <li>any other {@code MalformedModelException} of DJL's that does not name the file ("Invalid
   *       input data.") gets the file's name and what it likely means.
   * </ul>
   *
   * <p>Each keeps its type, so a program's handler still catches it, with DJL's as its cause; any
   * other failure is returned as it is.
   *
   * @param paramsFile the parameter file the load read, or null when unknown
   * @param failure what the load threw
   * @return the exception to throw in its place
   */
  public static Throwable named(Object paramsFile, Throwable failure) {
    if (failure instanceof EOFException eof && eof.getMessage() == null && paramsFile != null) {
      EOFException named =
          new EOFException(paramsFile + ": the parameters end early (a truncated file?)");
      named.initCause(failure);
      return named;
    }
    if (failure instanceof MalformedModelException malformed) {
      Matcher refusal = DJL_VERSION_REFUSAL.matcher(String.valueOf(malformed.getMessage()));
      Optional<String> layer =
          refusal.matches()
              ? LayerVersions.layerSavedAs(
                  Integer.parseInt(refusal.group(1) != null ? refusal.group(1) : refusal.group(2)))
              : Optional.empty();
      if (layer.isPresent()) {
        return new MalformedModelException(
            (paramsFile == null ? "" : paramsFile + ": ")
                + "the file holds a "
                + layer.get()
                + ", a layer of DJL Surgery, where this model has a block of the original"
                + " architecture (DJL: "
                + malformed.getMessage()
                + "). The file was saved from a model changed by surgery; loaded into the original"
                + " layers its weights would compute something else. A checkpoint with a surgery"
                + " record loads with SurgeryCheckpoint.load or under the agent, which replay the"
                + " record first; surgery made through the core API (ModuleSurgery, Algorithm.apply)"
                + " writes no record: make the same surgery on this model, then load",
            malformed);
      }
      String said = String.valueOf(malformed.getMessage());
      if (paramsFile != null && !said.contains(String.valueOf(paramsFile))) {
        // DJL's own words name no file ("Invalid input data." where the file holds another layer
        // than the model there): an outside probe met them for an edited record.
        return new MalformedModelException(
            paramsFile
                + ": DJL could not read the parameters into this model ("
                + said
                + "): the file does not fit it (another architecture, a file of another DJL version,"
                + " or a surgery record that does not describe the model saved in it: edited?)",
            malformed);
      }
    }
    return failure;
  }

  /**
   * DJL's refusals of a version byte it does not know: {@code Conv2d} and {@code LambdaBlock}
   * ("Unsupported encoding version: 81") and {@code AbstractBaseBlock} ("..., expected version 2,
   * got 86.").
   */
  private static final Pattern DJL_VERSION_REFUSAL =
      Pattern.compile(
          "(?:Unsupported encoding version: (-?\\d+)|Cannot load parameters for .*, expected version"
              + " -?\\d+, got (-?\\d+)\\.)");

  /** After a replay or load that failed: puts the model back as it was and frees what it read. */
  public void failed() {
    // A restore rewrites the tree: as any surgery, under the lock (the agent's load path too).
    SurgeryLock.holding(this::restore);
  }

  private void restore() {
    snapshot.restore();
    Map<String, String> live = model.getProperties();
    try {
      live.keySet().retainAll(properties.keySet());
    } catch (UnsupportedOperationException e) {
      // a model whose properties are a copy: set back what it had
    }
    properties.forEach(model::setProperty);
    model.setDataType(dataType);
    CarriedRecords.setFrozen(block, frozenByReplay);
    CarriedRecords.setProgramFrozen(block, programFrozen);
    CarriedRecords.setHeldByProgram(block, heldByProgram);
    DjlTrainers.restoreWasLoaded(model, wasLoaded);
    CarriedRecords.carries(block, carried);
    // What the records' blocks were like before the load, not what the restored tree is now.
    StaleRecords.restoreNoted(block, madeNoted);
    CarriedRecords.restoreDescribed(model, described);
  }
}
