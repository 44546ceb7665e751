package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The loss windows of a trainer against counts done by hand: the "before" window holds the last 20
 * finite losses of consecutive batches, an "after" window fills with the next 20, and a batch's
 * loss is asked for exactly when it is among the last 20 before the epoch end where the next entry
 * runs (or while an "after" window fills), so that training with nothing due computes none.
 */
class LossWindowsTest {

  private static final int WINDOW = SurgeryListener.LOSS_WINDOW;

  private static PendingOutcome applied() {
    ScheduledAlgorithm entry =
        ScheduledAlgorithm.of(LayerFreezing.builder().build(), Trigger.atEpoch(1), 0, "test");
    return new PendingOutcome(
        1, entry, Map.of(), 1, 4, SurgeryOutcome.Status.APPLIED, null, null, 0, null, 0);
  }

  @Test
  void theBeforeWindowIsTheMeanOfTheLastTwentyLosses() {
    LossWindows w = new LossWindows();
    assertNull(w.meanBefore());
    assertEquals(0, w.beforeBatches());
    List<Float> last = new ArrayList<>();
    for (int b = 1; b <= 25; b++) {
      w.add(b, b);
      if (b > 25 - WINDOW) {
        last.add((float) b);
      }
    }
    assertEquals(last, w.recent());
    assertEquals(WINDOW, w.beforeBatches());
    // (6 + 25) / 2: the mean of 6..25.
    assertEquals(15.5, w.meanBefore(), 1e-9);
  }

  @Test
  void aGapStartsTheBeforeWindowOverAndAPassedOverBatchDoesNot() {
    LossWindows w = new LossWindows();
    w.add(1f, 1);
    w.add(2f, 2);
    w.add(4f, 4); // batch 3's loss was not computed: the window starts over
    assertEquals(List.of(4f), w.recent());
    w.passOver(5); // computed but not finite: left out, the run goes on
    w.add(6f, 6);
    assertEquals(List.of(4f, 6f), w.recent());
    assertEquals(5.0, w.meanBefore(), 1e-9);
    w.passOver(8); // not right after batch 6: no run to go on
    w.add(9f, 9);
    assertEquals(List.of(9f), w.recent());
  }

  @Test
  void anAfterWindowFillsWithTheNextTwentyLossesAndThenStops() {
    LossWindows w = new LossWindows();
    PendingOutcome first = applied();
    w.awaitAfter(first);
    assertTrue(w.needsLoss(0, Integer.MAX_VALUE, null, 0, 0), "while the window fills");
    for (int b = 1; b < WINDOW; b++) {
      assertFalse(w.add(b, b), "batch " + b);
    }
    assertTrue(w.add(WINDOW, WINDOW), "the twentieth completes it");
    assertEquals(WINDOW, first.lossAfterBatches());
    // The mean of 1..20.
    assertEquals(10.5, first.snapshot().lossAfter(), 1e-9);
    assertFalse(w.needsLoss(0, Integer.MAX_VALUE, null, 0, 0), "nothing due, nothing filling");
    assertFalse(w.add(100f, WINDOW + 1));
    assertEquals(WINDOW, first.lossAfterBatches(), "a full window takes no more");
    assertEquals(10.5, first.snapshot().lossAfter(), 1e-9);
  }

  /**
   * Whether a batch's loss belongs to the 20 before the end of epoch {@code due}: batch {@code k}
   * (from 1) of epoch {@code epoch} (from 1) of {@code perEpoch} batches, counted by hand.
   */
  private static boolean amongTheLastBefore(int due, int epoch, int k, int perEpoch) {
    long after = (long) (due - epoch) * perEpoch + (perEpoch - k);
    return epoch <= due && after < WINDOW;
  }

  @Test
  void aLossIsNeededExactlyInTheTwentyBatchesBeforeTheNextDueEpochEnds() {
    LossWindows w = new LossWindows();
    try (NDManager manager = NDManager.newBaseManager()) {
      // 64 samples in batches of 16 (4 per epoch), and 70 (5, the last one partial).
      for (long total : new long[] {64, 70}) {
        int size = 16;
        int perEpoch = (int) ((total + size - 1) / size);
        for (int due : new int[] {1, 3, 6, 9}) {
          for (int epoch = 1; epoch <= due; epoch++) {
            for (int k = 1; k <= perEpoch; k++) {
              // The batch's progress: the samples of the epoch read once it is taken.
              long progress = Math.min(total, (long) k * size);
              Batch batch =
                  new Batch(manager, new NDList(), new NDList(), size, null, null, progress, total);
              assertEquals(
                  amongTheLastBefore(due, epoch, k, perEpoch),
                  w.needsLoss(epoch - 1, due, batch, progress, total),
                  "batch " + k + " of epoch " + epoch + " of " + total + ", due at " + due);
            }
          }
        }
      }
    }
    // Nothing due: no loss.
    assertFalse(w.needsLoss(3, Integer.MAX_VALUE, null, 1, 64));
  }

