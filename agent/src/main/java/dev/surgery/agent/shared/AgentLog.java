package dev.surgery.agent.shared;

import java.io.PrintStream;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The agent's own logger: single lines prefixed {@code surgery-agent:} on standard error.
 *
 * <p>The agent runs before the application configures its logging and may sit in a different class
 * loader than the application's SLF4J binding, so it never touches the application's logging
 * framework. (The surgery listener itself, loaded next to DJL, logs through SLF4J.)
 */
public final class AgentLog {

  /** The prefix of every line the agent prints. */
  public static final String PREFIX = "surgery-agent: ";

  /**
   * The {@link #warnOnce} key of every "this DJL is not the one the agent was built for" warning,
   * whichever check notices it first: the user sees one warning, not one per check.
   */
  public static final String DJL_MISMATCH = "djl-mismatch";

  private static volatile boolean debug;
  private static final Set<String> ONCE = ConcurrentHashMap.newKeySet();

  private AgentLog() {}

  /**
   * Turns debug lines on or off.
   *
   * @param enabled true to print debug lines
   */
  public static void setDebug(boolean enabled) {
    debug = enabled;
  }

  /**
   * Returns whether debug lines are printed.
   *
   * @return true when debug is on
   */
  public static boolean isDebug() {
    return debug;
  }

  /**
   * Prints a line always.
   *
   * @param message the message
   */
  public static void info(String message) {
    print(message);
  }

  /**
   * Prints a warning; for a warning of which each occurrence matters (one per trainer, say).
   *
   * @param message the message
   */
  public static void warn(String message) {
    print("WARNING: " + message);
  }

  /**
   * Prints a line when debug is on.
   *
   * @param message the message
   */
  public static void debug(String message) {
    if (debug) {
      print(message);
    }
  }

  /**
   * Prints a warning once per key for the life of the JVM (repeated failures of the same kind would
   * otherwise flood a training log).
   *
   * @param key identifies the kind of warning
   * @param message the message
   * @param error the cause, printed with its stack trace only when debug is on; may be null
   */
  public static void warnOnce(String key, String message, Throwable error) {
    if (!ONCE.add(key)) {
      if (debug) {
        print("(repeated) " + message + (error == null ? "" : ": " + error));
      }
      return;
    }
    print("WARNING: " + message + (error == null ? "" : ": " + error));
    if (debug && error != null) {
      error.printStackTrace(System.err);
    }
  }

  private static void print(String message) {
    PrintStream err = System.err;
    err.println(PREFIX + message);
    err.flush();
  }
}
