package dev.surgery.core.internal;

/**
 * Marks, on the calling thread, surgery whose caller knows that no trainer has registered the
 * model's parameters yet (a training listener before its trainer's first forward, on a model that
 * was loaded and so is initialized): the engine's reminder to recreate or pass a trainer that
 * registered the old parameters would only mislead there.
 */
public final class NoTrainerRegistered {

  private static final ThreadLocal<Boolean> DECLARED = ThreadLocal.withInitial(() -> false);

  private NoTrainerRegistered() {}

  /**
   * Declares (or not) on this thread that no trainer registered the model's parameters.
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
   * Whether this thread's surgery is declared to be on parameters no trainer registered.
   *
   * @return the declaration
   */
  public static boolean declared() {
    return DECLARED.get();
  }
}
