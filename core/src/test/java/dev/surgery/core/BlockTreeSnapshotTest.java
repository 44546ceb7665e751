package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.util.Pair;
import dev.surgery.core.internal.DjlInternals;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A snapshot put back after several committed surgeries and DJL-style writes: the same block
 * objects in every children list and in the fields that hold blocks (a {@code Block} field, a
 * {@code List} field), the same parameter arrays and flags, the recorded shapes, and the arrays the
 * changes created freed.
 */
class BlockTreeSnapshotTest {

  private static Linear linear() {
    return Linear.builder().setUnits(4).build();
  }

  /** Every block in walk order, and each block's field values, to compare objects. */
  private static List<Object> objects(Block root) {
    List<Object> all = new ArrayList<>();
    List<Block> todo = new ArrayList<>(List.of(root));
    while (!todo.isEmpty()) {
      Block b = todo.remove(0);
      all.add(b);
      if (b instanceof Fixtures.FieldHolder holder) {
        all.add(holder.first);
        all.add(holder.second);
      }
      if (b instanceof Fixtures.ListHolder holder) {
        all.addAll(holder.layers);
      }
      for (Pair<String, Block> child : b.getChildren()) {
        all.add(child.getKey());
        todo.add(child.getValue());
      }
    }
    return all;
  }

  /**
   * The use it is made for: a tree whose arrays are not in it (a model not initialized, or one
   * whose arrays were taken off for a load), changed by committed surgeries that build initialized
   * layers, freeze a layer and record shapes; the snapshot puts back every object and frees the
   * arrays the changes made.
   */
  @Test
  void restorePutsBackBlocksFieldsArraysAndFlagsAndFreesWhatTheChangesMade() {
    try (Model model = Model.newInstance("snapshot")) {
      Linear first = linear();
      SequentialBlock root =
          new SequentialBlock()
              .add(new Fixtures.FieldHolder(first, linear()))
              .add(new Fixtures.ListHolder(linear(), linear()));
      model.setBlock(root);
      List<Object> before = objects(root);
      Map<Parameter, Boolean> trainable = new IdentityHashMap<>();
      for (Parameter p : root.getParameters().values()) {
        trainable.put(p, p.requiresGradient());
      }

      BlockTreeSnapshot snapshot = BlockTreeSnapshot.of(root);
      // Two committed surgeries (each replaces the Linear layers held in fields and lists by
      // initialized ones), a frozen layer, shapes recorded on what stays.
      Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          Linear.class,
          (block, index) -> {
            Linear fresh = linear();
            fresh.initialize(model.getNDManager(), model.getDataType(), new Shape(2, 4));
            return fresh;
          });
      ModuleSurgery.replaceModuleClasses(root, policies, List.of(), false, null);
      ModuleSurgery.replaceModuleClasses(root, policies, List.of(), false, null);
      root.getChildren().get(0).getValue().freezeParameters(true);
      assertFalse(model.getNDManager().getManagedArrays().isEmpty());

      snapshot.restore();

      List<Object> after = objects(root);
      assertEquals(before.size(), after.size());
      for (int i = 0; i < before.size(); i++) {
        Object expected = before.get(i);
        if (expected instanceof String) {
          assertEquals(expected, after.get(i), "key " + i);
        } else {
          assertSame(expected, after.get(i), "object " + i);
        }
      }
      for (Parameter p : root.getParameters().values()) {
        assertFalse(p.isInitialized(), p.getName());
        assertEquals(trainable.get(p), p.requiresGradient(), p.getName());
      }
      assertNull(DjlInternals.recordedInputShapes(first));
      assertEquals(0, model.getNDManager().getManagedArrays().size(), "arrays the changes made");
    }
  }

  @Test
  void restoreUndoesDjlStyleArrayReplacementAndShapes() {
    try (Model model = Model.newInstance("load-like")) {
      Linear layer = linear();
      SequentialBlock root = new SequentialBlock().add(layer);
      model.setBlock(root);
      Parameter weight = layer.getParameters().get("weight");
      BlockTreeSnapshot snapshot = BlockTreeSnapshot.of(root);
      // What a load into a fresh model does: shapes recorded, arrays read.
      root.initialize(model.getNDManager(), model.getDataType(), new Shape(2, 3));
      assertTrue(weight.isInitialized());

      snapshot.restore();

      assertFalse(weight.isInitialized());
      assertNull(weight.getShape());
      assertNull(DjlInternals.recordedInputShapes(layer));
      assertEquals(0, model.getNDManager().getManagedArrays().size());
      // And the model initializes anew for other shapes, as a fresh one does.
      root.initialize(model.getNDManager(), model.getDataType(), new Shape(2, 5));
      assertEquals(new Shape(4, 5), weight.getArray().getShape());
    }
  }
}
