package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.modality.cv.transform.ToTensor;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListener;
import ai.djl.translate.Pipeline;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.events.Event;
import dev.surgery.samples.data.CenterCropTransform;
import dev.surgery.samples.data.SyntheticImages;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.SurgeryTrain;
import dev.surgery.trainer.config.Trigger;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * B2: idle overhead, with nothing due (BlurPool scheduled at epoch 1,000,000). ResNet-20 at 28 x
 * 28, batch 32, Adam, CPU, steps through {@code EasyTrain.trainBatch} and {@code step} (every
 * listener callback runs).
 *
 * <ol>
 *   <li><b>Listener</b>, in one JVM: two identical trainers, one with a {@code SurgeryListener},
 *       steps interleaved (same batches, same machine load).
 *   <li><b>Agent</b>: worker JVMs alternately started with and without {@code
 *       -javaagent:agent/target/surgery-agent.jar=<config>} (same seed, same work, PyTorch on one
 *       thread), steps per second of each and the training thread's CPU time per step. By default
 *       the two JVMs of a round run at the same time, each pinned to one of two cores (the agent's
 *       core alternating from round to round), so both see the same load at the same moment;
 *       started one after the other instead, the CPU time per step of one JVM against the next
 *       differed by about 6 % (standard deviation of the ratio) on the quiet machine, against 2.6 %
 *       side by side. The CPU ratio per round, with a 95 % interval for its mean, is what resolves
 *       a cost of about 1 %.
 * </ol>
 *
 * Run from the repository root after {@code mvn -DskipTests package}: {@code mvn -B -q -pl
 * benchmarks exec:exec -Dbench.main=dev.surgery.benchmarks.B2IdleOverhead -Dbench.args="--steps 40
 * --rounds 4"}.
 */
public final class B2IdleOverhead {

  private static final int BATCH = 32;
  private static final int WARMUP = 5;

  /** Student's t 0.975 quantiles for 1 to 30 degrees of freedom (above: {@link #t975}). */
  private static final double[] T_975 = {
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042
  };

  /** The command line. */
  static final BenchFlags FLAGS =
      BenchFlags.of("B2IdleOverhead", "B2: what an idle SurgeryListener and the agent cost")
          .count("steps", 40, 1, "measured steps per run")
          .count("rounds", 4, 2, "rounds of the agent part (the interval needs 2)")
          .text("agent", "agent/target/surgery-agent.jar", "the agent jar")
          .choice("part", "all", "which part", "all", "listener", "agent")
          .choice(
              "pairing",
              null,
              "concurrent: each round's two JVMs at once, pinned to a core each (the default where"
                  + " taskset and 2 cores exist); sequential: one after the other",
              "concurrent",
              "sequential")
          .toggle("events", "the listener part only, every event reported through SurgeryTrain")
          .toggle("worker", "one measured worker run (how the agent part starts its JVMs)");

  private B2IdleOverhead() {}

  /**
   * Runs the benchmark (or, with {@code --worker}, one measured worker run).
   *
   * @param args {@code --steps N} (default 40), {@code --rounds N} (default 4), {@code --agent
   *     PATH} (default agent/target/surgery-agent.jar), {@code --part all|listener|agent} (default
   *     all), {@code --pairing concurrent|sequential} (default concurrent where {@code taskset} and
   *     2 cores exist: each round's two JVMs run at once, pinned to a core each), {@code --events}
   *     (the listener part only, with every event reported through {@code SurgeryTrain})
   * @throws Exception if DJL fails
   */
  public static void main(String[] args) throws Exception {
    BenchFlags.Values flags = FLAGS.orExit(args, B2IdleOverhead::checkAgent);
    int steps = flags.count("steps");
    if (flags.has("worker")) {
      double[] measured = worker(steps);
      System.out.println("STEPS_PER_SECOND " + measured[0]);
      System.out.println("CPU_MS_PER_STEP " + measured[1]);
      return;
    }
    int rounds = flags.count("rounds");
    Path agent = Path.of(flags.text("agent"));
    boolean events = flags.has("events");
    String part = flags.text("part");
    if (!part.equals("agent")) {
      listenerInProcess(steps * 2, events);
    }
    if (events || part.equals("listener")) {
      return; // the events variant measures the listener only
    }
    if (!Files.isRegularFile(agent)) {
      // Only under --part all: the listener part has run, and says what it measured.
      System.out.println("B2 agent part skipped: " + agent + " not found (build it first)");
      return;
    }
    boolean canPin = canPin();
    String pairing = flags.text("pairing", canPin ? "concurrent" : "sequential");
    if (pairing.equals("concurrent") && !canPin) {
      throw new IllegalStateException("--pairing concurrent needs 2 cores and taskset on the PATH");
    }
    agentProcesses(agent, steps, rounds, pairing.equals("concurrent"));
  }

  /**
   * Refuses {@code --part agent} without the agent jar before anything runs: that part alone would
   * measure nothing.
   */
  static BenchFlags.Values checkAgent(BenchFlags.Values flags) {
    Path agent = Path.of(flags.text("agent"));
    if (flags.text("part").equals("agent")
        && !flags.has("worker")
        && !flags.has("events")
        && !Files.isRegularFile(agent)) {
      throw new IllegalArgumentException(
          "--agent "
              + agent
              + " not found: build it first (mvn -B -q -DskipTests install writes"
              + " agent/target/surgery-agent.jar), or name it with --agent");
    }
    return flags;
  }

  /** Whether two workers can run at once, each pinned to a core of its own. */
  private static boolean canPin() {
    if (Runtime.getRuntime().availableProcessors() < 2) {
      return false;
    }
    String path = System.getenv("PATH");
    if (path == null) {
      return false;
    }
    for (String dir : path.split(java.io.File.pathSeparator)) {
      if (Files.isExecutable(Path.of(dir, "taskset"))) {
        return true;
      }
    }
    return false;
  }

  private static SurgeryListener idleListener(boolean events) {
    SurgeryListener.Builder builder =
        SurgeryListener.builder().add(BlurPool.builder().build(), 1_000_000);
    if (events) {
      // Every event reported, a step entry pending but far away: the per-batch cost of onEvent.
      builder
          .add(BlurPool.builder().build(), Trigger.atStep(1_000_000_000_000L))
          .optObservableEvents(SurgeryTrain.EVENTS);
    }
    return builder.build();
  }

  private static DefaultTrainingConfig config() {
    return BenchSupport.adamConfig().addTrainingListeners(TrainingListener.Defaults.basic());
  }

  private static SyntheticImages data(int batches) {
    return SyntheticImages.builder()
        .optSize((long) batches * BATCH)
        .optPipeline(new Pipeline(new CenterCropTransform(28), new ToTensor()))
        .setSampling(BATCH, false)
        .build();
  }

  private static ai.djl.nn.Block resnet20() {
    return BenchSupport.resNet20(new Shape(3, 28, 28), 10).build();
  }

  private static void listenerInProcess(int steps, boolean events) throws Exception {
    Engine.getInstance().setRandomSeed(2);
    List<Double> plain = new ArrayList<>();
    List<Double> withListener = new ArrayList<>();
    Shape input = new Shape(BATCH, 3, 28, 28);
    try (Model a = Model.newInstance("b2-plain");
        Model b = Model.newInstance("b2-listener");
        NDManager manager = NDManager.newBaseManager()) {
      a.setBlock(resnet20());
      b.setBlock(resnet20());
      SurgeryListener listener = idleListener(events);
      try (Trainer ta = a.newTrainer(config());
          Trainer tb = b.newTrainer(config().addTrainingListeners(listener))) {
        ta.initialize(input);
        tb.initialize(input);
        listener.onInitialized(tb);
        int s = -WARMUP;
        for (Batch batch : data(steps + WARMUP).getData(manager)) {
          // Alternate which trainer steps first, so that neither always runs on a warmer cache.
          double p;
          double l;
          if (s % 2 == 0) {
            p = timedStep(ta, batch, events);
            l = timedStep(tb, batch, events);
          } else {
            l = timedStep(tb, batch, events);
            p = timedStep(ta, batch, events);
          }
          batch.close();
          if (s++ >= 0) {
            plain.add(p);
            withListener.add(l);
          }
        }
      }
    }
    double p = BenchSupport.median(plain);
    double l = BenchSupport.median(withListener);
    BenchSupport.printTable(
        (events
                ? "B2a idle SurgeryListener with every event reported (SurgeryTrain.trainBatch,"
                    + " onEvent BATCH_START/AFTER_FORWARD/AFTER_BACKWARD/BATCH_END; nothing due),"
                    + " ResNetV1-20 28 x 28, batch "
                : "B2a idle SurgeryListener (nothing due), ResNetV1-20 28 x 28, batch ")
            + BATCH
            + ", "
            + plain.size()
            + " interleaved steps each, "
            + BenchSupport.machine(),
        List.of("variant", "median step ms", "steps/s", "min..max ms"),
        List.of(
            List.of(
                "no listener",
                BenchSupport.f("%.1f", p),
                BenchSupport.f("%.2f", 1000 / p),
                BenchSupport.range(plain, "%.1f")),
            List.of(
                "SurgeryListener, nothing due",
                BenchSupport.f("%.1f", l),
                BenchSupport.f("%.2f", 1000 / l),
                BenchSupport.range(withListener, "%.1f")),
            List.of(
                "slowdown (median; fastest)",
                BenchSupport.f("%+.2f %%", 100 * (l / p - 1)),
                "",
                BenchSupport.f("%+.2f %%", 100 * (min(withListener) / min(plain) - 1)))));
  }

  private static double min(List<Double> values) {
    return values.stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN);
  }

  private static double timedStep(Trainer trainer, Batch batch, boolean events) {
    long t = System.nanoTime();
    if (events) {
      // Both trainers take the same path; only the one with a SurgeryListener has anyone to tell.
      SurgeryTrain.fire(trainer, Event.BATCH_START);
      SurgeryTrain.trainBatch(trainer, batch);
      trainer.step();
      SurgeryTrain.fire(trainer, Event.BATCH_END);
    } else {
      EasyTrain.trainBatch(trainer, batch);
      trainer.step();
    }
    return BenchSupport.millisSince(t);
  }

  /**
   * One worker: trains {@code steps} measured batches after a warm-up. Returns steps/s and the
   * training thread's CPU milliseconds per step: with PyTorch on one thread (as {@link
   * #startWorker} starts it) the whole step, hooks included, runs on this thread, and its CPU time
   * hardly moves with other processes' load, unlike its wall time.
   */
  private static double[] worker(int steps) throws Exception {
    Engine.getInstance().setRandomSeed(2);
    Shape input = new Shape(BATCH, 3, 28, 28);
    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    try (Model model = Model.newInstance("b2-worker");
        NDManager manager = NDManager.newBaseManager()) {
      model.setBlock(resnet20());
      try (Trainer trainer = model.newTrainer(config())) {
        trainer.initialize(input);
        int s = -WARMUP;
        long start = 0;
        long cpuStart = 0;
        for (Batch batch : data(steps + WARMUP).getData(manager)) {
          if (s++ == 0) {
            start = System.nanoTime();
            cpuStart = threads.getCurrentThreadCpuTime();
          }
          EasyTrain.trainBatch(trainer, batch);
          trainer.step();
          batch.close();
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        double cpuMillis = (threads.getCurrentThreadCpuTime() - cpuStart) / 1e6;
        return new double[] {steps / seconds, cpuMillis / steps};
      }
    }
  }

  private static void agentProcesses(Path agent, int steps, int rounds, boolean concurrent)
      throws IOException, InterruptedException {
    Path config = Files.createTempFile("b2-idle", ".yaml");
    Files.writeString(
        config, "algorithms:\n  - name: blurpool\n    epoch: 1000000\n", StandardCharsets.UTF_8);
    String agentArg = "-javaagent:" + agent.toAbsolutePath() + "=" + config;
    List<Double> without = new ArrayList<>();
    List<Double> with = new ArrayList<>();
    List<Double> cpuWithout = new ArrayList<>();
    List<Double> cpuWith = new ArrayList<>();
    List<Integer> agentCpu = new ArrayList<>();
    for (int r = 0; r < rounds; r++) {
      double[] plain;
      double[] hooked;
      if (concurrent) {
        // Both JVMs at once, each pinned to its own core, the agent's core alternating: they
        // share whatever the machine does meanwhile, and a faster core favours neither.
        int core = r % 2;
        Process p = startWorker(null, steps, 1 - core);
        Process h = startWorker(agentArg, steps, core);
        plain = readWorker(p);
        hooked = readWorker(h);
        agentCpu.add(core);
      } else {
        // One after the other, alternating which goes first.
        boolean agentFirst = r % 2 == 1;
        hooked = agentFirst ? readWorker(startWorker(agentArg, steps, -1)) : null;
        plain = readWorker(startWorker(null, steps, -1));
        if (!agentFirst) {
          hooked = readWorker(startWorker(agentArg, steps, -1));
        }
      }
      without.add(plain[0]);
      with.add(hooked[0]);
      cpuWithout.add(plain[1]);
      cpuWith.add(hooked[1]);
    }
    Files.deleteIfExists(config);
    double a = BenchSupport.median(without);
    double b = BenchSupport.median(with);
    BenchSupport.printTable(
        "B2b agent attached, nothing due (blurpool at epoch 1,000,000): worker JVMs, "
            + rounds
            + (concurrent ? " rounds of two concurrent JVMs pinned to one core each, " : " rounds ")
            + "of "
            + steps
            + " steps, ResNetV1-20 28 x 28, batch "
            + BATCH
            + ", "
            + BenchSupport.machine(),
        List.of("variant", "median steps/s", "best steps/s", "min..max steps/s"),
        List.of(
            List.of(
                "no agent",
                BenchSupport.f("%.3f", a),
                BenchSupport.f("%.3f", max(without)),
                BenchSupport.range(without, "%.3f")),
            List.of(
                "agent",
                BenchSupport.f("%.3f", b),
                BenchSupport.f("%.3f", max(with)),
                BenchSupport.range(with, "%.3f")),
            List.of(
                "slowdown (median; best)",
                BenchSupport.f("%+.2f %%", 100 * (a / b - 1)),
                BenchSupport.f("%+.2f %%", 100 * (max(without) / max(with) - 1)),
                "")));
    printCpuPairs(cpuWithout, cpuWith, agentCpu, steps, concurrent);
  }

  /**
   * The agent's cost as the ratio of training-thread CPU time per step, round by round (each round
   * one JVM with and one without), with a 95 % interval for the mean ratio; with many rounds, the
   * summary only, and the mean by the agent's core (a difference there is the cores', not the
   * agent's, and cancels because the cores alternate).
   */
  private static void printCpuPairs(
      List<Double> without,
      List<Double> with,
      List<Integer> agentCpu,
      int steps,
      boolean concurrent) {
    List<List<String>> rows = new ArrayList<>();
    List<Double> ratios = new ArrayList<>();
    List<List<Double>> byCore = List.of(new ArrayList<>(), new ArrayList<>());
    for (int r = 0; r < without.size(); r++) {
      double ratio = with.get(r) / without.get(r);
      ratios.add(ratio);
      if (concurrent) {
        byCore.get(agentCpu.get(r)).add(ratio);
      }
      if (without.size() <= 12) {
        rows.add(
            List.of(
                String.valueOf(r + 1),
                BenchSupport.f("%.2f", without.get(r)),
                BenchSupport.f("%.2f", with.get(r)),
                BenchSupport.f("%+.2f %%", 100 * (ratio - 1))));
      }
    }
    if (concurrent) {
      for (int core = 0; core < 2; core++) {
        List<Double> own = byCore.get(core);
        rows.add(
            List.of(
                "agent on cpu " + core + " (" + own.size() + " rounds, mean)",
                "",
                "",
                interval(own)));
      }
    }
    rows.add(
        List.of(
            "all rounds: median",
            BenchSupport.f("%.2f", BenchSupport.median(without)),
            BenchSupport.f("%.2f", BenchSupport.median(with)),
            "sd of ratio " + BenchSupport.f("%.2f %%", 100 * BenchSupport.sd(ratios))));
    rows.add(List.of("mean (95 % interval)", "", "", interval(ratios)));
    if (concurrent && !byCore.get(0).isEmpty() && !byCore.get(1).isEmpty()) {
      // Each core's spread needs 2 of its rounds; the cores alternate, so 4 rounds.
      rows.add(
          List.of(
              "mean of the two cores' means (95 % interval)",
              "",
              "",
              byCore.get(0).size() < 2 || byCore.get(1).size() < 2
                  ? "n/a (needs 4 rounds)"
                  : balanced(byCore)));
    }
    StringBuilder each = new StringBuilder("B2b ratios, round by round (agent core");
    each.append(concurrent ? "" : " n/a").append(":ratio):");
    for (int r = 0; r < ratios.size(); r++) {
      each.append(' ')
          .append(concurrent ? agentCpu.get(r) : "-")
          .append(':')
          .append(BenchSupport.f("%.4f", ratios.get(r)));
    }
    System.out.println(each);
    BenchSupport.printTable(
        "B2b agent cost as training-thread CPU time per step (PyTorch on one thread), "
            + without.size()
            + " rounds of "
            + steps
            + " steps, one JVM without and one with the agent per round"
            + (concurrent ? ", the two at once on their own cores" : ", one after the other"),
        List.of("round", "no agent CPU ms/step", "agent CPU ms/step", "agent / no agent"),
        rows);
  }

  /** The mean ratio and its interval, or "n/a" below the two values an interval needs. */
  static String interval(List<Double> ratios) {
    if (ratios.size() < 2) {
      return "n/a (needs 2 rounds here; run more --rounds)";
    }
    return percentInterval(BenchSupport.mean(ratios), halfInterval95(ratios));
  }

  /** A mean ratio and its interval as percentages: "+0.53 % (-0.32 to +1.39 %)". */
  private static String percentInterval(double mean, double half) {
    return BenchSupport.f("%+.2f %%", 100 * (mean - 1))
        + " ("
        + BenchSupport.f("%+.2f", 100 * (mean - half - 1))
        + " to "
        + BenchSupport.f("%+.2f %%", 100 * (mean + half - 1))
        + ")";
  }

  /**
   * The mean ratio with the cores as blocks: the mean of the two cores' means, its variance the sum
   * of theirs over four, so that one core being faster than the other widens nothing (the rounds
   * alternate cores, so it biases nothing either). Degrees of freedom: the smaller group's, minus
   * one (conservative).
   */
  private static String balanced(List<List<Double>> byCore) {
    double[] meanAndHalf = balancedInterval95(byCore.get(0), byCore.get(1));
    return percentInterval(meanAndHalf[0], meanAndHalf[1]);
  }

  /** The core-balanced mean of two groups and half the width of its 95 % interval. */
  static double[] balancedInterval95(List<Double> a, List<Double> b) {
    double mean = (BenchSupport.mean(a) + BenchSupport.mean(b)) / 2;
    double se =
        Math.sqrt(sq(BenchSupport.sd(a)) / a.size() + sq(BenchSupport.sd(b)) / b.size()) / 2;
    int df = Math.max(1, Math.min(a.size(), b.size()) - 1);
    return new double[] {mean, t975(df) * se};
  }

  private static double sq(double v) {
    return v * v;
  }

  /**
   * Student's t 0.975 quantile: the table up to 30 degrees of freedom, then the Cornish-Fisher
   * expansion around the normal quantile (within 1e-4 of the exact value there; B2b's rounds give
   * far more than 30).
   */
  static double t975(int df) {
    if (df <= T_975.length) {
      return T_975[df - 1];
    }
    double z = 1.959963984540054;
    double z3 = z * z * z;
    double z5 = z3 * z * z;
    return z + (z3 + z) / (4.0 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96.0 * df * df);
  }

  /** Half the width of a Student-t 95 % interval for the mean (NaN below two values). */
  static double halfInterval95(List<Double> values) {
    int n = values.size();
    if (n < 2) {
      return Double.NaN;
    }
    return t975(n - 1) * BenchSupport.sd(values) / Math.sqrt(n);
  }

  private static double max(List<Double> values) {
    return values.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN);
  }

  /** Starts one worker JVM, pinned to {@code core} with {@code taskset} unless it is negative. */
  private static Process startWorker(String agentArg, int steps, int core) throws IOException {
    List<String> command = new ArrayList<>();
    if (core >= 0) {
      command.add("taskset");
      command.add("-c");
      command.add(String.valueOf(core));
    }
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-Dai.djl.offline=true");
    command.add("-Xmx1g");
    command.add("-Dai.djl.pytorch.num_threads=1");
    command.add("-Dai.djl.pytorch.num_interop_threads=1");
    if (agentArg != null) {
      command.add(agentArg);
    }
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(B2IdleOverhead.class.getName());
    command.add("--worker");
    command.add("--steps");
    command.add(String.valueOf(steps));
    ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
    pb.environment().put("DJL_OFFLINE", "true");
    pb.environment().put("OPT_OUT_TRACKING", "true");
    pb.environment().put("OMP_NUM_THREADS", "1");
    return pb.start();
  }

  /** Waits for a worker and returns its steps/s and CPU milliseconds per step. */
  private static double[] readWorker(Process p) throws IOException, InterruptedException {
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    int status = p.waitFor();
    Double stepsPerSecond = null;
    Double cpuPerStep = null;
    for (String line : out.split("\n")) {
      if (line.startsWith("STEPS_PER_SECOND ")) {
        stepsPerSecond = Double.parseDouble(line.substring("STEPS_PER_SECOND ".length()).trim());
      } else if (line.startsWith("CPU_MS_PER_STEP ")) {
        cpuPerStep = Double.parseDouble(line.substring("CPU_MS_PER_STEP ".length()).trim());
      }
    }
    if (stepsPerSecond != null && cpuPerStep != null) {
      return new double[] {stepsPerSecond, cpuPerStep};
    }
    throw new IllegalStateException("worker exited with " + status + ":\n" + out);
  }
}
