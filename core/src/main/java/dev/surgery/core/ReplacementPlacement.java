package dev.surgery.core;

import static dev.surgery.core.BlockTrees.arraysOf;
import static dev.surgery.core.BlockTrees.parametersOf;
import static dev.surgery.core.BlockTrees.parametersRead;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.training.initializer.Initializer;
import dev.surgery.core.internal.DjlShapes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The placement step of a surgery: each replacement that stays in an initialized model gets the
 * arrays and recorded input shapes of the place it takes, on the old block's manager and in its
 * data type, before the trainers are updated. Arrays it makes are closed if the surgery rolls back.
 * The replacements are placed in decision order, except that a replacement an original holds (a
 * layer replaced inside a block its own replacement wraps) is placed first, as the tree would
 * initialize it.
 */
final class ReplacementPlacement {

  private final Block root;
  private final List<Trainer> trainers;
  private final boolean planning;
  private final boolean allowShapeChange;
  private final Journal journal;
  private final Faults faults;

  /** An array of the model, looked up once: parameter-free replacements would walk it each. */
  private NDArray[] rootAnchor;

  private boolean placedArrays;

  /** An apply's held-back draws (unused by a plan, which draws nothing). */
  private final DeferredDraws draws;

  /** The decisions whose replacements are placed, and which of them stay. */
  private final ChangedTree tree;

  /**
   * Per parameter of a replacement that stays, the decisions whose staying replacements hold it, in
   * decision order (the innermost last); built by {@link #placeHolderFirst} when first asked.
   */
  private Map<Parameter, List<TreeNode>> replacementHolders;

  /** The original whose replacement is being placed; null between two. */
  private TreeNode placing;

  /**
   * {@code planning}: a dry run, whose fresh parameters draw nothing from the engine's generator;
   * else an apply, whose draws {@code draws} holds back.
   */
  ReplacementPlacement(
      Block root,
      List<Trainer> trainers,
      boolean planning,
      DeferredDraws draws,
      boolean allowShapeChange,
      Journal journal,
      Faults faults,
      ChangedTree tree) {
    this.root = root;
    this.trainers = trainers;
    this.planning = planning;
    this.draws = draws;
    this.allowShapeChange = allowShapeChange;
    this.journal = journal;
    this.faults = faults;
    this.tree = tree;
  }

  /**
   * Places the replacement of every decision that stays, in decision order; a replacement that an
   * original holds (see {@link #place}) is placed first, at its own place.
   */
  void placeAll() {
    for (TreeNode oldNode : tree.decided()) {
      placeDecided(oldNode);
    }
  }

  /**
   * The original whose replacement was being placed when a failure left {@link #placeAll}, null if
   * none was: a failure that names no block itself is named there.
   */
  TreeNode placing() {
    return placing;
  }

  /** Places the replacement of one decision, unless it is placed already. */
  private void placeDecided(TreeNode oldNode) {
    TreeNode swap = oldNode.swap;
    if (swap == oldNode || !tree.stays(swap) || oldNode.placed) {
      return; // returned unchanged, replaced again, dropped with its holder, or placed already
    }
    oldNode.placed = true;
    TreeNode origin = swap.origin;
    Shape[] inputShapes = origin.inputShapes; // read by the walk or when it was replaced
    if (inputShapes == null) {
      return; // structural surgery: the trainer initializes the replacement later
    }
    TreeNode outer = placing;
    placing = origin;
    place(origin.block, swap.block, inputShapes, BlockPaths.display(origin.path()));
    placing = outer;
  }

  /**
   * Places first the replacement that holds {@code p}, a parameter without an array that placement
   * found in an original: the original holds a replacement of this surgery (it was wrapped by its
   * own replacement, and a layer inside it was replaced too), which is placed at its own place
   * before the wrapper, as the tree initializes it. Answers whether a replacement holds {@code p}.
   */
  private boolean placeHolderFirst(Parameter p) {
    if (replacementHolders == null) {
      // Rare (an original holding a replacement): looked up once. A later decision's replacement
      // inside an earlier one's (a layer of a wrapped block) comes after it in the list.
      replacementHolders = new IdentityHashMap<>();
      for (TreeNode n : tree.decided()) {
        TreeNode swap = n.swap;
        if (swap != n && tree.stays(swap)) {
          for (Parameter q : parametersOf(swap.block)) {
            replacementHolders.computeIfAbsent(q, k -> new ArrayList<>(1)).add(n);
          }
        }
      }
    }
    List<TreeNode> holders = replacementHolders.get(p);
    if (holders == null) {
      return false;
    }
    // The innermost first; where its place gives it no shapes (it replaced a fresh layer of
    // another replacement, under recursion), the replacement around it places it.
    for (int i = holders.size() - 1; i >= 0 && !p.isInitialized(); i--) {
      placeDecided(holders.get(i));
    }
    return true;
  }

