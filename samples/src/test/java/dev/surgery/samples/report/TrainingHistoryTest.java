package dev.surgery.samples.report;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** What an epoch's seconds cover, read from a clock that only the test moves. */
class TrainingHistoryTest {

  private static final long SECOND = 1_000_000_000L;

  /**
   * Moves the clock by one second in every training batch, before the history sees the batch (it is
   * registered first), standing for the batch's work.
   */
  private static final class SecondPerBatch extends TrainingListenerAdapter {
    private final AtomicLong clock;

    SecondPerBatch(AtomicLong clock) {
      this.clock = clock;
    }

    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
      clock.addAndGet(SECOND);
    }
  }

  /**
   * Two epochs of 4 batches, each batch one second: every epoch takes 4 seconds, its first batch
   * included. The 100 seconds of "initialization" between the trainer's creation and the training
   * loop count only when the loop does not start the clock.
   */
  @Test
  void anEpochsSecondsCoverEveryBatchFromTheEpochsStart() throws Exception {
    assertEquals(List.of(4.0, 4.0), epochSeconds(true));
    assertEquals(List.of(104.0, 4.0), epochSeconds(false));
  }

  private static List<Double> epochSeconds(boolean startClockBeforeTheLoop) throws Exception {
    AtomicLong clock = new AtomicLong();
    TrainingHistory history = new TrainingHistory(clock::get);
    try (Model model = Model.newInstance("timing");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(
          new SequentialBlock()
              .add(Blocks.batchFlattenBlock())
              .add(Linear.builder().setUnits(4).build())
              .add(Activation.reluBlock())
              .add(Linear.builder().setUnits(2).build()));
      NDArray labels = data.arange(32).toType(DataType.FLOAT32, false).mod(2);
      NDArray inputs = data.randomNormal(new Shape(32, 3)).add(labels.reshape(32, 1));
      ArrayDataset set =
          new ArrayDataset.Builder().setData(inputs).optLabels(labels).setSampling(8, true).build();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .addTrainingListeners(new SecondPerBatch(clock))
              .addTrainingListeners(history);
      try (Trainer trainer = model.newTrainer(config)) {
        clock.addAndGet(100 * SECOND);
        trainer.initialize(new Shape(8, 3));
        if (startClockBeforeTheLoop) {
          history.startEpochClock();
        }
        EasyTrain.fit(trainer, 2, set, null);
      }
    }
    return history.getEpochs().stream().map(TrainingHistory.EpochMetrics::seconds).toList();
  }
}
