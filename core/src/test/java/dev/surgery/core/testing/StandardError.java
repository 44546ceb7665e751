package dev.surgery.core.testing;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Captures what code writes to {@code System.err}: slf4j-simple's log in the core tests, the
 * agent's own log in its tests.
 */
public final class StandardError {

  private StandardError() {}

  /**
   * Runs {@code action} with {@code System.err} captured.
   *
   * @param action what to run
   * @return what it wrote to {@code System.err}
   */
  public static String of(Runnable action) {
    PrintStream original = System.err;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
    try {
      action.run();
    } finally {
      System.setErr(original);
    }
    return captured.toString(StandardCharsets.UTF_8);
  }

  /**
   * Runs {@code action} with {@code System.err} captured.
   *
   * @param action what to run
   * @return the lines it wrote to {@code System.err}, none when it wrote nothing
   */
  public static List<String> lines(Runnable action) {
    String text = of(action);
    return text.isEmpty() ? List.of() : List.of(text.split("\\R"));
  }
}
