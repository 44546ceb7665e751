package dev.surgery.benchmarks;

import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.ResNetV1;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Helpers shared by the benchmarks: medians, a text table, training steps, process memory. */
final class BenchSupport {

  private BenchSupport() {}

  /** Returns the mean of some values (NaN for none). */
  static double mean(List<Double> values) {
    return values.stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
  }

  /** Returns the sample standard deviation of some values (NaN below two). */
  static double sd(List<Double> values) {
    double m = mean(values);
    double ss = 0;
    for (double v : values) {
      ss += (v - m) * (v - m);
    }
    return values.size() > 1 ? Math.sqrt(ss / (values.size() - 1)) : Double.NaN;
  }

  /** Returns "mean ± sample standard deviation", both in {@code format}. */
  static String meanSd(List<Double> values, String format) {
    double sd = sd(values);
    return f(format, mean(values)) + " ± " + f(format, Double.isNaN(sd) ? 0 : sd);
  }

  /** Returns the median of some values. */
  static double median(List<Double> values) {
    double[] v = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    if (v.length == 0) {
      return Double.NaN;
    }
    return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  }

  /** Returns the minimum and maximum as "min..max". */
  static String range(List<Double> values, String format) {
    double min = values.stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN);
    double max = values.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN);
    return String.format(Locale.ROOT, format + ".." + format, min, max);
  }

  /** Milliseconds since {@code startNanos}. */
  static double millisSince(long startNanos) {
    return (System.nanoTime() - startNanos) / 1e6;
  }

  private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

  /**
   * The calling thread's CPU time in nanoseconds. The benchmarks time with it rather than the wall
   * clock where one thread does the work (PyTorch on one thread runs its kernels on the caller's):
   * other processes on a shared machine change it little.
   */
  static long threadCpuNanos() {
    return THREADS.getCurrentThreadCpuTime();
  }

  /**
   * Milliseconds of the calling thread's CPU since {@code startNanos} from {@link #threadCpuNanos}.
   */
  static double cpuMillisSince(long startNanos) {
    return (THREADS.getCurrentThreadCpuTime() - startNanos) / 1e6;
  }

  /** Prints a table with a header row, columns padded to their widest cell. */
  static void printTable(String title, List<String> header, List<List<String>> rows) {
    System.out.print(formatTable(title, header, rows));
  }

  /** Formats a table as {@link #printTable} prints it. */
  static String formatTable(String title, List<String> header, List<List<String>> rows) {
    int[] width = new int[header.size()];
    List<List<String>> all = new ArrayList<>();
    all.add(header);
    all.addAll(rows);
    for (List<String> row : all) {
      for (int i = 0; i < row.size(); i++) {
        width[i] = Math.max(width[i], row.get(i).length());
      }
    }
    StringBuilder sb = new StringBuilder();
    sb.append('\n').append(title).append('\n');
    for (int r = 0; r < all.size(); r++) {
      sb.append('|');
      for (int i = 0; i < width.length; i++) {
        String cell = i < all.get(r).size() ? all.get(r).get(i) : "";
        sb.append(' ').append(cell).append(" ".repeat(width[i] - cell.length())).append(" |");
      }
      sb.append('\n');
      if (r == 0) {
        sb.append('|');
        for (int w : width) {
          sb.append("-".repeat(w + 2)).append('|');
        }
        sb.append('\n');
      }
    }
    return sb.toString();
  }

  /** Formats a number with a pattern in the root locale. */
  static String f(String format, double value) {
    return String.format(Locale.ROOT, format, value);
  }

  /** One training step (forward, loss, backward, optimizer step) on a random batch. */
  static void trainStep(Trainer trainer, Shape input, int classes) {
    NDManager manager = trainer.getManager();
    try (NDManager batchManager = manager.newSubManager()) {
      NDArray x = batchManager.randomUniform(0, 1, input);
      NDArray y =
          batchManager
              .randomInteger(0, classes, new Shape(input.get(0)), DataType.INT64)
              .toType(DataType.FLOAT32, false);
      try (GradientCollector collector = trainer.newGradientCollector()) {
        NDList pred = trainer.forward(new NDList(x));
        NDArray loss = trainer.getLoss().evaluate(new NDList(y), pred);
        collector.backward(loss);
      }
      trainer.step();
    }
  }

  /** The softmax cross-entropy loss every benchmark trains with. */
  static Loss loss() {
    return Loss.softmaxCrossEntropyLoss();
  }

  /** DJL's ResNet-20 for {@code image} (C, H, W) inputs and {@code classes} outputs. */
  static ResNetV1.Builder resNet20(Shape image, int classes) {
    return ResNetV1.builder().setImageShape(image).setNumLayers(20).setOutSize(classes);
  }

  /** Adam at a fixed learning rate of 1e-3: how the cost and overhead benchmarks train. */
  static DefaultTrainingConfig adamConfig() {
    return new DefaultTrainingConfig(loss())
        .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build());
  }

  /** SGD with momentum 0.9 at a fixed learning rate of 0.05: how the accuracy benchmarks train. */
  static DefaultTrainingConfig sgdConfig() {
    return new DefaultTrainingConfig(loss())
        .optOptimizer(
            Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).optMomentum(0.9f).build());
  }

  /** The resident set size of this process in KiB, from /proc/self/status (0 if unknown). */
  static long rssKib() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmRSS:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
      }
    } catch (IOException | NumberFormatException e) {
      return 0;
    }
    return 0;
  }

  /**
   * The command line that ran this benchmark, as one could type it again: the thread settings of
   * the environment, this JVM's own flags (those {@code -Dbench.jvmArgs} gave, a debugger's left
   * out), the class path as a placeholder (docs/benchmarks.md says how to build it) and the
   * arguments.
   *
   * @param main the benchmark's class
   * @param args its arguments
   * @return the command
   */
  static String commandLine(Class<?> main, String... args) {
    StringBuilder command = new StringBuilder("DJL_OFFLINE=true OPT_OUT_TRACKING=true");
    for (String variable : List.of("OMP_NUM_THREADS", "MKL_NUM_THREADS")) {
      String value = System.getenv(variable);
      if (value != null) {
        command.append(' ').append(variable).append('=').append(value);
      }
    }
    command.append(" java");
    for (String flag : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (!flag.startsWith("-agentlib:jdwp") && !flag.startsWith("-Xrunjdwp")) {
        command.append(' ').append(quoted(flag));
      }
    }
    command.append(" -cp <benchmarks runtime class path> ").append(main.getName());
    for (String arg : args) {
      command.append(' ').append(quoted(arg));
    }
    return command.toString();
  }

  /** An argument as a shell takes it: quoted when it holds a space or a shell character. */
  private static String quoted(String arg) {
    return arg.isEmpty() || arg.matches(".*[\\s\"'$`;&|<>()*?].*")
        ? "'" + arg.replace("'", "'\\''") + "'"
        : arg;
  }

  /**
   * Deletes a folder a benchmark made, with what it holds.
   *
   * @param dir the folder
   * @throws IOException if it cannot be listed
   */
  static void deleteTree(Path dir) throws IOException {
    try (java.util.stream.Stream<Path> files = Files.walk(dir)) {
      files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }

  /** A short description of the machine for the tables. */
  static String machine() {
    return Runtime.getRuntime().availableProcessors()
        + " cores, JDK "
        + System.getProperty("java.version")
        + ", "
        + System.getProperty("os.name")
        + " "
        + System.getProperty("os.arch");
  }

  /** The one-minute load average from /proc/loadavg ("?" if unknown). */
  static String loadAverage() {
    try {
      return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
    } catch (IOException | RuntimeException e) {
      return "?";
    }
  }

  /** Closes a model quietly at the end of a measurement. */
  static void close(Model model, Trainer trainer) {
    if (trainer != null) {
      trainer.close();
    }
    if (model != null) {
      model.close();
    }
  }
}
