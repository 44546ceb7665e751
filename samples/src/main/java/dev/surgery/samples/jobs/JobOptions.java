package dev.surgery.samples.jobs;

import com.google.gson.JsonElement;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.surgery.samples.data.ImageDatasets;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParseResult;

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
 * @param planLog a dry run's surgery log (the JSON with {@code plans} the agent writes under {@code
 *     dry_run=true} with {@code report:}), shown next to what each surgery applied ({@code
 *     --plan-log}); null for none
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
    Path planLog,
    List<String> extra) {

  /** The surgery log's default file name in the output directory. */
  public static final String SURGERY_LOG = "surgery-log.json";

  /** The usage text of the shared flags (a job's own flags are added by {@link #usage}). */
  public static final String USAGE = usage("<job>");

  /** Thrown by {@link #parse} for {@code --help}; its message is the usage text. */
  public static final class HelpRequestedException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    HelpRequestedException(String usage) {
      super(usage);
    }
  }

  /**
   * Returns the usage text of a job.
   *
   * @param job the job's name
   * @param extraFlags the names of job-specific flags, without dashes
   * @return the text picocli writes for {@code --help}
   */
  public static String usage(String job, String... extraFlags) {
    return new CommandLine(spec(job, extraFlags)).getUsageMessage(CommandLine.Help.Ansi.OFF);
  }

  /**
   * Parses flags ({@code --name value} or {@code --name=value}) with picocli.
   *
   * @param job the job's name, used for the default output directory
   * @param args the command line
   * @param extraFlags the names of job-specific flags (each takes a value), without dashes
   * @return the options
   * @throws HelpRequestedException for {@code --help} or {@code -h}, with the usage text
   * @throws IllegalArgumentException naming the flag that is unknown, lacks a value or is malformed
   */
  public static JobOptions parse(String job, String[] args, String... extraFlags) {
    CommandSpec spec = spec(job, extraFlags);
    // As before picocli: a repeated flag's last value wins, and "@file" is a value, not a file.
    CommandLine commandLine =
        new CommandLine(spec).setOverwrittenOptionsAllowed(true).setExpandAtFiles(false);
    ParseResult result;
    try {
      result = commandLine.parseArgs(args);
    } catch (CommandLine.ParameterException e) {
      throw new IllegalArgumentException(e.getMessage() + "\n" + usage(job, extraFlags), e);
    }
    if (commandLine.isUsageHelpRequested()) {
      throw new HelpRequestedException(usage(job, extraFlags));
    }
    String dataset = result.matchedOptionValue("--dataset", "synthetic").toLowerCase(Locale.ROOT);
    if (!ImageDatasets.NAMES.contains(dataset)) {
      throw new IllegalArgumentException(
          "--dataset " + dataset + " is not one of " + ImageDatasets.NAMES);
    }
    float lr = result.matchedOptionValue("--lr", 0.001f);
    if (!(lr > 0 && lr < 10)) {
      throw new IllegalArgumentException("--lr must be in (0, 10), got " + lr);
    }
    Path out = result.matchedOptionValue("--out", Path.of("out", job));
    if (Files.exists(out) && !Files.isDirectory(out)) {
      // Refused now rather than when the report is written, after the whole training.
      throw new IllegalArgumentException("--out " + out + " is a file; name a directory");
    }
    Path planLog = result.matchedOptionValue("--plan-log", null);
    if (planLog != null && !Files.isRegularFile(planLog)) {
      // Named on purpose: a missing plan must not leave the report's plan column silently empty.
      throw new IllegalArgumentException(
          "--plan-log " + planLog + (Files.exists(planLog) ? ": not a file" : ": no such file"));
    }
    if (planLog != null) {
      checkPlanLog(planLog);
    }
    Path surgeryLog = result.matchedOptionValue("--surgery-log", null);
    if (surgeryLog != null) {
      checkSurgeryLog(surgeryLog);
    }
    List<String> extra = new ArrayList<>();
    for (String name : extraFlags) {
      String value = result.matchedOptionValue("--" + name, null);
      if (value != null) {
        extra.add(name + "=" + value);
      }
    }
    return new JobOptions(
        atLeast(result, "--epochs", 4, 0),
        atLeast(result, "--batch-size", 32, 1),
        atLeast(result, "--max-batches", 0, 0),
        atLeast(result, "--devices", 0, 0),
        dataset,
        result.matchedOptionValue("--data-dir", null),
        out,
        result.matchedOptionValue("--seed", 42L),
        lr,
        resNetDepth(result.matchedOptionValue("--layers", 20)),
        surgeryLog,
        planLog,
        List.copyOf(extra));
  }

  /** The command's flags: the shared ones, typed, then the job's own (string values). */
  private static CommandSpec spec(String job, String... extraFlags) {
    CommandSpec spec = CommandSpec.create().name(job);
    spec.usageMessage().description("A DJL Surgery sample job.");
    spec.addOption(
        OptionSpec.builder("-h", "--help").usageHelp(true).description("show this help").build());
    spec.addOption(option("--epochs", "N", int.class, "training epochs (default 4)"));
    spec.addOption(option("--batch-size", "N", int.class, "batch size (default 32)"));
    spec.addOption(
        option(
            "--max-batches",
            "N",
            int.class,
            "batches per epoch, training and validation (default: all)"));
    spec.addOption(
        option(
            "--devices",
            "N",
            int.class,
            "use at most N GPUs (default: every GPU DJL sees; else the CPU)"));
    spec.addOption(
        option(
            "--dataset",
            "NAME",
            String.class,
            String.join("|", ImageDatasets.NAMES) + " (default synthetic)"));
    spec.addOption(
        option(
            "--data-dir",
            "DIR",
            Path.class,
            "local dataset files (MNIST idx files, CIFAR-10 binaries, or one folder per class for"
                + " imagefolder); without it DJL downloads"));
    spec.addOption(
        option(
            "--out",
            "DIR",
            Path.class,
            "output directory for the surgery report (default out/<job>)"));
    spec.addOption(option("--seed", "N", long.class, "random seed (default 42)"));
    spec.addOption(option("--lr", "X", float.class, "Adam learning rate (default 0.001)"));
    spec.addOption(
        option("--layers", "N", int.class, "ResNetV1 depth: 20, 32, 44, 56 or 110 (default 20)"));
    // --surgery-report: the flag's name before the listener's file became the surgery log.
    spec.addOption(
        OptionSpec.builder("--surgery-log", "--surgery-report")
            .paramLabel("FILE")
            .type(Path.class)
            .description(
                "the SurgeryListener's surgery log (JSON) to include (default"
                    + " <out>/surgery-log.json when it exists)")
            .build());
    spec.addOption(
        option(
            "--plan-log",
            "FILE",
            Path.class,
            "a dry run's surgery log (JSON with plans, from the agent's dry_run=true and report:)"
                + " to show next to what each surgery applied"));
    for (String name : extraFlags) {
      spec.addOption(option("--" + name, "VALUE", String.class, "a flag of this job"));
    }
    return spec;
  }

  private static OptionSpec option(String name, String label, Class<?> type, String description) {
    return OptionSpec.builder(name).paramLabel(label).type(type).description(description).build();
  }

  /**
   * Refuses, before training, a plan log that is not a dry run's surgery log (a JSON object with a
   * {@code plans} list): the report reads it only after the whole training.
   */
  private static void checkPlanLog(Path planLog) {
    String problem;
    try {
      JsonElement json = JsonParser.parseString(Files.readString(planLog));
      problem =
          json.isJsonObject()
                  && json.getAsJsonObject().has("plans")
                  && json.getAsJsonObject().get("plans").isJsonArray()
              ? null
              : "not a dry run's surgery log (a JSON object with a \"plans\" list)";
    } catch (IOException | JsonParseException e) {
      problem = "cannot be read as JSON (" + firstLine(e) + ")";
    }
    if (problem != null) {
      throw new IllegalArgumentException("--plan-log " + planLog + ": " + problem);
    }
  }

  /** The first line of a parser's message: Gson adds a second with advice for its developers. */
  private static String firstLine(Exception e) {
    String message = String.valueOf(e.getMessage());
    int end = message.indexOf('\n');
    String first = (end < 0 ? message : message.substring(0, end)).strip();
    // "...MalformedJsonException: Use JsonReader.setStrictness(...) to accept malformed JSON at
    // line 1 column 6 path $": what the user needs is where the file is malformed.
    return first.replaceFirst("^.*Use JsonReader\\.setStrictness\\([^)]*\\) to accept ", "");
  }

  /**
   * Refuses, before training, a surgery log that exists but is not one (a directory, or a file that
   * is not a JSON object): the report reads it only after the whole training. One that does not
   * exist yet is accepted, since the agent or a listener writes it during the run (the config's
   * {@code report:}); the job warns after training if it is still missing.
   */
  private static void checkSurgeryLog(Path surgeryLog) {
    if (!Files.exists(surgeryLog)) {
      return;
    }
    String problem;
    if (!Files.isRegularFile(surgeryLog)) {
      problem = "not a file";
    } else {
      try {
        JsonElement json = JsonParser.parseString(Files.readString(surgeryLog));
        problem = json.isJsonObject() ? null : "not a surgery log (a JSON object)";
      } catch (IOException | JsonParseException e) {
        problem = "cannot be read as JSON (" + firstLine(e) + ")";
      }
    }
    if (problem != null) {
      throw new IllegalArgumentException("--surgery-log " + surgeryLog + ": " + problem);
    }
  }

  /** The depths DJL's ResNetV1 builds for small images; any other fails inside DJL. */
  private static final List<Integer> RESNET_DEPTHS = List.of(20, 32, 44, 56, 110);

  private static int resNetDepth(int layers) {
    if (!RESNET_DEPTHS.contains(layers)) {
      throw new IllegalArgumentException(
          "--layers must be one of " + RESNET_DEPTHS + " (ResNetV1 depths), got " + layers);
    }
    return layers;
  }

  private static int atLeast(ParseResult result, String name, int fallback, int min) {
    int value = result.matchedOptionValue(name, fallback);
    if (value < min) {
      throw new IllegalArgumentException(name + " must be >= " + min + ", got " + value);
    }
    return value;
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
        planLog,
        extra);
  }
}
