package dev.surgery.agent.advice;

import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined at the start of {@code BaseModel.save(Path, String)}: the model's surgery record is made
 * the one its current block carries before DJL writes the model's properties, so that a file never
 * claims surgery the saved block does not have (a {@code Model} given a new block with {@code
 * setBlock}) nor lacks surgery it has (a second {@code Model} around the same block).
 */
public final class ModelSaveAdvice {

  private ModelSaveAdvice() {}

  /**
   * Hands the model to the dispatcher.
   *
   * @param model the model being saved
   */
  @Advice.OnMethodEnter(suppress = Error.class)
  public static void enter(@Advice.This Object model) {
    SurgeryDispatcher.at(HookPoint.MODEL_SAVING, model);
  }
}
