package dev.surgery.core.events;

/**
 * A point in a training run at which algorithms may run, after Composer's events. Within one fit
 * they occur in this order:
 *
 * <pre>
 * INIT, FIT_START,
 *   (EPOCH_START, (BATCH_START, AFTER_FORWARD, AFTER_BACKWARD, BATCH_END)*,
 *    [EVAL_START, EVAL_END], EPOCH_END)*,
 * FIT_END
 * </pre>
 *
 * <p>Evaluation runs inside the epoch, before {@link #EPOCH_END}, because DJL's {@code
 * EasyTrain.fit} validates before it notifies {@code onEpoch}, and {@code EPOCH_END} fires where
 * {@code onEpoch} does. {@link #BEFORE_LOAD} and {@link #AFTER_LOAD} surround loading a model's
 * parameters and are not part of a fit.
 *
 * <p>Surgery (a change to the block tree or to the trainers' parameters) is exact only between an
 * optimizer step and the next forward: {@link #allowsSurgery()} is false for {@link #AFTER_FORWARD}
 * and {@link #AFTER_BACKWARD} (gradients of the current batch are pending), and for {@link
 * #BEFORE_LOAD} (the parameters are about to be overwritten).
 */
public enum Event {
  /** After {@code Trainer.initialize}: parameters exist, no forward has run yet. */
  INIT,
  /** A fit (for example {@code EasyTrain.fit}) starts, after initialization. */
  FIT_START,
  /** An epoch starts, before its first batch. */
  EPOCH_START,
  /** A training batch starts, before its forward pass. */
  BATCH_START,
  /** The forward pass and the loss of the batch are computed; backward has not run. */
  AFTER_FORWARD,
  /** Gradients of the batch are computed; the optimizer has not stepped. */
  AFTER_BACKWARD,
  /** After the optimizer step ({@code Trainer.step()}) of the batch. */
  BATCH_END,
  /** An epoch ended: where DJL notifies {@code TrainingListener.onEpoch}, after validation. */
  EPOCH_END,
  /** Evaluation on the validation data starts. */
  EVAL_START,
  /** Evaluation on the validation data ended. */
  EVAL_END,
  /** A fit ended, after its last epoch. */
  FIT_END,
  /** A model is about to load its parameters (for example {@code Model.load}). */
  BEFORE_LOAD,
  /** A model loaded its parameters. */
  AFTER_LOAD;

  /**
   * Tells whether structural surgery is exact at this event: no forward or backward of a batch is
   * in flight, so the trainers' parameter stores and optimizer state can follow a change.
   *
   * @return false for {@link #AFTER_FORWARD}, {@link #AFTER_BACKWARD} and {@link #BEFORE_LOAD}
   */
  public boolean allowsSurgery() {
    return this != AFTER_FORWARD && this != AFTER_BACKWARD && this != BEFORE_LOAD;
  }

  /**
   * Returns the name used in configs and messages: the constant in lower case, for example {@code
   * batch_end}.
   *
   * @return the config name
   */
  public String configName() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