  @Test
  void withoutTheDatasSizeEveryBatchOfTheLastEpochBeforeTheEntryNeedsItsLoss() {
    LossWindows w = new LossWindows();
    // No progress total: the epoch's batches cannot be counted from its end.
    assertTrue(w.needsLoss(2, 3, null, 5, 0));
    assertFalse(w.needsLoss(1, 3, null, 5, 0));
    assertFalse(w.needsLoss(0, 3, null, 5, 0));
    try (NDManager manager = NDManager.newBaseManager()) {
      // A batch of data that does not tell its size (progress total 0), and one with no size.
      Batch unsized = new Batch(manager, new NDList(), new NDList(), 16, null, null, 5, 0);
      assertFalse(w.needsLoss(0, 3, unsized, 5, 0));
      assertTrue(w.needsLoss(2, 3, unsized, 5, 0));
      assertTrue(w.needsLoss(2, 3, null, 5, 64));
      assertFalse(w.needsLoss(1, 3, null, 5, 64));
    }
  }

  @Test
  void anAfterWindowThatCompletesLeavesALaterOneFilling() {
    LossWindows w = new LossWindows();
    PendingOutcome first = applied();
    PendingOutcome second = applied();
    w.awaitAfter(first);
    for (int b = 1; b <= 5; b++) {
      w.add(1f, b);
    }
    w.awaitAfter(second);
    for (int b = 6; b <= WINDOW; b++) {
      w.add(2f, b);
    }
    assertEquals(WINDOW, first.lossAfterBatches());
    assertEquals(WINDOW - 5, second.lossAfterBatches());
    for (int b = WINDOW + 1; b <= WINDOW + 5; b++) {
      assertEquals(b == WINDOW + 5, w.add(3f, b), "batch " + b);
    }
    assertEquals(WINDOW, second.lossAfterBatches());
    // 15 losses of 2 and 5 of 3.
    assertEquals((15 * 2 + 5 * 3) / 20.0, second.snapshot().lossAfter(), 1e-9);
  }

  /**
   * A batch's loss in a float64 or float16 model (DJL's L1 loss keeps the predictions' type) is
   * read as a float: the mean absolute difference, counted by hand. {@code getFloat} on it threw
   * "DataType mismatch, Required float, Actual float64" at a float64 model's first batch under
   * {@code SurgeryListener} (an outside probe: every algorithm through the listener on a float64
   * ResNet). float16, which DJL's {@code getFloat} reads itself, checks that its path still holds.
   */
  @Test
  void theLossOfADoubleOrHalfPrecisionModelIsReadAsAFloat() {
    double[] predictions = {0.5, -1.25, 2.0, 0.75, -0.5, 1.5};
    double[] labels = {1.0, -1.0, 0.0, 0.75, 0.5, -2.0};
    double expected = 0;
    for (int i = 0; i < predictions.length; i++) {
      expected += Math.abs(predictions[i] - labels[i]) / predictions.length;
    }
    for (DataType type : new DataType[] {DataType.FLOAT64, DataType.FLOAT16}) {
      try (Model model = Model.newInstance("loss-" + type)) {
        model.setBlock(Linear.builder().setUnits(2).build());
        model.setDataType(type);
        try (Trainer trainer = model.newTrainer(new DefaultTrainingConfig(Loss.l1Loss()))) {
          NDManager manager = trainer.getManager();
          NDList prediction =
              new NDList(manager.create(predictions, new Shape(3, 2)).toType(type, false));
          NDList label = new NDList(manager.create(labels, new Shape(3, 2)).toType(type, false));
          Batch batch = new Batch(manager, new NDList(), label, 3, null, null, 1, 1);
          TrainingListener.BatchData data =
              new TrainingListener.BatchData(
                  batch, Map.of(Device.cpu(), label), Map.of(Device.cpu(), prediction));
          float loss = new LossWindows().batchLoss(trainer, data, new TrainingListenerAdapter() {});
          // float16 holds the mean, 7.25 / 6, to 2^-10 of it
          assertEquals(expected, loss, type == DataType.FLOAT16 ? 2e-3 : 1e-6, type.toString());
        }
      }
    }
  }
}
