package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.BitSet;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The schedule's look-ahead (which epoch end or step the next pending entry runs at, what the loss
 * window before an application is kept for) against a count done step by step from the documented
 * semantics, and the status changes that keep an entry from running twice or late.
 */
class ScheduleTest {

  /** Far enough for every schedule here: beyond it, nothing is due. */
  private static final int HORIZON = 1000;

  private static ScheduledAlgorithm entry(Trigger trigger) {
    return ScheduledAlgorithm.of(LayerFreezing.builder().build(), trigger, 0, "test");
  }

  /** Whether a pending entry runs at the end of epoch {@code e}: epoch k, or every N epochs. */
  private static boolean runsAtEpochEnd(Schedule s, int i, int e) {
    Trigger t = s.entry(i).trigger();
    return s.isPending(i)
        && ((t.kind() == Trigger.Kind.EPOCH && t.amount() == e)
            || (t.kind() == Trigger.Kind.EVERY_EPOCHS && e % t.amount() == 0));
  }

  /** The first epoch end after {@code passed} at which a pending entry runs, counted one by one. */
  private static int countedNextEpoch(Schedule s, int passed) {
    for (int e = passed + 1; e <= passed + HORIZON; e++) {
      for (int i = 0; i < s.size(); i++) {
        if (runsAtEpochEnd(s, i, e)) {
          return e;
        }
      }
    }
    return Integer.MAX_VALUE;
  }

  /**
   * The steps from {@code steps} to the first step at whose end a pending step entry runs: step n,
   * every N steps, a duration at the first step whose fraction of the planned ones reaches it (at
   * any step while those are unknown), counted one by one.
   */
  private static long countedStepsUntil(Schedule s, long steps, long planned) {
    for (long at = steps; at <= steps + HORIZON; at++) {
      for (int i = 0; i < s.size(); i++) {
        if (!s.isPending(i)) {
          continue;
        }
        Trigger t = s.entry(i).trigger();
        boolean due =
            switch (t.kind()) {
              case STEP -> t.amount() == at;
              case EVERY_STEPS -> at % t.amount() == 0;
              case DURATION ->
                  planned <= 0
                      || at == Math.max(1, (long) Math.ceil(t.fraction() * planned - 1e-9));
              default -> false;
            };
        if (due) {
          return at - steps;
        }
      }
    }
    return Long.MAX_VALUE;
  }

  @Test
  void theNextDueEpochIsTheFirstEpochEndWhereAPendingEntryRuns() {
    Schedule s =
        new Schedule(
            List.of(
                entry(Trigger.atEpoch(0)),
                entry(Trigger.atEpoch(5)),
                entry(Trigger.every(Time.parse("3ep"))),
                entry(Trigger.atStep(4)),
                entry(Trigger.atEpoch(7))));
    for (int passed = 0; passed <= 12; passed++) {
      assertEquals(countedNextEpoch(s, passed), s.nextDueEpoch(passed), "after " + passed);
    }
    // Only pending entries count: the repeat failed, epoch 5 ran, and then epoch 7 is next.
    s.failed(2, true);
    s.ran(1);
    for (int passed = 0; passed <= 8; passed++) {
      assertEquals(countedNextEpoch(s, passed), s.nextDueEpoch(passed), "after " + passed);
    }
    assertEquals(7, s.nextDueEpoch(0));
    assertEquals(Integer.MAX_VALUE, s.nextDueEpoch(7));
  }

  @Test
  void aRepeatAloneIsDueAtItsNextMultiple() {
    Schedule s = new Schedule(List.of(entry(Trigger.every(Time.parse("4ep")))));
    for (int passed = 0; passed <= 13; passed++) {
      assertEquals(countedNextEpoch(s, passed), s.nextDueEpoch(passed), "after " + passed);
    }
    assertEquals(4, s.nextDueEpoch(3));
    assertEquals(8, s.nextDueEpoch(4));
  }

  @Test
  void stepsUntilDueCountsToTheNextPendingStepEntry() {
    ScheduledAlgorithm half = entry(Trigger.at(Time.parse("0.5dur")));
    Schedule s =
        new Schedule(
            List.of(
                entry(Trigger.atStep(9)),
                entry(Trigger.every(Time.parse("7ba"))),
                entry(Trigger.atEpoch(2)),
                half));
    for (long steps = 1; steps <= 40; steps++) {
      for (long planned : new long[] {13, 30, 60}) {
        assertEquals(
            countedStepsUntil(s, steps, planned),
            s.stepsUntilDue(steps, planned),
            "from step " + steps + " of " + planned);
      }
    }
    // While the planned steps are unknown, a duration may be due at any step: now.
    assertEquals(0, s.stepsUntilDue(20, 0));
    s.failed(3, false);
    s.failed(1, false);
    for (long steps = 1; steps <= 12; steps++) {
      assertEquals(countedStepsUntil(s, steps, 0), s.stepsUntilDue(steps, 0), "step " + steps);
    }
    assertEquals(Long.MAX_VALUE, s.stepsUntilDue(10, 0));
  }

