package dev.surgery.agent.hookloader;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.training.Trainer;
import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.SurgeryDispatcher;
import dev.surgery.agent.shared.SurgeryFailure;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.events.Event;
import dev.surgery.trainer.ModelLoadUndo;
import dev.surgery.trainer.SurgeryCheckpoint;
import dev.surgery.trainer.SurgeryFailedException;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.SurgeryRecord;
import java.io.IOException;
import java.nio.file.Path;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The agent around a program's own {@code Model.load}: a parameter file of a model changed by
 * surgery loads only into that changed architecture, so the file's surgery record is replayed on
 * the model before DJL reads the parameters, what DJL read is checked against the replay, and a
 * load that fails or is refused puts the model back as it was ({@link ModelLoadUndo}), as {@link
 * SurgeryCheckpoint#load} does for a program that calls it. The load events ({@link
 * Event#BEFORE_LOAD}, {@link Event#AFTER_LOAD}) are reported around it.
 */
final class ModelLoadHooks {

  /** A load in progress: its file, its undo, and how many records were replayed before it. */
  private record Load(Path file, ModelLoadUndo undo, int replayed) {}

  /**
   * The undo of each load this thread is in, from {@link #loading} to the end of the load: DJL
   * reads the parameters on the calling thread.
   */
  private static final ThreadLocal<Map<Model, Load>> LOADS =
      ThreadLocal.withInitial(IdentityHashMap::new);

  private final SurgeryListener listener;
  private final AgentEvents events;

  /**
   * Creates the hooks for the agent's listener.
   *
   * @param listener the listener told of a load when no trainer of the model is tracked
   * @param events the tracker whose trainers of the model are told of a load
   */
  ModelLoadHooks(SurgeryListener listener, AgentEvents events) {
    this.listener = listener;
    this.events = events;
  }

  /**
   * DJL is about to read a model's parameters from a file: the file's record is replayed under the
   * load's undo (unless {@link SurgeryCheckpoint#load}, which replays it itself, is the caller),
   * then {@link Event#BEFORE_LOAD} is reported.
   */
  void loading(Model model, Path paramsFile) {
    if (model.getBlock() != null && !calledFromCheckpointLibrary()) {
      // (SurgeryCheckpoint.load has just replayed the record itself before calling Model.load, and
      // puts the model back itself when the load fails.)
      ModelLoadUndo undo = ModelLoadUndo.before(model);
      int replayed;
      try {
        replayed = replay(undo, paramsFile);
      } catch (Throwable t) { // the arrays are off their parameters: put everything back first
        undo.failed();
        throw t;
      }
      LOADS.get().put(model, new Load(paramsFile, undo, replayed));
      try {
        event(Event.BEFORE_LOAD, model);
      } catch (Throwable t) { // the load does not happen: nor does its exit advice
        LOADS.get().remove(model);
        undo.failed();
        throw t;
      }
      return;
    }
    event(Event.BEFORE_LOAD, model);
  }

  /**
   * DJL read the parameters: what it read is checked against the replay (refused, the model is put
   * back), then {@link Event#AFTER_LOAD} is reported.
   */
  void loaded(Model model) {
    Load load = LOADS.get().remove(model);
    if (load != null) {
      try {
        load.undo().loaded(String.valueOf(load.file()));
      } catch (MalformedModelException e) {
        load.undo().failed();
        throw new SurgeryFailure(e);
      }
    }
    event(Event.AFTER_LOAD, model);
  }

  /**
   * DJL could not read the parameters: the model is put back as it was before the replay.
   *
   * @return what the program gets: the failure, naming the file where DJL's does not
   */
  static Throwable failed(Object model, Throwable thrown) {
    Load load = LOADS.get().remove(model);
    if (load == null) {
      return thrown;
    }
    load.undo().failed();
    AgentLog.info(
        "the parameters of "
            + ((Model) model).getName()
            + " could not be read from "
            + load.file()
            + "; the model is as it was before the load"
            + (load.replayed() > 0
                ? " (the replay of " + load.replayed() + " surgery record(s) undone)"
                : ""));
    return ModelLoadUndo.named(load.file(), thrown);
  }

  /**
   * Reports a load event to every trainer of the model that the agent attached to, or, when none
   * trains it (the usual {@code Model.load} before training), to the listener for the model alone.
   */
  private void event(Event event, Object model) {
    if (SurgeryDispatcher.isDryRun()) {
      // A dry run changes nothing: no algorithm runs on a load event either.
      return;
    }
    List<Object> trainers = events.trainers(t -> ((Trainer) t).getModel() == model);
    for (Object trainer : trainers) {
      events.load(event, trainer);
    }
    if (trainers.isEmpty()) {
      try {
        listener.onEvent(event, (Model) model);
      } catch (SurgeryFailedException | SurgeryException e) {
        throw new SurgeryFailure(e);
      }
    }
  }

  /** Replays the file's record under the load's undo; returns how many records it holds. */
  private static int replay(ModelLoadUndo undo, Path paramsFile) {
    List<SurgeryRecord> replayed;
    try {
      replayed = undo.replay(paramsFile);
    } catch (IOException | MalformedModelException e) {
      // The checkpoint carries surgery that cannot be redone: its parameters would not fit either.
      throw new SurgeryFailure(e);
    }
    if (!replayed.isEmpty()) {
      AgentLog.debug(
          "replayed "
              + replayed.size()
              + " surgery record(s) from "
              + paramsFile
              + " before loading its parameters");
    }
    return replayed.size();
  }

  private static boolean calledFromCheckpointLibrary() {
    return StackWalker.getInstance()
        .walk(
            frames ->
                frames.anyMatch(f -> f.getClassName().equals(SurgeryCheckpoint.class.getName())));
  }
}
