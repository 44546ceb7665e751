package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.events.Time;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/**
 * The epochs completed when an entry first runs, told before training (the agent's dry run plans
 * layer freezing there), against the epochs a simulated loop has completed at that batch end:
 * {@code onTrainingBatch} of a step comes before the {@code onEpoch} of the epoch it ends.
 */
class CompletedEpochsAtFirstRunTest {

  private static ScheduledAlgorithm entry(Trigger trigger) {
    return ScheduledAlgorithm.of(LayerFreezing.builder().build(), trigger, 0, "test");
  }

  /** The epochs completed at the end of the batch of a step, in a loop of B batches per epoch. */
  private static int simulatedCompleted(long step, long batchesPerEpoch) {
    int completed = 0;
    for (long s = 1; s <= step; s++) {
      if (s == step) {
        return completed;
      }
      if (s % batchesPerEpoch == 0) {
        completed++;
      }
    }
    return completed;
  }

  @Test
  void durationsAgreeWithTheLoopWhateverTheBatchesPerEpoch() {
    for (int epochs = 1; epochs <= 6; epochs++) {
      for (double fraction : new double[] {0.01, 0.25, 0.5, 0.6, 0.75, 0.99, 1.0}) {
        ScheduledAlgorithm e = entry(Trigger.at(Time.parse(fraction + "dur")));
        TrainingLength length = new TrainingLength(List.of(e), epochs, 0, "hint");
        for (long batches = 1; batches <= 7; batches++) {
          TrainerState st = new TrainerState(0, List.of(e), true);
          st.batchesPerEpoch = batches;
          long due = TrainingLength.dueStep(e.trigger(), epochs * batches);
          int simulated = simulatedCompleted(due, batches);
          assertEquals(
              OptionalInt.of(simulated),
              length.completedAtFirstRun(st, e),
              fraction + "dur of " + epochs + " epochs of " + batches + " batches");
          // Before the data tells its size: the same, but for a duration in the first epoch,
          // which data that never tells it runs at the first epoch's end.
          assertEquals(
              simulated == 0 ? OptionalInt.empty() : OptionalInt.of(simulated),
              length.completedAtFirstRun(null, e),
              fraction + "dur of " + epochs + " epochs, size unknown");
        }
      }
    }
  }

  @Test
  void epochsRepeatsAndStepsOnceTheBatchesAreKnown() {
    ScheduledAlgorithm atEpoch = entry(Trigger.atEpoch(2));
    ScheduledAlgorithm every = entry(Trigger.every(Time.parse("3ep")));
    ScheduledAlgorithm step = entry(Trigger.atStep(9));
    ScheduledAlgorithm everySteps = entry(Trigger.every(Time.parse("5ba")));
    ScheduledAlgorithm first = entry(Trigger.atStep(1));
    TrainingLength length =
        new TrainingLength(List.of(atEpoch, every, step, everySteps, first), 4, 0, "hint");
    assertEquals(OptionalInt.of(2), length.completedAtFirstRun(null, atEpoch));
    assertEquals(OptionalInt.of(3), length.completedAtFirstRun(null, every));
    // Unknown batches per epoch: a step's epoch cannot be told, but step 1's always is 0.
    assertEquals(OptionalInt.empty(), length.completedAtFirstRun(null, step));
    assertEquals(OptionalInt.empty(), length.completedAtFirstRun(null, everySteps));
    assertEquals(OptionalInt.of(0), length.completedAtFirstRun(null, first));
    TrainerState st = new TrainerState(0, List.of(step), true);
    st.batchesPerEpoch = 4;
    assertEquals(OptionalInt.of(simulatedCompleted(9, 4)), length.completedAtFirstRun(st, step));
    assertEquals(
        OptionalInt.of(simulatedCompleted(5, 4)), length.completedAtFirstRun(st, everySteps));
    // A duration of total_steps needs the batches per epoch too.
    ScheduledAlgorithm ofSteps = entry(Trigger.at(Time.parse("0.5dur")));
    TrainingLength steps = new TrainingLength(List.of(ofSteps), 0, 20, "hint");
    assertEquals(OptionalInt.empty(), steps.completedAtFirstRun(null, ofSteps));
    assertEquals(OptionalInt.of(simulatedCompleted(10, 4)), steps.completedAtFirstRun(st, ofSteps));
  }

  @Test
  void stepsAgreeWithTheLoopWhateverTheBatchesPerEpoch() {
    for (long step = 1; step <= 20; step++) {
      ScheduledAlgorithm e = entry(Trigger.atStep(step));
      TrainingLength length = new TrainingLength(List.of(e), 0, 0, "hint");
      for (long batches = 1; batches <= 7; batches++) {
        TrainerState st = new TrainerState(0, List.of(e), true);
        st.batchesPerEpoch = batches;
        assertEquals(
            OptionalInt.of(simulatedCompleted(step, batches)),
            length.completedAtFirstRun(st, e),
            "step " + step + " of epochs of " + batches + " batches");
      }
    }
  }

  @Test
  void aStepAfterTheLargestEpochCountThatFitsAnIntIsToldAndTheNextIsNot() {
    // With one batch per epoch, step MAX_VALUE + 1 ends epoch MAX_VALUE + 1: MAX_VALUE completed.
    ScheduledAlgorithm lastStep = entry(Trigger.atStep(Integer.MAX_VALUE + 1L));
    ScheduledAlgorithm pastIt = entry(Trigger.atStep(Integer.MAX_VALUE + 2L));
    TrainingLength length = new TrainingLength(List.of(lastStep, pastIt), 0, 0, "hint");
    TrainerState st = new TrainerState(0, List.of(lastStep), true);
    st.batchesPerEpoch = 1;
    assertEquals(OptionalInt.of(Integer.MAX_VALUE), length.completedAtFirstRun(st, lastStep));
    assertEquals(OptionalInt.empty(), length.completedAtFirstRun(st, pastIt));
  }

  @Test
  void aDurationWithoutAPlannedLengthOrInTheFirstEpochOfUntoldSizeIsNotTold() {
    ScheduledAlgorithm quarter = entry(Trigger.at(Time.parse("0.25dur")));
    ScheduledAlgorithm events = entry(Trigger.onEvents());
    // No length configured nor announced: not told, even where the batches per epoch are known.
    TrainingLength none = new TrainingLength(List.of(quarter), 0, 0, "hint");
    TrainerState known = new TrainerState(0, List.of(quarter), true);
    known.batchesPerEpoch = 4;
    assertEquals(OptionalInt.empty(), none.completedAtFirstRun(known, quarter));
    // In the first epoch of 2, for a trainer whose data has not told its size yet.
    TrainingLength two = new TrainingLength(List.of(quarter), 2, 0, "hint");
    TrainerState untold = new TrainerState(0, List.of(quarter), true);
    assertEquals(OptionalInt.empty(), two.completedAtFirstRun(untold, quarter));
    assertEquals(OptionalInt.of(0), two.completedAtFirstRun(known, quarter));
    // An entry on events has no moment of its own.
    assertEquals(OptionalInt.empty(), two.completedAtFirstRun(known, events));
  }
}
