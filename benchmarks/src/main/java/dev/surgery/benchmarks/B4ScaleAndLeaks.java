package dev.surgery.benchmarks;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.ParameterList;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.layers.AdoptingConv2d;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.BlurMaxPool2d;
import dev.surgery.samples.models.SmallCnn;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * B4: scale and leaks.
 *
 * <ol>
 *   <li>Surgery time against block count: generated trees of 1,000, 10,000, 50,000 and 200,000
 *       blocks (nested {@code SequentialBlock}s of 10, leaves alternately an uninitialized {@code
 *       Linear} and an identity lambda). Count ({@code countModuleInstances}), traversal (a matcher
 *       that selects every block and a function that returns null: every block visited and offered)
 *       and replacement (every {@code Linear} replaced by a new one), the engine's part alone
 *       (replacements built beforehand) and the same job done by {@link MinimalLeafSurgery}, the
 *       least work a surgery with the engine's guarantees does on these trees. Medians; the time
 *       per block shows whether the cost is linear.
 *   <li>1,000 live apply/revert cycles on a small CNN with Adam: BlurPool applied with the live
 *       trainer, one training step, reverted (each {@code BlurConv2d} to a new {@code Conv2d} with
 *       copied weights, each {@code BlurMaxPool2d} to a max pool; the replaced blocks' own
 *       parameters closed by the caller, who owns them), one step. Open NDArrays (the model
 *       manager's arrays, optimizer state, parameter-store mirrors) and process RSS are sampled
 *       along the way.
 * </ol>
 *
 * Run: {@code mvn -B -q -pl benchmarks exec:exec
 * -Dbench.main=dev.surgery.benchmarks.B4ScaleAndLeaks -Dbench.args="--runs 6 --cycles 1000"}.
 */
public final class B4ScaleAndLeaks {

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of("B4ScaleAndLeaks", "B4: surgery on large trees, and a soak for leaks")
          .count(
              "runs",
              6,
              1,
              "measured rounds at 200k blocks, up to 20 times as many for smaller trees (the engine"
                  + " and the floor take turns going first, so at least 2 with the scale part)")
          .count("cycles", 1000, 1, "apply/revert cycles of the leak soak")
          .choice("part", "all", "which part", "all", "leaks", "scale")
          .choice(
              "mode",
              "full",
              "full: apply, step, revert, step; surgery: apply and revert only; steps: two"
                  + " training steps only",
              "full",
              "surgery",
              "steps");

  private B4ScaleAndLeaks() {}

  /** What the command line asks for. */
  record Options(int runs, int cycles, String part, String mode) {}

  /** Reads the flags, refusing too few runs for the scale part before any work starts. */
  static Options options(BenchFlags.Values v) {
    Options o = new Options(v.count("runs"), v.count("cycles"), v.text("part"), v.text("mode"));
    if (!o.part().equals("leaks") && o.runs() < 2) {
      throw new IllegalArgumentException(
          "--runs must be at least 2: the engine and the floor take turns going first, got "
              + o.runs());
    }
    return o;
  }

  /**
   * Runs the benchmark.
   *
   * @param args {@code --runs N} measured rounds at 200k blocks, up to 20 times as many for smaller
   *     trees (default 6; the engine and the floor take turns going first, so at least 2), {@code
   *     --cycles N} (default 1000), {@code --part leaks|scale|all} (default all), {@code --mode
   *     full|surgery|steps} (default full: apply, step, revert, step; surgery: apply and revert
   *     only; steps: two training steps only, the control for what training alone does to RSS)
   * @throws Exception if DJL fails
   */
  public static void main(String[] args) throws Exception {
    Options o = FLAGS.orExit(args, B4ScaleAndLeaks::options);
    int runs = o.runs();
    int cycles = o.cycles();
    String which = o.part();
    String mode = o.mode();
    // Leaks first: the large generated trees of the scale part would inflate the heap, and RSS.
    if (!which.equals("scale")) {
      leaks(cycles, mode);
    }
    if (!which.equals("leaks")) {
      scale(runs);
    }
  }

  // ------------------------------------------------------------------ scale

  private static void scale(int runs) {
    if (runs < 2) {
      throw new IllegalArgumentException(
          "--runs must be at least 2: the engine and the floor take turns going first, got "
              + runs);
    }
    // Thread CPU time, not wall time: on a shared machine other processes change it little.
    String loadBefore = BenchSupport.loadAverage();
    List<List<String>> rows = new ArrayList<>();
    double firstPerBlock = 0;
    double firstEnginePerBlock = 0;
    for (int size : new int[] {1_000, 10_000, 50_000, 200_000}) {
      SequentialBlock root = tree(size);
      int rounds = roundsFor(size, runs);
      int blocks = countAll(root);
      List<Double> walk = new ArrayList<>();
      List<Double> count = new ArrayList<>();
      List<Double> traverse = new ArrayList<>();
      List<Double> replace = new ArrayList<>();
      // Per order: index 0 for the rounds where the engine went first, 1 where the floor did.
      List<List<Double>> engine = List.of(new ArrayList<>(), new ArrayList<>());
      List<List<Double>> floor = List.of(new ArrayList<>(), new ArrayList<>());
      int linears = 0;
      int replaced = 0;
      int replacedPrebuilt = 0;
      int replacedFloor = 0;
      for (int r = -2; r < rounds; r++) {
        // The reference: a plain breadth-first walk of the same tree with getChildren().
        long t = BenchSupport.threadCpuNanos();
        int walked = plainWalk(root);
        double w = BenchSupport.cpuMillisSince(t);
        if (walked != blocks) {
          throw new IllegalStateException(walked + " walked, " + blocks + " blocks");
        }
        t = BenchSupport.threadCpuNanos();
        linears = ModuleSurgery.countModuleInstances(root, Linear.class);
        double c = BenchSupport.cpuMillisSince(t);
        Map<BlockMatcher, ReplacementFunction> visitAll = new LinkedHashMap<>();
        visitAll.put((block, path) -> true, (block, index) -> null);
        t = BenchSupport.threadCpuNanos();
        ModuleSurgery.replaceModules(root, visitAll, SurgeryOptions.defaults());
        double v = BenchSupport.cpuMillisSince(t);
        Map<BlockMatcher, ReplacementFunction> newLinear = new LinkedHashMap<>();
        newLinear.put(
            BlockMatcher.ofClass(Linear.class),
            (block, index) -> Linear.builder().setUnits(4).build());
        t = BenchSupport.threadCpuNanos();
        replaced = ModuleSurgery.replaceModules(root, newLinear, SurgeryOptions.defaults()).size();
        double p = BenchSupport.cpuMillisSince(t);
        // The engine's part: the same surgery with replacements built beforehand (the user's
        // work of building 45 % of the tree anew is then outside the timed section). The floor:
        // the least work a two-phase leaf replacement with the same guarantees does on this tree
        // (MinimalLeafSurgery), with replacements built beforehand as well. Whichever runs first
        // meets leaves the function above has just scattered through the heap, so the two take
        // turns going first.
        java.util.ArrayDeque<Block> prebuilt = newLinears(linears);
        java.util.ArrayDeque<Block> prebuiltForFloor = newLinears(linears);
        boolean floorFirst = (r & 1) != 0;
        double[] floorRun = floorFirst ? timedFloor(root, prebuiltForFloor) : null;
        Map<BlockMatcher, ReplacementFunction> takePrebuilt = new LinkedHashMap<>();
        takePrebuilt.put(BlockMatcher.ofClass(Linear.class), (block, index) -> prebuilt.poll());
        t = BenchSupport.threadCpuNanos();
        replacedPrebuilt =
            ModuleSurgery.replaceModules(root, takePrebuilt, SurgeryOptions.defaults()).size();
        double e = BenchSupport.cpuMillisSince(t);
        if (!floorFirst) {
          floorRun = timedFloor(root, prebuiltForFloor);
        }
        double f = floorRun[0];
        replacedFloor = (int) floorRun[1];
        if (r >= 0) {
          walk.add(w);
          count.add(c);
          traverse.add(v);
          replace.add(p);
          engine.get(floorFirst ? 1 : 0).add(e);
          floor.get(floorFirst ? 1 : 0).add(f);
        }
      }
      double c = BenchSupport.median(count);
      double v = BenchSupport.median(traverse);
      double p = BenchSupport.median(replace);
      double e = orderBalanced(engine);
      double w = BenchSupport.median(walk);
      double m = orderBalanced(floor);
      double perBlock = 1000 * (c + p) / blocks;
      double enginePerBlock = 1000 * (c + e) / blocks;
      if (firstPerBlock == 0) {
        firstPerBlock = perBlock;
        firstEnginePerBlock = enginePerBlock;
      }
      rows.add(
          List.of(
              String.format(Locale.ROOT, "%,d", blocks),
              BenchSupport.f("%.2f", w),
              BenchSupport.f("%.2f", c),
              BenchSupport.f("%.2f", v),
              String.format(Locale.ROOT, "%,d", replaced),
              BenchSupport.f("%.2f", p),
              BenchSupport.f("%.2f", e),
              BenchSupport.f("%.2f", perBlock),
              BenchSupport.f("%.2fx", perBlock / firstPerBlock),
              BenchSupport.f("%.2fx", enginePerBlock / firstEnginePerBlock),
              BenchSupport.f("%.2fx", (c + p) / w),
              BenchSupport.f("%.2fx", (c + e) / w),
              BenchSupport.f("%.2f", m),
              BenchSupport.f("%.2fx", (c + m) / w),
              BenchSupport.f("%.2fx", e / m)));
      if (linears != replaced || linears != replacedPrebuilt || linears != replacedFloor) {
        throw new IllegalStateException(
            linears
                + " Linear blocks but "
                + replaced
                + " / "
                + replacedPrebuilt
                + " / "
                + replacedFloor
                + " replaced");
      }
    }
    BenchSupport.printTable(
        "B4a surgery time vs block count (generated trees, uninitialized blocks), thread CPU ms,"
            + " medians of "
            + roundsFor(1_000, runs)
            + ", "
            + roundsFor(10_000, runs)
            + ", "
            + roundsFor(50_000, runs)
            + " and "
            + roundsFor(200_000, runs)
            + " rounds by size (engine and floor take turns going first; theirs the mean of the two"
            + " orders' medians), "
            + BenchSupport.machine()
            + ", load "
            + loadBefore
            + " -> "
            + BenchSupport.loadAverage(),
        List.of(
            "blocks",
            "plain walk ms",
            "count ms",
            "traversal ms",
            "replaced",
            "replace ms (new Linear per match)",
            "replace ms (prebuilt: engine only)",
            "count + replace us/block",
            "per block vs 1k",
            "per block vs 1k (engine)",
            "count + replace / walk",
            "count + replace / walk (engine)",
            "floor ms (MinimalLeafSurgery)",
            "count + floor / walk",
            "engine / floor"),
        rows);
    System.out.println(
        "Issue 15 goal 2: per block at 200k within 1.5x of 1k, count + replace within 3x of the"
            + " walk. Command (this table alone): "
            + BenchSupport.commandLine(
                B4ScaleAndLeaks.class, "--part", "scale", "--runs", String.valueOf(runs)));
  }

  /**
   * Measured rounds for a tree size: {@code runs} at 200k blocks, more for smaller trees (up to 20
   * times as many), so that each size's medians rest on about as much measured time. A 1k-block
   * walk takes well under a millisecond: six of them gave ratios that moved by a third between
   * JVMs.
   */
  static int roundsFor(int size, int runs) {
    return Math.max(runs, Math.min(20 * runs, runs * (200_000 / size)));
  }

  /**
   * The mean of the medians of the two orders: each order gives its own cluster of times, and the
   * median of them pooled would fall between the clusters.
   */
  private static double orderBalanced(List<List<Double>> byOrder) {
    return (BenchSupport.median(byOrder.get(0)) + BenchSupport.median(byOrder.get(1))) / 2;
  }

  /** Runs the floor with replacements taken in order; returns its thread CPU ms and count. */
  private static double[] timedFloor(Block root, java.util.ArrayDeque<Block> replacements) {
    long t = BenchSupport.threadCpuNanos();
    int replaced = MinimalLeafSurgery.replace(root, Linear.class, (b, i) -> replacements.poll());
    return new double[] {BenchSupport.cpuMillisSince(t), replaced};
  }

  /** New uninitialized {@code Linear}s like the tree's, to be taken as replacements in order. */
  static java.util.ArrayDeque<Block> newLinears(int count) {
    java.util.ArrayDeque<Block> blocks = new java.util.ArrayDeque<>(count);
    for (int i = 0; i < count; i++) {
      blocks.add(Linear.builder().setUnits(4).build());
    }
    return blocks;
  }

  /** Breadth-first over {@code getChildren()}, counting blocks: the floor for any traversal. */
  static int plainWalk(Block root) {
    java.util.ArrayDeque<Block> queue = new java.util.ArrayDeque<>();
    queue.add(root);
    int n = 0;
    while (!queue.isEmpty()) {
      for (Pair<String, Block> child : queue.poll().getChildren()) {
        queue.add(child.getValue());
        n++;
      }
    }
    return n;
  }

  /** A tree of about {@code size} blocks: nested sequential blocks of 10 children. */
  static SequentialBlock tree(int size) {
    List<Block> level = new ArrayList<>();
    int leaves = (int) Math.round(size * 0.9);
    for (int i = 0; i < leaves; i++) {
      level.add(i % 2 == 0 ? Linear.builder().setUnits(4).build() : Blocks.identityBlock());
    }
    while (level.size() > 10) {
      List<Block> next = new ArrayList<>();
      for (int i = 0; i < level.size(); i += 10) {
        SequentialBlock group = new SequentialBlock();
        for (Block b : level.subList(i, Math.min(level.size(), i + 10))) {
          group.add(b);
        }
        next.add(group);
      }
      level = next;
    }
    SequentialBlock root = new SequentialBlock();
    level.forEach(root::add);
    return root;
  }

  private static int countAll(Block block) {
    int n = 0;
    for (Pair<String, Block> child : block.getChildren()) {
      n += 1 + countAll(child.getValue());
    }
    return n;
  }

  // ------------------------------------------------------------------ leaks

  private static void leaks(int cycles, String mode) {
    Engine.getInstance().setRandomSeed(4);
    Shape input = new Shape(4, 3, 16, 16);
    List<List<String>> rows = new ArrayList<>();
    long firstArrays = -1;
    long firstRss = -1;
    long lastArrays = 0;
    long lastRss = 0;
    List<Double> rssFirstFifth = new ArrayList<>();
    List<Double> rssMiddle = new ArrayList<>();
    List<Double> rssLastFifth = new ArrayList<>();
    long start = System.nanoTime();
    try (Model model = Model.newInstance("b4-leaks")) {
      model.setBlock(SmallCnn.builder().setFilters(16, 16).setClasses(10).build());
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(BenchSupport.loss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build());
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(input);
        BenchSupport.trainStep(trainer, input, 10);
        int warmup = Math.max(1, cycles / 10);
        int every = Math.max(1, cycles / 5);
        int sampleEvery = Math.max(1, cycles / 50);
        for (int c = -warmup; c <= cycles; c++) {
          if (c >= 0 && c % sampleEvery == 0) {
            System.gc();
            (c < cycles / 5 ? rssFirstFifth : c >= cycles - cycles / 5 ? rssLastFifth : rssMiddle)
                .add((double) BenchSupport.rssKib());
          }
          if (c >= 0 && c % every == 0) {
            System.gc();
            long arrays = openArrays(model, trainer);
            long rss = BenchSupport.rssKib();
            long heap = Runtime.getRuntime().totalMemory() / 1024;
            if (firstArrays < 0) {
              firstArrays = arrays;
              firstRss = rss;
            }
            lastArrays = arrays;
            lastRss = rss;
            rows.add(
                List.of(
                    String.valueOf(c),
                    String.valueOf(arrays),
                    String.format(Locale.ROOT, "%,d", rss),
                    BenchSupport.f("%+.1f %%", 100.0 * (rss - firstRss) / firstRss),
                    String.format(Locale.ROOT, "%,d", heap),
                    String.format(Locale.ROOT, "%,d", rss - heap),
                    BenchSupport.f("%.0f", (System.nanoTime() - start) / 1e9)));
          }
          if (c == cycles) {
            break;
          }
          cycle(model, trainer, input, mode);
        }
      }
    }
    BenchSupport.printTable(
        "B4b "
            + cycles
            + " cycles of "
            + switch (mode) {
              case "surgery" -> "BlurPool on, BlurPool off (live, no step)";
              case "steps" -> "two training steps (control, no surgery)";
              default -> "BlurPool on, step, BlurPool off, step (live)";
            }
            + " on a small CNN"
            + " with Adam, after "
            + Math.max(1, cycles / 10)
            + " warm-up cycles, "
            + BenchSupport.machine(),
        List.of(
            "cycle",
            "open NDArrays",
            "RSS KiB",
            "RSS vs first",
            "Java heap committed KiB",
            "RSS - heap KiB",
            "elapsed s"),
        rows);
    System.out.println(
        "open NDArrays first/last: "
            + firstArrays
            + "/"
            + lastArrays
            + BenchSupport.f(
                ", RSS change first->last: %+.1f %%", 100.0 * (lastRss - firstRss) / firstRss));
    double first = BenchSupport.median(rssFirstFifth);
    double last = BenchSupport.median(rssLastFifth);
    System.out.println(
        "RSS sampled every "
            + Math.max(1, cycles / 50)
            + " cycles: median of the first fifth "
            + String.format(Locale.ROOT, "%,.0f", first)
            + " KiB (range "
            + BenchSupport.range(rssFirstFifth, "%.0f")
            + "), of the last fifth "
            + String.format(Locale.ROOT, "%,.0f", last)
            + " KiB (range "
            + BenchSupport.range(rssLastFifth, "%.0f")
            + "): "
            + BenchSupport.f("%+.1f %%", 100 * (last / first - 1)));
  }

  private static void cycle(Model model, Trainer trainer, Shape input, String mode) {
    boolean steps = !mode.equals("surgery");
    if (mode.equals("steps")) {
      BenchSupport.trainStep(trainer, input, 10);
      BenchSupport.trainStep(trainer, input, 10);
      return;
    }
    BlurPool.builder().build().apply(SurgeryContext.live(model.getBlock(), trainer, 1, 0));
    if (steps) {
      BenchSupport.trainStep(trainer, input, 10);
    }
    NDManager manager = model.getNDManager();
    Map<BlockMatcher, ReplacementFunction> revert = new LinkedHashMap<>();
    revert.put(
        BlockMatcher.ofClass(BlurConv2d.class),
        (block, index) -> copyConv((BlurConv2d) block, manager));
    revert.put(
        BlockMatcher.ofClass(BlurMaxPool2d.class),
        (block, index) -> {
          BlurMaxPool2d pool = (BlurMaxPool2d) block;
          return Pool.maxPool2dBlock(
              pool.getKernelShape(), pool.getStride(), pool.getPadding(), pool.isCeilMode());
        });
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            model.getBlock(),
            revert,
            SurgeryOptions.builder().optTrainers(List.of(trainer)).build());
    // The replaced blocks belong to the caller now: close the parameters nobody uses any more.
    for (Map.Entry<Block, Block> e : replaced.entrySet()) {
      Set<Parameter> kept = Collections.newSetFromMap(new IdentityHashMap<>());
      e.getValue().getParameters().values().forEach(kept::add);
      for (Parameter p : e.getKey().getParameters().values()) {
        if (!kept.contains(p)) {
          p.close();
        }
      }
    }
    if (steps) {
      BenchSupport.trainStep(trainer, input, 10);
    }
  }

  private static Block copyConv(Conv2d conv, NDManager manager) {
    Conv2d copy = AdoptingConv2d.settingsOf(conv).build();
    copy.initialize(manager, DataType.FLOAT32, DjlShapes.recordedInputShapes(conv));
    ParameterList from = conv.getParameters();
    ParameterList to = copy.getParameters();
    for (int i = 0; i < from.size(); i++) {
      from.valueAt(i).getArray().copyTo(to.valueAt(i).getArray());
    }
    return copy;
  }

  /** Distinct open arrays: the model manager's (recursively), optimizer state, store mirrors. */
  private static long openArrays(Model model, Trainer trainer) {
    Set<NDArray> arrays = Collections.newSetFromMap(new IdentityHashMap<>());
    arrays.addAll(model.getNDManager().getManagedArrays());
    for (Map<String, Map<Device, NDArray>> state :
        DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer)).values()) {
      state.values().forEach(perDevice -> arrays.addAll(perDevice.values()));
    }
    for (Object entry : DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).values()) {
      List<NDArray> mirrors = DjlTrainers.mirrors(entry);
      if (mirrors != null) {
        mirrors.stream().filter(a -> a != null).forEach(arrays::add);
      }
    }
    return arrays.stream().filter(a -> !a.isReleased()).count();
  }
}
