package dev.surgery.agent.advice;

import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined at the end of an engine's {@code GradientCollector.backward(NDArray)} (for PyTorch {@code
 * PtGradientCollector}): the gradients of the batch are there, the optimizer has not stepped
 * ({@code AFTER_BACKWARD}).
 */
public final class GradientCollectorBackwardAdvice {

  private GradientCollectorBackwardAdvice() {}

  /**
   * Reports the backward pass that returned; not called when it threw.
   *
   * @param collector the gradient collector
   */
  @Advice.OnMethodExit(suppress = Error.class)
  public static void exit(@Advice.This Object collector) {
    SurgeryDispatcher.backwardDone(collector);
  }
}
