package dev.surgery.agent.shared;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.testing.StandardError;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The agent's own log lines, as its class comment promises them: one line per message on standard
 * error, each prefixed {@code surgery-agent: }, debug lines only when debug is on, a keyed warning
 * once per key (its repeats only under debug), a cause's stack trace only under debug.
 */
class AgentLogTest {

  @AfterEach
  void debugOff() {
    AgentLog.setDebug(false);
  }

  @Test
  void infoAndWarnPrintOnePrefixedLineEach() {
    assertEquals(
        List.of("surgery-agent: hello", "surgery-agent: WARNING: careful"),
        StandardError.lines(
            () -> {
              AgentLog.info("hello");
              AgentLog.warn("careful");
            }));
  }

  @Test
  void debugLinesOnlyWhileDebugIsOn() {
    AgentLog.setDebug(false);
    assertFalse(AgentLog.isDebug());
    assertEquals(List.of(), StandardError.lines(() -> AgentLog.debug("hidden")));
    AgentLog.setDebug(true);
    assertTrue(AgentLog.isDebug());
    assertEquals(
        List.of("surgery-agent: shown"), StandardError.lines(() -> AgentLog.debug("shown")));
  }

  @Test
  void aKeyedWarningPrintsOnceAndItsRepeatsOnlyUnderDebug() {
    // A key of its own per run: warnOnce remembers keys for the life of the JVM.
    String key = "agent-log-test-once-" + System.nanoTime();
    IllegalStateException cause = new IllegalStateException("why");
    assertEquals(
        List.of("surgery-agent: WARNING: first: " + cause),
        StandardError.lines(() -> AgentLog.warnOnce(key, "first", cause)),
        "the cause in one line, no stack trace without debug");
    assertEquals(List.of(), StandardError.lines(() -> AgentLog.warnOnce(key, "again", null)));
    AgentLog.setDebug(true);
    assertEquals(
        List.of("surgery-agent: (repeated) again", "surgery-agent: (repeated) more: " + cause),
        StandardError.lines(
            () -> {
              AgentLog.warnOnce(key, "again", null);
              AgentLog.warnOnce(key, "more", cause);
            }));
    assertEquals(
        List.of("surgery-agent: WARNING: other"),
        StandardError.lines(() -> AgentLog.warnOnce(key + "-other", "other", null)),
        "another key warns once of its own");
  }

  @Test
  void underDebugAFirstWarningPrintsItsCausesStackTrace() {
    IllegalStateException cause = new IllegalStateException("deep");
    List<String> lines =
        StandardError.lines(
            () -> {
              AgentLog.setDebug(true);
              AgentLog.warnOnce("agent-log-test-trace-" + System.nanoTime(), "failed", cause);
            });
    assertEquals("surgery-agent: WARNING: failed: " + cause, lines.get(0));
    assertEquals(cause.toString(), lines.get(1), "the stack trace follows, as printStackTrace");
    assertTrue(lines.get(2).trim().startsWith("at "), lines.toString());
  }
}
