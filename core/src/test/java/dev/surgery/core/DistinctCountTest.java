package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The distinct count of matched leaves, against an identity set (the JDK's): its filter lets most
 * objects through unchecked, so a repeat it missed, or an equal-but-distinct object it merged,
 * would show as a different number.
 */
class DistinctCountTest {

  @Test
  void agreesWithAnIdentitySetAtEverySize() {
    Random random = new Random(12);
    for (int size : new int[] {0, 1, 2, 3, 63, 64, 65, 1_000, 20_000, 150_000}) {
      for (int repeatsPerTen : new int[] {0, 1, 5, 9}) {
        DistinctCount count = new DistinctCount();
        Set<Object> oracle = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Object> added = new ArrayList<>();
        for (int i = 0; i < size; i++) {
          Object o =
              !added.isEmpty() && random.nextInt(10) < repeatsPerTen
                  ? added.get(random.nextInt(added.size()))
                  : new String("leaf"); // equal to every other, never the same object
          added.add(o);
          count.add(o);
          oracle.add(o);
        }
        assertEquals(oracle.size(), count.distinct(), size + " added, " + repeatsPerTen + "/10");
      }
    }
  }

  /**
   * Distinct objects with the same identity hash fall on the same filter bit: the identity check
   * behind the filter must count both, and a repeat of either once.
   */
  @Test
  void countsObjectsWithTheSameIdentityHashApart() {
    Object[] pair = dev.surgery.core.testing.IdentityHashCollisions.pair();
    DistinctCount count = new DistinctCount();
    Set<Object> oracle = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Object o : new Object[] {pair[0], new Object(), pair[1], pair[0], new Object(), pair[1]}) {
      count.add(o);
      oracle.add(o);
    }
    assertEquals(oracle.size(), count.distinct());
  }

  /**
   * null, whose identity hash is 0, counts once however often it is added, as in an identity set.
   */
  @Test
  void countsNullOnce() {
    for (int others : new int[] {0, 1, 100}) {
      DistinctCount count = new DistinctCount();
      Set<Object> oracle = Collections.newSetFromMap(new IdentityHashMap<>());
      for (int i = 0; i < others + 3; i++) {
        Object o = i < 3 ? null : new Object();
        count.add(o);
        oracle.add(o);
      }
      assertEquals(oracle.size(), count.distinct(), others + " others");
    }
  }

  /**
   * The count on a large tree whose matched leaves are shared by several parents (each met many
   * times), against a count made with the JDK's identity set over the same walk.
   */
  @Test
  void countModuleInstancesCountsSharedLeavesOnceInALargeTree() {
    Random random = new Random(3);
    List<Block> leaves = new ArrayList<>();
    for (int i = 0; i < 30_000; i++) {
      leaves.add(i % 3 == 0 ? Blocks.identityBlock() : Linear.builder().setUnits(2).build());
    }
    SequentialBlock root = new SequentialBlock();
    SequentialBlock group = new SequentialBlock();
    for (int i = 0; i < 60_000; i++) {
      // Half the places hold a leaf that another place holds too.
      group.add(leaves.get(i < 30_000 ? i : random.nextInt(leaves.size())));
      if (group.getChildren().size() == 10) {
        root.add(group);
        group = new SequentialBlock();
      }
    }
    root.add(group);
    Set<Block> oracle = Collections.newSetFromMap(new IdentityHashMap<>());
    List<Block> todo = new ArrayList<>(List.of(root));
    while (!todo.isEmpty()) {
      Block b = todo.remove(todo.size() - 1);
      for (var child : b.getChildren()) {
        if (child.getValue() instanceof Linear) {
          oracle.add(child.getValue());
        }
        todo.add(child.getValue());
      }
    }
    assertEquals(20_000, oracle.size());
    assertEquals(oracle.size(), ModuleSurgery.countModuleInstances(root, Linear.class));
  }
}
