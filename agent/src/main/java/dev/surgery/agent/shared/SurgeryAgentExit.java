package dev.surgery.agent.shared;

import java.util.List;

/** Stops the JVM when the surgery config is unusable: training a silent baseline wastes hours. */
public final class SurgeryAgentExit {

  /** The exit status of a JVM whose surgery config was refused. */
  public static final int STATUS = 2;

  private SurgeryAgentExit() {}

  /**
   * Prints one {@code surgery-agent:} line per problem to standard error and exits with status 2.
   *
   * @param problems the problems, each {@code file:line:column: message}
   */
  public static void refuse(List<String> problems) {
    for (String problem : problems) {
      AgentLog.info(problem);
    }
    System.exit(STATUS);
  }
}
