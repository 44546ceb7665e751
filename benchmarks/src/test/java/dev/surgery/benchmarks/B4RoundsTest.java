package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** B4a's rounds per tree size: more for small trees, so each size's medians rest on enough time. */
class B4RoundsTest {

  @Test
  void smallTreesGetUpToTwentyTimesTheRounds() {
    assertEquals(120, B4ScaleAndLeaks.roundsFor(1_000, 6));
    assertEquals(120, B4ScaleAndLeaks.roundsFor(10_000, 6));
    assertEquals(24, B4ScaleAndLeaks.roundsFor(50_000, 6));
    assertEquals(6, B4ScaleAndLeaks.roundsFor(200_000, 6));
    assertEquals(2, B4ScaleAndLeaks.roundsFor(200_000, 2), "the minimum the order balance needs");
    assertEquals(40, B4ScaleAndLeaks.roundsFor(1_000, 2));
  }
}
