package dev.surgery.agent.bridge;

/**
 * Carries a failure that the surgery listener raised on purpose (a surgery that failed under {@code
 * on_error: fail}) across the agent's plumbing, so that the dispatcher can tell it apart from the
 * agent's own faults. The dispatcher rethrows the {@link #failure()} to the program, as DJL would
 * if the program had registered the listener itself; everything else is logged and swallowed.
 */
public final class SurgeryFailure extends RuntimeException {

  private static final long serialVersionUID = 1L;

  private final RuntimeException failure;

  /**
   * Wraps a deliberate failure.
   *
   * @param failure the exception the listener threw
   */
  public SurgeryFailure(RuntimeException failure) {
    super(failure.getMessage(), failure, false, false);
    this.failure = failure;
  }

  /**
   * Returns the exception the listener threw.
   *
   * @return the original exception
   */
  public RuntimeException failure() {
    return failure;
  }
}
