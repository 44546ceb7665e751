package dev.surgery.core.algorithms;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The complete, validated hyperparameter values of one algorithm: every declared hyperparameter has
 * a value of its declared type (its default unless given), read as {@code
 * values.get(GHOST_BATCH_SIZE)}. Immutable.
 */
public final class HyperParameterValues {

  private final String algorithm;
  private final List<HyperParameter<?>> declarations;
  private final Map<String, Object> values;

  private HyperParameterValues(
      String algorithm, List<HyperParameter<?>> declarations, Map<String, Object> values) {
    this.algorithm = algorithm;
    this.declarations = declarations;
    this.values = Collections.unmodifiableMap(values);
  }

  /**
   * Validates values against their declarations, filling in defaults. Each given value is converted
   * to its declared type ({@link HyperParameter#convert}), so a whole number given as a {@code
   * Long} is accepted for an integer hyperparameter.
   *
   * @param algorithm the algorithm's config name
   * @param declarations the declarations, in documentation order
   * @param given snake_case name to value; missing names take their defaults
   * @return the values
   * @throws IllegalArgumentException naming the first unknown or invalid hyperparameter
   */
  public static HyperParameterValues of(
      String algorithm, List<HyperParameter<?>> declarations, Map<String, ?> given) {
    Map<String, HyperParameter<?>> byName = new LinkedHashMap<>();
    for (HyperParameter<?> h : declarations) {
      byName.put(h.name(), h);
    }
    for (String key : given.keySet()) {
      if (!byName.containsKey(key)) {
        throw new IllegalArgumentException(
            "unknown hyperparameter '"
                + key
                + "' for "
                + algorithm
                + "; valid: "
                + List.copyOf(byName.keySet()));
      }
    }
    Map<String, Object> values = new LinkedHashMap<>();
    for (HyperParameter<?> h : declarations) {
      values.put(
          h.name(),
          given.containsKey(h.name()) ? h.convert(given.get(h.name())) : h.defaultValue());
    }
    return new HyperParameterValues(algorithm, List.copyOf(declarations), values);
  }

  /**
   * Returns the value of a hyperparameter.
   *
   * @param <T> its type
   * @param hyperParameter the declaration
   * @return the value
   * @throws IllegalArgumentException if this algorithm does not declare it
   */
  public <T> T get(HyperParameter<T> hyperParameter) {
    if (!declarations.contains(hyperParameter)) {
      throw new IllegalArgumentException(
          "hyperparameter " + hyperParameter.name() + " is not declared here");
    }
    return hyperParameter.valueClass().cast(values.get(hyperParameter.name()));
  }

  /**
   * Returns the config name of the algorithm these values configure.
   *
   * @return the config name, for example {@code blurpool}
   */
  public String algorithm() {
    return algorithm;
  }

  /**
   * Returns the declarations.
   *
   * @return the declarations, in documentation order
   */
  public List<HyperParameter<?>> declarations() {
    return declarations;
  }

  /**
   * Returns the values by snake_case name, in declaration order.
   *
   * @return an unmodifiable map
   */
  public Map<String, Object> asMap() {
    return values;
  }

  /** {@inheritDoc} */
  @Override
  public String toString() {
    return values.toString();
  }
}
