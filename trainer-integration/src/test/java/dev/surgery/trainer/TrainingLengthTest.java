package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The planned length of training as the listener's entries follow it: which schedules care (the
 * warnings about a length that changed are given only to those), the planned steps, and whether an
 * entry took its length from the loop's announcement alone (what a later, longer one proves wrong).
 */
class TrainingLengthTest {

  private static ScheduledAlgorithm freezing(Trigger trigger) {
    return ScheduledAlgorithm.of(LayerFreezing.builder().build(), trigger, 0, "test");
  }

  private static ScheduledAlgorithm blurPool(Trigger trigger) {
    return ScheduledAlgorithm.of(BlurPool.builder().build(), trigger, 0, "test");
  }

  private static TrainerState announced(ScheduledAlgorithm entry, int epochs) {
    TrainerState st = new TrainerState(0, List.of(entry), true);
    st.plannedEpochs = epochs;
    return st;
  }

  @Test
  void onlyAScheduleWithAFractionOrADurationFollowsTheLength() {
    ScheduledAlgorithm atEpoch = blurPool(Trigger.atEpoch(1));
    ScheduledAlgorithm everySteps = blurPool(Trigger.every(Time.parse("3ba")));
    assertFalse(new TrainingLength(List.of(atEpoch, everySteps), 4, 0, "hint").matters());
    assertFalse(new TrainingLength(List.of(), 4, 0, "hint").matters());
    assertTrue(
        new TrainingLength(List.of(atEpoch, freezing(Trigger.atEpoch(0))), 0, 0, "h").matters());
    assertTrue(
        new TrainingLength(List.of(blurPool(Trigger.at(Time.parse("0.5dur"))), atEpoch), 0, 0, "h")
            .matters());
  }

  @Test
  void plannedStepsAreTheConfiguredOnesElseTheEpochsTimesTheirSize() {
    ScheduledAlgorithm half = blurPool(Trigger.at(Time.parse("0.5dur")));
    TrainerState st = announced(half, 3);
    st.batchesPerEpoch = 7;
    TrainingLength steps = new TrainingLength(List.of(half), 5, 40, "hint");
    assertEquals(40, steps.plannedSteps(st));
    assertTrue(steps.stepsConfigured());
    TrainingLength epochs = new TrainingLength(List.of(half), 5, 0, "hint");
    // The loop's announcement takes precedence over the configured epochs.
    assertEquals(21, epochs.plannedSteps(st));
    assertFalse(epochs.stepsConfigured());
    st.batchesPerEpoch = 0;
    assertEquals(0, epochs.plannedSteps(st));
  }

  @Test
  void anEntryFollowsTheAnnouncementOnlyWhereNoTotalIsConfigured() {
    ScheduledAlgorithm freeze = freezing(Trigger.atEpoch(0));
    ScheduledAlgorithm half = blurPool(Trigger.at(Time.parse("0.5dur")));
    ScheduledAlgorithm plain = blurPool(Trigger.atEpoch(1));
    TrainingLength none = new TrainingLength(List.of(freeze, half, plain), 0, 0, "hint");
    assertTrue(none.followsAnnouncement(announced(freeze, 3), freeze));
    assertTrue(none.followsAnnouncement(announced(half, 3), half));
    assertFalse(none.followsAnnouncement(announced(plain, 3), plain));
    // Nothing announced: nothing followed.
    assertFalse(none.followsAnnouncement(announced(freeze, 0), freeze));
    // Configured epochs are the user's word; configured steps are a duration's.
    TrainingLength epochs = new TrainingLength(List.of(freeze, half), 1, 0, "hint");
    assertFalse(epochs.followsAnnouncement(announced(freeze, 3), freeze));
    TrainingLength steps = new TrainingLength(List.of(freeze, half), 0, 1, "hint");
    assertFalse(steps.followsAnnouncement(announced(half, 3), half));
    assertTrue(steps.followsAnnouncement(announced(freeze, 3), freeze));
  }
}
