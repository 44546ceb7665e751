package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The journal keeps element writes as records, not undo steps; a rollback must still undo every
 * change newest first, element writes and other steps interleaved as they were made (the expected
 * history is written out by hand).
 */
class JournalTest {

  @Test
  void rollbackUndoesElementWritesAndStepsNewestFirst() {
    List<String> list = new ArrayList<>(List.of("a", "x"));
    List<String> seen = new ArrayList<>();
    Journal journal = new Journal();
    list.set(0, "b");
    journal.elementSet(list, 0, "a");
    journal.onRollback(() -> seen.add("step 1 sees " + list));
    list.set(0, "c");
    journal.elementSet(list, 0, "b");
    list.set(1, "y");
    journal.elementSet(list, 1, "x");
    journal.onRollback(() -> seen.add("step 2 sees " + list));
    journal.onRollback(() -> seen.add("step 3 sees " + list));
    list.set(1, "z");
    journal.elementSet(list, 1, "y");

    journal.rollback(new IllegalStateException("test"));

    assertEquals(List.of("a", "x"), list);
    assertEquals(List.of("step 3 sees [c, y]", "step 2 sees [c, y]", "step 1 sees [b, x]"), seen);
  }

  @Test
  void aCommittedJournalUndoesNothingLater() {
    List<String> list = new ArrayList<>(List.of("a"));
    Journal journal = new Journal();
    list.set(0, "b");
    journal.elementSet(list, 0, "a");
    journal.commit();
    journal.rollback(new IllegalStateException("test"));
    assertEquals(List.of("b"), list);
  }
}
