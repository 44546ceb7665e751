package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.util.Pair;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.testing.PassThroughBlock;
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
      assertNull(DjlShapes.recordedInputShapes(first));
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
      assertNull(DjlShapes.recordedInputShapes(layer));
      assertEquals(0, model.getNDManager().getManagedArrays().size());
      // And the model initializes anew for other shapes, as a fresh one does.
      root.initialize(model.getNDManager(), model.getDataType(), new Shape(2, 5));
      assertEquals(new Shape(4, 5), weight.getArray().getShape());
    }
  }

  /**
   * Holds its children in an array and a map as well, and a fixed list ({@code List.of}) of one it
   * never changes: the fields a snapshot records with their contents.
   */
  static final class CollectionsHolder extends PassThroughBlock {
    final Block[] asArray;
    final Map<String, Block> byName = new LinkedHashMap<>();
    final List<Block> fixed;
    final Map<String, Block> fixedByName;
    final List<Block> listed = new ArrayList<>();

    CollectionsHolder(Block first, Block second, Block kept) {
      asArray = new Block[] {addChildBlock("first", first), addChildBlock("second", second)};
      byName.put("first", first);
      byName.put("second", second);
      fixed = List.of(addChildBlock("kept", kept));
      fixedByName = Map.of("kept", kept);
      listed.add(first);
    }
  }

  /**
   * The contents of array and map fields that a surgery wrote are put back, element by element and
   * in order; a fixed list nothing changed is left alone (it cannot be written at all).
   */
  @Test
  void restorePutsBackArrayAndMapContentsAndLeavesAnUnchangedFixedListAlone() {
    Linear first = linear();
    Linear second = linear();
    Block kept = Blocks.identityBlock();
    CollectionsHolder holder = new CollectionsHolder(first, second, kept);
    SequentialBlock root = new SequentialBlock().add(holder);
    BlockTreeSnapshot snapshot = BlockTreeSnapshot.of(root);
    Map<Class<? extends Block>, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(Linear.class, (block, index) -> linear());
    ModuleSurgery.replaceModuleClasses(root, policies);
    assertNotSame(first, holder.asArray[0], "the surgery wrote the array");
    assertNotSame(second, holder.byName.get("second"), "and the map");
    holder.byName.put("extra", kept); // writes of another kind: an entry and an element added
    holder.listed.add(second);

    snapshot.restore();

    assertArrayEquals(new Block[] {first, second}, holder.asArray);
    assertSame(first, holder.asArray[0]);
    assertSame(second, holder.asArray[1]);
    assertEquals(List.of("first", "second"), new ArrayList<>(holder.byName.keySet()));
    assertSame(first, holder.byName.get("first"));
    assertSame(second, holder.byName.get("second"));
    assertSame(kept, holder.fixed.get(0));
    assertEquals(Map.of("kept", kept), holder.fixedByName);
    assertEquals(1, holder.listed.size());
    assertSame(first, holder.listed.get(0));
    assertEquals(List.of(first, second, kept), holder.getChildren().values());
  }

  /**
   * A parameter the snapshot knew gets back its declared shape (set since, with no array) and
   * whether it trains (frozen since).
   */
  @Test
  void restorePutsBackADeclaredShapeAndTheTrainingFlag() {
    Linear layer = linear();
    SequentialBlock root = new SequentialBlock().add(layer);
    Parameter weight = layer.getParameters().get("weight");
    Parameter bias = layer.getParameters().get("bias");
    boolean biasTrains = bias.requiresGradient();
    BlockTreeSnapshot snapshot = BlockTreeSnapshot.of(root);
    weight.setShape(new Shape(4, 3));
    bias.freeze(biasTrains);

    snapshot.restore();

    assertNull(weight.getShape());
    assertEquals(biasTrains, bias.requiresGradient());
  }

  /**
   * Arrays the snapshot knew that moved to another of its parameters are put back in place, not
   * freed as arrays a change made: two layers whose weights swapped keep both, alive.
   */
  @Test
  void restoreKeepsKnownArraysThatMovedBetweenParameters() {
    try (Model model = Model.newInstance("swapped")) {
      Linear a = linear();
      Linear b = linear();
      SequentialBlock root = new SequentialBlock().add(a).add(b);
      model.setBlock(root);
      root.initialize(model.getNDManager(), model.getDataType(), new Shape(2, 4));
      Parameter wa = a.getParameters().get("weight");
      Parameter wb = b.getParameters().get("weight");
      NDArray arrayA = wa.getArray();
      NDArray arrayB = wb.getArray();
      BlockTreeSnapshot snapshot = BlockTreeSnapshot.of(root);
      DjlBlocks.restoreParameter(wa, arrayB, wb.getShape());
      DjlBlocks.restoreParameter(wb, arrayA, wa.getShape());

      snapshot.restore();

      assertSame(arrayA, wa.getArray());
      assertSame(arrayB, wb.getArray());
      assertFalse(arrayA.isReleased());
      assertFalse(arrayB.isReleased());
    }
  }

  /** A layer whose class counts, in a static field, the instances the program built. */
  static final class CountedLayer extends Fixtures.InOrderHolder {
    static int built;

    CountedLayer() {
      built++;
    }

    @Override
    List<Block> layers() {
      return List.of();
    }
  }

  /**
   * A class's static fields are no block's state: shared by every instance, in this tree or not,
   * they are the program's. Restore leaves them as the program left them (here the count of the
   * instances built, one more since the snapshot).
   */
  @Test
  void restoreLeavesTheStaticFieldsOfBlockClassesAlone() {
    SequentialBlock root = new SequentialBlock().add(new CountedLayer());
    int before = CountedLayer.built;
    BlockTreeSnapshot snapshot = BlockTreeSnapshot.of(root);
    root.add(new CountedLayer());

    snapshot.restore();

    assertEquals(1, root.getChildren().size());
    assertEquals(before + 1, CountedLayer.built);
  }
}
