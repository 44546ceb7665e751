package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.training.optimizer.Adam;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.FixedPerVarTracker;
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.training.tracker.Tracker;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Which learning-rate trackers get the stand-in: those that may answer differently for two ids. The
 * oracle is each tracker's own answer for two ids (DJL's schedules ignore the id, {@code
 * FixedPerVarTracker} and a user's layer-wise rates do not), and the optimizer's tracker field,
 * which must still hold the user's tracker where no stand-in is needed.
 */
class KeptIdTrackerTest {

  /** A schedule of the user's that keeps Tracker's default for ids. */
  private static final class Halving implements Tracker {
    @Override
    public float getNewValue(int numUpdate) {
      return 1f / (1 << Math.min(numUpdate, 20));
    }
  }

  /** A Tracker of the user's with a rate per id (a layer-wise schedule). */
  private static final class ByIdTracker implements Tracker {
    @Override
    public float getNewValue(int numUpdate) {
      return 0.1f;
    }

    @Override
    public float getNewValue(String parameterId, int numUpdate) {
      return parameterId.startsWith("a") ? 0.5f : 0.1f;
    }
  }

  @Test
  void aTrackerThatIgnoresIdsIsNotAnsweringById() {
    for (Tracker tracker : new Tracker[] {Tracker.fixed(0.1f), new Halving()}) {
      // The oracle: the same answer whatever the id.
      assertEquals(tracker.getNewValue("a", 3), tracker.getNewValue("b", 3));
      assertFalse(KeptIdTracker.answersById(tracker), tracker.getClass().getName());
    }
  }

  @Test
  void trackersThatAnswerPerIdAreAnsweringById() {
    ParameterTracker perVar =
        FixedPerVarTracker.builder().setDefaultValue(0.1f).put("a", 0.5f).build();
    ParameterTracker byIdTracker = new ByIdTracker();
    ParameterTracker lambda = (id, n) -> id.startsWith("a") ? 0.5f : 0.1f;
    for (ParameterTracker tracker : new ParameterTracker[] {perVar, byIdTracker, lambda}) {
      assertNotEquals(tracker.getNewValue("a", 3), tracker.getNewValue("b", 3));
      assertTrue(KeptIdTracker.answersById(tracker), tracker.getClass().getName());
    }
    // The stand-in itself answers by the ids it keeps.
    KeptIdTracker kept = new KeptIdTracker(Tracker.fixed(0.1f));
    assertTrue(KeptIdTracker.answersById(kept));
  }

  @Test
  void anOptimizerWithATrackerThatIgnoresIdsIsLeftAlone() throws ReflectiveOperationException {
    Tracker fixed = Tracker.fixed(0.01f);
    Optimizer adam = Adam.builder().optLearningRateTracker(fixed).build();
    assertNull(DjlOptimizers.keptIdTracker(adam, true), "no stand-in for a schedule without ids");
    assertSame(fixed, trackerOf(adam), "the user's tracker is still the optimizer's");

    ParameterTracker perVar =
        FixedPerVarTracker.builder().setDefaultValue(0.01f).putAll(Map.of("a", 0.5f)).build();
    Optimizer perVarAdam = Adam.builder().optLearningRateTracker(perVar).build();
    KeptIdTracker kept = DjlOptimizers.keptIdTracker(perVarAdam, true);
    assertSame(perVar, kept.getTracker());
    assertSame(kept, trackerOf(perVarAdam));
  }

  private static Object trackerOf(Optimizer adam) throws ReflectiveOperationException {
    java.lang.reflect.Field field = Adam.class.getDeclaredField("learningRateTracker");
    field.setAccessible(true);
    return field.get(adam);
  }
}
