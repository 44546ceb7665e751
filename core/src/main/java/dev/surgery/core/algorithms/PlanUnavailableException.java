package dev.surgery.core.algorithms;

/**
 * Thrown by {@link Algorithm#plan} when an algorithm cannot tell what it would change before it
 * runs (one that acts on events, a plugin without a plan). It is no failure of the surgery: a dry
 * run says "no plan" for such an entry, where any other exception means the apply would fail.
 */
public class PlanUnavailableException extends UnsupportedOperationException {

  private static final long serialVersionUID = 1L;

  /**
   * Creates the exception.
   *
   * @param message what cannot be planned, naming the algorithm
   */
  public PlanUnavailableException(String message) {
    super(message);
  }
}
