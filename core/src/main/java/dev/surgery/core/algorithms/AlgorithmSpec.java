package dev.surgery.core.algorithms;

import dev.surgery.core.Targets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * Describes an algorithm to the configuration layer: its config name, its hyperparameters and how
 * to build it from validated values. Every way of making an algorithm (YAML config, checkpoint,
 * {@link AbstractSurgeryAlgorithm.AlgorithmBuilder builder}) goes through {@link #create}.
 *
 * @param name the config name, for example {@code blurpool}
 * @param hyperParameters the declarations, in documentation order
 * @param factory builds the algorithm from a complete map of validated, typed values (defaults
 *     filled in)
 */
public record AlgorithmSpec(
    String name,
    List<HyperParameter<?>> hyperParameters,
    Function<Map<String, Object>, Algorithm> factory) {

  /** Keys of a config entry that schedule or target it: no hyperparameter may take them. */
  private static final Set<String> ENTRY_KEYS =
      Set.of("name", "epoch", "step", "at", "every", Targets.INCLUDE, Targets.EXCLUDE);

  private static final Pattern SNAKE_CASE = Pattern.compile("[a-z][a-z0-9_]*");

  /**
   * Checks the name and the declarations, so that a plugin's mistake is refused where it is
   * registered rather than met later as a wrong value at some config entry, and copies them.
   *
   * @param name the config name, for example {@code blurpool}
   * @param hyperParameters the declarations, in documentation order
   * @param factory builds the algorithm from a complete map of validated, typed values (defaults
   *     filled in)
   * @throws IllegalArgumentException naming the algorithm and what is wrong
   */
  public AlgorithmSpec {
    if (name == null || !SNAKE_CASE.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "an algorithm's name is its config name, in snake_case such as 'leaky_relu'; got "
              + (name == null ? "null" : "'" + name + "'"));
    }
    if (hyperParameters == null || factory == null) {
      throw new IllegalArgumentException(name + ": hyperparameters and factory must not be null");
    }
    hyperParameters = List.copyOf(hyperParameters); // refuses a null declaration
    Set<String> seen = new HashSet<>();
    for (HyperParameter<?> h : hyperParameters) {
      String where = name + ": hyperparameter '" + h.name() + "'";
      if (h.name() == null || !SNAKE_CASE.matcher(h.name()).matches()) {
        throw new IllegalArgumentException(where + " must be named in snake_case");
      }
      if (ENTRY_KEYS.contains(h.name())) {
        throw new IllegalArgumentException(
            where + " takes a key a config entry uses for itself (" + ENTRY_KEYS + ")");
      }
      if (!seen.add(h.name())) {
        throw new IllegalArgumentException(where + " is declared twice");
      }
      Class<?> expected =
          switch (h.type()) {
            case INT -> Integer.class;
            case FLOAT -> Double.class;
            case BOOLEAN -> Boolean.class;
            case STRING -> String.class;
          };
      if (h.valueClass() != expected) {
        throw new IllegalArgumentException(
            where + " of type " + h.type() + " must hold " + expected.getSimpleName() + " values");
      }
      if (h.min() != null && h.max() != null && h.min() > h.max()) {
        throw new IllegalArgumentException(where + " has a minimum above its maximum");
      }
      String problem = h.problemWith(h.defaultValue());
      if (problem != null) {
        throw new IllegalArgumentException(where + " has an invalid default: " + problem);
      }
    }
  }

  /**
   * Describes an algorithm whose factory reads a {@link HyperParameterValues}, for example a
   * constructor reference {@code GhostBatchNorm::new}.
   *
   * @param name the config name
   * @param hyperParameters the declarations, in documentation order
   * @param factory builds the algorithm from validated values
   * @return the spec
   * @throws NullPointerException naming the factory when it is null
   */
  public static AlgorithmSpec of(
      String name,
      List<HyperParameter<?>> hyperParameters,
      Function<HyperParameterValues, ? extends Algorithm> factory) {
    // Refused here: the lambda below would hide a null until the first config names the algorithm.
    Objects.requireNonNull(factory, "factory must not be null");
    return new AlgorithmSpec(
        name,
        hyperParameters,
        values -> factory.apply(HyperParameterValues.of(name, hyperParameters, values)));
  }

  /**
   * Finds a declaration by name.
   *
   * @param key the snake_case name
   * @return the declaration, or null
   */
  public HyperParameter<?> hyperParameter(String key) {
    return hyperParameters.stream().filter(h -> h.name().equals(key)).findFirst().orElse(null);
  }

  /**
   * Builds the algorithm: fills in defaults, converts and validates every value ({@link
   * HyperParameterValues#of}), then calls the factory. The keys {@code include} and {@code exclude}
   * (lists of block patterns, see {@link Targets}) limit where it applies, for every algorithm.
   *
   * @param values snake_case name to value; unknown names are refused
   * @return the algorithm
   * @throws IllegalArgumentException naming the first invalid or unknown parameter
   * @throws AlgorithmPluginException if the factory returns null or an algorithm of another name
   */
  public Algorithm create(Map<String, Object> values) {
    Map<String, Object> given = new LinkedHashMap<>();
    List<String> include = List.of();
    List<String> exclude = List.of();
    for (Map.Entry<String, Object> e : values.entrySet()) {
      if (e.getKey().equals(Targets.INCLUDE) && hyperParameter(Targets.INCLUDE) == null) {
        include = patterns(e.getKey(), e.getValue());
      } else if (e.getKey().equals(Targets.EXCLUDE) && hyperParameter(Targets.EXCLUDE) == null) {
        exclude = patterns(e.getKey(), e.getValue());
      } else {
        given.put(e.getKey(), e.getValue());
      }
    }
    Map<String, Object> complete =
        new LinkedHashMap<>(HyperParameterValues.of(name, hyperParameters, given).asMap());
    Targets targets = Targets.of(include, exclude);
    Algorithm algorithm = factory.apply(complete);
    if (algorithm == null || !name.equals(algorithm.name())) {
      // Its records are replayed by name: another name would replay another algorithm.
      throw new AlgorithmPluginException(
          "the factory of algorithm '"
              + name
              + "' returned "
              + (algorithm == null
                  ? "null"
                  : "an algorithm named '"
                      + algorithm.name()
                      + "' ("
                      + algorithm.getClass().getName()
                      + ")")
              + ": it must return an algorithm whose name() is '"
              + name
              + "'",
          null);
    }
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
