package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** A benchmark refuses a misspelled choice instead of running something else than was asked. */
class BenchFlagsTest {

  @Test
  void aChoiceIsTheWordAfterTheFlagOrTheFallback() {
    String[] args = {"--runs", "3", "--part", "scale"};
    assertEquals("scale", BenchSupport.choiceFlag(args, "part", "all", "all", "leaks", "scale"));
    assertEquals("full", BenchSupport.choiceFlag(args, "mode", "full", "full", "steps"));
    assertEquals(3, BenchSupport.intFlag(args, "runs", 5));
  }

  @Test
  void aWordOutsideTheChoicesIsRefusedWithTheFlagAndTheChoices() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                BenchSupport.choiceFlag(
                    new String[] {"--part", "agnet"}, "part", "all", "all", "listener", "agent"));
    assertTrue(e.getMessage().contains("--part"), e.getMessage());
    assertTrue(e.getMessage().contains("agnet"), e.getMessage());
    assertTrue(e.getMessage().contains("all, listener, agent"), e.getMessage());
    // B4 refuses before any work starts.
    assertThrows(
        IllegalArgumentException.class,
        () -> B4ScaleAndLeaks.main(new String[] {"--part", "scales"}));
    // B4a needs a round of each order (engine first, floor first).
    IllegalArgumentException runs =
        assertThrows(
            IllegalArgumentException.class,
            () -> B4ScaleAndLeaks.main(new String[] {"--part", "scale", "--runs", "1"}));
    assertTrue(runs.getMessage().contains("--runs"), runs.getMessage());
  }
}
