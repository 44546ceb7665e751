package dev.surgery.core.events;

import ai.djl.Model;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import java.util.List;

/**
 * A read-only view of a training run at an {@link Event}, given to {@link
 * dev.surgery.core.algorithms.Algorithm#match} and {@link
 * dev.surgery.core.algorithms.Algorithm#apply(Event, State)}. Counters describe the trainer that
 * reported the event.
 *
 * <p>A state is valid only during the call it is passed to: the host reuses or discards it after.
 * Nothing here changes the run; an algorithm changes the model through {@link #surgeryContext()}
 * (structural surgery through the engine) or, for parameter values, through the model's parameters,
 * as Composer's algorithms do.
 */
public interface State {

  /**
   * Returns the event being reported.
   *
   * @return the event
   */
  Event event();

  /**
   * Returns the model being trained.
   *
   * @return the model
   */
  Model model();

  /**
   * Returns the trainer that reported the event.
   *
   * @return the trainer, or null for {@link Event#BEFORE_LOAD} and {@link Event#AFTER_LOAD} outside
   *     training
   */
  Trainer trainer();

  /**
   * Returns the live trainers of the model: those whose parameter stores and optimizer state a
   * surgery must keep exact.
   *
   * @return the trainers; empty outside training
   */
  List<Trainer> trainers();

  /**
   * Returns how many training epochs have completed ({@link Event#EPOCH_END} counts the epoch it
   * ends).
   *
   * @return the completed epochs, 0 before the first ends
   */
  int completedEpochs();

  /**
   * Returns how many optimizer steps ({@code Trainer.step()}) have run since the trainer was made:
   * at {@link Event#BATCH_END} of the k-th batch it is k.
   *
   * @return the global step count
   */
  long globalSteps();

  /**
   * Returns the index of the current batch within its epoch: 0 for the first batch, valid from
   * {@link Event#BATCH_START} to {@link Event#BATCH_END}; at other events, the number of batches
   * the current epoch has trained so far.
   *
   * @return the batch index within the epoch
   */
  long batchInEpoch();

  /**
   * Returns the planned number of epochs when known (from the training loop, such as {@code
   * SurgeryTrain.fit(trainer, epochs, ...)}, or from the config's {@code total_epochs}).
   *
   * @return the planned epochs, or 0 when unknown
   */
  int totalEpochs();

  /**
   * Returns the planned number of optimizer steps when known (the config's {@code total_steps}, or
   * the planned epochs times the batches per epoch once the data reports its size).
   *
   * @return the planned steps, or 0 when unknown
   */
  long totalSteps();

  /**
   * Returns the losses of the most recent training batches, oldest first (mean over devices): of
   * every batch for an event-driven algorithm, of the consecutive batches just before its run for a
   * scheduled one (the window the surgery log's {@code loss_before} averages).
   *
   * @return at most a few dozen losses; empty before the first batch or when the driver reports no
   *     losses
   */
  List<Float> recentLosses();

  /**
   * Returns the surgery applied to this model so far, in order: the model's surgery record as last
   * read whole (when this trainer began, when its model got another block, when another trainer
   * added to it: a checkpoint's replayed record, earlier entries; parameter counts unknown and time
   * 0, which a record does not keep), then what this trainer's host applied since and recorded (a
   * run of a repeating entry that changed nothing is in neither). A record this build cannot read
   * (a later format) lists nothing.
   *
   * @return the reports
   */
  List<SurgeryChanges> surgeryRecord();

  /**
   * Returns the context for a structural surgery at this event: the model's root block, the live
   * trainers (so their stores and optimizer state stay exact) and the epoch counters.
   *
   * @return the context
   * @throws IllegalStateException when the event does not allow surgery ({@link
   *     Event#allowsSurgery()}): a batch's forward or backward is in flight
   */
  SurgeryContext surgeryContext();
}
