package dev.surgery.trainer;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Whether the program ended ({@link SurgeryListener#onProgramEnd()}), and the applications under
 * way when it did. No application begins after the end; one under way is waited for (a shutdown
 * hook runs beside the training thread: a SIGTERM in the middle of a surgery), so that the surgery
 * log lists it once, as applied or failed, and not also as never run. A thread that called {@code
 * System.exit} inside an application never comes back: it is not waited for.
 */
final class ProgramEnd {

  /** How long the end waits for applications under way. */
  static final long WAIT_MILLIS = 2_000; // within the agent's 3 s shutdown-hook limit

  /** The threads applying an entry, with how many applications each has open. Guarded by this. */
  private final Map<Thread, Integer> applying = new IdentityHashMap<>();

  /** Written under this object's lock (with {@link #applying}), read without it. */
  private volatile boolean ended;

  /**
   * Opens an application, unless the program ended.
   *
   * @return false when the program ended: the entry must not run
   */
  synchronized boolean beginApplying() {
    if (ended) {
      return false;
    }
    applying.merge(Thread.currentThread(), 1, Integer::sum);
    return true;
  }

  /** Closes the application the calling thread opened last. */
  synchronized void doneApplying() {
    applying.computeIfPresent(Thread.currentThread(), (t, n) -> n == 1 ? null : n - 1);
    notifyAll();
  }

  /** Whether the program ended (read without the lock). */
  boolean ended() {
    return ended;
  }

  /**
   * Ends: no application begins from now on; waits up to {@code waitMillis} for those under way on
   * other threads (not for the calling thread's own, nor for a thread inside {@code System.exit}).
   *
   * @param waitMillis how long to wait at most
   * @return whether this call ended it (false: it had ended already)
   */
  synchronized boolean end(long waitMillis) {
    if (ended) {
      return false;
    }
    ended = true;
    long deadline = System.nanoTime() + waitMillis * 1_000_000L;
    boolean interrupted = false;
    while (awaited()) {
      long left = (deadline - System.nanoTime()) / 1_000_000L;
      if (left <= 0) {
        break;
      }
      try {
        wait(Math.min(left, 50)); // short slices: a thread may enter System.exit meanwhile
      } catch (InterruptedException e) {
        interrupted = true;
        break;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt(); // the caller's to handle
    }
    return true;
  }

  /** Whether an application under way is worth waiting for. */
  private boolean awaited() {
    for (Thread t : applying.keySet()) {
      if (t != Thread.currentThread() && t.isAlive() && !exiting(t)) {
        return true;
      }
    }
    return false;
  }

  /** Whether a thread is inside {@code System.exit} (or {@code Runtime.halt}): it never returns. */
  private static boolean exiting(Thread t) {
    for (StackTraceElement frame : t.getStackTrace()) {
      if (frame.getClassName().equals("java.lang.Shutdown")
          || (frame.getClassName().equals("java.lang.Runtime")
              && (frame.getMethodName().equals("exit") || frame.getMethodName().equals("halt")))) {
        return true;
      }
    }
    return false;
  }
}
