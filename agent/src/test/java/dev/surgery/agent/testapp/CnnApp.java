package dev.surgery.agent.testapp;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.List;

/**
 * An ordinary DJL training program that knows nothing of DJL Surgery: a small CNN with a strided
 * convolution and a max pool, trained with {@link EasyTrain#fit} on generated data. The agent tests
 * run it in a forked JVM and read what it prints.
 *
 * <p>Options: {@code --epochs N} (default 3), {@code --trainers N} (successive trainers from one
 * config, default 1), {@code --immutable-listeners} (a config that hands out an immutable listener
 * list), {@code --fail-at-end} (the program throws its own exception after training), {@code
 * --opaque-strided-conv} (the strided convolution sits in a block surgery cannot edit), {@code
 * --no-initialize} (never calls {@code trainer.initialize}: DJL initializes the model at the first
 * forward), {@code --own-loop} (a hand-written training loop instead of {@code EasyTrain.fit},
 * printing the structure after its first step), {@code --float64-model} (the model's data type is
 * {@code FLOAT64}).
 */
public final class CnnApp {

  /** The first line the program prints: its absence proves that {@code main} never ran. */
  public static final String MARKER = "CNNAPP: main started";

  private CnnApp() {}

  /**
   * Runs the program.
   *
   * @param args the options
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    System.out.println(MARKER);
    run(args, List.of());
  }

  /**
   * Trains the CNN, printing the block tree before and after.
   *
   * @param args the options
   * @param extraListeners listeners the caller registers itself
   * @return the trainers used (closed)
   * @throws Exception when training fails
   */
  public static List<Trainer> run(String[] args, List<TrainingListener> extraListeners)
      throws Exception {
    int epochs = 3;
    int trainers = 1;
    boolean immutable = false;
    boolean failAtEnd = false;
    boolean opaque = false;
    boolean initialize = true;
    boolean ownLoop = false;
    boolean float64 = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--epochs" -> epochs = Integer.parseInt(args[++i]);
        case "--trainers" -> trainers = Integer.parseInt(args[++i]);
        case "--immutable-listeners" -> immutable = true;
        case "--fail-at-end" -> failAtEnd = true;
        case "--opaque-strided-conv" -> opaque = true;
        case "--no-initialize" -> initialize = false;
        case "--own-loop" -> ownLoop = true;
        case "--float64-model" -> float64 = true;
        default -> throw new IllegalArgumentException("unknown option " + args[i]);
      }
    }
    System.out.println("CNNAPP: loaded by " + CnnApp.class.getClassLoader());
    List<Trainer> used = new ArrayList<>();
    try (Model model = Model.newInstance("cnn-app");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(network(opaque));
      if (float64) {
        model.setDataType(DataType.FLOAT64);
      }
      ArrayDataset dataset = dataset(data);

      DefaultTrainingConfig config =
          immutable
              ? new ImmutableListenersConfig(Loss.softmaxCrossEntropyLoss())
              : new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss());
      config
          .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).build())
          .addTrainingListeners(TrainingListener.Defaults.basic());
      for (TrainingListener l : extraListeners) {
        config.addTrainingListeners(l);
      }
      System.out.println("CNNAPP: structure before training: " + structure(model.getBlock()));
      System.out.println("CNNAPP: block tree before training: " + oneLine(model));
      for (int t = 1; t <= trainers; t++) {
        int before = config.getTrainingListeners().size();
        try (Trainer trainer = model.newTrainer(config)) {
          used.add(trainer);
          if (initialize) {
            trainer.initialize(new Shape(8, 3, 16, 16));
          }
          if (ownLoop) {
            trainOwnLoop(trainer, epochs, dataset);
          } else {
            EasyTrain.fit(trainer, epochs, dataset, null);
          }
          // Read while the trainer is open: DJL's lazy initialization puts the arrays on the
          // trainer's manager, which closes with it.
          System.out.println("CNNAPP: parameter bits after training: " + parameterBits(model));
          System.out.println(
              "CNNAPP: parameter arrays on manager: "
                  + model
                      .getBlock()
                      .getParameters()
                      .get(0)
                      .getValue()
                      .getArray()
                      .getManager()
                      .getName());
          System.out.println(
              "CNNAPP: trainer "
                  + t
                  + " trained "
                  + epochs
                  + " epochs, loss "
                  + trainer.getTrainingResult().getTrainLoss());
        }
        System.out.println(
            "CNNAPP: config listeners before="
                + before
                + " after="
                + config.getTrainingListeners().size());
      }
      System.out.println("CNNAPP: structure after training: " + structure(model.getBlock()));
      System.out.println("CNNAPP: block tree after training: " + oneLine(model));
    }
    if (failAtEnd) {
      throw new IllegalStateException("CNNAPP-OWN-FAILURE");
    }
    System.out.println("CNNAPP: done");
    return used;
  }

  /** A hand-written loop, as in DJL's examples: forward, backward, step, and onEpoch per epoch. */
  private static void trainOwnLoop(Trainer trainer, int epochs, ArrayDataset dataset)
      throws Exception {
    boolean first = true;
    for (int e = 0; e < epochs; e++) {
      for (Batch batch : trainer.iterateDataset(dataset)) {
        try (GradientCollector collector = trainer.newGradientCollector()) {
          NDList predictions = trainer.forward(batch.getData());
          collector.backward(trainer.getLoss().evaluate(batch.getLabels(), predictions));
        }
        trainer.step();
        batch.close();
        if (first) {
          first = false;
          Block block = trainer.getModel().getBlock();
          System.out.println("CNNAPP: structure after the first step: " + structure(block));
        }
      }
      trainer.notifyListeners(listener -> listener.onEpoch(trainer));
    }
  }

  /**
   * A digest of every parameter's bits in order, and whether all are finite: two runs print the
   * same digest only if they trained the same values bit for bit (barring a hash collision).
   */
  private static String parameterBits(Model model) {
    int digest = 1;
    boolean finite = true;
    for (ai.djl.util.Pair<String, ai.djl.nn.Parameter> p : model.getBlock().getParameters()) {
      if (!p.getValue().isInitialized()) {
        continue;
      }
      float[] values = p.getValue().getArray().toType(DataType.FLOAT32, false).toFloatArray();
      for (float v : values) {
        finite &= Float.isFinite(v);
      }
      digest = 31 * digest + java.util.Arrays.hashCode(values);
    }
    return Integer.toHexString(digest) + (finite ? " finite" : " NOT FINITE");
  }

  private static String oneLine(Model model) {
    return model.getBlock().toString().replaceAll("\\s+", " ");
  }

  /** Four learnable classes of generated 3x16x16 images, 32 samples in batches of 8. */
  static ArrayDataset dataset(NDManager data) {
    data.getEngine().setRandomSeed(11);
    int n = 32;
    NDArray labels = data.arange(n).toType(DataType.INT32, false).mod(4);
    NDArray means = labels.toType(DataType.FLOAT32, false).reshape(n, 1, 1, 1);
    NDArray images = data.randomNormal(new Shape(n, 3, 16, 16)).mul(0.3f).add(means);
    return new ArrayDataset.Builder()
        .setData(images)
        .optLabels(labels.toType(DataType.FLOAT32, false))
        .setSampling(8, true)
        .build();
  }

  /** The block classes and child names, recursively, without shapes (which appear on init). */
  static String structure(Block block) {
    StringBuilder sb = new StringBuilder(block.getClass().getSimpleName());
    if (block instanceof LambdaBlock) {
      sb.append('(').append(block.toString().replaceAll("\\(.*", "")).append(')');
    }
    if (!block.getChildren().isEmpty()) {
      sb.append(" {");
      for (Pair<String, Block> child : block.getChildren()) {
        sb.append(' ').append(child.getKey()).append('=').append(structure(child.getValue()));
      }
      sb.append(" }");
    }
    return sb.toString();
  }

  static SequentialBlock network() {
    return network(false);
  }

  /**
   * The test CNN.
   *
   * @param opaqueStridedConv wrap the strided convolution in a block surgery cannot write into
   */
  static SequentialBlock network(boolean opaqueStridedConv) {
    Block strided =
        Conv2d.builder()
            .setKernelShape(new Shape(3, 3))
            .optStride(new Shape(2, 2))
            .optPadding(new Shape(1, 1))
            .setFilters(16)
            .build();
    return new SequentialBlock()
        .add(
            Conv2d.builder()
                .setKernelShape(new Shape(3, 3))
                .optPadding(new Shape(1, 1))
                .setFilters(16)
                .build())
        .add(Activation.reluBlock())
        .add(opaqueStridedConv ? new OpaqueBlock(strided) : strided)
        .add(Activation.reluBlock())
        .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  /** A config whose listener list cannot be modified (as a user's own config may be). */
  static final class ImmutableListenersConfig extends DefaultTrainingConfig {
    ImmutableListenersConfig(Loss loss) {
      super(loss);
    }

    @Override
    public List<TrainingListener> getTrainingListeners() {
      return List.copyOf(super.getTrainingListeners());
    }
  }
}
