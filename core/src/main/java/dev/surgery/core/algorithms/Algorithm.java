package dev.surgery.core.algorithms;

import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.Targets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A model-surgery algorithm: a named, configured change to a DJL block tree, such as BlurPool.
 *
 * <p>An algorithm applies to a model, optionally with its live trainers (their parameter stores and
 * optimizer state are kept exact through {@link dev.surgery.core.ModuleSurgery}), and reports what
 * it changed. Applying it is all-or-nothing: on failure the model and trainers are as they were.
 * Applying it twice changes nothing the second time.
 */
public interface Algorithm {

  /**
   * Returns the configuration name used in YAML, logs and reports, for example {@code blurpool}.
   *
   * @return the config name
   */
  String name();

  /**
   * Returns the hyperparameters this instance uses, by their snake_case config names, in a stable
   * order. Recorded in reports and checkpoints so that a surgery can be replayed.
   *
   * @return hyperparameter name to value
   */
  Map<String, Object> hyperparameters();

  /**
   * Tells whether this configured algorithm can only decide what to replace on an initialized model
   * (for example BlurPool's {@code min_channels} needs each convolution's input channels). Such an
   * algorithm scheduled before training must run right after {@code Trainer.initialize}; on an
   * uninitialized model it fails with a {@link dev.surgery.core.SurgeryException} instead of
   * guessing.
   *
   * @return true when input shapes are needed
   */
  default boolean needsInitializedModel() {
    return false;
  }

  /**
   * Tells whether this algorithm follows a schedule over the planned length of training (for
   * example layer freezing), so that it cannot run while {@link SurgeryContext#totalEpochs()} is
   * unknown. A caller that cannot supply the length reports it before applying, naming where the
   * user can set it.
   *
   * @return true when {@link SurgeryContext#totalEpochs()} must be positive
   */
  default boolean needsTotalEpochs() {
    return false;
  }

  /**
   * Applies the algorithm.
   *
   * @param context the model, its trainers and where training stands
   * @return what changed
   * @throws dev.surgery.core.SurgeryException if the surgery failed; nothing was changed then
   */
  SurgeryChanges apply(SurgeryContext context);

  /**
   * Tells what {@link #apply} would do on this context, without changing anything: the model, the
   * trainers' parameter stores and optimizer state stay exactly as they are.
   *
   * @param context the model, its trainers and where training stands
   * @return the blocks that would change, with their old and new types and parameters
   * @throws dev.surgery.core.SurgeryException if the apply would fail
   * @throws UnsupportedOperationException if this algorithm cannot plan
   */
  default SurgeryPlan plan(SurgeryContext context) {
    throw new UnsupportedOperationException(name() + " cannot tell its plan");
  }

  /**
   * Returns where this algorithm applies; {@link Targets#ALL} unless set with {@link #withTargets}.
   *
   * @return the targets
   */
  default Targets targets() {
    return Targets.ALL;
  }

  /**
   * Returns a copy of this algorithm that applies only to the given targets: its own rule still
   * decides what to change among them. With include patterns, an application fails when a pattern
   * matches no block or when nothing among the targets would change.
   *
   * @param targets the targets
   * @return the narrowed algorithm
   * @throws UnsupportedOperationException if this algorithm cannot be narrowed
   */
  default Algorithm withTargets(Targets targets) {
    if (targets.isAll()) {
      return this;
    }
    throw new UnsupportedOperationException(name() + " cannot be limited to targets");
  }

  /**
   * Returns the hyperparameters and, when set, the {@code include} and {@code exclude} lists: all
   * that is needed to build the same algorithm again with {@link AlgorithmSpec#create}.
   *
   * @return setting name to value, in a stable order
   */
  default Map<String, Object> settings() {
    Map<String, Object> settings = new LinkedHashMap<>(hyperparameters());
    targets().putInto(settings);
    return settings;
  }
}
