package dev.surgery.core;

import static java.lang.Boolean.TRUE;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import dev.surgery.core.internal.DjlShapes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Checks a replacement that arrived with arrays of its own (its replacement function initialized
 * it, or set arrays on its parameters) against the initialized block it replaces, before the
 * surgery commits. The surgery leaves such arrays as they are, and the output-shape check alone
 * does not see a block initialized in another data type or for other input channels: the next
 * training step would then fail in the engine, after the old block's arrays were freed. Arrays the
 * replacement adopted from the old block are not looked at: they fit by construction.
 *
 * <p>The data type must be the model's (that of the old block's arrays). The input shapes the
 * replacement was initialized for must be the old block's, the batch dimension aside; where they
 * differ elsewhere (a length or a size the block may well accept), the two blocks' inference
 * forwards on zeros of the old block's input shapes decide: a replacement that fails where the old
 * block runs is refused. Nothing is run on the usual paths (a replacement the surgery initializes,
 * one initialized for the old block's shapes, one that adopts the old block's arrays, one holding
 * copies of them such as {@link WeightCopy} makes: each array has a namesake of its shape there).
 */
final class PresetArraysCheck {

  private PresetArraysCheck() {}

  /**
   * Refuses a replacement whose own arrays cannot work where the old block was.
   *
   * @param oldParameters every parameter of {@code original}
   * @param original the replaced block, initialized, its arrays still open
   * @param replacement the replacement, placed
   * @param preset the replacement's parameters that had arrays before placement and do not wrap one
   *     of the old block's arrays; nothing is checked when empty
   * @param recorded the input shapes the replacement recorded before placement, or null
   * @param inputShapes the old block's input shapes
   * @param anchor an array of the old block (else of the model): the data type and manager
   * @param path the block's display path, for messages
   * @throws SurgeryException naming the path and what does not fit
   */
  static void check(
      Collection<Parameter> oldParameters,
      Block original,
      Block replacement,
      Collection<Parameter> preset,
      Shape[] recorded,
      Shape[] inputShapes,
      NDArray anchor,
      String path) {
    if (preset.isEmpty() || anchor == null) {
      return;
    }
    DataType expected = anchor.getDataType();
    // The old block's arrays by parameter name, read once for both checks below.
    Map<String, List<NDArray>> oldArrays = new HashMap<>();
    for (Parameter o : oldParameters) {
      if (o.isInitialized()) {
        oldArrays.computeIfAbsent(o.getName(), k -> new ArrayList<>(1)).add(o.getArray());
      }
    }
    for (Parameter p : preset) {
      DataType actual = p.getArray().getDataType();
      // The old block's namesake says the type (a block may hold an index next to its weights);
      // else the model's.
      List<NDArray> namesakes = oldArrays.get(p.getName());
      DataType wanted = namesakes == null ? expected : namesakes.get(0).getDataType();
      if (actual != wanted) {
        throw new SurgeryException(
            path,
            "the replacement's parameter '"
                + p.getName()
                + "' holds "
                + actual
                + " values where the model's are "
                + wanted
                + ": initialize the replacement with the model's data type, or leave it"
                + " uninitialized for the surgery to initialize");
      }
    }
    if (recorded != null
        ? sameBeyondBatch(recorded, inputShapes)
        : sameNamesAndShapes(preset, oldArrays)) {
      return; // initialized for the old block's shapes, or copies of its arrays (WeightCopy)
    }
    String initializedFor =
        recorded == null ? "arrays set by hand" : "input shapes " + Arrays.toString(recorded);
    try (NDManager scratch = anchor.getManager().newSubManager()) {
      // A block may compute on its weights first (weight.transpose()): the result then belongs to
      // the weight's manager. Lent to the scratch manager, the arrays take every such result with
      // them into it, and go back to their own managers when it closes.
      Set<NDArray> lent = Collections.newSetFromMap(new IdentityHashMap<>());
      for (Block block : List.of(original, replacement)) {
        for (Parameter p : BlockTrees.parametersOf(block)) {
          if (p.isInitialized() && lent.add(p.getArray())) {
            p.getArray().tempAttach(scratch);
          }
        }
      }
      NDList inputs = new NDList();
      for (Shape shape : inputShapes) {
        inputs.add(scratch.zeros(shape, expected));
      }
      ParameterStore store = new ParameterStore(scratch, false);
      try {
        original.forward(store, inputs, false);
      } catch (Exception | LinkageError | AssertionError e) { // checked ones undeclared too
        return; // the old block needs other inputs (indices, say): zeros cannot judge
      }
      try {
        replacement.forward(store, inputs, false);
      } catch (Exception | LinkageError | AssertionError | StackOverflowError e) {
        throw new SurgeryException(
            path,
            "the replacement was initialized with "
                + initializedFor
                + ", but the block it replaces receives "
                + Arrays.toString(inputShapes)
                + " and the replacement's forward fails there: "
                + (e.getMessage() == null
                    ? e.toString()
                    : e.getMessage().lines().findFirst().orElse(""))
                + " (initialize it for those shapes, or leave it uninitialized)",
            e);
      }
    }
  }

