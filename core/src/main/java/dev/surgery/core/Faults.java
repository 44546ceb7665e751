package dev.surgery.core;

/**
 * A test seam: named points inside a surgery where a test can inject a failure, to show that every
 * such failure is rolled back. A surgery is handed its {@code Faults} when it starts (a test passes
 * one in through the package-private overload of {@link ModuleSurgery}); production passes {@link
 * #NONE}, so there is no global state to install or reset.
 */
@FunctionalInterface
interface Faults {

  /** No faults: every point passes. */
  Faults NONE = name -> {};

  /**
   * Called at a named point; may throw to inject a failure there.
   *
   * @param name the point's name, e.g. {@code trainer.add}
   */
  void point(String name);
}
