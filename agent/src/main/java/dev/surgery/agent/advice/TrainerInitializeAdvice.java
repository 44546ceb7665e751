package dev.surgery.agent.advice;

import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined at the end of {@code Trainer.initialize(Shape...)}: surgery due before training that
 * needs the model's shapes runs right after initialization, before the first forward pass.
 */
public final class TrainerInitializeAdvice {

  private TrainerInitializeAdvice() {}

  /**
   * Hands the initialized trainer to the dispatcher; runs only when {@code initialize} returned
   * normally.
   *
   * @param trainer the trainer
   */
  @Advice.OnMethodExit(suppress = Error.class)
  public static void exit(@Advice.This Object trainer) {
    SurgeryDispatcher.trainerInitialized(trainer);
  }
}
