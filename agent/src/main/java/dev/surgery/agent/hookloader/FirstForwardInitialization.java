package dev.surgery.agent.hookloader;

import ai.djl.Device;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.SurgeryDispatcher;
import dev.surgery.agent.shared.SurgeryFailure;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.events.Event;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.trainer.SurgeryFailedException;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The model of a program that never calls {@code trainer.initialize}, initialized just before its
 * first training forward exactly as DJL 0.36's {@code AbstractBaseBlock.forward} is about to do it
 * (the forward's input shapes, {@code FLOAT32}, the trainer's manager), so that surgery at epoch 0,
 * which needs the model's shapes, runs before that forward and the program goes on as without the
 * agent: the same draws, its arrays on the trainer's manager, DJL's forward then finding the model
 * initialized. Where the agent cannot do exactly what DJL would, it says so instead of initializing
 * otherwise. The dry run's plan initializes the same way ({@link #exactly}).
 */
final class FirstForwardInitialization {

  private final SurgeryListener listener;
  private final AgentEvents events;

  /**
   * Creates it for the agent's listener.
   *
   * @param listener the listener whose epoch-0 surgery may wait for the shapes
   * @param events the tracker that reports {@link Event#INIT} to it
   */
  FirstForwardInitialization(SurgeryListener listener, AgentEvents events) {
    this.listener = listener;
    this.events = events;
  }

  /**
   * Initializes the model of a trainer whose epoch-0 surgery waits for it exactly as DJL 0.36's
   * {@code AbstractBaseBlock.forward} is about to (the first training forward's input shapes,
   * {@code FLOAT32}, the trainer's manager, so that the arrays live as long as without the agent:
   * until the trainer closes), registers the parameters in the trainer's store as that forward
   * would as it reads them and {@code trainer.initialize} does, then runs the surgery ({@link
   * Event#INIT}). Elsewhere the surgery cannot run exactly before the first forward and training
   * stops.
   *
   * @throws SurgeryFailure when surgery waits but cannot run exactly, or fails under {@code
   *     on_error: fail}
   */
  void beforeFirstForward(Trainer trainer, Object data) {
    Block block = trainer.getModel().getBlock();
    if (block == null || block.isInitialized()) {
      return; // a parallel forward of the same batch did it
    }
    List<ScheduledAlgorithm> waiting = listener.awaitingInitialization(trainer);
    if (waiting.isEmpty()) {
      return; // nothing needs the shapes: DJL initializes the model as it always does
    }
    String inexact = whyNotExact(block, data, trainer.getModel().getDataType());
    if (inexact != null) {
      ScheduledAlgorithm first = waiting.get(0);
      throw new SurgeryFailure(
          new SurgeryFailedException(
              "Surgery: "
                  + waiting.stream()
                      .map(ScheduledAlgorithm::describe)
                      .collect(Collectors.joining("; "))
                  + " needs an initialized model, but the program never called"
                  + " trainer.initialize(shapes) and the surgery agent cannot do it exactly at the"
                  + " first forward ("
                  + inexact
                  + "): call trainer.initialize(shapes) before training, or schedule it at epoch 1"
                  + " or later",
              first.algorithm().name(),
              0,
              null,
              null));
    }
    Shape[] shapes = ((NDList) data).getShapes();
    AgentLog.debug(
        "the program never called trainer.initialize: the model initialized for "
            + Arrays.toString(shapes)
            + " (the first forward's input shapes) on the trainer's manager, as DJL's forward"
            + " would, for "
            + SurgeryDispatcher.describe(trainer)
            + " before its first forward");
    try {
      initialize(trainer, block, shapes);
      // INIT is the listener's onInitialized, which runs the waiting surgery.
      events.initialized(trainer);
    } catch (SurgeryFailure f) {
      throw f; // the listener's deliberate failure (on_error: fail), wrapped once already
    } catch (SurgeryFailedException | SurgeryException e) {
      throw new SurgeryFailure(e); // on_error: fail, rethrown unwrapped by the hook
    } catch (RuntimeException e) {
      // DJL's own forward would throw the same: the program gets it unchanged.
      throw new SurgeryFailure(e);
    }
  }

  /**
   * Whether the agent can initialize a model before its first forward exactly as DJL's forward
   * would.
   */
  static boolean exactly(Block block, Object data, DataType dataType) {
    return whyNotExact(block, data, dataType) == null;
  }

  /** Why the agent cannot initialize as DJL's forward would, in words; null when it can. */
  private static String whyNotExact(Block block, Object data, DataType dataType) {
    if (!(block instanceof AbstractBaseBlock) || !(data instanceof NDList)) {
      // DJL initializes only an AbstractBaseBlock by itself, and only from the forward's input.
      return "DJL would not initialize " + block.getClass().getName() + " by itself";
    } else if (dataType != DataType.FLOAT32) {
      // Trainer.initialize uses the model's data type, DJL's forward always FLOAT32.
      return "the model's data type is "
          + (dataType == null ? "not set" : dataType.name())
          + ", where DJL would initialize FLOAT32";
    }
    return null;
  }

  /**
   * Initializes a model as DJL's first forward does, and registers every parameter in the trainer's
   * store on each of its devices: what that forward does as it reads them, and {@code
   * trainer.initialize} at once (the same call, the same arrays).
   */
  static void initialize(Trainer trainer, Block block, Shape[] shapes) {
    block.initialize(trainer.getManager(), DataType.FLOAT32, shapes);
    ParameterStore store = DjlTrainers.parameterStore(trainer);
    for (Pair<String, Parameter> p : block.getParameters()) {
      for (Device device : trainer.getDevices()) {
        store.getValue(p.getValue(), device, true);
      }
    }
  }
}
