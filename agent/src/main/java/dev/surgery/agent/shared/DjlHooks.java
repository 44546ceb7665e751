package dev.surgery.agent.shared;

import java.nio.file.Path;
import java.util.List;

/**
 * What the agent does to DJL's {@code Trainer} and {@code Model}, implemented next to DJL (one
 * instance per class loader that defines DJL's API). Only JDK types cross this interface, so the
 * agent side never links against DJL.
 */
public interface DjlHooks {

  /**
   * Reads and validates the surgery config and builds the listener. Called once; later calls return
   * the first answer.
   *
   * @return one {@code file:line:column: message} line per problem; empty when the config is valid
   */
  List<String> prepare();

  /**
   * Called when a {@code Trainer} constructor returns: attaches the listener (at most one per
   * trainer) and sends it {@code onTrainingBegin}.
   *
   * @param trainer the new trainer
   * @throws SurgeryFailure when the listener stops training on purpose ({@code on_error: fail})
   */
  void trainerCreated(Object trainer);

  /**
   * Called when {@code Trainer.initialize(Shape...)} returns: runs the surgery that needed shapes.
   *
   * @param trainer the initialized trainer
   * @throws SurgeryFailure when the listener stops training on purpose ({@code on_error: fail})
   */
  void trainerInitialized(Object trainer);

  /**
   * Called when {@code EasyTrain.fit(trainer, epochs, ...)} starts: tells the listener attached to
   * the trainer the planned number of epochs, and runs the epoch-0 surgery that waited for it.
   *
   * @param trainer the trainer about to train
   * @param epochs the number of epochs {@code fit} will run
   * @throws SurgeryFailure when the listener stops training on purpose ({@code on_error: fail})
   */
  void fitStarting(Object trainer, int epochs);

  /**
   * Called when a DJL model is about to read a parameter file ({@code Model.load}): replays the
   * surgery recorded in the file on the model's original architecture first, so that the parameters
   * fit.
   *
   * @param model the model being loaded
   * @param paramsFile the parameter file it is about to read
   * @throws SurgeryFailure when the file's surgery record cannot be replayed
   */
  void parametersLoading(Object model, Path paramsFile);

  /**
   * Called when a DJL model's {@code Model.load} threw while reading the parameters (after {@link
   * #parametersLoading}): puts the model back as it was before the replay and the load.
   *
   * @param model the model whose load failed
   * @param thrown what reading threw
   * @return what the load throws instead: DJL's bare exception of a truncated file named, else
   *     {@code thrown}
   */
  Throwable parametersLoadFailed(Object model, Throwable thrown);

  /**
   * Called at the entry of a training {@code Trainer.forward} ({@link HookPoint#FORWARD_ENTER}).
   * When the model is not initialized yet and epoch-0 surgery waits for it, the trainer is first
   * initialized with the shapes of this forward's input (those DJL would initialize the model
   * with), and the waiting surgery runs.
   *
   * @param trainer the trainer
   * @param data the forward's input ({@code NDList}); null when not known
   * @throws SurgeryFailure when the listener stops training on purpose ({@code on_error: fail}), or
   *     when waiting surgery cannot run before this first forward
   */
  void forwardStarting(Object trainer, Object data);

  /**
   * Called at one of the other hook points (the training loop's forward, backward, step,
   * evaluation, the end of {@code EasyTrain.fit}, the end of loading parameters).
   *
   * @param point where DJL is
   * @param target the trainer (the model for {@link HookPoint#PARAMETERS_LOADED})
   * @throws SurgeryFailure when the listener stops training on purpose ({@code on_error: fail})
   */
  void hookPoint(HookPoint point, Object target);
}
