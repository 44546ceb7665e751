package dev.surgery.agent.advice;

import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined at the end of {@code Trainer(Model, TrainingConfig)}. It references JDK types and the
 * dispatcher only, because its bytecode is copied into DJL's class and resolves through DJL's class
 * loader.
 */
public final class TrainerConstructorAdvice {

  private TrainerConstructorAdvice() {}

  /**
   * Hands the new trainer to the dispatcher. Constructor advice cannot catch the constructor's own
   * exceptions, and runs only when the constructor returned normally. Linkage errors are swallowed
   * here; the dispatcher swallows everything else except a deliberate surgery failure.
   *
   * @param trainer the trainer under construction, fully initialized at this point
   */
  @Advice.OnMethodExit(suppress = Error.class)
  public static void exit(@Advice.This Object trainer) {
    SurgeryDispatcher.trainerCreated(trainer);
  }
}
