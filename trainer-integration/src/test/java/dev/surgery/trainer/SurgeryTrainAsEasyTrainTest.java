package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.metric.Metrics;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.dataset.Dataset;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListener.BatchData;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.translate.Batchifier;
import ai.djl.translate.TranslateException;
import ai.djl.util.Progress;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link SurgeryTrain#fit} is a drop-in for {@link EasyTrain#fit}: besides the events, it does what
 * EasyTrain does with the trainer and the data, which a twin run under EasyTrain tells.
 */
class SurgeryTrainAsEasyTrainTest {

  /**
   * What one fit of 2 epochs did: how many training and validation batches it took, how many of
   * each it left open (looked at before the trainer closes), its backward timings, and the
   * validation batches DJL's listeners were told of.
   */
  private record Fit(
      int training,
      int trainingOpen,
      int validation,
      int validationOpen,
      int backwards,
      int validated) {}

  /** One fit under EasyTrain and its twin under SurgeryTrain, shared by the tests below. */
  private static Fit easy;

  private static Fit surgery;

  @BeforeAll
  static void fitBoth() throws IOException, TranslateException {
    easy = fit(false);
    surgery = fit(true);
  }

  private static Fit fit(boolean surgeryTrain) throws IOException, TranslateException {
    List<NDManager> training = new ArrayList<>();
    List<NDManager> validation = new ArrayList<>();
    AtomicInteger validatedBatches = new AtomicInteger();
    TrainingListener validated =
        new TrainingListenerAdapter() {
          @Override
          public void onValidationBatch(Trainer trainer, BatchData batchData) {
            validatedBatches.incrementAndGet();
          }
        };
    try (Model model = TestModels.model("as-easy-train");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(validated))) {
      trainer.initialize(TestModels.INPUT);
      trainer.setMetrics(new Metrics());
      Dataset train = noting(TestModels.dataset(manager, 1), training);
      Dataset validate = noting(TestModels.dataset(manager, 2), validation);
      if (surgeryTrain) {
        SurgeryTrain.fit(trainer, 2, train, validate);
      } else {
        EasyTrain.fit(trainer, 2, train, validate);
      }
      return new Fit(
          training.size(),
          (int) training.stream().filter(NDManager::isOpen).count(),
          validation.size(),
          (int) validation.stream().filter(NDManager::isOpen).count(),
          trainer.getMetrics().getMetric("backward").size(),
          validatedBatches.get());
    }
  }

  /**
   * The data as a dataset of the program's own would give it: each batch on a manager of its own,
   * which DJL's iterator does not close (unlike an {@code ArrayDataset}'s, closed as the next one
   * is taken); the manager of each batch a fit takes is noted.
   */
  private static Dataset noting(ArrayDataset data, List<NDManager> managers) {
    return new Dataset() {
      @Override
      public Iterable<Batch> getData(NDManager manager) throws IOException, TranslateException {
        Iterable<Batch> batches = data.getData(manager);
        return () ->
            new Iterator<>() {
              private final Iterator<Batch> it = batches.iterator();

              @Override
              public boolean hasNext() {
                return it.hasNext();
              }

              @Override
              public Batch next() {
                Batch taken = it.next();
                NDManager own = manager.newSubManager();
                Batch batch =
                    new Batch(
                        own,
                        copy(taken.getData(), own),
                        copy(taken.getLabels(), own),
                        taken.getSize(),
                        Batchifier.STACK,
                        Batchifier.STACK,
                        taken.getProgress(),
                        taken.getProgressTotal());
                taken.close();
                managers.add(own);
                return batch;
              }
            };
      }

      @Override
      public void prepare(Progress progress) {}
    };
  }

  private static NDList copy(NDList arrays, NDManager manager) {
    NDList copies = new NDList();
    for (NDArray array : arrays) {
      NDArray copy = array.duplicate();
      copy.attach(manager);
      copies.add(copy);
    }
    return copies;
  }

  /**
   * Every batch, trained on or validated on, is closed once used, as under EasyTrain: a fit that
   * left them open would keep each batch's arrays until the trainer closes.
   */
  @Test
  void fitClosesEveryBatchItTakes() throws Exception {
    assertEquals(easy.training(), surgery.training());
    assertEquals(easy.validation(), surgery.validation());
    for (Fit run : List.of(easy, surgery)) {
      assertTrue(run.training() > 0 && run.validation() > 0, run.toString());
      assertEquals(0, run.trainingOpen(), "training batches left open");
      assertEquals(0, run.validationOpen(), "validation batches left open");
    }
  }

  /**
   * Every validation batch is validated (DJL's listeners hear of each, as its evaluators do), as
   * under EasyTrain.
   */
  @Test
  void fitValidatesEveryValidationBatch() throws Exception {
    assertEquals(easy.validation(), easy.validated());
    assertEquals(easy.validated(), surgery.validated());
  }

  /** The trainer's metrics get a backward timing per training batch, as under EasyTrain. */
  @Test
  void fitRecordsABackwardTimingPerBatch() throws Exception {
    assertEquals(easy.training(), easy.backwards());
    assertEquals(easy.backwards(), surgery.backwards());
  }
}
