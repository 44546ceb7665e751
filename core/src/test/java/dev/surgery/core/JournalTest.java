package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import ai.djl.ndarray.NDArray;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
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

  /**
   * Many element writes (past the record arrays' first length, several times) among steps: undone
   * newest first, each step must see the lists exactly as they were when it was registered (the
   * oracle is a snapshot taken then), and the lists end as they began.
   */
  @Test
  void rollbackOfManyWritesShowsEachStepTheStateItWasRegisteredIn() {
    Random random = new Random(11);
    List<Integer> a = new ArrayList<>(Collections.nCopies(10, 0));
    List<Integer> b = new ArrayList<>(Collections.nCopies(3, -1));
    List<Integer> aBefore = List.copyOf(a);
    List<Integer> bBefore = List.copyOf(b);
    List<String> expected = new ArrayList<>();
    List<String> seen = new ArrayList<>();
    Journal journal = new Journal();
    for (int i = 1; i <= 300; i++) {
      if (random.nextInt(4) == 0) {
        String snapshot = a + " " + b;
        expected.add(0, "step " + i + " sees " + snapshot); // newest first
        int step = i;
        journal.onRollback(() -> seen.add("step " + step + " sees " + a + " " + b));
      } else {
        List<Integer> list = random.nextBoolean() ? a : b;
        int index = random.nextInt(list.size());
        journal.elementSet(list, index, list.set(index, i));
      }
    }

    journal.rollback(new IllegalStateException("test"));

    assertEquals(expected, seen);
    assertEquals(aBefore, a);
    assertEquals(bBefore, b);
  }

  /**
   * An undo step or an element write that fails does not stop the rollback: the rest is still
   * undone, and each failure is attached to the cause, in the order met.
   */
  @Test
  void rollbackGoesOnPastFailingStepsAndAttachesTheirFailures() {
    List<String> list = new ArrayList<>(List.of("a"));
    List<String> fixed = Collections.unmodifiableList(new ArrayList<>(List.of("f")));
    List<String> seen = new ArrayList<>();
    RuntimeException stepFailure = new IllegalStateException("step fails");
    Journal journal = new Journal();
    journal.onRollback(() -> seen.add("first step"));
    list.set(0, "b");
    journal.elementSet(list, 0, "a");
    journal.elementSet(fixed, 0, "g"); // setting it back throws
    journal.onRollback(
        () -> {
          throw stepFailure;
        });
    journal.onRollback(() -> seen.add("last step"));

    IllegalStateException cause = new IllegalStateException("cause");
    journal.rollback(cause);

    assertEquals(List.of("last step", "first step"), seen);
    assertEquals(List.of("a"), list);
    assertEquals(2, cause.getSuppressed().length, Arrays.toString(cause.getSuppressed()));
    assertSame(stepFailure, cause.getSuppressed()[0]);
    assertEquals(UnsupportedOperationException.class, cause.getSuppressed()[1].getClass());
  }

  @Test
  void aCommittedJournalUndoesNothingLater() {
    List<String> list = new ArrayList<>(List.of("a"));
    List<String> seen = new ArrayList<>();
    Journal journal = new Journal();
    list.set(0, "b");
    journal.elementSet(list, 0, "a");
    journal.onRollback(() -> seen.add("step"));
    journal.commit();
    journal.rollback(new IllegalStateException("test"));
    assertEquals(List.of("b"), list);
    assertEquals(List.of(), seen);
  }

  /**
   * A commit frees what the surgery made garbage, each array once however often registered, and
   * none that the surgery created (they are the model's now); nothing is freed again later, by a
   * second commit or a rollback.
   */
  @Test
  void commitClosesOnlyTheArraysMadeGarbageAndEachOnce() {
    Map<NDArray, Integer> closes = new IdentityHashMap<>();
    NDArray garbage = array(closes);
    NDArray otherGarbage = array(closes);
    NDArray created = array(closes);
    Journal journal = new Journal();
    journal.closeOnCommit(garbage);
    journal.closeOnCommit(null); // a state the optimizer never made: nothing to free
    journal.closeOnCommit(otherGarbage);
    journal.closeOnCommit(garbage);
    journal.closeOnRollback(created);
    journal.closeOnRollback(null);

    journal.commit();
    assertEquals(Map.of(garbage, 1, otherGarbage, 1), closes);

    journal.commit();
    journal.rollback(new IllegalStateException("test"));
    assertEquals(Map.of(garbage, 1, otherGarbage, 1), closes, "nothing freed again");
  }

  /**
   * A rollback frees what the surgery created and none of what it would have made garbage (the
   * rollback put those back into the model); nothing is freed later, by a commit or a second
   * rollback.
   */
  @Test
  void rollbackClosesOnlyTheArraysTheSurgeryCreatedAndEachOnce() {
    Map<NDArray, Integer> closes = new IdentityHashMap<>();
    NDArray restored = array(closes);
    NDArray created = array(closes);
    NDArray otherCreated = array(closes);
    Journal journal = new Journal();
    journal.closeOnCommit(restored);
    journal.closeOnRollback(created);
    journal.closeOnRollback(otherCreated);

    journal.rollback(new IllegalStateException("test"));
    assertEquals(Map.of(created, 1, otherCreated, 1), closes);

    journal.rollback(new IllegalStateException("test"));
    journal.commit();
    assertEquals(Map.of(created, 1, otherCreated, 1), closes, "nothing freed again");
  }

  /** An array that counts its closes and answers nothing else. */
  private static NDArray array(Map<NDArray, Integer> closes) {
    NDArray[] self = new NDArray[1];
    self[0] =
        (NDArray)
            Proxy.newProxyInstance(
                NDArray.class.getClassLoader(),
                new Class<?>[] {NDArray.class},
                (proxy, method, args) -> {
                  switch (method.getName()) {
                    case "close":
                      closes.merge(self[0], 1, Integer::sum);
                      return null;
                    case "hashCode":
                      return System.identityHashCode(proxy);
                    case "equals":
                      return proxy == args[0];
                    case "toString":
                      return "array@" + System.identityHashCode(proxy);
                    default:
                      throw new UnsupportedOperationException(method.getName());
                  }
                });
    return self[0];
  }
}
