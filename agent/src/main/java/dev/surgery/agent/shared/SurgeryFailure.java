package dev.surgery.agent.shared;

/**
 * Carries a failure that DJL Surgery raised on purpose (a surgery that failed under {@code
 * on_error: fail}, a checkpoint whose surgery record cannot be replayed) across the agent's
 * plumbing, so that the dispatcher can tell it apart from the agent's own faults. The dispatcher
 * rethrows the {@link #failure()} to the program, as if the program had called the library itself;
 * everything else is logged and swallowed.
 */
public final class SurgeryFailure extends RuntimeException {

  private static final long serialVersionUID = 1L;

  private final Exception failure;

  /**
   * Wraps a deliberate failure.
   *
   * @param failure the exception the library threw; a checked one only if the instrumented DJL
   *     method declares it
   */
  public SurgeryFailure(Exception failure) {
    super(failure.getMessage(), failure, false, false);
    this.failure = failure;
  }

  /**
   * Returns the exception the library threw.
   *
   * @return the original exception
   */
  public Exception failure() {
    return failure;
  }

  /**
   * Throws the original exception unchanged, checked or not (the woven DJL method declares the
   * checked ones it can carry).
   *
   * @return never returns; declared so that callers can write {@code throw f.rethrow()}
   */
  public RuntimeException rethrow() {
    throw SurgeryFailure.<RuntimeException>sneaky(failure);
  }

  @SuppressWarnings("unchecked")
  private static <T extends Throwable> T sneaky(Throwable t) throws T {
    throw (T) t;
  }
}
