package dev.surgery.trainer;

import dev.surgery.core.SurgeryPlan;
import dev.surgery.trainer.config.ScheduledAlgorithm;

/**
 * What one scheduled entry would change, for a dry run's report: its plan, or why planning failed.
 *
 * @param entry the scheduled entry
 * @param plan its plan, or null when planning failed
 * @param error why planning failed, or null
 */
public record EntryPlan(ScheduledAlgorithm entry, SurgeryPlan plan, String error) {

  /**
   * How {@code error} begins for an algorithm that cannot tell its plan before it runs (one that
   * acts on events, a plugin without a plan): not a failure, and the plan report says {@code
   * no_plan} for it rather than {@code error}.
   */
  public static final String NO_PLAN = "no plan: ";

  /**
   * Requires the entry and exactly one of plan and error.
   *
   * @param entry the scheduled entry
   * @param plan its plan, or null when planning failed
   * @param error why planning failed, or null
   */
  public EntryPlan {
    if (entry == null || (plan == null) == (error == null)) {
      throw new IllegalArgumentException("an entry plan needs its entry and a plan or an error");
    }
  }
}
