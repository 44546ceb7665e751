package dev.surgery.agent.settings;

/** The agent's own settings (agent argument, system properties, environment) are malformed. */
public final class AgentSettingsException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  /**
   * Creates the exception.
   *
   * @param message what is wrong and where it came from
   */
  public AgentSettingsException(String message) {
    super(message);
  }
}
