package dev.surgery.agent.shared;

import java.net.URL;

/**
 * Tells the user once when the program runs its own copy of the surgery library beside the agent's:
 * both copies must be in use, the program's (one of its classes defined outside the agent's
 * loaders) and the agent's (a hook loader made for a DJL). A copy that only sits on the class path
 * never meets the agent's (the samples' main job has the library on its path for its report's
 * constants), so it is not worth a warning.
 */
public final class ProgramCopy {

  /** The {@link AgentLog#warnOnce} key of the warning. */
  static final String WARNING_KEY = "two-copies";

  /** Where the program's copy was first seen loading a class; null until then. */
  private static volatile String seenAt;

  private static volatile boolean agentCopyMade;

  private ProgramCopy() {}

  /**
   * Notes that the program defined a class of the surgery library itself, and warns if the agent
   * has made its copy already.
   *
   * @param location where the class came from (its code source), null if unknown
   */
  public static void seen(URL location) {
    if (seenAt == null) {
      seenAt = location == null ? "location unknown" : location.toString();
    }
    if (agentCopyMade) {
      warn();
    }
  }

  /** Notes that the agent made its copy of the library, and warns if the program has one in use. */
  static void agentCopyMade() {
    agentCopyMade = true;
    if (seenAt != null) {
      warn();
    }
  }

  /**
   * Whether the program has defined a class of the library outside the agent's loaders.
   *
   * @return whether its own copy is in use
   */
  public static boolean inUse() {
    return seenAt != null;
  }

  /**
   * Whether a class loader is one of the agent's (its hook loaders and plugin loaders): the classes
   * they define are the agent's copy.
   *
   * @param loader a class loader, null for the boot loader
   * @return whether it is the agent's
   */
  public static boolean isAgents(ClassLoader loader) {
    return loader instanceof ChildFirstLoader;
  }

  private static void warn() {
    AgentLog.warnOnce(
        WARNING_KEY,
        "the program has its own copy of DJL Surgery ("
            + seenAt
            + ") beside the agent's: the two share what surgery records a model carries and what"
            + " surgery froze, but not their classes (a layer one copy made is no instance of the"
            + " other's class: the program's factorize leaves an agent-made BlurConv2d as it is)"
            + " nor their locks; run the program with the library and without the agent, or the"
            + " agent on a program without the library (agent README, \"Consequences\")",
        null);
  }
}
