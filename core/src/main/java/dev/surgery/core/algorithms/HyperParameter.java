package dev.surgery.core.algorithms;

import java.math.BigInteger;
import java.util.List;

/**
 * The declaration of one algorithm hyperparameter: its snake_case config name, type, default, valid
 * range and meaning. It is the only definition of the hyperparameter: the YAML config, checkpoints,
 * {@link AlgorithmSpec#create} and the algorithm builders all convert and check values through it
 * ({@link #convert}), so code and config refuse the same values with the same message; builders
 * start from {@link #defaultValue}, and {@link AbstractSurgeryAlgorithm#hyperparameters} lists the
 * values by {@link #name}.
 *
 * @param <T> the Java type of a value: Integer, Double, Boolean or String
 * @param name the snake_case name, as in Composer
 * @param type the value type
 * @param valueClass the Java class of a value, matching {@code type}
 * @param defaultValue the default (Composer's unless the algorithm documents otherwise)
 * @param min the smallest valid number (inclusive), or null
 * @param max the largest valid number, or null
 * @param minExclusive whether {@code min} itself is invalid
 * @param maxExclusive whether {@code max} itself is invalid
 * @param choices the valid strings for {@link Type#STRING}, empty for any
 * @param description one line for error messages and docs
 */
public record HyperParameter<T>(
    String name,
    Type type,
    Class<T> valueClass,
    T defaultValue,
    Double min,
    Double max,
    boolean minExclusive,
    boolean maxExclusive,
    List<String> choices,
    String description) {

  /**
   * Creates a declaration with an inclusive maximum: the form of the record before it gained {@code
   * maxExclusive}, kept for plugins built against it.
   *
   * @param name snake_case name
   * @param type value type
   * @param valueClass the Java class of values
   * @param defaultValue default
   * @param min minimum, or null
   * @param max inclusive maximum, or null
   * @param minExclusive whether the minimum is excluded
   * @param choices allowed values of a choice, else empty
   * @param description one line
   */
  public HyperParameter(
      String name,
      Type type,
      Class<T> valueClass,
      T defaultValue,
      Double min,
      Double max,
      boolean minExclusive,
      List<String> choices,
      String description) {
    this(name, type, valueClass, defaultValue, min, max, minExclusive, false, choices, description);
  }

  /** Value types a hyperparameter may have. */
  public enum Type {
    /** A whole number. */
    INT,
    /** A real number; whole numbers are accepted too. */
    FLOAT,
    /** true or false. */
    BOOLEAN,
    /** A string, optionally one of {@code choices}. */
    STRING
  }

  /**
   * Copies the choices and checks the declaration: the default's class, bounds that are numbers
   * (not NaN) on a number, choices only on a string. A plugin's mistake here is refused when it is
   * declared rather than left to let every value through.
   *
   * @param name the snake_case name, as in Composer
   * @param type the value type
   * @param valueClass the Java class of a value, matching {@code type}
   * @param defaultValue the default (Composer's unless the algorithm documents otherwise)
   * @param min the smallest valid number (inclusive), or null
   * @param max the largest valid number, or null
   * @param minExclusive whether {@code min} itself is invalid
   * @param maxExclusive whether {@code max} itself is invalid
   * @param choices the valid strings for {@link Type#STRING}, empty for any
   * @param description one line for error messages and docs
   */
  public HyperParameter {
    choices = choices == null ? List.of() : List.copyOf(choices);
    if (!valueClass.isInstance(defaultValue)) {
      throw new IllegalArgumentException(name + ": default " + defaultValue + " is no " + type);
    }
    boolean number = type == Type.INT || type == Type.FLOAT;
    if (!number && (min != null || max != null)) {
      throw new IllegalArgumentException(
          name + ": a range (min, max) is for a number, not a " + type);
    }
    if ((min != null && min.isNaN()) || (max != null && max.isNaN())) {
      throw new IllegalArgumentException(name + ": a bound of its range is NaN");
    }
    if (type != Type.STRING && !choices.isEmpty()) {
      throw new IllegalArgumentException(
          name + ": choices " + choices + " are for a string, not a " + type);
    }
  }

  /**
   * Converts a value to this declaration's type and checks it: the one place where config,
   * checkpoint and builder values become typed values.
   *
   * @param value the value, as given or as parsed from YAML or JSON
   * @return the typed value
   * @throws IllegalArgumentException naming the parameter, the value, the valid range and what the
   *     parameter means
   */
  public T convert(Object value) {
    Object normalized = normalize(value);
    check(normalized);
    return valueClass.cast(normalized);
  }

  /**
   * Brings a parsed value to this declaration's Java type where this loses nothing: an INT given as
   * {@code Long} or {@code BigInteger} becomes an {@code Integer} when it fits, a FLOAT given as
   * any number becomes a {@code Double}. Anything else (a real number for an INT, a string for a
   * number) is returned unchanged, for {@link #problemWith} to refuse.
   *
   * @param value the parsed value
   * @return the value, converted where possible
   */
  public Object normalize(Object value) {
    switch (type) {
      case INT:
        if (value instanceof Long || value instanceof Integer || value instanceof BigInteger) {
          Number n = (Number) value;
          return fitsInt(n) ? Integer.valueOf(n.intValue()) : value;
        }
        return value;
      case FLOAT:
        if (value instanceof BigInteger b) {
          return b.doubleValue();
        }
        if (value instanceof Number n && !(value instanceof Double)) {
          return n.doubleValue();
        }
        return value;
      default:
        return value;
    }
  }

  private static boolean fitsInt(Number n) {
    if (n instanceof BigInteger b) {
      return b.bitLength() < 32;
    }
    long l = n.longValue();
    return l >= Integer.MIN_VALUE && l <= Integer.MAX_VALUE;
  }

  /**
   * Checks a value against the declaration.
   *
   * @param value the value (Integer, Long, Double, Float, Boolean or String)
   * @return null if valid, else a message naming the parameter, the value and the valid range, and
   *     saying what the parameter means
   */
  public String problemWith(Object value) {
    String problem = problemOf(value);
    return problem == null ? null : problem + " (" + name + ": " + description + ")";
  }

  private String problemOf(Object value) {
    switch (type) {
      case BOOLEAN:
        return value instanceof Boolean
            ? null
            : name + " must be true or false, got " + show(value);
      case STRING:
        if (!(value instanceof String s)) {
          return name + " must be a string, got " + show(value);
        }
        return choices.isEmpty() || choices.contains(s)
            ? null
            : name + " must be one of " + choices + ", got " + show(value);
      case INT:
        if (!(value instanceof Integer || value instanceof Long || value instanceof BigInteger)) {
          return name + " must be an integer" + range() + ", got " + show(value);
        }
        if (!fitsInt((Number) value)) {
          // Unbounded, "must be and fit an int" would read as a sentence cut short.
          String range = range();
          return name
              + " must"
              + (range.isEmpty() ? "" : " be" + range + " and")
              + " fit an int, got "
              + show(value);
        }
        return checkRange(((Number) value).doubleValue(), value);
      case FLOAT:
        if (!(value instanceof Number)) {
          return name + " must be a number" + range() + ", got " + show(value);
        }
        double d = ((Number) value).doubleValue();
        if (Double.isNaN(d) || Double.isInfinite(d)) {
          return name + " must be a finite number" + range() + ", got " + show(value);
        }
        return checkRange(d, value);
      default:
        throw new AssertionError(type);
    }
  }

  /**
   * Like {@link #problemWith} but throws.
   *
   * @param value the value
   * @throws IllegalArgumentException naming the parameter, the value and the valid range
   */
  public void check(Object value) {
    String problem = problemWith(value);
    if (problem != null) {
      throw new IllegalArgumentException(problem);
    }
  }

  private String checkRange(double d, Object value) {
    boolean tooSmall = min != null && (minExclusive ? d <= min : d < min);
    boolean tooLarge = max != null && (maxExclusive ? d >= max : d > max);
    return tooSmall || tooLarge ? name + " must be" + range() + ", got " + show(value) : null;
  }

  /**
   * Describes the valid range, for example {@code in (0, 1]}.
   *
   * @return the range text, empty when unbounded
   */
  public String range() {
    if (min == null && max == null) {
      return "";
    }
    if (max == null) {
      return (minExclusive ? " > " : " >= ") + num(min);
    }
    if (min == null) {
      return (maxExclusive ? " < " : " <= ") + num(max);
    }
    return " in "
        + (minExclusive ? "(" : "[")
        + num(min)
        + ", "
        + num(max)
        + (maxExclusive ? ")" : "]");
  }

  private static String num(double d) {
    return d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d);
  }

  private static String show(Object value) {
    return value instanceof String ? "'" + value + "'" : String.valueOf(value);
  }

  /**
   * Declares an integer hyperparameter.
   *
   * @param name snake_case name
   * @param defaultValue default
   * @param min inclusive minimum, or null
   * @param max inclusive maximum, or null
   * @param description one line
   * @return the declaration
   */
  public static HyperParameter<Integer> ofInt(
      String name, int defaultValue, Integer min, Integer max, String description) {
    return new HyperParameter<>(
        name,
        Type.INT,
        Integer.class,
        defaultValue,
        min == null ? null : min.doubleValue(),
        max == null ? null : max.doubleValue(),
        false,
        false,
        List.of(),
        description);
  }

  /**
   * Declares a real-valued hyperparameter with an inclusive maximum.
   *
   * @param name snake_case name
   * @param defaultValue default
   * @param min minimum, or null
   * @param minExclusive whether the minimum is excluded
   * @param max inclusive maximum, or null
   * @param description one line
   * @return the declaration
   */
  public static HyperParameter<Double> ofFloat(
      String name,
      double defaultValue,
      Double min,
      boolean minExclusive,
      Double max,
      String description) {
    return ofFloat(name, defaultValue, min, minExclusive, max, false, description);
  }

  /**
   * Declares a real-valued hyperparameter.
   *
   * @param name snake_case name
   * @param defaultValue default
   * @param min minimum, or null
   * @param minExclusive whether the minimum is excluded
   * @param max maximum, or null
   * @param maxExclusive whether the maximum is excluded
   * @param description one line
   * @return the declaration
   */
  public static HyperParameter<Double> ofFloat(
      String name,
      double defaultValue,
      Double min,
      boolean minExclusive,
      Double max,
      boolean maxExclusive,
      String description) {
    return new HyperParameter<>(
        name,
        Type.FLOAT,
        Double.class,
        defaultValue,
        min,
        max,
        minExclusive,
        maxExclusive,
        List.of(),
        description);
  }

  /**
   * Declares a boolean hyperparameter.
   *
   * @param name snake_case name
   * @param defaultValue default
   * @param description one line
   * @return the declaration
   */
  public static HyperParameter<Boolean> ofBoolean(
      String name, boolean defaultValue, String description) {
    return new HyperParameter<>(
        name,
        Type.BOOLEAN,
        Boolean.class,
        defaultValue,
        null,
        null,
        false,
        false,
        List.of(),
        description);
  }

  /**
   * Declares a free-form string hyperparameter: any string is taken (check its form in the
   * algorithm's constructor, where an {@link IllegalArgumentException} is reported at the entry's
   * line and column like a bad value); a number, boolean, list or null is refused.
   *
   * @param name snake_case name
   * @param defaultValue default
   * @param description one line
   * @return the declaration
   */
  public static HyperParameter<String> ofString(
      String name, String defaultValue, String description) {
    return ofChoice(name, defaultValue, List.of(), description);
  }

  /**
   * Declares a string hyperparameter limited to some choices.
   *
   * @param name snake_case name
   * @param defaultValue default
   * @param choices the valid values
   * @param description one line
   * @return the declaration
   */
  public static HyperParameter<String> ofChoice(
      String name, String defaultValue, List<String> choices, String description) {
    return new HyperParameter<>(
        name,
        Type.STRING,
        String.class,
        defaultValue,
        null,
        null,
        false,
        false,
        choices,
        description);
  }
}
