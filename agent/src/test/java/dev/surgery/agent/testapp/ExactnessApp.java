package dev.surgery.agent.testapp;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.ResNetV1;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.Dropout;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Dataset;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.FixedPerVarTracker;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * A DJL training program for exactness comparisons: a small residual-free CNN (a stem, two strided
 * convolutions with 16 and 32 input channels, a max pool, a linear head) trained with {@link
 * EasyTrain#fit} for 4 epochs of 6 batches on generated data with fixed seeds. It prints the loss
 * of every step ({@code EXACT: step N loss ...}) and, at the end, every parameter's shape, bits (a
 * hash of all and the first three in full) and whether it trains ({@code EXACT: param ...}), so
 * that a run under the agent can be compared with a twin that made the same change itself.
 *
 * <p>The twins: {@code --hand name@epoch[:key=value,...]} (repeatable) applies that built-in
 * algorithm through the library's public API ({@link ExactnessHandSurgery}); without the agent and
 * without the library, {@code --ref-blur E} (BlurPool's form from the end of epoch {@code E}, 0:
 * from the start), {@code --ref-se E} (squeeze-excite gates added then), {@code --ref-step K} (the
 * switch of {@code --ref-blur 99} or {@code --ref-se 99} made between step {@code K} and the next
 * forward instead) and {@code --ref-freeze E:N} (repeatable: DJL's own freezing of the first {@code
 * N} layers) build the change from DJL alone ({@link ExactnessReference}).
 *
 * <p>Other options: {@code --optimizer NAME} (default {@code adam}; see {@link #optimizer}; the
 * {@code fresh-} variants give a born parameter what a fresh optimizer would, for the DJL-only
 * twins), {@code --epochs N}, {@code --dropout}, {@code --batch-norm} (after each strided
 * convolution), {@code --resnet} (DJL's 20-layer {@code ResNetV1} instead), {@code --shuffle}
 * (batches in a random order), {@code --validate} (the training data as validation set too), {@code
 * --fit-per-epoch} (one {@code EasyTrain.fit} call per epoch), {@code --init-block} (the program
 * initializes the block itself before building the trainer, and never calls {@code
 * trainer.initialize}).
 */
public final class ExactnessApp {

  /** Samples in the generated data set. */
  public static final int SAMPLES = 48;

  /** Samples per batch. */
  public static final int BATCH = 8;

  /** Whether the networks hold a dropout layer before the head. */
  private static boolean dropout;

  /** Whether the plain network holds a batch norm after each strided convolution. */
  private static boolean batchNorm;

  /** Whether the batches come in a random order. */
  private static boolean shuffle;

  private ExactnessApp() {}

  /**
   * Runs the program.
   *
   * @param args the options
   * @throws Exception when training fails
   */
  public static void main(String[] args) throws Exception {
    System.out.println(CnnApp.MARKER);
    String optimizer = "adam";
    int epochs = 4;
    List<String> hand = new ArrayList<>();
    int refBlur = -1;
    int refSe = -1;
    int refStep = -1;
    Map<Integer, Integer> refFreeze = new TreeMap<>();
    boolean resnet = false;
    boolean validate = false;
    boolean fitPerEpoch = false;
    boolean initBlock = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--optimizer" -> optimizer = args[++i];
        case "--epochs" -> epochs = Integer.parseInt(args[++i]);
        case "--hand" -> hand.add(args[++i]);
        case "--ref-blur" -> refBlur = Integer.parseInt(args[++i]);
        case "--ref-se" -> refSe = Integer.parseInt(args[++i]);
        case "--ref-step" -> refStep = Integer.parseInt(args[++i]);
        case "--ref-freeze" -> {
          String[] at = args[++i].split(":");
          refFreeze.put(Integer.parseInt(at[0]), Integer.parseInt(at[1]));
        }
        case "--dropout" -> dropout = true;
        case "--batch-norm" -> batchNorm = true;
        case "--resnet" -> resnet = true;
        case "--shuffle" -> shuffle = true;
        case "--validate" -> validate = true;
        case "--fit-per-epoch" -> fitPerEpoch = true;
        case "--init-block" -> initBlock = true;
        default -> throw new IllegalArgumentException("unknown option " + args[i]);
      }
    }
    int totalSteps = epochs * SAMPLES / BATCH;
    try (Model model = Model.newInstance("exactness-app");
        NDManager data = NDManager.newBaseManager()) {
      if (resnet) {
        model.setBlock(
            ResNetV1.builder()
                .setImageShape(new Shape(3, 16, 16))
                .setNumLayers(20)
                .setOutSize(4)
                .build());
      } else if (refSe >= 0) {
        model.setBlock(referenceSeNetwork());
      } else if (refBlur >= 0) {
        model.setBlock(referenceNetwork());
      } else {
        model.setBlock(network());
      }
      ArrayDataset arrays = dataset(data);
      Dataset dataset = arrays;
      if (refStep > 0) {
        // Between step K and the next forward: when batch K + 1 is fetched.
        dataset =
            new ExactnessReference.HookedDataset(
                arrays, refStep, () -> ExactnessReference.switchOn(model.getBlock()));
      }
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(optimizer(optimizer, totalSteps, model.getBlock()))
              .optDevices(new Device[] {Device.cpu()})
              .addTrainingListeners(new LossPrinter());
      // Loaded only when the program makes the surgery itself: under the agent the program's class
      // path holds no DJL Surgery library.
      ExactnessHandSurgery surgery = hand.isEmpty() ? null : new ExactnessHandSurgery(hand, epochs);
      if (surgery != null) {
        config.addTrainingListeners(surgery);
      }
      config.addTrainingListeners(new ReferenceSwitches(model, refBlur, refSe, refFreeze));
      ExactnessReference.blurred = refBlur == 0;
      Engine.getInstance().setRandomSeed(1234);
      if (initBlock) {
        // The program initializes the block itself, before any trainer.
        model
            .getBlock()
            .initialize(model.getNDManager(), DataType.FLOAT32, new Shape(BATCH, 3, 16, 16));
      }
      try (Trainer trainer = model.newTrainer(config)) {
        if (surgery != null) {
          surgery.applyDue(trainer, ExactnessHandSurgery.BEFORE_INITIALIZE);
        }
        if (!initBlock) {
          trainer.initialize(new Shape(BATCH, 3, 16, 16));
        }
        if (surgery != null) {
          surgery.applyDue(trainer, 0);
        }
        if (refSe == 0) {
          ExactnessReference.addGates(model.getBlock());
        }
        Dataset validation = validate ? arrays : null;
        if (fitPerEpoch) {
          // One EasyTrain.fit call per epoch, as programs that save or evaluate in between do.
          for (int e = 0; e < epochs; e++) {
            EasyTrain.fit(trainer, 1, dataset, validation);
          }
        } else {
          EasyTrain.fit(trainer, epochs, dataset, validation);
        }
        System.out.println("EXACT: structure " + CnnApp.structure(model.getBlock()));
        for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
          System.out.println("EXACT: param " + p.getKey() + " " + describe(p.getValue()));
        }
      }
    }
    System.out.println("EXACT: done");
  }

  private static String describe(Parameter parameter) {
    if (!parameter.isInitialized()) {
      return "uninitialized";
    }
    NDArray array = parameter.getArray();
    float[] values = array.toFloatArray();
    StringBuilder sb =
        new StringBuilder()
            .append(array.getShape())
            .append(" trains=")
            .append(parameter.requiresGradient())
            .append(" hash=")
            .append(Integer.toHexString(Arrays.hashCode(values)));
    for (int i = 0; i < Math.min(3, values.length); i++) {
      sb.append(' ').append(Float.toHexString(values[i]));
    }
    return sb.toString();
  }

  /** Rates per parameter id: 0.001 for convolutions, 0.01 for the head, 0.003 for others. */
  private static FixedPerVarTracker perVar(Block model) {
    FixedPerVarTracker.Builder b = FixedPerVarTracker.builder().setDefaultValue(0.003f);
    for (Pair<String, Parameter> p : model.getParameters()) {
      b.put(p.getValue().getId(), p.getKey().contains("Linear") ? 0.01f : 0.001f);
    }
    return b.build();
  }

  /**
   * The optimizers: {@code adam} (0.003), {@code adamw-cosine} (0.01 down to 0.0005, decay 0.05),
   * {@code adamw-multifactor} (0.01 halved at steps 5, 9 and 15), {@code adam-options} (betas,
   * epsilon, decay, clipping and rescaling set), {@code sgd-momentum-cosine}, {@code adam-pervar}
   * (rates per parameter id), and {@code fresh-} variants of all but the multi-factor one.
   */
  private static Optimizer optimizer(String name, int totalSteps, Block model) {
    return switch (name) {
      case "adam" -> Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.003f)).build();
      case "adamw-cosine" ->
          Optimizer.adamW()
              .optLearningRateTracker(cosine(0.01f, 0.0005f, totalSteps))
              .optWeightDecays(0.05f)
              .build();
      case "adamw-multifactor" ->
          Optimizer.adamW()
              .optLearningRateTracker(
                  Tracker.multiFactor()
                      .setBaseValue(0.01f)
                      .setSteps(new int[] {5, 9, 15})
                      .optFactor(0.5f)
                      .build())
              .build();
      case "adam-options" ->
          Optimizer.adam()
              .optLearningRateTracker(Tracker.fixed(0.003f))
              .optBeta1(0.8f)
              .optBeta2(0.99f)
              .optEpsilon(1e-6f)
              .optWeightDecays(0.01f)
              .optClipGrad(0.05f)
              .setRescaleGrad(0.5f)
              .build();
      case "fresh-adam-options" -> ExactnessReference.freshAdamOptions(Tracker.fixed(0.003f));
      case "sgd-momentum-cosine" ->
          Optimizer.sgd()
              .setLearningRateTracker(cosine(0.05f, 0.001f, totalSteps))
              .optMomentum(0.9f)
              .optWeightDecays(0.001f)
              .build();
      case "fresh-sgd-momentum-cosine" ->
          ExactnessReference.freshSgdMomentum(cosine(0.05f, 0.001f, totalSteps));
      case "adam-pervar" -> Optimizer.adam().optLearningRateTracker(perVar(model)).build();
      case "fresh-adam-pervar" -> ExactnessReference.freshAdam(perVar(model));
      case "fresh-adam" -> ExactnessReference.freshAdam(Tracker.fixed(0.003f));
      case "fresh-adamw-cosine" ->
          ExactnessReference.freshAdamW(cosine(0.01f, 0.0005f, totalSteps), 0.05f);
      default -> throw new IllegalArgumentException("unknown optimizer " + name);
    };
  }

  private static Tracker cosine(float base, float last, int totalSteps) {
    return Tracker.cosine()
        .setBaseValue(base)
        .optFinalValue(last)
        .setMaxUpdates(totalSteps)
        .build();
  }

  /** Residual-free: a stem, two strided convolutions (16 and 32 inputs), a max pool, a head. */
  static SequentialBlock network() {
    return sequence(
        conv(32, 2), conv(32, 2), Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)));
  }

  /**
   * {@link #network()} with DJL-only blocks that switch to BlurPool's form ({@code --ref-blur}).
   */
  static SequentialBlock referenceNetwork() {
    return sequence(
        new ExactnessReference.SwitchConv(32, 2),
        new ExactnessReference.SwitchConv(32, 2),
        new ExactnessReference.SwitchPool());
  }

  /** {@link #network()} with DJL-only blocks that gain a squeeze-excite gate ({@code --ref-se}). */
  static SequentialBlock referenceSeNetwork() {
    return sequence(
        new ExactnessReference.SwitchSe(32, 2, 8),
        new ExactnessReference.SwitchSe(32, 2, 8),
        Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)));
  }

  /** The network around its two strided convolutions and its pool, with the optional layers. */
  private static SequentialBlock sequence(Block strided1, Block strided2, Block pool) {
    SequentialBlock net = new SequentialBlock().add(conv(16, 1)).add(Activation.reluBlock());
    for (Block strided : List.of(strided1, strided2)) {
      net.add(strided);
      if (batchNorm) {
        net.add(BatchNorm.builder().build());
      }
      net.add(Activation.reluBlock());
    }
    net.add(pool).add(Blocks.batchFlattenBlock());
    if (dropout) {
      net.add(Dropout.builder().optRate(0.3f).build());
    }
    return net.add(Linear.builder().setUnits(4).build());
  }

  /** A 3x3 convolution with padding 1; the reference's switchable blocks wrap the same one. */
  static Conv2d conv(int filters, int stride) {
    return Conv2d.builder()
        .setKernelShape(new Shape(3, 3))
        .optStride(new Shape(stride, stride))
        .optPadding(new Shape(1, 1))
        .setFilters(filters)
        .build();
  }

  /** Four learnable classes of 3x16x16 images drawn by a seeded Java generator, not the engine. */
  static ArrayDataset dataset(NDManager data) {
    Random random = new Random(42);
    float[] images = new float[SAMPLES * 3 * 16 * 16];
    float[] labels = new float[SAMPLES];
    int per = images.length / SAMPLES;
    for (int n = 0; n < SAMPLES; n++) {
      int label = (n * 7) % 4;
      labels[n] = label;
      for (int i = 0; i < per; i++) {
        int channel = i / 256;
        float pattern = (i % 16 < 8) == (label % 2 == 0) ? 0.2f : -0.2f;
        images[n * per + i] =
            (float) random.nextGaussian() + pattern * (channel == label % 3 ? 1 : 0.2f);
      }
    }
    return new ArrayDataset.Builder()
        .setData(data.create(images, new Shape(SAMPLES, 3, 16, 16)))
        .optLabels(data.create(labels, new Shape(SAMPLES)))
        .setSampling(BATCH, shuffle)
        .build();
  }

  /** The DJL-only twins' changes at the end of their epochs. */
  private static final class ReferenceSwitches extends TrainingListenerAdapter {
    private final Model model;
    private final int blurAt;
    private final int gatesAt;
    private final Map<Integer, Integer> freezeAt;
    private int completed;

    ReferenceSwitches(Model model, int blurAt, int gatesAt, Map<Integer, Integer> freezeAt) {
      this.model = model;
      this.blurAt = blurAt;
      this.gatesAt = gatesAt;
      this.freezeAt = freezeAt;
    }

    @Override
    public void onEpoch(Trainer trainer) {
      completed++;
      if (completed == gatesAt) {
        ExactnessReference.addGates(model.getBlock());
      }
      if (completed == blurAt) {
        ExactnessReference.blurred = true;
      }
      if (freezeAt.containsKey(completed)) {
        ExactnessReference.freezeFirst(model.getBlock(), freezeAt.get(completed));
      }
    }
  }

  /** Prints the loss of every training batch, with its bits, and counts the steps. */
  private static final class LossPrinter extends TrainingListenerAdapter {
    private int step;

    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
      for (Map.Entry<Device, NDList> e : batchData.getLabels().entrySet()) {
        NDList predictions = batchData.getPredictions().get(e.getKey());
        try (NDArray loss = trainer.getLoss().evaluate(e.getValue(), predictions)) {
          float value = loss.getFloat();
          step++;
          ExactnessReference.currentStep = step;
          System.out.println(
              "EXACT: step " + step + " loss " + value + " " + Float.toHexString(value));
        }
      }
    }
  }
}
