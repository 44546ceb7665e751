package dev.surgery.samples.jobs;

import dev.surgery.samples.data.ImageDatasets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The command-line flags shared by the sample jobs.
 *
 * @param epochs training epochs ({@code --epochs}, default 4)
 * @param batchSize batch size ({@code --batch-size}, default 32)
 * @param maxBatches batches per epoch to keep, training and validation, 0 for all ({@code
 *     --max-batches})
 * @param devices the number of GPUs to use, 0 for every GPU DJL sees; CPU when there is none
 *     ({@code --devices})
 * @param dataset the dataset name ({@code --dataset}, default {@code synthetic})
 * @param dataDir local dataset files ({@code --data-dir}), or null
 * @param out the output directory ({@code --out}, default {@code out/<job>})
 * @param seed the random seed ({@code --seed}, default 42)
 * @param learningRate Adam's learning rate ({@code --lr}, default 0.001)
 * @param layers ResNetV1 layers for images of side 28 or less ({@code --layers}, default 20)
 * @param surgeryLog the surgery log (JSON) a {@code SurgeryListener} wrote, to include in the
 *     surgery report ({@code --surgery-log}, formerly {@code --surgery-report}, still accepted;
 *     default {@code <out>/surgery-log.json} when it exists)
 * @param extra flags a particular job defines, as {@code name=value}
 */
public record JobOptions(
    int epochs,
    int batchSize,
    int maxBatches,
    int devices,
    String dataset,
    Path dataDir,
    Path out,
    long seed,
    float learningRate,
    int layers,
    Path surgeryLog,
    List<String> extra) {

  /** The surgery log's default file name in the output directory. */
  public static final String SURGERY_LOG = "surgery-log.json";

  /** The usage text. */
  public static final String USAGE =
      String.join(
          "\n",
          "flags:",
          "  --epochs N          training epochs (default 4)",
          "  --batch-size N      batch size (default 32)",
          "  --max-batches N     batches per epoch, training and validation (default: all)",
          "  --devices N         use at most N GPUs (default: every GPU DJL sees; else the CPU)",
          "  --dataset NAME      " + String.join("|", ImageDatasets.NAMES) + " (default synthetic)",
          "  --data-dir DIR      local dataset files (MNIST idx files, CIFAR-10 binaries, or one",
          "                      folder per class for imagefolder); without it DJL downloads",
          "  --out DIR           output directory for the surgery report (default out/<job>)",
          "  --seed N            random seed (default 42)",
          "  --lr X              Adam learning rate (default 0.001)",
          "  --layers N          ResNetV1 depth: 20, 32, 44, 56 or 110 (default 20)",
          "  --surgery-log F     the SurgeryListener's surgery log (JSON) to include",
          "                      (default <out>/surgery-log.json when it exists)");

  /**
   * Parses flags.
   *
   * @param job the job's name, used for the default output directory
   * @param args the command line
   * @param extraFlags the names of job-specific flags (each takes a value), without dashes
   * @return the options
   * @throws IllegalArgumentException naming the flag that is unknown, lacks a value or is malformed
   */
  public static JobOptions parse(String job, String[] args, String... extraFlags) {
    int epochs = 4;
    int batchSize = 32;
    int maxBatches = 0;
    int devices = 0;
    String dataset = "synthetic";
    Path dataDir = null;
    Path out = Path.of("out", job);
    long seed = 42;
    float lr = 0.001f;
    int layers = 20;
    Path surgeryLog = null;
    List<String> extra = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      String flag = args[i];
      if (flag.equals("--help") || flag.equals("-h")) {
        throw new IllegalArgumentException(USAGE);
      }
      if (!flag.startsWith("--")) {
        throw new IllegalArgumentException("unexpected argument '" + flag + "'\n" + USAGE);
      }
      String name = flag.substring(2);
      String value;
      int eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.substring(eq + 1);
        name = name.substring(0, eq);
      } else if (i + 1 < args.length) {
        value = args[++i];
      } else {
        throw new IllegalArgumentException("flag --" + name + " needs a value");
      }
      switch (name) {
        case "epochs" -> epochs = positive(name, value, 0);
        case "batch-size" -> batchSize = positive(name, value, 1);
        case "max-batches" -> maxBatches = positive(name, value, 0);
        case "devices" -> devices = positive(name, value, 0);
        case "dataset" -> dataset = value.toLowerCase(Locale.ROOT);
        case "data-dir" -> dataDir = Path.of(value);
        case "out" -> out = Path.of(value);
        case "seed" -> seed = number(name, value);
        case "lr" -> lr = learningRate(value);
        case "layers" -> layers = positive(name, value, 1);
        // --surgery-report: the flag's name before the listener's file became the surgery log.
        case "surgery-log", "surgery-report" -> surgeryLog = Path.of(value);
        default -> {
          if (!List.of(extraFlags).contains(name)) {
            throw new IllegalArgumentException("unknown flag --" + name + "\n" + USAGE);
          }
          extra.add(name + "=" + value);
        }
      }
    }
    if (!ImageDatasets.NAMES.contains(dataset)) {
      throw new IllegalArgumentException(
          "--dataset " + dataset + " is not one of " + ImageDatasets.NAMES);
    }
    return new JobOptions(
        epochs,
        batchSize,
        maxBatches,
        devices,
        dataset,
        dataDir,
        out,
        seed,
        lr,
        layers,
        surgeryLog,
        List.copyOf(extra));
  }

  /**
   * Returns the value of a job-specific flag.
   *
   * @param name the flag name without dashes
   * @return the value, or null when not given
   */
  public String extra(String name) {
    String value = null;
    for (String e : extra) {
      if (e.startsWith(name + "=")) {
        value = e.substring(name.length() + 1);
      }
    }
    return value;
  }

  /**
   * Returns the surgery log to write and include: {@code --surgery-log}, else {@code
   * <out>/surgery-log.json}, else {@code <out>/surgery-listener.json} when only that one exists
   * (the default name before, which configs may still write to).
   *
   * @return the path (it may not exist)
   */
  public Path surgeryLogPath() {
    if (surgeryLog != null) {
      return surgeryLog;
    }
    Path current = out.resolve(SURGERY_LOG);
    Path former = out.resolve("surgery-listener.json");
    return !Files.exists(current) && Files.exists(former) ? former : current;
  }

  /**
   * Returns these options with other epochs and output directory (used by the resume job).
   *
   * @param newEpochs the epochs
   * @param newOut the output directory
   * @return the copy
   */
  public JobOptions with(int newEpochs, Path newOut) {
    return new JobOptions(
        newEpochs,
        batchSize,
        maxBatches,
        devices,
        dataset,
        dataDir,
        newOut,
        seed,
        learningRate,
        layers,
        surgeryLog,
        extra);
  }

  private static int positive(String name, String value, int min) {
    long v = number(name, value);
    if (v < min || v > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("--" + name + " must be >= " + min + ", got " + value);
    }
    return (int) v;
  }

  private static long number(String name, String value) {
    try {
      return Long.parseLong(value);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--" + name + " needs an integer, got '" + value + "'", e);
    }
  }

  private static float learningRate(String value) {
    try {
      float lr = Float.parseFloat(value);
      if (!(lr > 0 && lr < 10)) {
        throw new IllegalArgumentException("--lr must be in (0, 10), got " + value);
      }
      return lr;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--lr needs a number, got '" + value + "'", e);
    }
  }
}
