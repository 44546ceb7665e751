package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The marks per parameter id answer as a HashMap fed the same calls; restore is a rollback. */
class IdMarksTest {

  @Test
  void agreesWithAHashMapAndRestoreUndoesEachChange() {
    IdMarks<Integer> marks = new IdMarks<>();
    Map<String, Integer> oracle = new HashMap<>();
    List<String> ids = List.of("w", "b", "gamma", "beta");
    Random random = new Random(4);
    for (int i = 0; i < 2_000; i++) {
      String id = ids.get(random.nextInt(ids.size()));
      Map<String, Integer> before = new HashMap<>(oracle);
      Integer had;
      switch (random.nextInt(3)) {
        case 0 -> {
          had = oracle.put(id, i);
          assertEquals(had, marks.put(id, i), "put " + i);
        }
        case 1 -> {
          had = oracle.remove(id);
          assertEquals(had, marks.remove(id), "remove " + i);
        }
        default -> {
          had = oracle.get(id);
          assertEquals(had, marks.get(id), "get " + i);
        }
      }
      if (random.nextInt(3) == 0) {
        // A rollback puts back what the id had: a mark, or none.
        marks.restore(id, had);
        oracle = before;
      }
      for (String each : ids) {
        assertEquals(oracle.get(each), marks.get(each), each + " after " + i);
      }
    }
  }
}
