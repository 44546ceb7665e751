package dev.surgery.trainer;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.EvaluatorTrainingListener;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListener.BatchData;
import dev.surgery.core.internal.DjlTrainers;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The training-loss windows of one trainer: the last {@link SurgeryListener#LOSS_WINDOW} finite
 * losses of consecutive batches (the "before" mean of the next application) and the applications
 * whose "after" mean is still filling in. A batch whose loss is not finite (a loop that skips its
 * step) is left out of both, without breaking the run of consecutive batches. Losses are computed
 * only for batches that need them, so that training with nothing due costs nothing extra.
 */
final class LossWindows {

  private static final int WINDOW = SurgeryListener.LOSS_WINDOW;

  private final ArrayDeque<Float> recentLosses = new ArrayDeque<>();
  private final List<PendingOutcome> awaitingLoss = new ArrayList<>();
  private long lastLossBatch = -1;
  private Boolean evaluatorFirst;

  /**
   * Whether this batch's loss is needed: for the windows after recent applications, or because it
   * is among the last {@link SurgeryListener#LOSS_WINDOW} batches before the next due entry
   * (counted from the batch's progress in the dataset).
   *
   * @param passed the epochs that have passed, seen or not
   * @param nextDue the epoch of the next pending entry after {@code passed}, or {@link
   *     Integer#MAX_VALUE} when none
   */
  boolean needsLoss(int passed, int nextDue, Batch batch, long progress, long progressTotal) {
    if (!awaitingLoss.isEmpty()) {
      return true;
    }
    if (nextDue == Integer.MAX_VALUE) {
      return false;
    }
    long epochsAway = nextDue - passed - 1L;
    int size = batch == null ? 0 : batch.getSize();
    if (progressTotal <= 0 || size <= 0) {
      return epochsAway == 0; // no progress information: a rolling window in the last epoch
    }
    long perEpoch = (progressTotal + size - 1) / size;
    long remaining = (progressTotal - progress + size - 1) / size + epochsAway * perEpoch;
    return remaining < WINDOW;
  }

  /**
   * Adds the loss of batch number {@code batch} to the windows.
   *
   * @return whether an "after" window just completed, so that the surgery log has news
   */
  boolean add(float loss, long batch) {
    if (lastLossBatch != batch - 1) {
      recentLosses.clear(); // the window holds consecutive batches only
    }
    lastLossBatch = batch;
    recentLosses.addLast(loss);
    if (recentLosses.size() > WINDOW) {
      recentLosses.removeFirst();
    }
    boolean completed = false;
    for (PendingOutcome a : awaitingLoss) {
      a.addLossAfter(loss);
      completed |= a.lossAfterBatches() >= WINDOW;
    }
    if (completed) {
      awaitingLoss.removeIf(a -> a.lossAfterBatches() >= WINDOW);
    }
    return completed;
  }

  /**
   * Passes over batch number {@code batch}, whose loss was computed but is not finite: the "before"
   * window goes on across it, as the "after" windows do (it was cut there, so a loop that skips NaN
   * batches logged a "before" mean of the batches since the last one).
   */
  void passOver(long batch) {
    if (lastLossBatch == batch - 1) {
      lastLossBatch = batch;
    }
  }

  /** Returns the mean of the recent window, or null when it is empty. */
  Double meanBefore() {
    if (recentLosses.isEmpty()) {
      return null;
    }
    double sum = 0;
    for (float v : recentLosses) {
      sum += v;
    }
    return sum / recentLosses.size();
  }

  /**
   * The losses of the recent window, oldest first: what {@code State.recentLosses()} shows. They
   * are computed for every batch where an entry is event-driven, and in the window before each
   * scheduled entry's run otherwise.
   */
  List<Float> recent() {
    return List.copyOf(recentLosses);
  }

  /** Returns how many batches {@link #meanBefore()} averages. */
  int beforeBatches() {
    return recentLosses.size();
  }

  /** Starts filling the "after" window of an application. */
  void awaitAfter(PendingOutcome applied) {
    awaitingLoss.add(applied);
  }

  /**
   * The training loss of this batch. When DJL's {@link EvaluatorTrainingListener} ran before {@code
   * self}, it has already computed it (its {@code train/all} accumulator holds exactly the current
   * batch), so it is read for free; otherwise the loss is evaluated on the batch's labels and
   * predictions (no extra forward pass).
   *
   * @param self the listener asking, to tell whether the evaluator runs before it
   */
  float batchLoss(Trainer trainer, BatchData batchData, TrainingListener self) {
    if (evaluatorFirst == null) {
      evaluatorFirst = evaluatorRunsFirst(trainer, self);
    }
    if (evaluatorFirst) {
      try {
        float v = trainer.getLoss().getAccumulator(EvaluatorTrainingListener.TRAIN_ALL);
        if (Float.isFinite(v)) {
          return v;
        }
      } catch (IllegalArgumentException e) {
        evaluatorFirst = false; // no such accumulator: compute it
      }
    }
    float sum = 0;
    int n = 0;
    for (Map.Entry<Device, NDList> e : batchData.getLabels().entrySet()) {
      NDList predictions = batchData.getPredictions().get(e.getKey());
      if (predictions == null) {
        continue;
      }
      try (NDArray loss = trainer.getLoss().evaluate(e.getValue(), predictions);
          NDArray total = loss.sum()) {
        sum += floatOf(total);
        n++;
      }
    }
    return n == 0 ? Float.NaN : sum / n;
  }

  /**
   * A scalar loss as a float: {@code getFloat} reads only float32 and float16, and a float64
   * model's loss keeps the model's type (read as a double, no converted copy).
   */
  private static float floatOf(NDArray scalar) {
    return scalar.getDataType() == DataType.FLOAT64
        ? (float) scalar.getDouble()
        : scalar.getFloat();
  }

  private static boolean evaluatorRunsFirst(Trainer trainer, TrainingListener self) {
    List<TrainingListener> listeners;
    try {
      listeners = DjlTrainers.listeners(trainer);
    } catch (RuntimeException e) {
      return false;
    }
    if (listeners == null) {
      return false;
    }
    for (TrainingListener l : listeners) {
      if (l == self) {
        return false;
      }
      if (l instanceof EvaluatorTrainingListener) {
        return true;
      }
    }
    return false;
  }
}
