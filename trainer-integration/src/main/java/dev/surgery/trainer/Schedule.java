package dev.surgery.trainer;

import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;

/**
 * The schedule of a {@link SurgeryListener} as one trainer goes through it: the only owner of each
 * entry's {@link EntryStatus}. Every status change goes through one method here, which checks that
 * the change is allowed, so that an entry can never run twice, or run after it was missed.
 */
final class Schedule {

  private final List<ScheduledAlgorithm> entries;
  private final EntryStatus[] status;
  private final int[] runs;

  /** The entries closed as in the model's record already, not run by this trainer. */
  private final BitSet recorded = new BitSet();

  Schedule(List<ScheduledAlgorithm> entries) {
    this.entries = entries;
    this.status = new EntryStatus[entries.size()];
    this.runs = new int[entries.size()];
    Arrays.fill(status, EntryStatus.PENDING);
  }

  int size() {
    return entries.size();
  }

  ScheduledAlgorithm entry(int index) {
    return entries.get(index);
  }

  EntryStatus status(int index) {
    return status[index];
  }

  /** How often the entry ran (a repeating or event-driven entry may run many times). */
  int runs(int index) {
    return runs[index];
  }

  /** Whether the entry may still run: pending, or waiting for initialization or the length. */
  boolean isOpen(int index) {
    for (EntryStatus open : OPEN) {
      if (status[index] == open) {
        return true;
      }
    }
    return false;
  }

  /** The statuses of an entry that may still run: pending, or at epoch 0 waiting. */
  private static final EntryStatus[] OPEN = {
    EntryStatus.PENDING, EntryStatus.DEFERRED, EntryStatus.AWAITING_LENGTH
  };

  boolean isPending(int index) {
    return status[index] == EntryStatus.PENDING;
  }

  /** A pending entry at {@code epoch: 0}: what runs before training. */
  boolean isPendingBeforeTraining(int index) {
    return isPending(index) && isEpoch(index, 0);
  }

  /** Whether the entry runs after exactly {@code epoch} completed epochs. */
  boolean isEpoch(int index, int epoch) {
    ScheduledAlgorithm e = entries.get(index);
    return e.byEpoch() && e.epoch() == epoch;
  }

  /** Whether the entry is an epoch entry past its epoch. */
  boolean isEpochBefore(int index, int epoch) {
    ScheduledAlgorithm e = entries.get(index);
    return e.byEpoch() && e.epoch() < epoch;
  }

  boolean hasKind(int index, Trigger.Kind kind) {
    return entries.get(index).trigger().kind() == kind;
  }

  /** PENDING to DEFERRED: an epoch-0 entry waits for the model to be initialized. */
  void defer(int index) {
    move(index, EntryStatus.DEFERRED, EntryStatus.PENDING, EntryStatus.AWAITING_LENGTH);
  }

  /** To AWAITING_LENGTH: an entry waits for the planned length of training. */
  void awaitLength(int index) {
    move(index, EntryStatus.AWAITING_LENGTH, EntryStatus.PENDING, EntryStatus.DEFERRED);
  }

  /**
   * The entry ran: a one-shot entry becomes APPLIED, a repeating or event-driven one stays PENDING
   * for its next occurrence.
   */
  void ran(int index) {
    runs[index]++;
    if (entries.get(index).trigger().repeats()) {
      move(index, EntryStatus.PENDING, EntryStatus.PENDING);
    } else {
      move(index, EntryStatus.APPLIED, OPEN);
    }
  }

  /**
   * PENDING (or DEFERRED, AWAITING_LENGTH: an epoch-0 entry still waiting) to APPLIED without a
   * run: the model's surgery record holds the entry already (a checkpoint's replayed surgery, or an
   * earlier trainer of the same model).
   */
  void alreadyRecorded(int index) {
    move(index, EntryStatus.APPLIED, OPEN);
    recorded.set(index);
  }

  /**
   * Opens again the entries {@link #alreadyRecorded} closed: the model was given another block (its
   * record was another block's), so they may run on this one. Returns which were opened.
   */
  BitSet reopenRecorded() {
    BitSet opened = (BitSet) recorded.clone();
    for (int i = opened.nextSetBit(0); i >= 0; i = opened.nextSetBit(i + 1)) {
      move(i, EntryStatus.PENDING, EntryStatus.APPLIED);
    }
    recorded.clear();
    return opened;
  }

  /** The entry failed: FAILED (on_error: fail) or SKIPPED; it does not run again. */
  void failed(int index, boolean skipped) {
    move(index, skipped ? EntryStatus.SKIPPED : EntryStatus.FAILED, OPEN);
  }

  /** PENDING to MISSED: its moment passed unseen; it is never run late. */
  void missed(int index) {
    move(index, EntryStatus.MISSED, EntryStatus.PENDING);
  }

  /**
   * The epoch at whose end the next pending epoch entry runs, after {@code passed} epochs, or
   * MAX_VALUE when none: what the loss window before an application needs to know.
   */
  int nextDueEpoch(int passed) {
    int next = Integer.MAX_VALUE;
    for (int i = 0; i < entries.size(); i++) {
      ScheduledAlgorithm e = entries.get(i);
      if (status[i] != EntryStatus.PENDING) {
        continue;
      }
      if (e.byEpoch() && e.epoch() > passed) {
        next = Math.min(next, e.epoch());
      } else if (e.trigger().kind() == Trigger.Kind.EVERY_EPOCHS) {
        long every = e.trigger().amount();
        next = (int) Math.min(next, (passed / every + 1) * every);
      }
    }
    return next;
  }

  /**
   * How many optimizer steps after {@code steps} the next pending step entry runs (0: at step
   * {@code steps} itself), or MAX_VALUE when none.
   *
   * @param steps the step count to measure from
   * @param plannedSteps the planned steps, for duration entries; 0 when unknown
   */
  long stepsUntilDue(long steps, long plannedSteps) {
    long next = Long.MAX_VALUE;
    for (int i = 0; i < entries.size(); i++) {
      if (status[i] != EntryStatus.PENDING) {
        continue;
      }
      Trigger t = entries.get(i).trigger();
      long due;
      switch (t.kind()) {
        case STEP:
          due = t.amount();
          break;
        case EVERY_STEPS:
          due = ((steps + t.amount() - 1) / t.amount()) * t.amount();
          break;
        case DURATION:
          // Its step unknown until the length is (data that does not tell its size): it may be
          // due at any step, so the losses before it are kept meanwhile.
          due = plannedSteps > 0 ? TrainingLength.dueStep(t, plannedSteps) : steps;
          break;
        default:
          due = Long.MAX_VALUE;
      }
      if (due != Long.MAX_VALUE && due >= steps) {
        next = Math.min(next, due - steps);
      }
    }
    return next;
  }

  private void move(int index, EntryStatus to, EntryStatus... from) {
    for (EntryStatus f : from) {
      if (status[index] == f) {
        status[index] = to;
        return;
      }
    }
    throw new IllegalStateException(
        entries.get(index).describe() + ": cannot go from " + status[index] + " to " + to);
  }
}
