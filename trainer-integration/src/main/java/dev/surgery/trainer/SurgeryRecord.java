package dev.surgery.trainer;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One applied surgery as recorded in a model's {@code surgery} property: enough to replay it on the
 * original architecture before loading a checkpoint.
 *
 * @param algorithm the algorithm's config name
 * @param hyperparameters the hyperparameters it ran with, by config name
 * @param epoch the number of completed epochs when it ran (0: before training)
 * @param totalEpochs the planned number of epochs it was given, 0 when unknown
 */
public record SurgeryRecord(
    String algorithm, Map<String, Object> hyperparameters, int epoch, int totalEpochs) {

  /** Validates and copies. */
  public SurgeryRecord {
    if (algorithm == null || algorithm.isEmpty()) {
      throw new IllegalArgumentException("algorithm must not be empty");
    }
    if (epoch < 0 || totalEpochs < 0) {
      throw new IllegalArgumentException("epochs must be >= 0");
    }
    hyperparameters =
        Collections.unmodifiableMap(
            new LinkedHashMap<>(hyperparameters == null ? Map.of() : hyperparameters));
  }
}
