package dev.surgery.agent.advice;

import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined at the end of {@code Trainer.newGradientCollector()}: tells the dispatcher which trainer
 * the collector's {@code backward} belongs to.
 */
public final class TrainerNewGradientCollectorAdvice {

  private TrainerNewGradientCollectorAdvice() {}

  /**
   * Hands the trainer and its new collector to the dispatcher.
   *
   * @param trainer the trainer
   * @param collector the collector it returns
   */
  @Advice.OnMethodExit(suppress = Error.class)
  public static void exit(@Advice.This Object trainer, @Advice.Return Object collector) {
    SurgeryDispatcher.collectorCreated(trainer, collector);
  }
}
