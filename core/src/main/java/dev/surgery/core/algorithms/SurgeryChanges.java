package dev.surgery.core.algorithms;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What one application of an {@link Algorithm} changed in a model: the blocks it replaced and the
 * parameter counts around it. The trainer layer wraps it in the outcome of a scheduled entry (with
 * the losses around it); it is not itself written anywhere.
 *
 * @param algorithm the algorithm's config name
 * @param hyperparameters the hyperparameters it ran with
 * @param changes one entry per replaced block, in replacement order
 * @param parametersBefore the number of parameter values (scalars) in the model before, or {@link
 *     #UNKNOWN_PARAMETERS} when a parameter had no shape yet (the model was not initialized)
 * @param parametersAfter the number after, or {@link #UNKNOWN_PARAMETERS}
 * @param nanos time taken, in nanoseconds
 * @param warnings what the algorithm warned of while it ran (logged at WARN too), such as an
 *     application that changed nothing; empty when nothing
 */
public record SurgeryChanges(
    String algorithm,
    Map<String, Object> hyperparameters,
    List<Change> changes,
    long parametersBefore,
    long parametersAfter,
    long nanos,
    List<String> warnings) {

  /**
   * The parameter count of a model whose parameters are not all shaped yet (surgery before {@code
   * Trainer.initialize}): unknown, not 0.
   */
  public static final long UNKNOWN_PARAMETERS = -1;

  /**
   * Copies the collections.
   *
   * @param algorithm the algorithm's config name
   * @param hyperparameters the hyperparameters it ran with
   * @param changes one entry per replaced block, in replacement order
   * @param parametersBefore the number of parameter values (scalars) in the model before, or {@link
   *     #UNKNOWN_PARAMETERS} when a parameter had no shape yet (the model was not initialized)
   * @param parametersAfter the number after, or {@link #UNKNOWN_PARAMETERS}
   * @param nanos time taken, in nanoseconds
   * @param warnings what the algorithm warned of while it ran (logged at WARN too), such as an
   *     application that changed nothing; empty when nothing
   * @throws NullPointerException if {@code hyperparameters} or {@code changes} is null, or {@code
   *     changes} holds null, naming it (a hyperparameter's value may be null)
   */
  public SurgeryChanges {
    Objects.requireNonNull(hyperparameters, "hyperparameters must not be null");
    Objects.requireNonNull(changes, "changes must not be null");
    for (Change c : changes) {
      Objects.requireNonNull(c, "changes must not hold null");
    }
    hyperparameters = Collections.unmodifiableMap(new LinkedHashMap<>(hyperparameters));
    changes = List.copyOf(changes);
    warnings = warnings == null ? List.of() : List.copyOf(warnings);
  }

  /**
   * Changes without warnings.
   *
   * @param algorithm the algorithm's config name
   * @param hyperparameters its hyperparameters
   * @param changes the replaced blocks
   * @param parametersBefore parameter scalars before, or {@link #UNKNOWN_PARAMETERS}
   * @param parametersAfter parameter scalars after, or {@link #UNKNOWN_PARAMETERS}
   * @param nanos time taken, in nanoseconds
   * @throws NullPointerException if {@code hyperparameters} or {@code changes} is null, or {@code
   *     changes} holds null, naming it
   */
  public SurgeryChanges(
      String algorithm,
      Map<String, Object> hyperparameters,
      List<Change> changes,
      long parametersBefore,
      long parametersAfter,
      long nanos) {
    this(algorithm, hyperparameters, changes, parametersBefore, parametersAfter, nanos, List.of());
  }

  /**
   * One replaced block.
   *
   * @param path the block's stable path before surgery
   * @param oldType the replaced block's display name (class simple name, or lambda name)
   * @param newType the replacement's display name
   */
  public record Change(String path, String oldType, String newType) {}

  /**
   * Counts changes by {@code old->new} type pair, in first-seen order, for log lines such as {@code
   * Conv2d->BlurConv2d x3}.
   *
   * @return type pair to count
   */
  public Map<String, Integer> countsByType() {
    Map<String, Integer> counts = new LinkedHashMap<>();
    for (Change c : changes) {
      counts.merge(c.oldType() + "->" + c.newType(), 1, Integer::sum);
    }
    return counts;
  }

  /**
   * Tells whether the algorithm changed nothing.
   *
   * @return true when no block was replaced
   */
  public boolean isEmpty() {
    return changes.isEmpty();
  }
}
