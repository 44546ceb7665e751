package dev.surgery.core.algorithms;

import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Opens a built-in algorithm's surgery to a test of the engine: the policies and options {@link
 * AbstractSurgeryAlgorithm#apply} hands to the engine (each function wrapped, as there, so that the
 * replacement of a frozen layer comes out frozen), for a test that runs them with injected faults.
 */
public final class AlgorithmPolicies {

  private AlgorithmPolicies() {}

  /**
   * Returns the policies an application on {@code context} would run, every block a target.
   *
   * @param algorithm a built-in surgery algorithm
   * @param context the model and its trainers
   * @return matcher to replacement function, in priority order
   */
  public static Map<BlockMatcher, ReplacementFunction> of(
      Algorithm algorithm, SurgeryContext context) {
    AbstractSurgeryAlgorithm a = (AbstractSurgeryAlgorithm) algorithm;
    FrozenReplacements frozen = new FrozenReplacements(context.model());
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    a.policies(context).forEach((m, f) -> policies.put(m, frozen.keepingFrozen(f)));
    return policies;
  }

  /**
   * Returns the engine options an application on {@code context} would use.
   *
   * @param algorithm a built-in surgery algorithm
   * @param context the model and its trainers
   * @return the options
   */
  public static SurgeryOptions options(Algorithm algorithm, SurgeryContext context) {
    return ((AbstractSurgeryAlgorithm) algorithm).surgeryOptions(context);
  }
}
