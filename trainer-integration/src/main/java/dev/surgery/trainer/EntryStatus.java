package dev.surgery.trainer;

/** Where one schedule entry stands for one trainer. */
enum EntryStatus {
  /** Not run yet; it runs when its epoch completes. */
  PENDING,
  /** An epoch-0 entry that waits for {@link SurgeryListener#onInitialized}. */
  DEFERRED,
  /**
   * An epoch-0 entry whose algorithm needs the planned number of epochs, which is not known yet: it
   * runs when the length arrives ({@link SurgeryListener#onPlannedEpochs}) or at the first batch.
   */
  AWAITING_LENGTH,
  APPLIED,
  FAILED,
  SKIPPED,
  /** Its moment passed unseen; it is never run late. */
  MISSED
}