  /**
   * Gives a replacement that stands where {@code original} stood the arrays and recorded shapes the
   * original's place asks for, checks the arrays it came with, and (unless shape changes are
   * allowed) that it computes the same output shapes. Nothing is done for an original with a
   * parameter that has no array (structural surgery: the trainer initializes the replacement),
   * unless that parameter is a replacement's of this surgery (a block wrapped by its replacement,
   * whose layer was replaced too): that replacement is placed first, at its own place.
   */
  private void place(Block original, Block replacement, Shape[] inputShapes, String path) {
    // Both blocks' parameters are read once here and handed on: every replacement is placed, and
    // each read builds a set.
    Collection<Parameter> old = parametersRead(original);
    List<Parameter> placedFirst = null;
    for (Parameter p : old) {
      if (p.isInitialized()) {
        continue;
      }
      // A parameter without an array that no replacement of this surgery holds, or that placing
      // its holders did not give one: structural surgery, the trainer initializes it later.
      if (!(placeHolderFirst(p) && p.isInitialized())) {
        return;
      }
      if (placedFirst == null) {
        placedFirst = new ArrayList<>();
      }
      placedFirst.add(p);
    }
    Shape[] recorded = DjlShapes.recordedInputShapes(replacement);
    Collection<Parameter> own = parametersRead(replacement);
    // What arrived with arrays, its own or the old block's: its settings must agree with them.
    List<Parameter> brought = new ArrayList<>(own.size());
    for (Parameter p : own) {
      if (p.isInitialized()) {
        brought.add(p);
      }
    }
    List<Parameter> preset = presetArrays(old, brought);
    NDArray anchor = anchorArray(old);
    boolean placed = brought.size() < own.size() || recorded == null;
    if (placed) {
      initialize(own, anchor, replacement, inputShapes, path);
    }
    PresetArraysCheck.check(
        old, original, replacement, preset, recorded, inputShapes, anchor, path);
    if (!placed && !PresetArraysCheck.sameBeyondBatch(recorded, inputShapes)) {
      // Initialized for other shapes that it accepts: it records the ones it receives here (its
      // blocks below too; no array changes), which a later surgery on it and a saved file read.
      initialize(own, anchor, replacement, inputShapes, path);
    }
    if (placedFirst != null) {
      refuseWrapperChangingInnerInputs(replacement, placedFirst, inputShapes, path);
    }
    PresetArraysCheck.refuseContradictedShapes(replacement, brought, inputShapes, path);
    if (!allowShapeChange) {
      checkShapes(original, replacement, inputShapes, path);
    }
  }

  /**
   * Refuses a wrapper that gives the block it wraps other inputs than that block's place had: the
   * inner replacement ({@code placedFirst}: the parameters its placement gave arrays) was placed
   * for the inputs of the layer it replaces, which the wrapper no longer gives it. Said as such,
   * not as arrays the replacement came with.
   */
  private static void refuseWrapperChangingInnerInputs(
      Block replacement, List<Parameter> placedFirst, Shape[] inputShapes, String path) {
    try {
      PresetArraysCheck.refuseContradictedShapes(replacement, placedFirst, inputShapes, path);
    } catch (SurgeryException e) {
      throw new SurgeryException(
          path,
          "replacement "
              + replacement.getClass().getSimpleName()
              + " gives a block inside it other input shapes than that block received here, and"
              + " a layer of that block is a replacement of this surgery, placed first for the"
              + " input shapes of the layer it replaces: its arrays do not fit what it now"
              + " receives (keep the inputs of the block it wraps, or replace that layer in a"
              + " surgery of its own)",
          e);
    }
  }

  /** Whether {@link #place} initialized a replacement's parameters. */
  boolean placedArrays() {
    return placedArrays;
  }

  /**
   * The replacement's parameters with arrays of their own ({@code brought}: those with arrays), not
   * one of the original's arrays ({@code old}: its parameters).
   */
  private static List<Parameter> presetArrays(Collection<Parameter> old, List<Parameter> brought) {
    if (brought.isEmpty()) {
      return List.of();
    }
    Set<NDArray> adopted = arraysOf(old);
    List<Parameter> preset = new ArrayList<>(brought.size());
    for (Parameter p : brought) {
      if (!adopted.contains(p.getArray())) {
        preset.add(p);
      }
    }
    return preset;
  }

