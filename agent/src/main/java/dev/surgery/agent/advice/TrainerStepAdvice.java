package dev.surgery.agent.advice;

import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined at the end of {@code Trainer.step()}: the optimizer has updated every parameter, so the
 * batch is over ({@code BATCH_END}) and surgery is exact until the next forward.
 */
public final class TrainerStepAdvice {

  private TrainerStepAdvice() {}

  /**
   * Reports the step that returned; not called when it threw.
   *
   * @param trainer the trainer
   */
  @Advice.OnMethodExit(suppress = Error.class)
  public static void exit(@Advice.This Object trainer) {
    SurgeryDispatcher.at(HookPoint.STEP_EXIT, trainer);
  }
}
