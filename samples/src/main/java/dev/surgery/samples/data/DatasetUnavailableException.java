package dev.surgery.samples.data;

/**
 * A dataset could not be read from the given directory or downloaded; the message says what to do.
 */
public class DatasetUnavailableException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  /**
   * Creates the exception.
   *
   * @param message what is missing and how to provide it
   * @param cause the underlying failure, or null
   */
  public DatasetUnavailableException(String message, Throwable cause) {
    super(message, cause);
  }
}
