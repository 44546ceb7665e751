package dev.surgery.agent.advice;

import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined at the start of {@code Trainer.evaluate(NDList)}: outside {@code
 * EasyTrain.evaluateDataset}, the first evaluation after training starts an evaluation ({@code
 * EVAL_START}).
 */
public final class TrainerEvaluateAdvice {

  private TrainerEvaluateAdvice() {}

  /**
   * Reports the evaluation forward about to run.
   *
   * @param trainer the trainer
   */
  @Advice.OnMethodEnter(suppress = Error.class)
  public static void enter(@Advice.This Object trainer) {
    SurgeryDispatcher.at(HookPoint.EVALUATE_ENTER, trainer);
  }
}
