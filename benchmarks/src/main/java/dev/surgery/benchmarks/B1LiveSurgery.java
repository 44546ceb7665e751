package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.ResNetV1;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.WeightCopy;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.layers.AdoptingConv2d;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * B1: live surgery against what a DJL user does today. An initialized ResNet-50 (DJL's {@code
 * ResNetV1}, 50 layers, 3 x 64 x 64 input, 10 classes) trains two Adam steps; then BlurPool (every
 * strided convolution and the max pool, {@code min_channels 0}) is applied
 *
 * <ul>
 *   <li><b>live</b>: {@code BlurPool.apply} with the live trainer (parameter store and Adam state
 *       follow, training goes on), and
 *   <li><b>rebuild</b>: save the parameters, build the new architecture (ResNet-50 with BlurPool
 *       applied to the fresh block), load the parameters, create a new Trainer and initialize it
 *       (Adam state is lost).
 * </ul>
 *
 * Both run on fresh models in the same process, interleaved; the table gives medians and the ratio.
 * Run: {@code mvn -B -q -pl benchmarks exec:exec -Dbench.main=dev.surgery.benchmarks.B1LiveSurgery
 * -Dbench.args="--runs 7"}.
 */
public final class B1LiveSurgery {

  private static final Shape IMAGE = new Shape(3, 64, 64);
  private static final int CLASSES = 10;
  private static final int BATCH = 4;

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of("B1LiveSurgery", "B1: live BlurPool surgery against a rebuild, on ResNet-50")
          .count("runs", 7, 1, "measured rounds");

  /**
   * The strided {@code Conv2d}s (exactly that class): what the weights-copied run replaces. A
   * block-only matcher, as a user selecting by a setting would write it: the surgery then builds no
   * paths and passes the other leaves by.
   */
  static final BlockMatcher STRIDED =
      BlockMatcher.byBlock(
          block ->
              block.getClass() == Conv2d.class
                  && (((Conv2d) block).getStride().get(0) > 1
                      || ((Conv2d) block).getStride().get(1) > 1));

  private B1LiveSurgery() {}

  /**
   * Runs the benchmark.
   *
   * @param args {@code --runs N} (default 7)
   * @throws Exception if DJL fails
   */
  public static void main(String[] args) throws Exception {
    int runs = FLAGS.orExit(args, v -> v.count("runs"));
    Engine.getInstance().setRandomSeed(1);
    List<Double> live = new ArrayList<>();
    List<Double> copying = new ArrayList<>();
    List<Double> floor = new ArrayList<>();
    List<Double> copyingCpu = new ArrayList<>();
    List<Double> floorCpu = new ArrayList<>();
    int copied = 0;
    List<Double> rebuild = new ArrayList<>();
    List<String> rebuildParts = new ArrayList<>();
    int replaced = 0;
    // One warm-up round of each (class loading, JIT), not counted.
    for (int r = -1; r < runs; r++) {
      double[] l = liveRun();
      replaced = (int) l[1];
      // The floor goes first in even runs and last in odd ones (the warm-up is odd).
      double[] c = copyingRun((r & 1) == 0);
      copied = (int) c[1];
      double[] b = rebuildRun();
      if (r >= 0) {
        live.add(l[0]);
        copying.add(c[0]);
        floor.add(c[2]);
        copyingCpu.add(c[3]);
        floorCpu.add(c[4]);
        rebuild.add(b[0]);
        rebuildParts.add(
            BenchSupport.f("%.0f", b[1])
                + "/"
                + BenchSupport.f("%.0f", b[2])
                + "/"
                + BenchSupport.f("%.0f", b[3])
                + "/"
                + BenchSupport.f("%.0f", b[4]));
      }
    }
    double liveMs = BenchSupport.median(live);
    double rebuildMs = BenchSupport.median(rebuild);
    double copyMs = BenchSupport.median(copying);
    double floorMs = BenchSupport.median(floor);
    List<List<String>> rows = new ArrayList<>();
    rows.add(timedRow("live BlurPool (trainer + Adam state kept)", live, replaced));
    rows.add(
        timedRow("every strided Conv2d -> new Conv2d, weights copied (live)", copying, copied));
    rows.add(timedRow("floor: native duplicate of exactly those parameter arrays", floor, copied));
    rows.add(timedRow("weights copied (live), thread CPU", copyingCpu, copied));
    rows.add(timedRow("floor, thread CPU", floorCpu, copied));
    rows.add(timedRow("save + build + load + new Trainer + initialize", rebuild, replaced));
    rows.add(List.of("ratio rebuild / live", BenchSupport.f("%.1fx", rebuildMs / liveMs), "", ""));
    rows.add(
        List.of("ratio weights copied / floor", BenchSupport.f("%.2fx", copyMs / floorMs), "", ""));
    rows.add(
        List.of(
            "ratio weights copied / floor, thread CPU",
            BenchSupport.f(
                "%.2fx", BenchSupport.median(copyingCpu) / BenchSupport.median(floorCpu)),
            "",
            ""));
    rows.add(
        List.of(
            "ratio rebuild / weights copied", BenchSupport.f("%.1fx", rebuildMs / copyMs), "", ""));
    BenchSupport.printTable(
        "B1 live surgery vs rebuild: ResNet-50 (ResNetV1 50 layers, input "
            + IMAGE
            + ", batch "
            + BATCH
            + ", Adam after 2 steps), "
            + runs
            + " runs, "
            + BenchSupport.machine(),
        List.of("variant", "median ms", "min..max ms", "blocks replaced"),
        rows);
    System.out.println(
        "rebuild parts per run (save/build/load/trainer+initialize ms): " + rebuildParts);
  }

