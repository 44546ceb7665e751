package dev.surgery.trainer;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;

/** What the tests' logger (slf4j-simple, writing to {@code System.err}) says while code runs. */
final class Stderr {

  /** Code that may throw. */
  interface Run {
    void run() throws Exception;
  }

  private Stderr() {}

  /** Runs {@code run} and returns what it wrote to {@code System.err}. */
  static String of(Run run) throws Exception {
    PrintStream original = System.err;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    System.setErr(new PrintStream(captured, true, UTF_8));
    try {
      run.run();
    } finally {
      System.setErr(original);
    }
    return captured.toString(UTF_8);
  }
}