  /**
   * Initializes the replacement ({@code own}: its parameters) on the manager and in the data type
   * of {@code anchor}, an array of the old block or of the model.
   */
  private void initialize(
      Collection<Parameter> own,
      NDArray anchor,
      Block replacement,
      Shape[] inputShapes,
      String path) {
    List<Parameter> fresh = new ArrayList<>();
    for (Parameter p : own) {
      if (!p.isInitialized()) {
        fresh.add(p);
      }
    }
    NDManager manager;
    DataType dataType;
    if (anchor != null) {
      manager = anchor.getManager();
      dataType = anchor.getDataType();
    } else if (!trainers.isEmpty()) {
      manager = trainers.get(0).getModel().getNDManager();
      dataType = trainers.get(0).getModel().getDataType();
    } else if (fresh.isEmpty()) {
      manager = null;
      dataType = DataType.FLOAT32;
    } else {
      throw new SurgeryException(
          path,
          "cannot tell which NDManager to initialize the replacement on: the model has no"
              + " initialized parameter and no trainer was given");
    }
    placedArrays |= !fresh.isEmpty();
    // A plan draws nothing; an apply holds its draws back until nothing else can fail, where the
    // replacement's blocks let it (DeferredDraws.mayHoldBack), else draws them here, after those
    // held back before it.
    boolean holdBack = !planning && DeferredDraws.mayHoldBack(replacement);
    if (!planning && !holdBack) {
      // It may draw for parameters placement does not see yet (a layer it builds while it
      // initializes): the draws held back before it come first.
      draws.drawAll();
    }
    List<StandIn> standIns = new ArrayList<>();
    if (planning || holdBack) {
      for (Parameter p : fresh) {
        Initializer initializer = p.getInitializer();
        if (initializer != null) { // none: DJL's refusal, which the plan must give too
          Initializer standIn =
              planning ? new NoDrawInitializer(initializer) : draws.standIn(p, initializer);
          standIns.add(new StandIn(p, initializer, standIn));
          p.setInitializer(standIn);
        }
      }
    }
    try {
      if (manager == null) {
        try (NDManager scratch = NDManager.newBaseManager()) {
          replacement.initialize(scratch, dataType, inputShapes);
        }
      } else {
        replacement.initialize(manager, dataType, inputShapes);
      }
      faults.point("initialize");
    } catch (Exception e) { // a block's initialize may throw a checked exception undeclared
      throw new SurgeryException(
          path,
          "replacement "
              + replacement.getClass().getSimpleName()
              + " failed to initialize with input shapes "
              + Arrays.toString(inputShapes)
              + ": "
              + TreeSurgery.messageOf(e),
          e);
    } finally {
      for (StandIn s : standIns) {
        // Where it still stands: a block that chose an initializer while initializing keeps it.
        if (s.parameter().getInitializer() == s.standIn()) {
          s.parameter().setInitializer(s.own());
        }
      }
      for (Parameter p : fresh) {
        if (p.isInitialized()) {
          journal.closeOnRollback(p.getArray());
        }
      }
    }
  }

  /** A fresh parameter's own initializer, and the one placement gave it for the time being. */
  private record StandIn(Parameter parameter, Initializer own, Initializer standIn) {}

  /**
   * An array that tells where the old block ({@code old}: its parameters) lived: its own
   * parameter's, else any in the model.
   */
  private NDArray anchorArray(Collection<Parameter> old) {
    for (Parameter p : old) {
      if (p.isInitialized()) {
        return p.getArray();
      }
    }
    if (rootAnchor == null) {
      // Looked up once per surgery: parameter-free replacements would otherwise walk the tree each.
      rootAnchor = new NDArray[1];
      for (Parameter p : parametersOf(root)) {
        if (p.isInitialized()) {
          rootAnchor[0] = p.getArray();
          break;
        }
      }
    }
    return rootAnchor[0];
  }

  private static void checkShapes(
      Block original, Block replacement, Shape[] inputShapes, String path) {
    Shape[] expected = original.getOutputShapes(inputShapes);
    Shape[] actual;
    try {
      actual = replacement.getOutputShapes(inputShapes);
    } catch (Exception e) {
      throw new SurgeryException(
          path,
          "cannot compute the output shapes of the replacement: " + TreeSurgery.messageOf(e),
          e);
    }
    if (!Arrays.equals(expected, actual)) {
      throw new SurgeryException(
          path,
          "replacement "
              + replacement.getClass().getSimpleName()
              + " changes the output shapes from "
              + Arrays.toString(expected)
              + " to "
              + Arrays.toString(actual)
              + " (allow it: replaceModules with"
              + " SurgeryOptions.builder().optAllowShapeChange(true).build())");
    }
  }
}
