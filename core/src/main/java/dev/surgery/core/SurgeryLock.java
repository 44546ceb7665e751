package dev.surgery.core;

import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;

/**
 * The one lock under which every surgery, plan, freeze and unfreeze of this JVM runs, so that two
 * threads never change one model at once (nor plan on it: a plan makes the surgery and undoes it).
 *
 * <p>A surgery changes the block tree and its trainers' state in place. Another thread that runs
 * the same model meanwhile (a forward, a training step, inference) can meet the tree half changed:
 * wrong outputs, or arrays freed under it. The surgery listener runs surgery on the training
 * thread, between steps, which is safe for that trainer. A program that also uses the model from
 * another thread while surgery may run holds this lock around that use:
 *
 * <pre>{@code
 * Lock lock = SurgeryLock.get();
 * lock.lock();
 * try {
 *   output = predictor.predict(input);
 * } finally {
 *   lock.unlock();
 * }
 * }</pre>
 *
 * <p>The lock is reentrant; a surgery waits for it, so code that holds it must not wait for another
 * thread that takes it (another thread's surgery or load, or a helper thread's guarded forward). It
 * is one per copy of this class: the Java agent loads its own copy of the library beside DJL, whose
 * lock a program's copy does not reach.
 */
public final class SurgeryLock {

  private static final ReentrantLock LOCK = new ReentrantLock();

  private SurgeryLock() {}

  /**
   * Returns the lock every surgery, plan, freeze and unfreeze holds while it runs.
   *
   * @return the lock (reentrant)
   */
  public static Lock get() {
    return LOCK;
  }

  /**
   * Returns whether the calling thread holds the lock: inside a built-in algorithm's apply, a
   * checkpoint's replay (which calls a plugin's {@code apply(SurgeryContext)} holding it) or the
   * program's own {@code lock()}. Code that holds it must not wait for another thread that takes it
   * (a helper's guarded forward would wait for good).
   *
   * @return whether this thread holds the lock
   */
  public static boolean isHeldByCurrentThread() {
    return LOCK.isHeldByCurrentThread();
  }

  /**
   * Runs an action while holding the lock.
   *
   * @param action the action
   * @param <T> what it returns
   * @return what it returned
   */
  public static <T> T holding(Supplier<T> action) {
    LOCK.lock();
    try {
      return action.get();
    } finally {
      LOCK.unlock();
    }
  }

  /**
   * Runs an action while holding the lock.
   *
   * @param action the action
   */
  public static void holding(Runnable action) {
    holding(
        () -> {
          action.run();
          return null;
        });
  }
}
