package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * The undo log of one surgery. Every mutation registers how to undo it; native arrays that become
 * garbage are only closed once the whole surgery has succeeded, so a rollback can put them back.
 */
final class Journal {

  private final Deque<Runnable> undo = new ArrayDeque<>();
  private final Set<NDArray> closeOnCommit = Collections.newSetFromMap(new IdentityHashMap<>());
  private final List<NDArray> closeOnRollback = new ArrayList<>();

  /**
   * Element writes ({@link #elementSet}), two entries each (list, old element), with their indices
   * and the size of {@link #undo} when each was made beside: a large surgery makes one or two per
   * replaced block, and records in arrays cost no object and no undo entry each. A rollback undoes
   * a write once the undo entries registered after it are undone, so the order is kept.
   */
  private Object[] sets = new Object[32];

  private int[] setIndices = new int[16];
  private int[] setMarks = new int[16];
  private int setCount;

  /** Registers how to undo a mutation that was just made. */
  void onRollback(Runnable action) {
    undo.push(action);
  }

  /**
   * Registers that {@code list.set(index, ...)} just replaced {@code old}: a rollback sets it back,
   * in its place among the other undo steps.
   */
  <T> void elementSet(List<T> list, int index, T old) {
    if (setCount == setIndices.length) {
      sets = Arrays.copyOf(sets, sets.length * 2);
      setIndices = Arrays.copyOf(setIndices, setIndices.length * 2);
      setMarks = Arrays.copyOf(setMarks, setMarks.length * 2);
    }
    sets[2 * setCount] = list;
    sets[2 * setCount + 1] = old;
    setIndices[setCount] = index;
    setMarks[setCount++] = undo.size();
  }

  @SuppressWarnings("unchecked")
  private void undoNewestSet() {
    int k = --setCount;
    List<Object> list = (List<Object>) sets[2 * k];
    Object old = sets[2 * k + 1];
    sets[2 * k] = null;
    sets[2 * k + 1] = null;
    list.set(setIndices[k], old);
  }

  /** An array that is garbage once the surgery commits (a removed mirror or optimizer state). */
  void closeOnCommit(NDArray array) {
    if (array != null) {
      closeOnCommit.add(array);
    }
  }

  /** An array created by the surgery that must be freed if it is rolled back. */
  void closeOnRollback(NDArray array) {
    if (array != null) {
      closeOnRollback.add(array);
    }
  }

  /** Frees what the surgery made obsolete. */
  void commit() {
    for (NDArray array : closeOnCommit) {
      closeQuietly(array);
    }
    closeOnCommit.clear();
    undo.clear();
    Arrays.fill(sets, 0, 2 * setCount, null);
    setCount = 0;
    closeOnRollback.clear();
  }

  /**
   * Undoes every mutation, newest first, and frees what the surgery created. Keeps going when an
   * undo step fails so that as much as possible is restored; the first such failure is attached to
   * {@code cause} as suppressed.
   */
  void rollback(Throwable cause) {
    while (true) {
      // Element writes made after every undo entry still on the stack come first.
      while (setCount > 0 && setMarks[setCount - 1] >= undo.size()) {
        try {
          undoNewestSet();
        } catch (RuntimeException e) {
          cause.addSuppressed(e);
        }
      }
      if (undo.isEmpty()) {
        break;
      }
      try {
        undo.pop().run();
      } catch (RuntimeException e) {
        cause.addSuppressed(e);
      }
    }
    for (NDArray array : closeOnRollback) {
      closeQuietly(array);
    }
    closeOnRollback.clear();
    closeOnCommit.clear();
  }

  private static void closeQuietly(NDArray array) {
    try {
      array.close();
    } catch (RuntimeException e) {
      // Already released by its manager: nothing left to free.
    }
  }
}
