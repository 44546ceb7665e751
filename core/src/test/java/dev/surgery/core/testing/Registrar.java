package dev.surgery.core.testing;

import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;

/** Registers an algorithm from outside the library's package, as a user's program does. */
public final class Registrar {

  private Registrar() {}

  /**
   * Registers the spec, this class being the caller.
   *
   * @param spec the algorithm
   */
  public static void register(AlgorithmSpec spec) {
    Algorithms.register(spec);
  }
}
