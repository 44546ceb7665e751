package dev.surgery.trainer.config;

import java.util.Locale;

/** What a {@link dev.surgery.trainer.SurgeryListener} does when a scheduled algorithm fails. */
public enum OnError {
  /** Stop training with an exception naming the algorithm, the epoch and the block path. */
  FAIL,
  /** Log the failure as an error and keep training with the model as it was. */
  SKIP;

  /**
   * Returns the name used in YAML configs ({@code fail} or {@code skip}).
   *
   * @return the config name
   */
  public String configName() {
    return name().toLowerCase(Locale.ROOT);
  }
}
