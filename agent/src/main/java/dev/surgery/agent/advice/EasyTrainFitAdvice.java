package dev.surgery.agent.advice;

import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined into {@code EasyTrain.fit(Trainer, int, Dataset, Dataset)}. At the start the program has
 * just said how many epochs it trains, which algorithms that follow the length of training (layer
 * freezing) need, and the fit starts ({@code FIT_START}); its normal return is {@code FIT_END}. It
 * references JDK types and the dispatcher only, like the other advice.
 */
public final class EasyTrainFitAdvice {

  private EasyTrainFitAdvice() {}

  /**
   * Hands the trainer and the number of epochs to the dispatcher. Linkage errors are swallowed
   * here; the dispatcher swallows everything else except a deliberate surgery failure.
   *
   * @param trainer the trainer about to train
   * @param epochs the number of epochs {@code fit} will run
   */
  @Advice.OnMethodEnter(suppress = Error.class)
  public static void enter(@Advice.Argument(0) Object trainer, @Advice.Argument(1) int epochs) {
    SurgeryDispatcher.fitStarting(trainer, epochs);
  }

  /**
   * Reports the end of the fit; not called when it threw.
   *
   * @param trainer the trainer that trained
   */
  @Advice.OnMethodExit(suppress = Error.class)
  public static void exit(@Advice.Argument(0) Object trainer) {
    SurgeryDispatcher.at(HookPoint.FIT_EXIT, trainer);
  }
}
