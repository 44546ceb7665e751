package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.dataset.RandomAccessDataset;
import ai.djl.training.listener.TrainingListener.BatchData;
import ai.djl.translate.TranslateException;
import ai.djl.util.Pair;
import com.google.gson.GsonBuilder;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.samples.report.TimeToAccuracyPage;
import dev.surgery.samples.report.TimeToAccuracyPage.Curve;
import dev.surgery.samples.report.TimeToAccuracyPage.Marker;
import dev.surgery.samples.report.TimeToAccuracyPage.Point;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.SurgeryOutcome;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * B6: time to accuracy. Trains DJL's ResNetV1-20 as B5 does (SGD, learning rate 0.05, momentum 0.9,
 * batch 64 unless {@code --batch} says otherwise; real digits and generated images) once without
 * surgery (the baseline) and once with a recipe of algorithms, on the same data and with the same
 * seeds, interleaved (baseline, recipe, recipe, baseline, ...), and measures when each run first
 * reaches the baseline's final validation accuracy (its mean over the seeds).
 *
 * <p><b>Accuracy</b> is measured every {@code --eval-every} batches and at every epoch end, in
 * evaluation mode, two ways: as the model stands (batch norm with the running statistics training
 * left) and after re-estimating the running statistics with one pass over the training set in
 * training mode without updates. The second is the target metric: B5 showed that the running
 * statistics of DJL's batch norm (momentum 0.9) lag the weights by so much that evaluation-mode
 * accuracy as it stands varies by ±0.1 between seeds, while the re-estimated one follows the
 * weights. A deployed model reached that way needs one re-estimation pass, so its cost (measured at
 * that checkpoint) is added to the time at which the target is reached. After the measurement the
 * running statistics are put back and the engine's random generator is reseeded from itself, so
 * that training continues exactly as it would have without the measurement (stochastic depth draws
 * in the re-estimation pass).
 *
 * <p><b>Time</b>: the training clock runs from just before the first surgery (epoch 0, right after
 * {@code trainer.initialize}) to the end of the budget and stops during every evaluation; surgery
 * at epoch ends is on the clock. It is kept twice: wall time, and the CPU time of the thread that
 * trains. With one PyTorch thread ({@code -Dai.djl.pytorch.num_threads=1}) the kernels run on that
 * thread, so its CPU time is the work done, and other processes sharing the cores change it far
 * less than wall time; it is the primary measure.
 *
 * <p>Run: {@code mvn -B -q -pl benchmarks exec:exec@b6-time-to-accuracy} (flags in {@code
 * -Dbench.args}, see {@link #main}).
 */
public final class B6TimeToAccuracy {

  private static final int CLASSES = 10;
  private static final int SIDE = 28;

  /**
   * The recipe by default: see docs/algorithms.md, "Recipe". Entries are joined by {@code +}; each
   * is {@code name[:key=value...]@epoch[/epoch...]}.
   */
  static final String DEFAULT_RECIPE = "blurpool@0+layer_freezing:freeze_start=0.0@1/2";

  /** B5's settings, which change ResNetV1-20 (Composer's defaults would leave some untouched). */
  private static final Map<String, Map<String, Object>> DEFAULT_SETTINGS =
      Map.of(
          "blurpool", Map.of("min_channels", 16),
          "factorize", Map.of("min_channels", 32, "factorize_linears", false),
          "squeeze_excite", Map.of("min_channels", 64));

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of("B6TimeToAccuracy", "B6: time to accuracy, the baseline against a recipe")
          .count("epochs", 3, 1, "the baseline's budget in epochs")
          .count("recipe-epochs", null, 1, "the recipe's budget in epochs (default: --epochs)")
          .count("seeds", 3, 1, "seeds")
          .count("train-size", 2000, 1, "training images per dataset")
          .count("val-size", 1000, 1, "validation images")
          .count("batch", 64, 1, "batch size")
          .count("eval-every", 32, 1, "batches between evaluations (every epoch end too)")
          .choices("datasets", "mnist,synthetic", "datasets", "mnist", "synthetic")
          .text("mnist-dir", "target/mnist", "the MNIST files (scripts/fetch-mnist.sh)")
          .text("out", "target/b6", "where the HTML page and the JSON go")
          .text(
              "recipe",
              DEFAULT_RECIPE,
              "the recipe: entries name[:key=value...]@epoch[/epoch...] joined by +")
          .text("ablation", "", "more variants run in the same interleaving, SPEC;SPEC")
          .toggle(
              "no-warmup",
              "skip the untimed warm-up of every variant on a few batches before the timed runs");

  private B6TimeToAccuracy() {}

  /** The flags, and the variants they ask for. */
  private record Options(BenchFlags.Values flags, List<Variant> variants) {}

  /**
   * Reads a command line and refuses, before any run, what would fail or mean nothing later: a
   * schedule entry after the variant's last epoch (it would never run), MNIST files that are not
   * there, an output directory that cannot be created or written to.
   */
  private static Options read(BenchFlags.Values flags) {
    List<Variant> variants = variants(flags);
    int epochs = flags.count("epochs");
    int recipeEpochs = flags.count("recipe-epochs", epochs);
    for (Variant v : variants) {
      for (Entry e : v.entries()) {
        for (int epoch : e.epochs()) {
          if (epoch >= recipeEpochs) {
            throw new IllegalArgumentException(
                (v.name().equals("recipe") ? "--recipe" : "--ablation")
                    + ": "
                    + e.name()
                    + "@"
                    + epoch
                    + " is applied after epoch "
                    + epoch
                    + ", but the variant trains "
                    + recipeEpochs
                    + " epoch(s) (--recipe-epochs, default --epochs): it would never run");
          }
        }
      }
    }
    B5AlgorithmAccuracy.checkMnistDir(flags);
    checkOut(Path.of(flags.text("out")));
    return new Options(flags, variants);
  }

  /** Creates {@code --out} and checks that a file can be written there, before any run. */
  static void checkOut(Path out) {
    try {
      Files.createDirectories(out);
      Files.deleteIfExists(Files.createTempFile(out, ".b6-check", ".tmp"));
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException(
          "--out " + out + ": cannot be created or written to (" + e + ")", e);
    }
  }

  /** The variants a command line asks for: the baseline, the recipe, then each ablation. */
  static List<Variant> variants(BenchFlags.Values flags) {
    List<Variant> variants = new ArrayList<>();
    variants.add(Variant.baseline());
    try {
      variants.add(Variant.parse("recipe", flags.text("recipe")));
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("--recipe: " + e.getMessage(), e);
    }
    for (String spec : flags.text("ablation").split(";")) {
      if (!spec.isBlank()) {
        try {
          variants.add(Variant.parse(spec.trim(), spec.trim()));
        } catch (RuntimeException e) {
          throw new IllegalArgumentException("--ablation: " + e.getMessage(), e);
        }
      }
    }
    return variants;
  }

  /**
   * One scheduled algorithm of a variant.
   *
   * @param name the algorithm's config name
   * @param settings its hyperparameters (B5's defaults, overridden by the spec)
   * @param epochs the epochs (completed epochs) at which it is applied
   */
  record Entry(String name, Map<String, Object> settings, List<Integer> epochs) {}

  /**
   * A configuration to train: a label and its schedule (empty for the baseline).
   *
   * @param name the label
   * @param entries the scheduled algorithms
   */
  record Variant(String name, List<Entry> entries) {

    static Variant baseline() {
      return new Variant("baseline", List.of());
    }

    /** Parses {@code name[:key=value...]@epoch[/epoch...]} entries joined by {@code +}. */
    static Variant parse(String label, String spec) {
      List<Entry> entries = new ArrayList<>();
      for (String part : spec.split("\\+")) {
        String p = part.trim();
        int at = p.lastIndexOf('@');
        if (at < 0) {
          throw new IllegalArgumentException(
              "recipe entry '" + p + "' needs @epoch, e.g. blurpool@0 or layer_freezing@1/2");
        }
        List<Integer> epochs = new ArrayList<>();
        for (String e : p.substring(at + 1).split("/")) {
          int epoch;
          try {
            epoch = Integer.parseInt(e.trim());
          } catch (NumberFormatException bad) {
            epoch = -1;
          }
          if (epoch < 0) {
            throw new IllegalArgumentException(
                "recipe entry '"
                    + p
                    + "': epoch '"
                    + e.trim()
                    + "' is not a whole number >= 0 (e.g. blurpool@0 or layer_freezing@1/2)");
          }
          epochs.add(epoch);
        }
        String[] head = p.substring(0, at).split(":");
        String name = head[0].trim();
        AlgorithmSpec algorithm = Algorithms.find(name).orElse(null);
        if (algorithm == null) {
          throw new IllegalArgumentException(
              "unknown algorithm '" + name + "' in recipe entry '" + p + "'");
        }
        Map<String, Object> settings =
            new LinkedHashMap<>(DEFAULT_SETTINGS.getOrDefault(name, Map.of()));
        for (int i = 1; i < head.length; i++) {
          String[] kv = head[i].split("=", 2);
          if (kv.length != 2) {
            throw new IllegalArgumentException("setting '" + head[i] + "' needs key=value");
          }
          settings.put(kv[0].trim(), value(kv[1].trim()));
        }
        algorithm.create(settings); // refuse a bad setting now, not in the middle of the runs
        entries.add(new Entry(name, settings, epochs));
      }
      return new Variant(label, entries);
    }

    private static Object value(String s) {
      if (s.equals("true") || s.equals("false")) {
        return Boolean.parseBoolean(s);
      }
      try {
        return Integer.parseInt(s);
      } catch (NumberFormatException e) {
        try {
          return Double.parseDouble(s);
        } catch (NumberFormatException e2) {
          return s;
        }
      }
    }

    SurgeryListener listener(int totalEpochs) {
      SurgeryListener.Builder b = SurgeryListener.builder().optTotalEpochs(totalEpochs);
      for (Entry e : entries) {
        for (int epoch : e.epochs()) {
          b.add(Algorithms.spec(e.name()).create(e.settings()), epoch);
        }
      }
      return b.build();
    }
  }

  /**
   * One evaluation point.
   *
   * @param batches training batches done
   * @param epochs the same in epochs (fractional)
   * @param wallSeconds training wall clock (evaluation excluded)
   * @param cpuSeconds training thread-CPU clock (evaluation excluded)
   * @param evalAccuracy evaluation-mode accuracy with the running statistics as they are
   * @param accuracy evaluation-mode accuracy after re-estimating the running statistics
   * @param reestimateWallSeconds the re-estimation pass's wall time
   * @param reestimateCpuSeconds the re-estimation pass's thread-CPU time
   * @param trainLoss the mean training loss of the batches since the previous point
   */
  record Checkpoint(
      int batches,
      double epochs,
      double wallSeconds,
      double cpuSeconds,
      double evalAccuracy,
      double accuracy,
      double reestimateWallSeconds,
      double reestimateCpuSeconds,
      double trainLoss) {}

  /**
   * One applied surgery, on the training clock.
   *
   * @param algorithm the algorithm
   * @param epoch completed epochs when it ran
   * @param wallSeconds the training wall clock after it
   * @param cpuSeconds the training CPU clock after it
   */
  record SurgeryMark(String algorithm, int epoch, double wallSeconds, double cpuSeconds) {}

  /**
   * One training run.
   *
   * @param dataset the dataset
   * @param variant baseline or recipe
   * @param seed the seed
   * @param order its position in the interleaved sequence
   * @param checkpoints the evaluation points
   * @param surgeries the applied surgeries
   * @param evaluationWallSeconds wall time spent evaluating, off the clock
   * @param load the 1-minute load average when it ended
   */
  record Run(
      String dataset,
      String variant,
      int seed,
      int order,
      List<Checkpoint> checkpoints,
      List<SurgeryMark> surgeries,
      double evaluationWallSeconds,
      String load) {

    Checkpoint last() {
      return checkpoints.get(checkpoints.size() - 1);
    }

    /** The first checkpoint at or above the target, or null. */
    Checkpoint reaching(double target, boolean reestimated) {
      for (Checkpoint c : checkpoints) {
        double a = reestimated ? c.accuracy() : c.evalAccuracy();
        if (a >= target - 1e-9) {
          return c;
        }
      }
      return null;
    }
  }

  /**
   * Runs the benchmark.
   *
   * @param args {@code --epochs N} the baseline's budget (default 3), {@code --recipe-epochs N} the
   *     recipe's budget (default: the same), {@code --seeds N} (default 3), {@code --train-size N}
   *     (default 2000), {@code --val-size N} (default 1000), {@code --batch N} (default 64), {@code
   *     --eval-every N} batches between evaluations (default 32; every epoch end too), {@code
   *     --datasets mnist,synthetic}, {@code --mnist-dir DIR} (default target/mnist), {@code
   *     --recipe SPEC} (default {@value #DEFAULT_RECIPE}; entries {@code
   *     name[:key=value...]@epoch[/epoch...]} joined by {@code +}), {@code --ablation SPEC;SPEC}
   *     more variants run in the same interleaving, {@code --out DIR} where the HTML page and the
   *     JSON go (default target/b6)
   * @throws Exception if DJL fails
   */
  public static void main(String[] args) throws Exception {
    Options options = FLAGS.orExit(args, B6TimeToAccuracy::read);
    BenchFlags.Values flags = options.flags();
    List<Variant> variants = options.variants();
    int epochs = flags.count("epochs");
    int recipeEpochs = flags.count("recipe-epochs", epochs);
    int seeds = flags.count("seeds");
    int trainSize = flags.count("train-size");
    int valSize = flags.count("val-size");
    int batch = flags.count("batch");
    int evalEvery = flags.count("eval-every");
    List<String> datasets = flags.list("datasets");
    Path mnistDir = Path.of(flags.text("mnist-dir"));
    Path out = Path.of(flags.text("out"));
    String recipeSpec = flags.text("recipe");
    String command = BenchSupport.commandLine(B6TimeToAccuracy.class, args);
    String started = Instant.now().toString();
    String header =
        "B6 "
            + started
            + ", "
            + BenchSupport.machine()
            + ", PyTorch threads "
            + System.getProperty("ai.djl.pytorch.num_threads", "default")
            + ", load average at start "
            + B5AlgorithmAccuracy.loadAverage();
    System.out.println(header);
    Files.createDirectories(out);
    Map<String, Object> all = new LinkedHashMap<>();
    all.put("started", started);
    all.put("machine", header);
    all.put("command", command);
    all.put("recipe", recipeSpec);
    List<TimeToAccuracyPage.Panel> panels = new ArrayList<>();
    List<String> tables = new ArrayList<>();
    if (!flags.has("no-warmup")) {
      warmUp(datasets.get(0), mnistDir, variants, batch, epochs, recipeEpochs);
    }
    for (String dataset : datasets) {
      RandomAccessDataset[] data =
          B5AlgorithmAccuracy.open(dataset, mnistDir, trainSize, valSize, batch);
      Shape image = new Shape(dataset.equals("mnist") ? 1 : 3, SIDE, SIDE);
      List<Run> runs = new ArrayList<>();
      int order = 0;
      for (int seed = 1; seed <= seeds; seed++) {
        // Interleaved: baseline, recipe, recipe, baseline, ... (the order turns with each seed),
        // so that a slow or quiet stretch of the machine falls on both.
        List<Variant> sequence = new ArrayList<>(variants);
        if (seed % 2 == 0) {
          java.util.Collections.reverse(sequence);
        }
        for (Variant v : sequence) {
          int budget = v.entries().isEmpty() ? epochs : recipeEpochs;
          Run r = run(dataset, v, data, image, batch, budget, evalEvery, seed, order++);
          runs.add(r);
          Checkpoint last = r.last();
          System.out.println(
              String.format(
                  Locale.ROOT,
                  "run %-9s seed %d %-40s acc %.4f (as is %.4f) train %6.1f s cpu %6.1f s,"
                      + " evaluation %5.1f s (load %s)",
                  dataset,
                  seed,
                  v.name(),
                  last.accuracy(),
                  last.evalAccuracy(),
                  last.wallSeconds(),
                  last.cpuSeconds(),
                  r.evaluationWallSeconds(),
                  r.load()));
        }
      }
      String table =
          table(dataset, runs, variants, epochs, recipeEpochs, seeds, trainSize, valSize, batch);
      System.out.print(table);
      tables.add(table);
      all.put(dataset, runs);
      panels.add(panel(dataset, runs, variants));
    }
    System.out.println("\ncommand: " + command);
    System.out.println("ended " + Instant.now() + ", load " + B5AlgorithmAccuracy.loadAverage());
    Files.writeString(
        out.resolve("b6-runs.json"),
        new GsonBuilder()
            .setPrettyPrinting()
            .serializeSpecialFloatingPointValues()
            .create()
            .toJson(all),
        StandardCharsets.UTF_8);
    Path page =
        TimeToAccuracyPage.builder("B6 time to accuracy: baseline and recipe")
            .addFact("recipe", recipeSpec)
            .addFact("machine", header)
            .addFact("command", command)
            .addFact("ended", Instant.now().toString())
            .build()
            .write(out, panels, tables);
    System.out.println("page: " + page.toAbsolutePath());
  }

  static Run run(
      String dataset,
      Variant v,
      RandomAccessDataset[] data,
      Shape image,
      int batch,
      int epochs,
      int evalEvery,
      int seed,
      int order)
      throws IOException, TranslateException {
    Engine.getInstance().setRandomSeed(seed);
    SurgeryListener listener = v.listener(epochs);
    try (Model model = Model.newInstance("b6")) {
      model.setBlock(BenchSupport.resNet20(image, CLASSES).build());
      DefaultTrainingConfig config = BenchSupport.sgdConfig().addTrainingListeners(listener);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(batch).addAll(image));
        Clock clock = new Clock();
        clock.start();
        listener.onInitialized(trainer);
        List<Checkpoint> checkpoints = new ArrayList<>();
        List<SurgeryMark> marks = new ArrayList<>();
        int seenApplications = markSurgeries(listener, marks, clock, 0);
        int done = 0;
        double lossSum = 0;
        int lossCount = 0;
        double evaluationWall = 0;
        // DJL's batch sampler keeps the last, smaller batch.
        int perEpoch = (int) ((data[0].size() + batch - 1) / batch);
        for (int epoch = 0; epoch < epochs; epoch++) {
          int inEpoch = 0;
          // The epoch's shuffle, and every batch's draws, come from a seed of the training position
          // alone: whatever an evaluation drew (how many ran) cannot reach the training.
          reseed(seed, -1 - epoch);
          for (Batch b : trainer.iterateDataset(data[0])) {
            try (b) {
              reseed(seed, done);
              lossSum += trainBatch(trainer, b);
              lossCount++;
              trainer.step();
            }
            done++;
            inEpoch++;
            if (inEpoch % evalEvery == 0 || inEpoch == perEpoch) {
              clock.stop();
              long evalStart = System.nanoTime();
              checkpoints.add(
                  checkpoint(
                      trainer,
                      data,
                      done,
                      epoch + (double) inEpoch / perEpoch,
                      clock,
                      lossSum / Math.max(1, lossCount)));
              lossSum = 0;
              lossCount = 0;
              evaluationWall += (System.nanoTime() - evalStart) / 1e9;
              clock.start();
            }
          }
          if (inEpoch != perEpoch) {
            throw new IllegalStateException(
                "expected " + perEpoch + " batches per epoch, got " + inEpoch);
          }
          trainer.notifyListeners(l -> l.onEpoch(trainer));
          seenApplications = markSurgeries(listener, marks, clock, seenApplications);
        }
        clock.stop();
        for (SurgeryOutcome a : listener.getOutcomes()) {
          if (a.status() != SurgeryOutcome.Status.APPLIED) {
            throw new IllegalStateException(v.name() + " failed: " + a.error());
          }
        }
        return new Run(
            dataset,
            v.name(),
            seed,
            order,
            checkpoints,
            marks,
            evaluationWall,
            B5AlgorithmAccuracy.loadAverage());
      }
    }
  }

  /**
   * Seeds the engine's generators (PyTorch's and DJL's {@code RandomUtils}, which shuffles) from
   * the run's seed and a training position (a batch count, or {@code -1 - epoch} for an epoch's
   * shuffle). DJL cannot save and restore PyTorch's generator, so training draws from these seeds
   * instead of from whatever state the evaluations left.
   */
  static void reseed(int seed, int position) {
    Engine.getInstance().setRandomSeed(seed * 1_000_003 + position);
  }

  /**
   * Trains every variant once, untimed, on 4 batches per epoch, before the timed runs: otherwise
   * the first timed run (the baseline's) pays the JVM's and PyTorch's warm-up, and identical work
   * (a recipe that changes nothing) measured faster than the baseline (0.77 of its CPU time).
   */
  private static void warmUp(
      String dataset,
      Path mnistDir,
      List<Variant> variants,
      int batch,
      int epochs,
      int recipeEpochs)
      throws IOException, TranslateException {
    RandomAccessDataset[] data =
        B5AlgorithmAccuracy.open(dataset, mnistDir, 4 * batch, batch, batch);
    Shape image = new Shape(dataset.equals("mnist") ? 1 : 3, SIDE, SIDE);
    long start = System.nanoTime();
    for (Variant v : variants) {
      int budget = v.entries().isEmpty() ? epochs : recipeEpochs;
      run(dataset, v, data, image, batch, budget, Integer.MAX_VALUE, 1, -1);
    }
    System.out.println(
        BenchSupport.f(
            "warm-up (not counted): every variant on 4 batches per epoch, %.1f s",
            (System.nanoTime() - start) / 1e9));
  }

  /** Records the surgeries applied since the last call, at the clock's current reading. */
  private static int markSurgeries(
      SurgeryListener listener, List<SurgeryMark> marks, Clock clock, int seen) {
    List<SurgeryOutcome> applications = listener.getOutcomes();
    for (int i = seen; i < applications.size(); i++) {
      SurgeryOutcome a = applications.get(i);
      if (a.status() == SurgeryOutcome.Status.APPLIED) {
        marks.add(
            new SurgeryMark(a.algorithm(), a.epoch(), clock.wallSeconds(), clock.cpuSeconds()));
      }
    }
    return applications.size();
  }

  /**
   * One training step's forward and backward, as {@code EasyTrain.trainBatch} does on one device
   * (the listeners see the batch), returning the loss.
   */
  private static double trainBatch(Trainer trainer, Batch batch) {
    BatchData batchData =
        new BatchData(batch, new ConcurrentHashMap<>(), new ConcurrentHashMap<>());
    double loss;
    try (GradientCollector collector = trainer.newGradientCollector()) {
      NDList data = batch.getData();
      NDList labels = batch.getLabels();
      NDList preds = trainer.forward(data, labels);
      NDArray lossValue = trainer.getLoss().evaluate(labels, preds);
      collector.backward(lossValue);
      loss = lossValue.getFloat();
      batchData.getLabels().put(labels.get(0).getDevice(), labels);
      batchData.getPredictions().put(preds.get(0).getDevice(), preds);
    }
    trainer.notifyListeners(listener -> listener.onTrainingBatch(trainer, batchData));
    return loss;
  }

  /**
   * Measures both accuracies, then puts the running statistics back. Training then reseeds the
   * random generators from its own position ({@link #reseed}), so it goes on as if nothing had been
   * measured, however many evaluations ran.
   */
  private static Checkpoint checkpoint(
      Trainer trainer,
      RandomAccessDataset[] data,
      int batches,
      double epochs,
      Clock clock,
      double trainLoss)
      throws IOException, TranslateException {
    double asIs = B5AlgorithmAccuracy.accuracy(trainer, data[1], false);
    List<Pair<NDArray, NDArray>> saved = new ArrayList<>();
    for (Pair<String, Parameter> p : trainer.getModel().getBlock().getParameters()) {
      Parameter.Type type = p.getValue().getType();
      if ((type == Parameter.Type.RUNNING_MEAN || type == Parameter.Type.RUNNING_VAR)
          && p.getValue().isInitialized()) {
        NDArray live = p.getValue().getArray();
        saved.add(new Pair<>(live, live.duplicate()));
      }
    }
    Clock pass = new Clock();
    pass.start();
    for (Batch b : trainer.iterateDataset(data[2])) {
      try (b) {
        trainer.forward(b.getData()).close();
      }
    }
    pass.stop();
    double reestimated = B5AlgorithmAccuracy.accuracy(trainer, data[1], false);
    for (Pair<NDArray, NDArray> s : saved) {
      s.getKey().set(s.getValue().toByteBuffer());
      s.getValue().close();
    }
    return new Checkpoint(
        batches,
        epochs,
        clock.wallSeconds(),
        clock.cpuSeconds(),
        asIs,
        reestimated,
        pass.wallSeconds(),
        pass.cpuSeconds(),
        trainLoss);
  }

  /** A stopwatch for wall time and the current thread's CPU time. */
  static final class Clock {
    private long wall;
    private long cpu;
    private long wallStart = -1;
    private long cpuStart;

    void start() {
      wallStart = System.nanoTime();
      cpuStart = BenchSupport.threadCpuNanos();
    }

    void stop() {
      if (wallStart >= 0) {
        wall += System.nanoTime() - wallStart;
        cpu += BenchSupport.threadCpuNanos() - cpuStart;
        wallStart = -1;
      }
    }

    double wallSeconds() {
      long running = wallStart >= 0 ? System.nanoTime() - wallStart : 0;
      return (wall + running) / 1e9;
    }

    double cpuSeconds() {
      long running = wallStart >= 0 ? BenchSupport.threadCpuNanos() - cpuStart : 0;
      return (cpu + running) / 1e9;
    }
  }

  /** The target: the baseline's final re-estimated accuracy, mean over seeds. */
  static double target(List<Run> runs, boolean reestimated) {
    return BenchSupport.mean(
        runs.stream()
            .filter(r -> r.variant().equals("baseline"))
            .map(r -> reestimated ? r.last().accuracy() : r.last().evalAccuracy())
            .toList());
  }

  /** The table of one dataset's runs, titled with the run's settings. */
  static String table(
      String dataset,
      List<Run> runs,
      List<Variant> variants,
      int epochs,
      int recipeEpochs,
      int seeds,
      int trainSize,
      int valSize,
      int batch) {
    double target = target(runs, true);
    double targetAsIs = target(runs, false);
    List<Run> base = runs.stream().filter(r -> r.variant().equals("baseline")).toList();
    // The baseline's time: what it took to produce the target's accuracy (its whole budget, and
    // one re-estimation pass to deploy it).
    double baseCpu = BenchSupport.mean(base.stream().map(r -> budgetCpu(r)).toList());
    double baseWall = BenchSupport.mean(base.stream().map(r -> budgetWall(r)).toList());
    // The spread of identical work: the baseline's budget CPU over its seeds (same batches).
    double noise = BenchSupport.sd(base.stream().map(r -> budgetCpu(r)).toList()) / baseCpu;
    List<List<String>> rows = new ArrayList<>();
    for (Variant v : variants) {
      List<Run> mine = runs.stream().filter(r -> r.variant().equals(v.name())).toList();
      long reached = mine.stream().filter(r -> r.reaching(target, true) != null).count();
      List<Double> cpu = mine.stream().map(r -> reachCpu(r, target)).toList();
      List<Double> wall = mine.stream().map(r -> reachWall(r, target)).toList();
      boolean all = reached == mine.size();
      double cpuRatio = all ? BenchSupport.mean(cpu) / baseCpu : Double.NaN;
      List<Double> cpuRatios = cpu.stream().map(c -> c / baseCpu).toList();
      List<Double> epochsToTarget = new ArrayList<>();
      for (Run r : mine) {
        Checkpoint c = r.reaching(target, true);
        epochsToTarget.add(c == null ? Double.NaN : c.epochs());
      }
      rows.add(
          List.of(
              v.name(),
              reached + "/" + mine.size(),
              perRun(epochsToTarget, "%.2f"),
              perRun(cpu, "%.1f"),
              all ? BenchSupport.meanSd(cpu, "%.1f") : "not reached",
              all ? ratioWithSpread(cpuRatio, cpuRatios) : "–",
              all ? BenchSupport.meanSd(wall, "%.1f") : "not reached",
              all ? BenchSupport.f("%.2f", BenchSupport.mean(wall) / baseWall) : "–",
              BenchSupport.meanSd(mine.stream().map(r -> r.last().accuracy()).toList(), "%.3f"),
              BenchSupport.meanSd(mine.stream().map(r -> r.last().evalAccuracy()).toList(), "%.3f"),
              BenchSupport.meanSd(mine.stream().map(B6TimeToAccuracy::budgetCpu).toList(), "%.1f"),
              BenchSupport.f(
                  "%.2f",
                  BenchSupport.mean(mine.stream().map(B6TimeToAccuracy::budgetCpu).toList())
                      / baseCpu),
              v.entries().isEmpty() ? "–" : verdict(all, cpuRatio, noise)));
    }
    return BenchSupport.formatTable(
        "B6 time to accuracy on "
            + dataset
            + ": ResNetV1-20, SGD lr 0.05 momentum 0.9, batch "
            + batch
            + ", baseline "
            + epochs
            + " epochs, recipe budget "
            + recipeEpochs
            + " epochs, "
            + trainSize
            + " training / "
            + valSize
            + " validation images, "
            + seeds
            + " seeds (mean ± sd).\nTarget: the baseline's final accuracy after BN re-estimation,"
            + " mean over seeds = "
            + BenchSupport.f("%.4f", target)
            + " (as is, without re-estimation: "
            + BenchSupport.f("%.4f", targetAsIs)
            + ").\nTime to target: training clock at the first evaluation at or above it"
            + " (evaluation off the clock) + that evaluation's re-estimation pass; 'vs baseline'"
            + " divides by the baseline's whole budget + one re-estimation pass ("
            + BenchSupport.f("%.1f", baseCpu)
            + " CPU s, "
            + BenchSupport.f("%.1f", baseWall)
            + " wall s); 'CPU vs baseline' is the mean ratio ± the sd of the per-seed ratios."
            + "\nVerdict: yes when the CPU ratio is at most 0.80 and below 1 by more than twice the"
            + " spread of identical work (the sd of the baseline's budget CPU over its seeds,"
            + " relative: "
            + (Double.isNaN(noise) ? "unknown with 1 seed" : BenchSupport.f("%.3f", noise))
            + ").",
        List.of(
            "variant",
            "reached",
            "epochs to target per seed",
            "CPU s to target per seed",
            "CPU s to target",
            "CPU vs baseline",
            "wall s to target",
            "wall vs baseline",
            "final acc (BN re-est.)",
            "final acc (as is)",
            "budget CPU s",
            "budget CPU vs baseline",
            "<= 0.80 and beyond 2 sd of identical work"),
        rows);
  }

  /**
   * The verdict: "yes" when every seed reached the target, the mean CPU ratio is at most 0.80, and
   * it is below 1 by more than twice the relative spread of identical work ({@code noise}, the
   * baseline's own seeds); "n/a" when that spread is unknown (one seed).
   */
  static String verdict(boolean allReached, double cpuRatio, double noise) {
    if (!allReached || !(cpuRatio <= 0.8)) {
      return "no";
    }
    if (Double.isNaN(noise)) {
      return "n/a (1 seed: no spread)";
    }
    return cpuRatio < 1 - 2 * noise ? "yes" : "no (within the spread)";
  }

  private static String ratioWithSpread(double mean, List<Double> ratios) {
    return ratios.size() < 2
        ? BenchSupport.f("%.2f", mean)
        : BenchSupport.f("%.2f", mean) + " ± " + BenchSupport.f("%.2f", BenchSupport.sd(ratios));
  }

  private static double budgetCpu(Run r) {
    return r.last().cpuSeconds() + r.last().reestimateCpuSeconds();
  }

  private static double budgetWall(Run r) {
    return r.last().wallSeconds() + r.last().reestimateWallSeconds();
  }

  private static String perRun(List<Double> values, String format) {
    StringBuilder sb = new StringBuilder();
    for (double v : values) {
      sb.append(sb.length() == 0 ? "" : " ")
          .append(Double.isNaN(v) ? "–" : BenchSupport.f(format, v));
    }
    return sb.toString();
  }

  private static double reachCpu(Run r, double target) {
    Checkpoint c = r.reaching(target, true);
    return c == null ? Double.NaN : c.cpuSeconds() + c.reestimateCpuSeconds();
  }

  private static double reachWall(Run r, double target) {
    Checkpoint c = r.reaching(target, true);
    return c == null ? Double.NaN : c.wallSeconds() + c.reestimateWallSeconds();
  }

  private static TimeToAccuracyPage.Panel panel(
      String dataset, List<Run> runs, List<Variant> variants) {
    double target = target(runs, true);
    List<Curve> curves = new ArrayList<>();
    List<Marker> markers = new ArrayList<>();
    for (Run r : runs) {
      List<Point> points = new ArrayList<>();
      for (Checkpoint c : r.checkpoints()) {
        points.add(new Point(c.cpuSeconds(), c.wallSeconds(), c.epochs(), c.accuracy()));
      }
      curves.add(new Curve(r.variant(), r.variant() + " seed " + r.seed(), points));
      for (SurgeryMark m : r.surgeries()) {
        markers.add(
            new Marker(
                r.variant(),
                m.algorithm() + " @" + m.epoch(),
                m.cpuSeconds(),
                m.wallSeconds(),
                m.epoch()));
      }
    }
    return new TimeToAccuracyPage.Panel(
        dataset, target, variants.stream().map(Variant::name).toList(), curves, markers);
  }
}
