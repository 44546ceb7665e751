package dev.surgery.samples.jobs;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import java.util.Arrays;

/**
 * A plain DJL program that knows nothing of DJL Surgery: a small MLP trained for 2 epochs of 4
 * batches with {@code EasyTrain.fit} and validation data. Its own listener prints what the model
 * holds when DJL trains and when it validates: {@code TRAIN <batch> <last bias> <hash>} at every
 * {@code onTrainingBatch} (after backward, before the step: the weights the batch trained with),
 * {@code EVAL <epoch> <last bias> <hash>} at the first validation batch of each epoch, and {@code
 * FINAL <hash>} after training. The hash covers the bits of every parameter.
 */
public final class PlainEvalApp {

  private PlainEvalApp() {}

  /**
   * Runs the program.
   *
   * @param args unused
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    try (Model model = Model.newInstance("plain-eval");
        NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(5);
      model.setBlock(
          new SequentialBlock()
              .add(Linear.builder().setUnits(8).build())
              .add(Activation.reluBlock())
              .add(Linear.builder().setUnits(3).build()));
      NDArray x = data.randomNormal(new Shape(32, 6));
      NDArray y = x.sum(new int[] {1}).gt(0).toType(DataType.FLOAT32, false);
      ArrayDataset set =
          new ArrayDataset.Builder().setData(x).optLabels(y).setSampling(8, false).build();
      Printer printer = new Printer(model);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.5f)).build())
              .addTrainingListeners(printer);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(8, 6));
        EasyTrain.fit(trainer, 2, set, set);
      }
      System.out.println("FINAL " + hash(model));
    }
  }

  private static float[] lastBias(Model model) {
    Parameter last = null;
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      last = p.getValue();
    }
    return last.getArray().toFloatArray();
  }

  private static int hash(Model model) {
    int h = 1;
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      h = 31 * h + Arrays.hashCode(p.getValue().getArray().toFloatArray());
    }
    return h;
  }

  private static String bits(float[] values) {
    StringBuilder sb = new StringBuilder();
    for (float v : values) {
      sb.append(sb.length() == 0 ? "" : ",").append(Integer.toHexString(Float.floatToIntBits(v)));
    }
    return sb.toString();
  }

  /** Prints the weights the model holds when DJL trains and validates. */
  private static final class Printer extends TrainingListenerAdapter {
    private final Model model;
    private int batches;
    private int epochs;
    private boolean validated;

    Printer(Model model) {
      this.model = model;
    }

    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
      batches++;
      System.out.println("TRAIN " + batches + " " + bits(lastBias(model)) + " " + hash(model));
    }

    @Override
    public void onValidationBatch(Trainer trainer, BatchData batchData) {
      if (!validated) {
        validated = true;
        System.out.println(
            "EVAL " + (epochs + 1) + " " + bits(lastBias(model)) + " " + hash(model));
      }
    }

    @Override
    public void onEpoch(Trainer trainer) {
      epochs++;
      validated = false;
    }
  }
}