  /**
   * Refuses arrays a replacement brought (its own, or new parameters around the old block's very
   * arrays) of another shape than the settings of the block holding them give them for the inputs
   * it receives here (a {@code Conv2d} declaring a 5 x 5 kernel around a 3 x 3 weight): the
   * declared output shapes follow the settings, the forward the arrays, so neither the output-shape
   * check nor a forward that runs would notice. The replacement is asked with the inputs of the
   * place it takes; a block inside it with the inputs it recorded when placement initialized it. A
   * block that refuses those inputs is left to the forward and output-shape checks. Run after
   * placement.
   */
  static void refuseContradictedShapes(
      Block replacement, Collection<Parameter> brought, Shape[] inputShapes, String path) {
    if (brought.isEmpty()) {
      return;
    }
    if (BlockPaths.children(replacement).isEmpty()) {
      // A leaf (the usual replacement): what it brought are its own parameters; no walk.
      refuseContradictedIn(replacement, replacement, brought, inputShapes, path);
      return;
    }
    Set<Parameter> asked = Collections.newSetFromMap(new IdentityHashMap<>());
    asked.addAll(brought);
    BlockTrees.visitOnce(
        replacement,
        block -> {
          List<Parameter> own = new ArrayList<>();
          for (Parameter p : BlockTrees.directParameters(block)) {
            if (asked.contains(p)) {
              own.add(p);
            }
          }
          Shape[] inputs =
              block == replacement ? inputShapes : DjlShapes.recordedInputShapes(block);
          refuseContradictedIn(block, replacement, own, inputs, path);
        });
  }

  /**
   * {@link #refuseContradictedShapes} for one block inside the replacement: {@code own} its
   * parameters to check, {@code inputs} the inputs it receives (null: unknown, nothing checked).
   */
  private static void refuseContradictedIn(
      Block block, Block replacement, Collection<Parameter> own, Shape[] inputs, String path) {
    if (!(block instanceof AbstractBaseBlock owner) || own.isEmpty() || inputs == null) {
      return;
    }
    boolean allFit = true;
    for (Parameter p : own) {
      allFit &= TRUE.equals(DjlShapes.declaresShape(block, inputs, p, p.getArray().getShape()));
    }
    if (allFit) {
      return; // the usual answer, told without building the declared shapes
    }
    Map<Parameter, Shape> declared;
    try {
      declared = DjlShapes.declaredShapes(owner, inputs);
    } catch (RuntimeException e) {
      return;
    }
    for (Parameter p : own) {
      Shape wanted = declared.get(p);
      Shape held = p.getArray().getShape();
      if (wanted != null && !wanted.equals(held)) {
        throw new SurgeryException(
            path,
            "the replacement's "
                + (block == replacement ? "" : block.getClass().getSimpleName() + " ")
                + "parameter '"
                + p.getName()
                + "' holds an array of shape "
                + held
                + ", but its own settings make it "
                + wanted
                + " for the input shapes "
                + Arrays.toString(inputs)
                + " it receives: build the replacement with the settings of its arrays, or"
                + " leave it uninitialized");
      }
    }
  }

  /** Whether each parameter has a namesake of the same shape among the old block's arrays. */
  private static boolean sameNamesAndShapes(
      Collection<Parameter> preset, Map<String, List<NDArray>> oldArrays) {
    for (Parameter p : preset) {
      Shape shape = p.getArray().getShape();
      if (!anyOfShape(oldArrays.getOrDefault(p.getName(), List.of()), shape)) {
        return false;
      }
    }
    return true;
  }

  private static boolean anyOfShape(List<NDArray> arrays, Shape shape) {
    for (NDArray a : arrays) {
      if (a.getShape().equals(shape)) {
        return true;
      }
    }
    return false;
  }

  /** Whether two lists of input shapes agree but for the batch dimension. */
  static boolean sameBeyondBatch(Shape[] recorded, Shape[] inputShapes) {
    if (recorded.length != inputShapes.length) {
      return false;
    }
    for (int i = 0; i < recorded.length; i++) {
      Shape a = recorded[i];
      Shape b = inputShapes[i];
      if (a.dimension() != b.dimension() || (a.dimension() > 0 && !a.slice(1).equals(b.slice(1)))) {
        return false;
      }
    }
    return true;
  }
}
