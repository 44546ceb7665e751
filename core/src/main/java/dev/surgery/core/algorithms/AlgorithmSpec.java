package dev.surgery.core.algorithms;

import dev.surgery.core.Targets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Describes an algorithm to the configuration layer: its config name, its hyperparameters and how
 * to build it from validated values.
 *
 * @param name the config name, for example {@code blurpool}
 * @param hyperParameters the declarations, in documentation order
 * @param factory builds the algorithm from a complete map of values (defaults filled in)
 */
public record AlgorithmSpec(
    String name,
    List<HyperParameter> hyperParameters,
    Function<Map<String, Object>, Algorithm> factory) {

  /** Copies the declarations. */
  public AlgorithmSpec {
    hyperParameters = List.copyOf(hyperParameters);
  }

  /**
   * Finds a declaration by name.
   *
   * @param key the snake_case name
   * @return the declaration, or null
   */
  public HyperParameter hyperParameter(String key) {
    return hyperParameters.stream().filter(h -> h.name().equals(key)).findFirst().orElse(null);
  }

  /**
   * Builds the algorithm: fills in defaults, validates every value, then calls the factory. The
   * keys {@code include} and {@code exclude} (lists of block patterns, see {@link Targets}) limit
   * where it applies, for every algorithm.
   *
   * @param values snake_case name to value; unknown names are refused
   * @return the algorithm
   * @throws IllegalArgumentException naming the first invalid or unknown parameter
   */
  public Algorithm create(Map<String, Object> values) {
    Map<String, Object> complete = new LinkedHashMap<>();
    for (HyperParameter h : hyperParameters) {
      complete.put(h.name(), h.defaultValue());
    }
    List<String> include = List.of();
    List<String> exclude = List.of();
    for (Map.Entry<String, Object> e : values.entrySet()) {
      if (e.getKey().equals(Targets.INCLUDE) && hyperParameter(Targets.INCLUDE) == null) {
        include = patterns(e.getKey(), e.getValue());
        continue;
      }
      if (e.getKey().equals(Targets.EXCLUDE) && hyperParameter(Targets.EXCLUDE) == null) {
        exclude = patterns(e.getKey(), e.getValue());
        continue;
      }
      HyperParameter h = hyperParameter(e.getKey());
      if (h == null) {
        throw new IllegalArgumentException(
            "unknown hyperparameter '" + e.getKey() + "' for " + name + "; valid: " + names());
      }
      h.check(e.getValue());
      complete.put(e.getKey(), e.getValue());
    }
    Targets targets = Targets.of(include, exclude);
    Algorithm algorithm = factory.apply(complete);
    return targets.isAll() ? algorithm : algorithm.withTargets(targets);
  }

  /** Reads an include or exclude value: a list of pattern strings (or one string). */
  private static List<String> patterns(String key, Object value) {
    if (value instanceof String s) {
      return List.of(s);
    }
    if (value instanceof List<?> list) {
      List<String> out = new ArrayList<>();
      for (Object o : list) {
        if (!(o instanceof String s)) {
          throw new IllegalArgumentException(
              key + " must be a list of block patterns (strings), found " + o);
        }
        out.add(s);
      }
      return out;
    }
    throw new IllegalArgumentException(
        key + " must be a list of block patterns (strings), found " + value);
  }

  /**
   * Lists the hyperparameter names.
   *
   * @return the names, in declaration order
   */
  public List<String> names() {
    return hyperParameters.stream().map(HyperParameter::name).toList();
  }
}