  private static Block resnet50() {
    return ResNetV1.builder().setImageShape(IMAGE).setNumLayers(50).setOutSize(CLASSES).build();
  }

  private static BlurPool blurPool() {
    return BlurPool.builder().optMinChannels(0).build();
  }

  private static DefaultTrainingConfig config() {
    return new DefaultTrainingConfig(BenchSupport.loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build());
  }

  private static Shape inputShape() {
    return new Shape(BATCH).addAll(IMAGE);
  }

  /**
   * Puts a new ResNet-50 in the model and trains it two Adam steps, so that the optimizer has state
   * for the surgery to keep; the caller closes the trainer.
   */
  static Trainer trainedTwoSteps(Model model) {
    model.setBlock(resnet50());
    Trainer trainer = model.newTrainer(config());
    trainer.initialize(inputShape());
    BenchSupport.trainStep(trainer, inputShape(), CLASSES);
    BenchSupport.trainStep(trainer, inputShape(), CLASSES);
    return trainer;
  }

  /** A trained-for-two-steps model; returns {time ms, blocks replaced}. */
  private static double[] liveRun() {
    Model model = Model.newInstance("b1-live");
    Trainer trainer = null;
    try {
      trainer = trainedTwoSteps(model);
      System.gc();
      long start = System.nanoTime();
      SurgeryChanges report =
          blurPool().apply(SurgeryContext.live(model.getBlock(), trainer, 1, 0));
      double ms = BenchSupport.millisSince(start);
      // Training goes on with the new blocks (not timed).
      BenchSupport.trainStep(trainer, inputShape(), CLASSES);
      return new double[] {ms, report.changes().size()};
    } finally {
      BenchSupport.close(model, trainer);
    }
  }

