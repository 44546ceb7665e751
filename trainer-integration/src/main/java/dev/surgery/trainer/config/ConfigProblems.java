package dev.surgery.trainer.config;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.snakeyaml.engine.v2.exceptions.Mark;
import org.snakeyaml.engine.v2.nodes.Node;

/**
 * The problems found in one config file, each at its line and column, and the exception that
 * reports them in file order. Positions are 1-based, as editors show them.
 */
final class ConfigProblems {

  private final String file;
  private final List<ConfigProblem> problems = new ArrayList<>();
  private final Set<ConfigProblem> reported = new HashSet<>();
  private int added;

  /**
   * Creates an empty list of problems.
   *
   * @param file the file name the messages name
   */
  ConfigProblems(String file) {
    this.file = file;
  }

  /** Adds a problem at a node's start. */
  void addAt(Node node, String message) {
    int[] at = at(node);
    add(at[0], at[1], message);
  }

  /**
   * Adds a problem at a line and column, once: a list or mapping that an alias repeats is read once
   * per use, and a problem inside it, reported where the anchor wrote it, is the same each time.
   */
  void add(int line, int column, String message) {
    ConfigProblem problem = new ConfigProblem(file, line, column, message);
    added++;
    if (reported.add(problem)) {
      problems.add(problem);
    }
  }

  /** Whether no problem was found. */
  boolean isEmpty() {
    return problems.isEmpty();
  }

  /**
   * How many problems were added, a repeat of one reported already included: a reader compares it
   * before and after a part it checked, and an entry that repeats another's problem has one too.
   */
  int size() {
    return added;
  }

  /** The exception that reports every problem found, sorted by position. */
  SurgeryConfigException exception() {
    List<ConfigProblem> sorted = new ArrayList<>(problems);
    sorted.sort(
        Comparator.comparingInt(ConfigProblem::line).thenComparingInt(ConfigProblem::column));
    return new SurgeryConfigException(sorted);
  }

  /** A node's start as {line, column}, 1-based ({1, 1} when the node has no mark). */
  static int[] at(Node node) {
    Mark m = node.getStartMark().orElse(null);
    return new int[] {m == null ? 1 : m.getLine() + 1, m == null ? 1 : m.getColumn() + 1};
  }

  /** A node's start as a message names it: {@code line 3, column 5}. */
  static String position(Node node) {
    Mark m = node.getStartMark().orElse(null);
    return m == null ? "?" : "line " + (m.getLine() + 1) + ", column " + (m.getColumn() + 1);
  }

  /** The suggestion a message appends for a misspelt name, or nothing. */
  static String didYouMean(String input, Collection<String> valid) {
    String s = EditDistance.suggest(input, valid);
    return s == null || s.equals(input) ? "" : " (did you mean '" + s + "'?)";
  }

  /** A library message on one line. */
  static String clean(String s) {
    if (s == null) {
      return "";
    }
    return s.replaceAll("\\s+", " ").trim();
  }
}
