package dev.surgery.core.events;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.EnumSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Composer's time strings, and which events allow surgery. */
class TimeTest {

  @ParameterizedTest
  @CsvSource({
    "2ep, 2, EPOCH, 2ep",
    "100ba, 100, BATCH, 100ba",
    "0.5dur, 0.5, DURATION, 0.5dur",
    "' 3 ep ', 3, EPOCH, 3ep",
    "1.0dur, 1, DURATION, 1.0dur",
    ".25dur, 0.25, DURATION, 0.25dur",
    "0ep, 0, EPOCH, 0ep"
  })
  void readsTimeStrings(String text, double value, Time.Unit unit, String shown) {
    Time t = Time.parse(text);
    assertEquals(value, t.value());
    assertEquals(unit, t.unit());
    assertEquals(shown, t.toString());
  }

  /**
   * A reviewer: a duration below 10^-3 was written with an exponent ({@code 1.0E-4dur}), which
   * {@link Time#parse} refuses, so the time string written back was none, and messages quoted the
   * entry's {@code at: 0.0001dur} in that form.
   */
  @ParameterizedTest
  @CsvSource({"0.0001dur, 0.0001dur", "0.00005dur, 0.00005dur", "0.000123dur, 0.000123dur"})
  void aSmallDurationIsWrittenBackAsATimeString(String text, String shown) {
    Time t = Time.parse(text);
    assertEquals(shown, t.toString());
    assertEquals(t, Time.parse(t.toString()));
  }

  /** Spaces only, as the JSON Schema says: a tab or a line break is refused. */
  @Test
  void onlySpacesSeparateNumberAndUnit() {
    for (String text : new String[] {"2ep\t", "2\nep", "\t2ep", "2\u00a0ep"}) {
      assertThrows(IllegalArgumentException.class, () -> Time.parse(text), text);
    }
  }

  /** Counts past an int are counts (the parser applies its own ranges), up to 2^53. */
  @Test
  void countsPastAnIntAreWholeCounts() {
    assertEquals(3_000_000_000L, Time.parse("3000000000ba").count());
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> Time.parse("1e30ba"));
    assertTrue(e.getMessage().contains("not a time string"), e.getMessage());
    // Beyond a long it reads as the largest one, which no training reaches; the config parser
    // refuses such counts with its own ranges and the text as written.
    assertEquals(Long.MAX_VALUE, new Time(1e30, Time.Unit.BATCH).count());
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "2EP | units are written in lower case",
        "3sp | samples and tokens are not counted",
        "ep | is not a time string",
        "'' | is not a time string",
        "-1ep | is not a time string",
        "1.5ep | counts whole epochs",
        "2.5ba | counts whole batches",
        "1.0ep | counts whole epochs, written as a whole number without a decimal point",
        "5.ep | counts whole epochs, written as a whole number without a decimal point",
        "'.0ep' | counts whole epochs, written as a whole number without a decimal point",
        "'.0ba' | counts whole batches, written as a whole number without a decimal point",
        "5tok | samples and tokens are not counted",
        "5Ba | units are written in lower case",
        "100.00ba | counts whole batches, written as a whole number without a decimal point",
        "12345678901234567.5ep | counts whole epochs, written as a whole number",
        "0dur | a fraction in (0, 1]",
        "1.5dur | a fraction in (0, 1]",
        "2 days | has the unit 'days'"
      })
  void refusesWhatIsNoTimeString(String text, String fragment) {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> Time.parse(text));
    assertTrue(e.getMessage().contains(fragment), e.getMessage());
  }

  /** The hints name what the unit was taken for, and only then. */
  @Test
  void anUnknownUnitGetsNoHintMeantForAnother() {
    for (String text : new String[] {"2 days", "2sps", "2token", "2epochs"}) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> Time.parse(text));
      assertFalse(e.getMessage().contains("samples and tokens"), e.getMessage());
      assertFalse(e.getMessage().contains("lower case"), e.getMessage());
    }
  }

  @Test
  void surgeryIsAllowedOnlyWhereNoBatchIsInFlight() {
    EnumSet<Event> refused = EnumSet.noneOf(Event.class);
    for (Event e : Event.values()) {
      if (!e.allowsSurgery()) {
        refused.add(e);
      }
    }
    assertEquals(EnumSet.of(Event.AFTER_FORWARD, Event.AFTER_BACKWARD, Event.BEFORE_LOAD), refused);
    assertFalse(Event.AFTER_BACKWARD.allowsSurgery());
    assertEquals("batch_end", Event.BATCH_END.configName());
  }
}
