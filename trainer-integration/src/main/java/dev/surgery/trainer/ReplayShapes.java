package dev.surgery.trainer;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.nn.core.LinearCollection;
import ai.djl.nn.core.Multiplication;
import ai.djl.training.initializer.Initializer;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.trainer.SurgeryCheckpoint.Header;
import java.io.IOException;
import java.nio.file.Path;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The shapes a checkpoint's replay gives a block that has no arrays: which input shapes the saved
 * root was initialized with (a parameter file does not always say), and every block's shapes
 * recorded from them without leaving an array. A replay on an uninitialized block computes no
 * weights (the load that follows sets every array), yet algorithms that need an initialized model
 * need its shapes, and the load's check needs the shape each parameter must receive.
 */
final class ReplayShapes {

  /** Allocates without computing values: the arrays only carry shapes until they are freed. */
  private static final Initializer ALLOCATE_ONLY =
      (manager, shape, dataType) -> manager.create(shape, dataType);

  private static final String FROM_PROGRAM =
      "the input shapes the program initialized the model with before the load";

  private ReplayShapes() {}

  /**
   * A root's input shapes for a replay, and where they come from (for messages).
   *
   * @param shapes the shapes, empty when none are known
   * @param source where they come from, in words
   */
  record RootInputs(Shape[] shapes, String source) {

    /** Whether they are the program's, not the file's: a refusal may then come of them. */
    boolean fromProgram() {
      return FROM_PROGRAM.equals(source);
    }
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
  static RootInputs rootInputs(Block root, Header header, Path paramsFile) {
    RootInputs fromHeader =
        new RootInputs(header.inputShapes().toArray(new Shape[0]), "the file's header");
    if (!DjlBlocks.describesInputItself(root.getClass())) {
      return fromHeader;
    }
    try {
      if (root instanceof Linear) {
        Shape input = ParamsFileHeader.linearRootInput(paramsFile);
        if (input != null) {
          return new RootInputs(new Shape[] {input}, "the root layer's saved metadata");
        }
      } else if (DjlBlocks.savesInputShapesFirst(root.getClass())) {
        List<Shape> saved = ParamsFileHeader.rootInputShapes(paramsFile);
        if (saved != null) {
          return new RootInputs(saved.toArray(new Shape[0]), "the root block's saved metadata");
        }
      }
    } catch (IOException e) {
      // Metadata of another layout, or a damaged file (which the load names).
      SurgeryCheckpoint.logger()
          .debug("Surgery: the root's metadata in {} is not read", paramsFile, e);
    }
    Shape[] initialized = DjlShapes.recordedInputShapes(root);
    if (initialized != null) {
      return new RootInputs(initialized, FROM_PROGRAM);
    }
    return root instanceof LinearCollection || root instanceof Multiplication
        ? new RootInputs(new Shape[0], "none")
        : fromHeader;
  }

  /** Whether no parameter of a tree has an array. */
  static boolean noArrays(Block block) {
    for (Parameter p : block.getParameters().values()) {
      if (p.isInitialized()) {
        return false;
      }
    }
    return true;
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
  static void record(Block block, NDManager manager, DataType dataType, Shape[] inputShapes) {
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
}
