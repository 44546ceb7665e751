package dev.surgery.core.algorithms;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * The registry of algorithms by config name. The built-in algorithms register themselves here;
 * {@link #register} adds user algorithms so that YAML configs can name them.
 */
public final class Algorithms {

  private static final Map<String, AlgorithmSpec> SPECS =
      Collections.synchronizedMap(new LinkedHashMap<>());

  static {
    BuiltinAlgorithms.registerAll();
  }

  private Algorithms() {}

  /**
   * Registers an algorithm under its config name.
   *
   * @param spec the algorithm's description
   * @throws IllegalArgumentException if the name is taken
   */
  public static void register(AlgorithmSpec spec) {
    if (SPECS.putIfAbsent(spec.name(), spec) != null) {
      throw new IllegalArgumentException("algorithm name already registered: " + spec.name());
    }
  }

  /**
   * Looks an algorithm up by config name.
   *
   * @param name the config name
   * @return the spec, or null when unknown
   */
  public static AlgorithmSpec spec(String name) {
    return SPECS.get(name);
  }

  /**
   * Lists the known config names.
   *
   * @return the names, built-ins first
   */
  public static Set<String> names() {
    synchronized (SPECS) {
      return Set.copyOf(SPECS.keySet());
    }
  }
}
