package dev.surgery.agent.inst;

import ai.djl.Model;
import dev.surgery.agent.bridge.AgentLog;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;
import java.util.List;

/**
 * Replays the surgery recorded in a checkpoint on a model's original architecture, before DJL reads
 * the parameters. It delegates to {@code dev.surgery.trainer.SurgeryCheckpoint.replay(Model,
 * Path)}; a trainer-integration without that method (an older build) makes it a no-op, so the agent
 * never depends on it to start.
 */
interface CheckpointReplay {

  /** The trainer-integration class that knows the checkpoint format. */
  String CHECKPOINT_CLASS = "dev.surgery.trainer.SurgeryCheckpoint";

  /**
   * Replays the surgery recorded in a parameter file on the model's block.
   *
   * @param model the model about to read the file
   * @param paramsFile the file
   * @return how many surgery records were replayed; 0 when the file has none
   * @throws Exception what the checkpoint library throws ({@code IOException}, {@code
   *     MalformedModelException})
   */
  int replay(Model model, Path paramsFile) throws Exception;

  /**
   * Finds the replay of this build of trainer-integration.
   *
   * @param loader the loader that defines the surgery library next to DJL
   * @return the replay, or a no-op when the library has none
   */
  static CheckpointReplay find(ClassLoader loader) {
    MethodHandle replay;
    try {
      Class<?> checkpoint = Class.forName(CHECKPOINT_CLASS, true, loader);
      replay =
          MethodHandles.publicLookup()
              .findStatic(
                  checkpoint, "replay", MethodType.methodType(List.class, Model.class, Path.class));
    } catch (ReflectiveOperationException | LinkageError e) {
      AgentLog.debug(
          "this trainer-integration cannot replay checkpoints ("
              + e
              + "); Model.load runs unchanged");
      return (model, file) -> 0;
    }
    return (model, file) -> {
      try {
        List<?> records = (List<?>) replay.invoke(model, file);
        return records == null ? 0 : records.size();
      } catch (Exception | Error e) {
        throw e;
      } catch (Throwable t) {
        throw new IllegalStateException(t);
      }
    };
  }
}
