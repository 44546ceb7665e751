package dev.surgery.core.events;

import java.math.BigDecimal;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A point or length of training in Composer's time-string notation: {@code "2ep"} (epochs), {@code
 * "100ba"} (batches, that is optimizer steps) or {@code "0.5dur"} (a fraction of the planned length
 * of training, which must be known where it is used). Epochs and batches are whole numbers; a
 * duration is in (0, 1].
 *
 * @param value the amount: whole for {@link Unit#EPOCH} and {@link Unit#BATCH}
 * @param unit the unit
 */
public record Time(double value, Unit unit) {

  private static final Pattern SYNTAX =
      Pattern.compile(" *([0-9]+(?:\\.[0-9]*)?|\\.[0-9]+) *([a-zA-Z]+) *");

  /** The units of a {@link Time}. */
  public enum Unit {
    /** Completed training epochs ({@code ep}). */
    EPOCH("ep"),
    /** Optimizer steps, one per training batch ({@code ba}). */
    BATCH("ba"),
    /** A fraction of the planned length of training ({@code dur}). */
    DURATION("dur");

    private final String suffix;

    Unit(String suffix) {
      this.suffix = suffix;
    }

    /**
     * Returns the suffix used in time strings.
     *
     * @return {@code ep}, {@code ba} or {@code dur}
     */
    public String suffix() {
      return suffix;
    }
  }

  /**
   * Checks the value against the unit.
   *
   * @param value the amount: whole for {@link Unit#EPOCH} and {@link Unit#BATCH}
   * @param unit the unit
   */
  public Time {
    if (unit == null) {
      throw new IllegalArgumentException("unit must not be null");
    }
    if (!Double.isFinite(value) || value < 0) {
      throw new IllegalArgumentException("time must be a finite number >= 0, got " + value);
    }
    if (unit == Unit.DURATION && (value <= 0 || value > 1)) {
      throw new IllegalArgumentException(
          "a duration must be a fraction in (0, 1] of the planned training, got " + value + "dur");
    }
    if (unit != Unit.DURATION && value != Math.rint(value)) {
      throw new IllegalArgumentException(
          unit.suffix
              + " counts whole "
              + (unit == Unit.EPOCH ? "epochs" : "batches")
              + ", got "
              + value
              + unit.suffix);
    }
  }

  /**
   * Reads a time string such as {@code 2ep}, {@code 100ba} or {@code 0.5dur}.
   *
   * @param text the time string
   * @return the time
   * @throws IllegalArgumentException saying what a time string looks like
   */
  public static Time parse(String text) {
    Matcher m = text == null ? null : SYNTAX.matcher(text);
    if (m == null || !m.matches()) {
      throw new IllegalArgumentException(
          "'"
              + text
              + "' is not a time string; write a number and a unit: '2ep' (epochs), '100ba'"
              + " (batches) or '0.5dur' (a fraction of the planned training)");
    }
    String suffix = m.group(2);
    for (Unit unit : Unit.values()) {
      if (unit.suffix.equals(suffix)) {
        String number = m.group(1);
        if (unit != Unit.DURATION && number.indexOf('.') >= 0) {
          // As for epoch: 1.0 in a config, and as in Composer: a count is written as a whole
          // number.
          throw new IllegalArgumentException(
              "'"
                  + text
                  + "': "
                  + unit.suffix
                  + " counts whole "
                  + (unit == Unit.EPOCH ? "epochs" : "batches")
                  + ", written as a whole number without a decimal point");
        }
        return new Time(Double.parseDouble(number), unit);
      }
    }
    String lower = suffix.toLowerCase(Locale.ROOT);
    throw new IllegalArgumentException(
        "'"
            + text
            + "' has the unit '"
            + m.group(2)
            + "'; DJL Surgery knows 'ep' (epochs), 'ba' (batches) and 'dur' (a fraction of the"
            + " planned training)"
            + (lower.equals("sp") || lower.equals("tok")
                ? " (samples and tokens are not counted)"
                : "")
            + (!lower.equals(suffix) && List.of("ep", "ba", "dur").contains(lower)
                ? " (units are written in lower case)"
                : ""));
  }

  /**
   * Returns the amount as a whole number, for epochs and batches; one past {@code Long.MAX_VALUE}
   * reads as {@code Long.MAX_VALUE} (a count no training reaches; callers apply their ranges).
   *
   * @return the count
   * @throws IllegalStateException for a duration
   */
  public long count() {
    if (unit == Unit.DURATION) {
      throw new IllegalStateException("a duration has no count: " + this);
    }
    return (long) value;
  }

  /**
   * Writes the time string back, for example {@code 2ep} or {@code 0.5dur}.
   *
   * @return the time string
   */
  @Override
  public String toString() {
    return (unit == Unit.DURATION ? fraction(value) : Long.toString((long) value)) + unit.suffix;
  }

  /**
   * A duration's fraction as {@link #parse} reads it: {@code Double.toString}, which writes a
   * fraction below 10^-3 with an exponent ({@code 1.0E-4}), no time string's form, written out in
   * decimals instead ({@code 0.0001}).
   */
  private static String fraction(double value) {
    String shown = Double.toString(value);
    return shown.indexOf('E') < 0
        ? shown
        : new BigDecimal(shown).stripTrailingZeros().toPlainString();
  }
}
