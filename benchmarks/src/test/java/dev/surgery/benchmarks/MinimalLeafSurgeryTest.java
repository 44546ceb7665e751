package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.util.Pair;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * B4a's floor must do the engine's job on B4a's trees, or its figures mean nothing: the same
 * replacements at the same places, with the function called in the same order, and the same
 * refusals where it does not handle a case.
 */
class MinimalLeafSurgeryTest {

  @Test
  void replacesTheSameLeavesInTheSamePlacesAndOrderAsTheEngine() {
    SequentialBlock byEngine = B4ScaleAndLeaks.tree(1000);
    SequentialBlock byFloor = B4ScaleAndLeaks.tree(1000);
    List<Block> engineLeaves = preOrderLinears(byEngine);
    List<Block> floorLeaves = preOrderLinears(byFloor);
    List<Block> forEngine = new ArrayList<>();
    List<Block> forFloor = new ArrayList<>();
    List<Block> engineAsked = new ArrayList<>();
    List<Block> floorAsked = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policy = new LinkedHashMap<>();
    policy.put(
        BlockMatcher.ofClass(Linear.class),
        (block, index) -> {
          engineAsked.add(block);
          return fresh(forEngine, index);
        });

    int engineCount =
        ModuleSurgery.replaceModules(byEngine, policy, SurgeryOptions.defaults()).size();
    int floorCount =
        MinimalLeafSurgery.replace(
            byFloor,
            Linear.class,
            (block, index) -> {
              floorAsked.add(block);
              return fresh(forFloor, index);
            });

    assertEquals(450, engineCount);
    assertEquals(engineCount, floorCount);
    List<Block> engineTree = preOrder(byEngine);
    List<Block> floorTree = preOrder(byFloor);
    assertEquals(engineTree.size(), floorTree.size());
    for (int i = 0; i < engineTree.size(); i++) {
      Block e = engineTree.get(i);
      Block f = floorTree.get(i);
      assertSame(e.getClass(), f.getClass(), "block " + i);
      if (e instanceof Linear) {
        // The k-th replacement of one stands where the k-th replacement of the other stands.
        assertEquals(forEngine.indexOf(e), forFloor.indexOf(f), "block " + i);
        assertTrue(forEngine.indexOf(e) >= 0, "block " + i + " was replaced");
      }
    }
    // Both functions met every old leaf once, in pre-order (blocks compare by identity).
    assertEquals(engineLeaves, engineAsked);
    assertEquals(floorLeaves, floorAsked);
  }

  @Test
  void refusesAReplacementAlreadyInTheModel() {
    SequentialBlock root = B4ScaleAndLeaks.tree(100);
    Block inTheModel = root.getChildren().get(0).getValue();
    IllegalStateException e =
        assertThrows(
            IllegalStateException.class,
            () -> MinimalLeafSurgery.replace(root, Linear.class, (block, index) -> inTheModel));
    assertTrue(e.getMessage().contains("already part of the model"), e.getMessage());
  }

  @Test
  void refusesWhatItDoesNotHandle() {
    Linear shared = Linear.builder().setUnits(4).build();
    SequentialBlock twoParents =
        new SequentialBlock()
            .add(new SequentialBlock().add(shared))
            .add(new SequentialBlock().add(shared).add(Blocks.identityBlock()));
    assertThrows(
        IllegalStateException.class,
        () -> MinimalLeafSurgery.replace(twoParents, Linear.class, (block, index) -> null));

    SequentialBlock matchedComposite =
        new SequentialBlock().add(new SequentialBlock().add(Blocks.identityBlock()));
    assertThrows(
        IllegalStateException.class,
        () ->
            MinimalLeafSurgery.replace(
                matchedComposite, SequentialBlock.class, (block, index) -> null));

    // An unmatched leaf as replacement could be one the walk passed by: refused, not probed.
    SequentialBlock root100 = B4ScaleAndLeaks.tree(100);
    assertThrows(
        IllegalStateException.class,
        () ->
            MinimalLeafSurgery.replace(
                root100, Linear.class, (block, index) -> Blocks.identityBlock()));

    try (NDManager manager = NDManager.newBaseManager()) {
      Linear initialized = Linear.builder().setUnits(2).build();
      initialized.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
      SequentialBlock root = new SequentialBlock().add(initialized);
      assertThrows(
          IllegalStateException.class,
          () -> MinimalLeafSurgery.replace(root, Linear.class, (block, index) -> null));
    }
  }

  private static Block fresh(List<Block> made, int index) {
    assertEquals(made.size(), index, "call indices count up from 0");
    Block block = Linear.builder().setUnits(4).build();
    made.add(block);
    return block;
  }

  private static List<Block> preOrder(Block root) {
    List<Block> out = new ArrayList<>();
    for (Pair<String, Block> child : root.getChildren()) {
      out.add(child.getValue());
      out.addAll(preOrder(child.getValue()));
    }
    return out;
  }

  private static List<Block> preOrderLinears(Block root) {
    List<Block> out = new ArrayList<>();
    for (Block b : preOrder(root)) {
      if (b instanceof Linear) {
        out.add(b);
      }
    }
    return out;
  }
}
