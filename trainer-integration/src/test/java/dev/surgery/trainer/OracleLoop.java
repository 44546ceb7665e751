package dev.surgery.trainer;

import ai.djl.ndarray.NDList;
import ai.djl.training.Trainer;
import dev.surgery.core.events.Event;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.core.testing.TrajectoryOracle.Delta;
import java.util.List;

/**
 * A hand-written training loop that reports every event to a {@link SurgeryListener} and follows
 * the model with a {@link TrajectoryOracle}: each step is checked right after {@code
 * trainer.step()}, and the oracle reconciles the model after every event (fit start, each epoch's
 * and each batch's start and end), so a surgery at any of them is seen where it happened.
 */
final class OracleLoop {

  private OracleLoop() {}

  /** What a reconcile found after an event. */
  interface Changes {
    /**
     * One reconcile.
     *
     * @param when the label and the event: "fit start", "epoch start E", "batch start S", "batch
     *     end S" (S the steps taken once it ends), "epoch end E" (E from 1)
     * @param step the steps taken so far
     * @param delta what the oracle learned from the model
     */
    void seen(String when, int step, Delta delta);
  }

  /**
   * Runs the loop.
   *
   * @param surgery the listener, told every event
   * @param trainer the trainer
   * @param oracle the oracle following the trainer's model (book 0)
   * @param batches the batches, taken in turn from {@code offset}
   * @param epochs how many epochs
   * @param perEpoch steps per epoch
   * @param offset the first batch's index
   * @param label a prefix of every event's name
   * @param changes told what each reconcile found
   */
  static void run(
      SurgeryListener surgery,
      Trainer trainer,
      TrajectoryOracle oracle,
      List<NDList[]> batches,
      int epochs,
      int perEpoch,
      int offset,
      String label,
      Changes changes) {
    surgery.onEvent(Event.INIT, trainer);
    surgery.onEvent(Event.FIT_START, trainer);
    int step = 0;
    reconcile(oracle, label + "fit start", step, changes);
    for (int epoch = 1; epoch <= epochs; epoch++) {
      surgery.onEvent(Event.EPOCH_START, trainer);
      reconcile(oracle, label + "epoch start " + epoch, step, changes);
      for (int b = 0; b < perEpoch; b++) {
        surgery.onEvent(Event.BATCH_START, trainer);
        reconcile(oracle, label + "batch start " + (step + 1), step, changes);
        TrajectoryOracle.forwardBackward(trainer, batches.get((offset + step) % batches.size()));
        oracle.beforeStep(0);
        trainer.step();
        step++;
        oracle.afterStep(label + "step " + step);
        surgery.onEvent(Event.BATCH_END, trainer);
        reconcile(oracle, label + "batch end " + step, step, changes);
      }
      surgery.onEvent(Event.EPOCH_END, trainer);
      reconcile(oracle, label + "epoch end " + epoch, step, changes);
    }
    surgery.onEvent(Event.FIT_END, trainer);
  }

  private static void reconcile(TrajectoryOracle oracle, String when, int step, Changes changes) {
    changes.seen(when, step, oracle.reconcile(when));
  }
}
