package dev.surgery.core.algorithms;

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
  java.util.Map<String, Object> hyperparameters();

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
  SurgeryReport apply(SurgeryContext context);
}
