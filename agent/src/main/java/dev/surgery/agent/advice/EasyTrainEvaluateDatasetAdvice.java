package dev.surgery.agent.advice;

import dev.surgery.agent.shared.HookPoint;
import dev.surgery.agent.shared.SurgeryDispatcher;
import net.bytebuddy.asm.Advice;

/**
 * Inlined into {@code EasyTrain.evaluateDataset(Trainer, Dataset)}, which {@code EasyTrain.fit}
 * calls once per epoch: with a dataset, its entry is {@code EVAL_START} and its return {@code
 * EVAL_END}, also when evaluation throws, so that an algorithm that swapped weights in for
 * evaluation swaps them back. Without a dataset DJL evaluates nothing, and nothing is reported.
 */
public final class EasyTrainEvaluateDatasetAdvice {

  private EasyTrainEvaluateDatasetAdvice() {}

  /**
   * Reports the evaluation about to run.
   *
   * @param trainer the trainer
   * @param dataset the validation dataset, may be null
   */
  @Advice.OnMethodEnter(suppress = Error.class)
  public static void enter(@Advice.Argument(0) Object trainer, @Advice.Argument(1) Object dataset) {
    if (dataset != null) {
      SurgeryDispatcher.at(HookPoint.EVALUATE_DATASET_ENTER, trainer);
    }
  }

  /**
   * Reports the end of the evaluation, whether it returned or threw.
   *
   * @param trainer the trainer
   * @param dataset the validation dataset, may be null
   */
  @Advice.OnMethodExit(onThrowable = Throwable.class, suppress = Error.class)
  public static void exit(@Advice.Argument(0) Object trainer, @Advice.Argument(1) Object dataset) {
    if (dataset != null) {
      SurgeryDispatcher.at(HookPoint.EVALUATE_DATASET_EXIT, trainer);
    }
  }
}