  /**
   * Issue 3's target: every strided Conv2d replaced by a new Conv2d of the same configuration whose
   * weights are copied, with the live trainer, and its floor: a native duplicate of exactly the
   * parameter arrays it replaces (before the surgery, or of the replacement's arrays of the same
   * shapes after it). Both are timed alike, wall clock and thread CPU, each after a {@code
   * System.gc()}, the floor's duplicates freed untimed; which goes first alternates between runs,
   * since the second one can reuse memory the first freed. Returns {surgery ms, blocks replaced,
   * floor ms, surgery CPU ms, floor CPU ms}.
   */
  private static double[] copyingRun(boolean floorFirst) {
    Model model = Model.newInstance("b1-copy");
    Trainer trainer = null;
    try {
      trainer = trainedTwoSteps(model);
      LinkedHashMap<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(STRIDED, (block, index) -> copyOf((Conv2d) block));
      double[] floor = floorFirst ? floor(model.getBlock(), STRIDED) : null;
      System.gc();
      long cpuStart = BenchSupport.threadCpuNanos();
      long start = System.nanoTime();
      Map<Block, Block> done =
          ModuleSurgery.replaceModules(
              model.getBlock(),
              policies,
              SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
      double ms = BenchSupport.millisSince(start);
      double cpuMs = BenchSupport.cpuMillisSince(cpuStart);
      if (!floorFirst) {
        floor = floor(model.getBlock(), STRIDED);
      }
      BenchSupport.trainStep(trainer, inputShape(), CLASSES);
      return new double[] {ms, done.size(), floor[0], cpuMs, floor[1]};
    } finally {
      BenchSupport.close(model, trainer);
    }
  }

  /**
   * The floor: natively duplicates the parameter arrays of the blocks the matcher selects; returns
   * {wall ms, thread CPU ms}.
   */
  private static double[] floor(Block root, BlockMatcher strided) {
    List<NDArray> toCopy = new ArrayList<>();
    collect(root, strided, toCopy);
    System.gc();
    long cpuStart = BenchSupport.threadCpuNanos();
    long start = System.nanoTime();
    List<NDArray> duplicates = new ArrayList<>(toCopy.size());
    for (NDArray array : toCopy) {
      duplicates.add(array.duplicate());
    }
    double ms = BenchSupport.millisSince(start);
    double cpuMs = BenchSupport.cpuMillisSince(cpuStart);
    duplicates.forEach(NDArray::close);
    return new double[] {ms, cpuMs};
  }

  /** A new Conv2d with the same configuration holding native copies of the weights. */
  static Block copyOf(Conv2d conv) {
    Conv2d copy = AdoptingConv2d.settingsOf(conv).build();
    return WeightCopy.into(copy, conv);
  }

  static void collect(Block block, BlockMatcher matcher, List<NDArray> arrays) {
    for (Block child : block.getChildren().values()) {
      if (matcher.matches(child, "")) {
        for (Parameter p : child.getParameters().values()) {
          arrays.add(p.getArray());
        }
      } else {
        collect(child, matcher, arrays);
      }
    }
  }

  /** Returns {total ms, save ms, build ms, load ms, trainer ms}. */
  private static double[] rebuildRun() throws IOException, ai.djl.MalformedModelException {
    Path dir = Files.createTempDirectory("b1-rebuild");
    Model model = Model.newInstance("b1");
    Trainer trainer = null;
    Model rebuilt = null;
    Trainer newTrainer = null;
    try {
      trainer = trainedTwoSteps(model);
      System.gc();
      long start = System.nanoTime();
      model.save(dir, "b1");
      double save = BenchSupport.millisSince(start);
      long t = System.nanoTime();
      rebuilt = Model.newInstance("b1");
      Block block = resnet50();
      // The user's new architecture: the same network with BlurPool's blocks.
      blurPool().apply(SurgeryContext.of(block));
      rebuilt.setBlock(block);
      double build = BenchSupport.millisSince(t);
      t = System.nanoTime();
      rebuilt.load(dir, "b1");
      double load = BenchSupport.millisSince(t);
      t = System.nanoTime();
      newTrainer = rebuilt.newTrainer(config());
      newTrainer.initialize(inputShape());
      double init = BenchSupport.millisSince(t);
      double total = BenchSupport.millisSince(start);
      BenchSupport.trainStep(newTrainer, inputShape(), CLASSES);
      return new double[] {total, save, build, load, init};
    } finally {
      BenchSupport.close(rebuilt, newTrainer);
      BenchSupport.close(model, trainer);
      BenchSupport.deleteTree(dir);
    }
  }

  /** A table row: the variant, its median and range in ms, and the blocks it replaced. */
  private static List<String> timedRow(String variant, List<Double> millis, int blocks) {
    return List.of(
        variant,
        BenchSupport.f("%.1f", BenchSupport.median(millis)),
        BenchSupport.range(millis, "%.1f"),
        String.valueOf(blocks));
  }
}
