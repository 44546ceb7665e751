package dev.surgery.core.algorithms;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.testing.FreedMemory;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * One seeded training run of DJL's {@code EasyTrain.fit} (by default with SGD and momentum, the
 * setting of the stochastic-depth NaN report) on generated 4-class data, with algorithms applied
 * right after {@code Trainer.initialize} or after completed epochs. The finiteness guard runs after
 * the surgery and after every batch's backward; a garbage collection runs between every forward and
 * its backward, so that anything the backward needs but nobody owns is freed before it is read.
 */
final class SeededTraining {

  /** Samples of the generated data set. */
  static final int SAMPLES = 32;

  /** Batch size. */
  static final int BATCH = 8;

  private SeededTraining() {}

  /** What one run produced. */
  static final class Result {
    /** The loss of every training batch, in order. */
    final List<Float> losses = new ArrayList<>();

    /** Every parameter's final values, by parameter path. */
    final Map<String, float[]> parameters = new LinkedHashMap<>();

    /** Every surgery's report, in the order applied. */
    final List<SurgeryChanges> reports = new ArrayList<>();

    /** The surgery's report: the last one, for a schedule. */
    SurgeryChanges report() {
      return reports.get(reports.size() - 1);
    }
  }

  /**
   * One entry of a schedule.
   *
   * @param algorithm the algorithm
   * @param afterEpoch 0 for right after {@code Trainer.initialize}, else the number of completed
   *     epochs after which it runs
   */
  record Step(Algorithm algorithm, int afterEpoch) {}

  /** SGD with momentum 0.9 at a fixed rate of 0.05: the setting of the stochastic-depth report. */
  static Optimizer sgdWithMomentum() {
    return Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).optMomentum(0.9f).build();
  }

  /**
   * Trains from {@code seed}.
   *
   * @param net builds the model (called once the seed is set)
   * @param sampleShape the shape of one sample
   * @param algorithm the algorithm to apply
   * @param applyAfterEpoch 0 for right after {@code Trainer.initialize}, else the number of
   *     completed epochs after which to apply it
   * @param epochs the epochs to train
   * @param seed the engine seed
   * @return losses, final parameters and the report
   */
  static Result run(
      Supplier<Block> net,
      Shape sampleShape,
      Algorithm algorithm,
      int applyAfterEpoch,
      int epochs,
      int seed)
      throws Exception {
    return run(
        net,
        sampleShape,
        List.of(new Step(algorithm, applyAfterEpoch)),
        SeededTraining::sgdWithMomentum,
        epochs,
        seed);
  }

  /**
   * Trains from {@code seed}, applying a schedule: the entries after the same epoch in their order.
   *
   * @param net builds the model (called once the seed is set)
   * @param sampleShape the shape of one sample
   * @param schedule the algorithms and when each runs
   * @param optimizer builds the optimizer
   * @param epochs the epochs to train
   * @param seed the engine seed
   * @return losses, final parameters and the reports
   */
  static Result run(
      Supplier<Block> net,
      Shape sampleShape,
      List<Step> schedule,
      Supplier<Optimizer> optimizer,
      int epochs,
      int seed)
      throws Exception {
    Result result = new Result();
    Engine.getInstance().setRandomSeed(seed);
    try (Model model = Model.newInstance("seeded");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net.get());
      NDArray labels = data.arange(SAMPLES).toType(DataType.INT32, false).mod(4);
      NDArray images =
          data.randomNormal(new Shape(SAMPLES).addAll(sampleShape))
              .add(labels.toType(DataType.FLOAT32, false).reshape(SAMPLES, 1, 1, 1).sub(1.5f));
      ArrayDataset dataset =
          new ArrayDataset.Builder()
              .setData(images)
              .optLabels(labels.toType(DataType.FLOAT32, false))
              .setSampling(BATCH, false)
              .build();
      Loss loss = Loss.softmaxCrossEntropyLoss();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(new CollectingLoss(loss)).optOptimizer(optimizer.get());
      int[] epoch = {0};
      int[] batch = {0};
      config.addTrainingListeners(
          new TrainingListenerAdapter() {
            @Override
            public void onTrainingBatch(Trainer trainer, BatchData batchData) {
              NDList labels = batchData.getLabels().values().iterator().next();
              NDList predictions = batchData.getPredictions().values().iterator().next();
              result.losses.add(loss.evaluate(labels, predictions).getFloat());
              FinitenessGuard.assertFinite(
                  trainer, "epoch " + epoch[0] + ", batch " + batch[0]++ + " (after backward)");
            }

            @Override
            public void onEpoch(Trainer trainer) {
              epoch[0]++;
              batch[0] = 0;
              applyDue(schedule, epoch[0], result, model, trainer, epochs);
            }
          });
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(BATCH).addAll(sampleShape));
        applyDue(schedule, 0, result, model, trainer, epochs);
        EasyTrain.fit(trainer, epochs, dataset, null);
        for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
          result.parameters.put(p.getKey(), p.getValue().getArray().toFloatArray());
        }
      }
    }
    return result;
  }

  private static void applyDue(
      List<Step> schedule, int completed, Result result, Model model, Trainer trainer, int epochs) {
    for (Step step : schedule) {
      if (step.afterEpoch() == completed) {
        result.reports.add(apply(step.algorithm(), model, trainer, completed, epochs));
      }
    }
  }

  private static SurgeryChanges apply(
      Algorithm algorithm, Model model, Trainer trainer, int completed, int epochs) {
    SurgeryChanges report =
        algorithm.apply(SurgeryContext.live(model.getBlock(), trainer, completed, epochs));
    FinitenessGuard.assertFinite(trainer, "right after " + algorithm.name() + " at " + completed);
    return report;
  }

  /**
   * A loss that collects garbage and writes over the freed memory before it computes, that is
   * between the forward pass and the backward pass of every training batch.
   */
  private static final class CollectingLoss extends Loss {

    private final Loss loss;

    CollectingLoss(Loss loss) {
      super(loss.getName());
      this.loss = loss;
    }

    @Override
    public NDArray evaluate(NDList labels, NDList predictions) {
      FreedMemory.collectAndOverwrite();
      return loss.evaluate(labels, predictions);
    }
  }
}
