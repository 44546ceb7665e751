package dev.surgery.trainer;

/** Where one schedule entry stands for one trainer. */
enum EntryStatus {
  /** Not run yet; it runs when its epoch completes. */
  PENDING,
  /** An epoch-0 entry that waits for {@link SurgeryListener#onInitialized}. */
  DEFERRED,
  APPLIED,
  FAILED,
  SKIPPED,
  /** Its moment passed unseen; it is never run late. */
  MISSED
}
