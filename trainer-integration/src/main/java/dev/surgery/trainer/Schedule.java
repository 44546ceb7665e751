package dev.surgery.trainer;

import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.Arrays;
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
    EntryStatus s = status[index];
    return s == EntryStatus.PENDING
        || s == EntryStatus.DEFERRED
        || s == EntryStatus.AWAITING_LENGTH;
  }

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
      move(
          index,
          EntryStatus.APPLIED,
          EntryStatus.PENDING,
          EntryStatus.DEFERRED,
          EntryStatus.AWAITING_LENGTH);
    }
  }

  /** The entry failed: FAILED (on_error: fail) or SKIPPED; it does not run again. */
  void failed(int index, boolean skipped) {
    move(
        index,
        skipped ? EntryStatus.SKIPPED : EntryStatus.FAILED,
        EntryStatus.PENDING,
        EntryStatus.DEFERRED,
        EntryStatus.AWAITING_LENGTH);
  }

  /** PENDING to MISSED: its moment passed unseen; it is never run late. */
  void missed(int index) {
    move(index, EntryStatus.MISSED, EntryStatus.PENDING);
  }

  /** The epoch of the next pending epoch entry after {@code passed}, or MAX_VALUE when none. */
  int nextDueEpoch(int passed) {
    int next = Integer.MAX_VALUE;
    for (int i = 0; i < entries.size(); i++) {
      ScheduledAlgorithm e = entries.get(i);
      if (status[i] == EntryStatus.PENDING && e.byEpoch() && e.epoch() > passed) {
        next = Math.min(next, e.epoch());
      }
      if (status[i] == EntryStatus.PENDING && !e.byEpoch()) {
        next = Math.min(next, passed + 1); // step and event entries: any batch may be before one
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
