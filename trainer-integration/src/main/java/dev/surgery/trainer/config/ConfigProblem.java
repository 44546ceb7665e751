package dev.surgery.trainer.config;

/**
 * One problem found in a surgery config file, with its position (1-based line and column).
 *
 * @param file the config file as given by the user
 * @param line the 1-based line, or 0 when the problem concerns the whole file
 * @param column the 1-based column, or 0 when the problem concerns the whole file
 * @param message what is wrong, and what would be right
 */
public record ConfigProblem(String file, int line, int column, String message) {

  /**
   * Formats the problem as {@code <file>:<line>:<column>: <message>}.
   *
   * @return the formatted problem
   */
  @Override
  public String toString() {
    return file + ":" + line + ":" + column + ": " + message;
  }
}
