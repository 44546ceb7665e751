package dev.surgery.agent.hookloader;

import dev.surgery.agent.shared.AgentLog;
import dev.surgery.trainer.SurgeryListener;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The JVM shutdown hook through which the agent's listener learns that the program is ending
 * ({@link SurgeryListener#onProgramEnd()}): a program that calls {@code System.exit} or dies of an
 * uncaught exception in the middle of training never closes its trainer, and without the hook its
 * surgery log would read as complete. Registered once, when the listener is first attached to a
 * trainer. The hook never throws and never holds the exit up for more than {@link #LIMIT_MS}: the
 * work runs on a daemon thread that the hook waits for that long at most (the log is written
 * through a temporary file and a rename, so a JVM that halts meanwhile leaves the last whole log).
 */
final class ProgramEndHook {

  /** The longest the hook holds the JVM's exit up, in milliseconds. */
  static final long LIMIT_MS = 3000;

  private final SurgeryListener listener;
  private final AtomicBoolean registered = new AtomicBoolean();

  ProgramEndHook(SurgeryListener listener) {
    this.listener = listener;
  }

  /** Registers the hook, the first time only; quietly nothing when the JVM is exiting already. */
  void registerOnce() {
    if (!registered.compareAndSet(false, true)) {
      return;
    }
    try {
      Runtime.getRuntime().addShutdownHook(hookThread());
    } catch (IllegalStateException | SecurityException e) {
      // The JVM is shutting down already (a trainer made by another thread during the exit), or a
      // security manager forbids hooks: the surgery log stays as the listener last wrote it.
      AgentLog.debug("no shutdown hook for the surgery log: " + e);
    }
  }

  /**
   * The hook's thread, in the root thread group: a launcher that runs main in a group of its own
   * and destroys it afterwards (Maven's {@code exec:java}) leaves a thread of that group unable to
   * start at exit, and the log would stay as training last wrote it.
   */
  Thread hookThread() {
    ThreadGroup root = Thread.currentThread().getThreadGroup();
    while (root.getParent() != null) {
      root = root.getParent();
    }
    return new Thread(root, this::run, "surgery-agent-program-end");
  }

  private void run() {
    Thread worker =
        new Thread(
            () -> {
              try {
                if (listener.onProgramEnd()) {
                  AgentLog.debug(
                      "the program ended before training did: the surgery log lists what never"
                          + " ran and is marked cut_short");
                }
              } catch (Throwable t) { // nothing may reach the exiting JVM
                AgentLog.debug("the surgery log could not be completed at exit: " + t);
              }
            },
            "surgery-agent-program-end-report");
    worker.setDaemon(true);
    try {
      worker.start();
      worker.join(LIMIT_MS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException | Error e) {
      // Not even a thread to be had: leave the log as it is rather than hold the exit.
    }
  }
}
