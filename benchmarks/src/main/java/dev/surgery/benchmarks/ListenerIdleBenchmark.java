package dev.surgery.benchmarks;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListener.BatchData;
import ai.djl.translate.Batchifier;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.trainer.SurgeryListener;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * B2a with JMH: what an idle {@code SurgeryListener} (library mode; BlurPool scheduled at epoch
 * 1,000,000, the latest the listener accepts) costs per training batch, measured in-process: its
 * {@code onTrainingBatch} over epochs of 1,024 batches (with their real progress), and {@code
 * onEpoch} at the end of each epoch, against the same loop without the listener. Each iteration
 * starts a fresh trainer and listener, so that no iteration comes near the due epoch. Issue 15's
 * goal: under 1 us per batch.
 *
 * <p>Run: {@code mvn -B -q -pl benchmarks exec:exec@jmh -Dbench.args="-f 1 -wi 3 -i 5
 * ListenerIdleBenchmark"}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class ListenerIdleBenchmark {

  private static final int BATCHES_PER_EPOCH = 1024;
  private static final int BATCH = 32;

  private Model model;
  private Trainer trainer;
  private NDManager manager;
  private SurgeryListener listener;
  private BatchData[] epoch;
  private int next;

  /** One epoch of batch records. */
  @Setup(Level.Trial)
  public void setUp() {
    model = Model.newInstance("b2-listener");
    model.setBlock(Linear.builder().setUnits(2).build());
    manager = NDManager.newBaseManager();
    epoch = new BatchData[BATCHES_PER_EPOCH];
    for (int i = 0; i < epoch.length; i++) {
      NDManager batchManager = manager.newSubManager();
      Batch batch =
          new Batch(
              batchManager,
              new NDList(batchManager.zeros(new Shape(1, 1))),
              new NDList(batchManager.zeros(new Shape(1))),
              BATCH,
              Batchifier.STACK,
              Batchifier.STACK,
              (long) (i + 1) * BATCH,
              (long) BATCHES_PER_EPOCH * BATCH);
      epoch[i] = new BatchData(batch, Map.<Device, NDList>of(), Map.<Device, NDList>of());
    }
    newTrainer();
  }

  /** A fresh trainer with a fresh idle listener attached, at epoch 0. */
  @Setup(Level.Iteration)
  public void newTrainer() {
    if (trainer != null) {
      trainer.close();
    }
    listener = SurgeryListener.builder().add(BlurPool.builder().build(), 1_000_000).build();
    trainer =
        model.newTrainer(
            new DefaultTrainingConfig(BenchSupport.loss()).addTrainingListeners(listener));
    trainer.initialize(new Shape(BATCH, 4));
    next = 0;
  }

  /**
   * One batch through the idle listener (and, after the epoch's last batch, {@code onEpoch}).
   *
   * @return the index of the next batch
   */
  @Benchmark
  public int idleListener() {
    listener.onTrainingBatch(trainer, epoch[next]);
    if (++next == epoch.length) {
      next = 0;
      listener.onEpoch(trainer);
    }
    return next;
  }

  /**
   * The same loop without the listener: the bookkeeping to subtract.
   *
   * @return the index of the next batch
   */
  @Benchmark
  public int noListener() {
    BatchData data = epoch[next];
    if (++next == epoch.length) {
      next = 0;
    }
    return next + (data == null ? 1 : 0);
  }

  /** Frees the batches, the trainer and the model. */
  @TearDown(Level.Trial)
  public void tearDown() {
    manager.close();
    BenchSupport.close(model, trainer);
  }
}
