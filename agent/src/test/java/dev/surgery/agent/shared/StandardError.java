package dev.surgery.agent.shared;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** Captures what a piece of code prints on standard error, where the agent logs. */
final class StandardError {

  private StandardError() {}

  /**
   * Runs the action with standard error captured.
   *
   * @param action what to run
   * @return the lines it printed there
   */
  static List<String> lines(Runnable action) {
    PrintStream original = System.err;
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    System.setErr(new PrintStream(bytes, true, StandardCharsets.UTF_8));
    try {
      action.run();
    } finally {
      System.setErr(original);
    }
    String text = bytes.toString(StandardCharsets.UTF_8);
    return text.isEmpty() ? List.of() : List.of(text.split("\\R"));
  }
}
