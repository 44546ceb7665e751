package dev.surgery.trainer.config;

import dev.surgery.core.algorithms.HyperParameter;
import java.math.BigInteger;

/**
 * Brings hyperparameter values read from YAML or JSON to the Java types their declarations expect,
 * so that {@link HyperParameter#problemWith} and the algorithm factories see {@code Integer} for
 * whole numbers and {@code Double} for real numbers, whatever the parser produced.
 */
public final class HyperParameterValues {

  private HyperParameterValues() {}

  /**
   * Converts a parsed value to the type of its declaration where this loses nothing: an INT given
   * as {@code Long} or {@code BigInteger} becomes an {@code Integer} when it fits, a FLOAT given as
   * any number becomes a {@code Double}. Anything else (a real number for an INT, a string for a
   * number) is returned unchanged, for {@link HyperParameter#problemWith} to refuse.
   *
   * @param declaration the declaration
   * @param value the parsed value
   * @return the value, converted where possible
   */
  public static Object normalize(HyperParameter declaration, Object value) {
    switch (declaration.type()) {
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
        if (value instanceof Number n) {
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
}
