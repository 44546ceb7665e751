package dev.surgery.trainer;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.dataset.Dataset;
import ai.djl.training.listener.TrainingListener.BatchData;
import ai.djl.translate.TranslateException;
import dev.surgery.core.events.Event;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A drop-in replacement for DJL's {@link EasyTrain} that reports every training {@link Event} at
 * its exact point to the {@link SurgeryListener}s registered on the trainer, so that step-level
 * schedules ({@code step: K}, {@code every: 100ba}) and event-driven algorithms work in library
 * mode. DJL's {@code TrainingListener} cannot do this alone: {@code onTrainingBatch} fires before
 * {@code Trainer.step()}.
 *
 * <pre>{@code
 * SurgeryListener listener = SurgeryListener.fromYaml(path, SurgeryTrain.EVENTS);
 * // ... new DefaultTrainingConfig(loss).addTrainingListeners(listener) ...
 * trainer.initialize(inputShape);
 * SurgeryTrain.fit(trainer, epochs, trainingSet, validationSet); // instead of EasyTrain.fit
 * }</pre>
 *
 * <p>Every DJL listener sees what it sees under {@code EasyTrain.fit}: {@code onTrainingBatch}
 * after each batch's backward, {@code onValidationBatch} per validation batch, {@code onEpoch}
 * after each epoch's validation. A batch split over several devices runs its splits one after the
 * other (EasyTrain may use the trainer's executor), all forwards first and then all backwards, so
 * that {@link Event#AFTER_FORWARD} and {@link Event#AFTER_BACKWARD} fire once per batch.
 */
public final class SurgeryTrain {

  /**
   * The events {@link #fit} reports: every event of a fit, {@link Event#INIT} to {@link
   * Event#FIT_END} (not the load events).
   */
  public static final Set<Event> EVENTS =
      Collections.unmodifiableSet(EnumSet.range(Event.INIT, Event.FIT_END));

  private SurgeryTrain() {}

  /**
   * Trains like {@link EasyTrain#fit} and reports the events, in this order: {@code INIT} (once per
   * trainer: the listener ignores a repeat), {@code FIT_START}, then per epoch {@code EPOCH_START},
   * per batch {@code BATCH_START, AFTER_FORWARD, AFTER_BACKWARD}, {@code Trainer.step()}, {@code
   * BATCH_END}; then {@code EVAL_START}, the validation batches, {@code EVAL_END} (when there is
   * validation data), {@code EPOCH_END} (DJL's {@code onEpoch}); at the end {@code FIT_END}. The
   * planned number of epochs is passed to the listeners first ({@link
   * SurgeryListener#onPlannedEpochs}).
   *
   * @param trainer the initialized trainer
   * @param numEpoch the number of epochs to train
   * @param trainingDataset the training data
   * @param validateDataset the validation data, or null
   * @throws IOException when the data cannot be read
   * @throws TranslateException when the data cannot be translated
   * @throws SurgeryFailedException when an algorithm fails and {@code on_error} is {@code fail};
   *     whatever {@code on_error} says when a failing algorithm had changed the model or the JVM is
   *     failing (out of memory); and before this fit's first step when an earlier entry followed a
   *     length of training that only an earlier fit announced, under {@code on_error: fail}
   */
  public static void fit(
      Trainer trainer, int numEpoch, Dataset trainingDataset, Dataset validateDataset)
      throws IOException, TranslateException {
    trainer.notifyListeners(
        l -> {
          if (l instanceof SurgeryListener s) {
            s.onPlannedEpochs(trainer, numEpoch);
          }
        });
    fire(trainer, Event.INIT);
    fire(trainer, Event.FIT_START);
    for (int epoch = 0; epoch < numEpoch; epoch++) {
      fire(trainer, Event.EPOCH_START);
      for (Batch batch : trainer.iterateDataset(trainingDataset)) {
        try {
          fire(trainer, Event.BATCH_START);
          trainBatch(trainer, batch);
          trainer.step();
          fire(trainer, Event.BATCH_END);
        } finally {
          batch.close();
        }
      }
      evaluateDataset(trainer, validateDataset);
      // EPOCH_END is DJL's onEpoch, which every listener gets as under EasyTrain.fit.
      trainer.notifyListeners(listener -> listener.onEpoch(trainer));
    }
    fire(trainer, Event.FIT_END);
  }

  /**
   * Trains one batch like {@link EasyTrain#trainBatch} (forward, loss, backward, {@code
   * onTrainingBatch}) and reports {@link Event#AFTER_FORWARD} and {@link Event#AFTER_BACKWARD}. It
   * does not step: a hand-written loop calls {@code trainer.step()} and then reports {@link
   * Event#BATCH_END}.
   *
   * @param trainer the trainer
   * @param batch the batch, on the trainer's engine
   */
  public static void trainBatch(Trainer trainer, Batch batch) {
    if (trainer.getManager().getEngine() != batch.getManager().getEngine()) {
      throw new IllegalArgumentException(
          "The data must be on the same engine as the trainer. You may need to change one of your"
              + " NDManagers.");
    }
    Batch[] splits = batch.split(trainer.getDevices(), false);
    BatchData batchData =
        new BatchData(batch, new ConcurrentHashMap<>(), new ConcurrentHashMap<>());
    try (GradientCollector collector = trainer.newGradientCollector()) {
      List<NDArray> losses = new ArrayList<>(splits.length);
      for (Batch split : splits) {
        NDList data = split.getData();
        NDList labels = split.getLabels();
        NDList preds = trainer.forward(data, labels);
        losses.add(trainer.getLoss().evaluate(labels, preds));
        batchData.getLabels().put(labels.get(0).getDevice(), labels);
        batchData.getPredictions().put(preds.get(0).getDevice(), preds);
      }
      fire(trainer, Event.AFTER_FORWARD);
      long time = System.nanoTime();
      for (NDArray loss : losses) {
        collector.backward(loss);
      }
      trainer.addMetric("backward", time);
      fire(trainer, Event.AFTER_BACKWARD);
    }
    trainer.notifyListeners(listener -> listener.onTrainingBatch(trainer, batchData));
  }

  /**
   * Evaluates like {@link EasyTrain#evaluateDataset}, between {@link Event#EVAL_START} and {@link
   * Event#EVAL_END}; {@code EVAL_END} is reported even when evaluation fails, so that an algorithm
   * that swapped weights in for evaluation swaps them back. Nothing is reported without data.
   *
   * @param trainer the trainer
   * @param testDataset the validation data, or null
   * @throws IOException when the data cannot be read
   * @throws TranslateException when the data cannot be translated
   */
  public static void evaluateDataset(Trainer trainer, Dataset testDataset)
      throws IOException, TranslateException {
    if (testDataset == null) {
      return;
    }
    fire(trainer, Event.EVAL_START);
    try {
      for (Batch batch : trainer.iterateDataset(testDataset)) {
        try {
          EasyTrain.validateBatch(trainer, batch);
        } finally {
          batch.close();
        }
      }
    } catch (IOException | TranslateException | RuntimeException | Error failure) {
      // EVAL_END still fires (a plugin swaps weights back there), but its own failure must not
      // hide the one that ended the evaluation.
      try {
        fire(trainer, Event.EVAL_END);
      } catch (RuntimeException | Error alsoFailed) {
        failure.addSuppressed(alsoFailed);
      }
      throw failure;
    }
    fire(trainer, Event.EVAL_END);
  }

  /**
   * Reports an event to every {@link SurgeryListener} registered on the trainer.
   *
   * @param trainer the trainer
   * @param event the event
   */
  public static void fire(Trainer trainer, Event event) {
    trainer.notifyListeners(
        l -> {
          if (l instanceof SurgeryListener s) {
            s.onEvent(event, trainer);
          }
        });
  }
}