  @Test
  void aStepRepeatIsDueAtItsNextMultipleOrNow() {
    Schedule s = new Schedule(List.of(entry(Trigger.every(Time.parse("5ba")))));
    for (long steps = 1; steps <= 23; steps++) {
      assertEquals(countedStepsUntil(s, steps, 0), s.stepsUntilDue(steps, 0), "step " + steps);
    }
    assertEquals(0, s.stepsUntilDue(10, 0));
    assertEquals(4, s.stepsUntilDue(11, 0));
  }

  @Test
  void aOneShotEntryClosesWhenItRunsARepeatStaysPendingAndCounts() {
    Schedule s =
        new Schedule(List.of(entry(Trigger.atEpoch(1)), entry(Trigger.every(Time.parse("2ep")))));
    s.ran(0);
    s.ran(1);
    s.ran(1);
    assertEquals(EntryStatus.APPLIED, s.status(0));
    assertEquals(EntryStatus.PENDING, s.status(1));
    assertEquals(1, s.runs(0));
    assertEquals(2, s.runs(1));
    // Neither runs again once closed: a one-shot that ran, a repeat that failed.
    assertThrows(IllegalStateException.class, () -> s.ran(0));
    s.failed(1, false);
    assertEquals(EntryStatus.FAILED, s.status(1));
    assertThrows(IllegalStateException.class, () -> s.ran(1));
  }

  @Test
  void failedSkippedAndMissedEntriesCloseAsSuch() {
    Schedule s =
        new Schedule(
            List.of(
                entry(Trigger.atEpoch(1)), entry(Trigger.atEpoch(2)), entry(Trigger.atStep(3))));
    s.failed(0, true);
    s.failed(1, false);
    s.missed(2);
    assertEquals(EntryStatus.SKIPPED, s.status(0));
    assertEquals(EntryStatus.FAILED, s.status(1));
    assertEquals(EntryStatus.MISSED, s.status(2));
    // A missed entry is never run late.
    assertThrows(IllegalStateException.class, () -> s.ran(2));
  }

  @Test
  void anEpochZeroEntryWaitsThenRunsOnce() {
    Schedule s = new Schedule(List.of(entry(Trigger.atEpoch(0)), entry(Trigger.atEpoch(0))));
    s.defer(0);
    s.awaitLength(1);
    assertEquals(EntryStatus.DEFERRED, s.status(0));
    assertEquals(EntryStatus.AWAITING_LENGTH, s.status(1));
    // Waiting entries are still open (they may run), not pending (nothing due picks them).
    assertEquals(true, s.isOpen(0));
    assertEquals(false, s.isPendingBeforeTraining(0));
    s.ran(0);
    s.ran(1);
    assertEquals(EntryStatus.APPLIED, s.status(0));
    assertEquals(EntryStatus.APPLIED, s.status(1));
    assertThrows(IllegalStateException.class, () -> s.defer(0));
  }

  @Test
  void recordedEntriesCloseAndReopenOnceForAnotherBlock() {
    Schedule s =
        new Schedule(
            List.of(
                entry(Trigger.atEpoch(0)), entry(Trigger.atEpoch(2)), entry(Trigger.atStep(5))));
    s.alreadyRecorded(0);
    s.alreadyRecorded(2);
    s.ran(1);
    assertEquals(EntryStatus.APPLIED, s.status(0));
    assertEquals(EntryStatus.APPLIED, s.status(2));
    BitSet expected = new BitSet();
    expected.set(0);
    expected.set(2);
    assertEquals(expected, s.reopenRecorded());
    // The entry this trainer ran stays applied; the recorded ones may run on the new block.
    assertEquals(EntryStatus.PENDING, s.status(0));
    assertEquals(EntryStatus.APPLIED, s.status(1));
    assertEquals(EntryStatus.PENDING, s.status(2));
    // Opened once: another block again reopens nothing.
    assertEquals(new BitSet(), s.reopenRecorded());
    assertEquals(EntryStatus.PENDING, s.status(2));
  }
}
