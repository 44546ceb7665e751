package dev.surgery.core.internal;

/**
 * Marks, on the calling thread, surgery whose caller knows that none of the trainers it serves has
 * registered the model's parameters yet (a training listener before its trainer's first forward, on
 * a model that was loaded and so is initialized): the engine's reminder then speaks only of another
 * trainer of the model, which the caller cannot see, instead of asking to pass the trainer.
 */
public final class NoTrainerRegistered {

  private static final ThreadLocal<Boolean> DECLARED = ThreadLocal.withInitial(() -> false);

  private NoTrainerRegistered() {}

  /**
   * Declares (or not) on this thread that no trainer the caller serves registered the model's
   * parameters.
   *
   * @param none whether none did
   * @return what was declared before, for {@link #restore}
   */
  public static boolean declare(boolean none) {
    boolean previous = DECLARED.get();
    DECLARED.set(none);
    return previous;
  }

  /**
   * Puts back what {@link #declare} returned.
   *
   * @param previous the earlier declaration
   */
  public static void restore(boolean previous) {
    DECLARED.set(previous);
  }

  /**
   * Whether this thread's surgery is declared to be on parameters no trainer the caller serves
   * registered.
   *
   * @return the declaration
   */
  public static boolean declared() {
    return DECLARED.get();
  }
}
