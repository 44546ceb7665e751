package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.BlockTreeSnapshot;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Makes a checkpoint load all or nothing. DJL's {@code Model.load} writes as it reads (the model's
 * properties and data type, then one parameter after another) and keeps no undo, and the surgery
 * replay before it changes the tree: taken before both, this puts the model back as it was when
 * either fails ({@link SurgeryCheckpoint#load}, and the agent around a plain {@code Model.load}).
 */
public final class ModelLoadUndo {

  private final Model model;
  private final Block block;
  private final BlockTreeSnapshot snapshot;
  private final Map<String, String> properties;
  private final DataType dataType;
  private final Set<Parameter> frozenByReplay;
  private List<NDArray> replayed = List.of();

  private ModelLoadUndo(Model model) {
    this.model = model;
    this.block = model.getBlock();
    this.snapshot = BlockTreeSnapshot.of(block);
    this.properties = new LinkedHashMap<>(model.getProperties());
    this.dataType = model.getDataType();
    this.frozenByReplay = SurgeryCheckpoint.frozenByReplayOrNull(block);
  }

  /**
   * Records a model with its block set, before the replay and the load.
   *
   * @param model the model
   * @return the undo
   */
  public static ModelLoadUndo before(Model model) {
    return new ModelLoadUndo(model);
  }

  /**
   * Notes the arrays the replay gave new layers (on an initialized model), which DJL's load then
   * replaces without closing them.
   */
  public void replayed() {
    List<NDArray> arrays = new ArrayList<>();
    for (Parameter p : block.getParameters().values()) {
      if (p.isInitialized() && !snapshot.recorded(p.getArray())) {
        arrays.add(p.getArray());
      }
    }
    replayed = arrays;
  }

  /** After a load that succeeded: frees the replay's arrays that the load replaced. */
  public void loaded() {
    closeUnheld();
  }

  /** After a replay or load that failed: puts the model back as it was and frees what it read. */
  public void failed() {
    snapshot.restore();
    closeUnheld();
    Map<String, String> live = model.getProperties();
    try {
      live.keySet().retainAll(properties.keySet());
    } catch (UnsupportedOperationException e) {
      // a model whose properties are a copy: set back what it had
    }
    properties.forEach(model::setProperty);
    model.setDataType(dataType);
    SurgeryCheckpoint.setFrozenByReplay(block, frozenByReplay);
  }

  private void closeUnheld() {
    if (replayed.isEmpty()) {
      return;
    }
    Set<NDArray> held = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Parameter p : block.getParameters().values()) {
      if (p.isInitialized()) {
        held.add(p.getArray());
      }
    }
    for (NDArray array : replayed) {
      if (!held.contains(array) && !array.isReleased()) {
        array.close();
      }
    }
    replayed = List.of();
  }
}
