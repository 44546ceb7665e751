package dev.surgery.core.algorithms;

/**
 * A plugin jar could not add its algorithms: two algorithms claim one name (the message names both
 * jars), or a provider failed to load. Thrown when plugins are discovered, before any training.
 */
public class AlgorithmPluginException extends IllegalStateException {

  private static final long serialVersionUID = 1L;

  /**
   * Creates the exception.
   *
   * @param message what went wrong, naming the jars
   * @param cause the underlying error, or null
   */
  public AlgorithmPluginException(String message, Throwable cause) {
    super(message, cause);
  }
}
