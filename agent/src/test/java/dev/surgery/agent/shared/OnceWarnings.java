package dev.surgery.agent.shared;

import java.lang.reflect.Field;
import java.util.Set;

/**
 * Forgets that a {@link AgentLog#warnOnce} warning was printed: its record is the JVM's, and a test
 * that expects the warning runs again in the same JVM (a rerun, a mutation-testing pass).
 */
public final class OnceWarnings {

  private OnceWarnings() {}

  /**
   * Lets the warning of this key be printed again.
   *
   * @param key the {@code warnOnce} key
   * @throws ReflectiveOperationException if {@link AgentLog} no longer keeps its record in {@code
   *     ONCE}
   */
  public static void forget(String key) throws ReflectiveOperationException {
    Field once = AgentLog.class.getDeclaredField("ONCE");
    once.setAccessible(true);
    ((Set<?>) once.get(null)).remove(key);
  }
}
