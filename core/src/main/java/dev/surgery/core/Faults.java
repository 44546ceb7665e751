package dev.surgery.core;

import java.util.function.Consumer;

/**
 * A test seam: named points inside a surgery where a test can inject a failure, to show that every
 * such failure is rolled back. Unset (and free) in production.
 */
final class Faults {

  private static volatile Consumer<String> hook;

  private Faults() {}

  /** Installs a hook that may throw at any named point; null removes it. */
  static void install(Consumer<String> newHook) {
    hook = newHook;
  }

  /** Gives the hook a chance to fail at a named point. */
  static void point(String name) {
    Consumer<String> h = hook;
    if (h != null) {
      h.accept(name);
    }
  }
}
