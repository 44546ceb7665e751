package dev.surgery.agent.advice;

import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined at the start of {@code BaseModel.readParameters(Path, Map)}, which {@code Model.load}
 * calls once the block is set: the surgery recorded in the file is replayed on the original
 * architecture before the parameters are read, so resumed jobs load unmodified under the agent;
 * then {@code BEFORE_LOAD}. Its normal return is {@code AFTER_LOAD}; a throw puts the model back as
 * it was before the replay.
 */
public final class ModelReadParametersAdvice {

  private ModelReadParametersAdvice() {}

  /**
   * Hands the model and the file to the dispatcher.
   *
   * @param model the model being loaded
   * @param paramsFile the parameter file
   */
  @Advice.OnMethodEnter(suppress = Error.class)
  public static void enter(@Advice.This Object model, @Advice.Argument(0) Object paramsFile) {
    SurgeryDispatcher.parametersLoading(model, paramsFile);
  }

  /**
   * Reports the parameters loaded, or, when reading threw (a truncated file), has the model put
   * back as it was before the replay and the load (a truncated file's bare {@code EOFException} is
   * replaced by one that names the file).
   *
   * @param model the model that loaded them
   * @param thrown what reading threw, or null
   */
  @Advice.OnMethodExit(onThrowable = Throwable.class, suppress = Error.class)
  public static void exit(
      @Advice.This Object model, @Advice.Thrown(readOnly = false) Throwable thrown) {
    if (thrown == null) {
      SurgeryDispatcher.at(HookPoint.PARAMETERS_LOADED, model);
    } else {
      thrown = SurgeryDispatcher.parametersLoadFailed(model, thrown);
    }
  }
}
