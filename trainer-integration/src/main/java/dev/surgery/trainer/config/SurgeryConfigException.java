package dev.surgery.trainer.config;

import java.util.List;

/**
 * A surgery config with one or more problems. It lists every problem found, each with its file,
 * line and column; nothing from such a config is ever applied.
 */
public final class SurgeryConfigException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  private final transient List<ConfigProblem> problems;

  /**
   * Creates the exception.
   *
   * @param problems every problem found, in file order; not empty
   * @throws IllegalArgumentException if {@code problems} is empty: an exception that names no
   *     problem would refuse a config without saying where
   */
  public SurgeryConfigException(List<ConfigProblem> problems) {
    super(format(requireSome(problems)));
    this.problems = List.copyOf(problems);
  }

  /**
   * Returns every problem found.
   *
   * @return the problems, in file order
   */
  public List<ConfigProblem> getProblems() {
    return problems;
  }

  private static List<ConfigProblem> requireSome(List<ConfigProblem> problems) {
    if (problems.isEmpty()) {
      throw new IllegalArgumentException("a SurgeryConfigException needs at least one problem");
    }
    return problems;
  }

  private static String format(List<ConfigProblem> problems) {
    StringBuilder sb = new StringBuilder("invalid surgery config (");
    sb.append(problems.size()).append(problems.size() == 1 ? " problem)" : " problems)");
    for (ConfigProblem p : problems) {
      sb.append(System.lineSeparator()).append(p);
    }
    return sb.toString();
  }
}
