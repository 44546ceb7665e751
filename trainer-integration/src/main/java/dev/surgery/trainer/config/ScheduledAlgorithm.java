package dev.surgery.trainer.config;

import dev.surgery.core.algorithms.Algorithm;

/**
 * One entry of a surgery schedule: an algorithm and the number of completed training epochs after
 * which it is applied (0: before the first training batch).
 *
 * @param algorithm the configured algorithm
 * @param epoch the number of completed epochs when it runs; 0 runs it before training
 * @param index the entry's position in the schedule (0-based, file or builder order)
 * @param source where the entry was declared, for messages: {@code file:line:column} for a config
 *     entry, {@code builder entry N} for one added in code
 */
public record ScheduledAlgorithm(Algorithm algorithm, int epoch, int index, String source) {

  /** Validates the entry. */
  public ScheduledAlgorithm {
    if (algorithm == null) {
      throw new IllegalArgumentException("algorithm must not be null");
    }
    if (epoch < 0 || epoch > SurgeryConfig.MAX_EPOCH) {
      throw new IllegalArgumentException(
          "epoch must be in [0, " + SurgeryConfig.MAX_EPOCH + "], got " + epoch);
    }
    if (index < 0) {
      throw new IllegalArgumentException("index must be >= 0, got " + index);
    }
    if (source == null || source.isEmpty()) {
      source = "entry " + (index + 1);
    }
  }

  /**
   * Describes the entry for log lines and exceptions, for example {@code blurpool at epoch 1
   * (surgery.yaml:4:5)}.
   *
   * @return the description
   */
  public String describe() {
    return algorithm.name() + " at epoch " + epoch + " (" + source + ")";
  }
}
