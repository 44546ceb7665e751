package dev.surgery.agent.advice;

import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined into {@code Trainer.forward(NDList)} and {@code Trainer.forward(NDList, NDList)}, the
 * training forward passes: the first one after an optimizer step starts a batch ({@code
 * BATCH_START}), and each one that returns is {@code AFTER_FORWARD}.
 */
public final class TrainerForwardAdvice {

  private TrainerForwardAdvice() {}

  /**
   * Reports the forward pass about to run, with its input (the shapes DJL initializes an
   * uninitialized model with).
   *
   * @param trainer the trainer
   * @param data the forward's input
   */
  @Advice.OnMethodEnter(suppress = Error.class)
  public static void enter(@Advice.This Object trainer, @Advice.Argument(0) Object data) {
    SurgeryDispatcher.forwardStarting(trainer, data);
  }

  /**
   * Reports the forward pass that returned; not called when it threw.
   *
   * @param trainer the trainer
   */
  @Advice.OnMethodExit(suppress = Error.class)
  public static void exit(@Advice.This Object trainer) {
    SurgeryDispatcher.at(HookPoint.FORWARD_EXIT, trainer);
  }
}
