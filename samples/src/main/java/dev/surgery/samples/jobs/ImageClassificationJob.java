package dev.surgery.samples.jobs;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.ResNetV1;
import ai.djl.engine.Engine;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.evaluator.Accuracy;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.TranslateException;
import com.google.gson.JsonObject;
import dev.surgery.samples.data.ImageDatasets;
import dev.surgery.samples.data.ImageDatasets.ImageData;
import dev.surgery.samples.report.SurgeryReportWriter;
import dev.surgery.samples.report.TrainingHistory;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An image classifier trained the ordinary DJL way: a {@code ResNetV1} from DJL's basic model zoo,
 * Adam, softmax cross-entropy, {@link EasyTrain#fit}, DJL's progress bar and logging listeners, on
 * every GPU DJL sees (else the CPU). After training it prints the final block tree and writes the
 * report ({@code <out>/surgery-report.html} and {@code .json}).
 *
 * <p>This class knows nothing of model surgery. Subclasses hook in at the points a training program
 * has anyway: {@link #configure} (add listeners), {@link #afterInitialize}, {@link #prepareModel}
 * (load a checkpoint) and {@link #afterTraining} (save one).
 */
public class ImageClassificationJob {

  private static final Logger logger = LoggerFactory.getLogger(ImageClassificationJob.class);

  /** The image side for ResNetV1's three-stage CIFAR layout (DJL uses it for heights up to 28). */
  public static final int SIDE = 28;

  /** The flag that trains the job's network once more without surgery, for comparison. */
  public static final String COMPARE_BASELINE = "--compare-baseline";

  private final String name;
  private final JobOptions options;
  private Shape imageShape;
  private SurgeryReportWriter.BaselineRun baseline;
  private boolean surgeryLog = true;

  /**
   * Creates the job.
   *
   * @param name the job's name (model name and report title)
   * @param options the flags
   */
  public ImageClassificationJob(String name, JobOptions options) {
    this.name = name;
    this.options = options;
  }

  /**
   * Returns the flags.
   *
   * @return the options
   */
  public JobOptions getOptions() {
    return options;
  }

  /**
   * Returns the shape of one input image, {@code (channels, height, width)}; known once {@link
   * #run} has opened the dataset (before {@link #prepareModel}).
   *
   * @return the shape, or null before
   */
  public Shape getImageShape() {
    return imageShape;
  }

  /**
   * Sets a run to draw on this job's report charts for comparison (see {@code --compare-baseline}).
   *
   * @param baseline the run, or null for none
   */
  public void setBaseline(SurgeryReportWriter.BaselineRun baseline) {
    this.baseline = baseline;
  }

  /**
   * Returns the job's name.
   *
   * @return the name
   */
  public String getName() {
    return name;
  }

  /**
   * Thrown before training when the output directory ({@code --out}) cannot be created or the
   * report cannot be written there; its message names the path and the reason, in one line.
   */
  public static final class OutputDirectoryException extends IOException {
    private static final long serialVersionUID = 1L;

    OutputDirectoryException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /**
   * Creates the output directory and checks that the report can be written there (see {@link
   * SurgeryReportWriter#checkWritable}): {@link #run} does it before training, so that a bad {@code
   * --out} is not found after the whole training.
   *
   * @throws OutputDirectoryException naming {@code --out} and what is wrong
   */
  public void checkOut() throws OutputDirectoryException {
    try {
      SurgeryReportWriter.checkWritable(options.out());
    } catch (IOException e) {
      throw new OutputDirectoryException("--out " + e.getMessage(), e);
    }
  }

  /**
   * What a run produced.
   *
   * @param blockTree the final block tree, as DJL prints it
   * @param history the recorded epochs and model changes
   * @param report the HTML report
   */
  public record Result(String blockTree, TrainingHistory history, Path report) {}

  /**
   * Builds the network: DJL's {@code ResNetV1} for the dataset's image shape.
   *
   * @param imageShape {@code (channels, height, width)}
   * @param classes the number of classes
   * @return the network, uninitialized
   */
  protected Block buildNetwork(Shape imageShape, int classes) {
    return ResNetV1.builder()
        .setImageShape(imageShape)
        .setNumLayers(options.layers())
        .setOutSize(classes)
        .build();
  }

  /**
   * Adds to the training configuration; the default adds nothing. Called after DJL's logging
   * listeners and the report's history listener were added.
   *
   * @param config the configuration
   */
  protected void configure(DefaultTrainingConfig config) {}

  /**
   * Runs after {@code trainer.initialize}; the default does nothing.
   *
   * @param trainer the initialized trainer
   */
  protected void afterInitialize(Trainer trainer) {}

  /**
   * Prepares the model before the trainer is created (for example, loads a checkpoint into it); the
   * default does nothing.
   *
   * @param model the model with its freshly built network
   * @throws IOException if a checkpoint cannot be read
   */
  protected void prepareModel(Model model) throws IOException {}

  /**
   * Runs after training, before the trainer closes (for example, saves a checkpoint); the default
   * does nothing.
   *
   * @param model the trained model
   * @param trainer the trainer
   * @throws IOException if something cannot be written
   */
  protected void afterTraining(Model model, Trainer trainer) throws IOException {}

  /**
   * Returns the devices to train on: every GPU DJL sees (at most {@code --devices} of them), else
   * the CPU.
   *
   * @return the devices
   */
  public Device[] devices() {
    Engine engine = Engine.getInstance();
    return options.devices() > 0 ? engine.getDevices(options.devices()) : engine.getDevices();
  }

  /**
   * The surgery log to report: the one named by {@code --surgery-log} as given, but the default one
   * in {@code <out>} only when this run wrote it (an earlier run's would claim its surgery), that
   * is unless it is unchanged since {@code leftover}, its last write before the run (null: none).
   */
  private Path logOfThisRun(Path log, FileTime leftover) throws IOException {
    if (options.surgeryLog() != null || leftover == null || !Files.isRegularFile(log)) {
      return log;
    }
    if (Files.getLastModifiedTime(log).equals(leftover)) {
      logger.warn(
          "{}: ignoring {}: an earlier run wrote it, and this run changed nothing there",
          name,
          log.toAbsolutePath());
      return null;
    }
    return log;
  }

  /**
   * Trains, prints the final block tree and writes the report.
   *
   * @return what the run produced
   * @throws IOException if the data or the report cannot be read or written
   * @throws TranslateException if DJL fails to batch the data
   */
  public Result run() throws IOException, TranslateException {
    checkOut();
    // A surgery log in the output directory from an earlier run must not be reported as this one's:
    // remember when it was last written, if it exists before this run.
    Path logAtStart = options.surgeryLogPath();
    FileTime leftover =
        Files.isRegularFile(logAtStart) ? Files.getLastModifiedTime(logAtStart) : null;
    ImageData data =
        ImageDatasets.open(
            new ImageDatasets.Request(
                options.dataset(),
                options.dataDir(),
                options.batchSize(),
                options.maxBatches(),
                SIDE,
                options.seed()));
    imageShape = data.imageShape();
    Device[] devices = devices();
    logger.info(
        "{}: ResNetV1-{} on {} ({} classes, image {}), {} epochs, batch size {}, devices {}",
        name,
        options.layers(),
        data.name(),
        data.classes(),
        data.imageShape(),
        options.epochs(),
        options.batchSize(),
        Arrays.toString(devices));
    Engine.getInstance().setRandomSeed((int) options.seed());
    TrainingHistory history = new TrainingHistory();
    String tree;
    try (Model model = Model.newInstance(name)) {
      model.setBlock(buildNetwork(data.imageShape(), data.classes()));
      prepareModel(model);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .addEvaluator(new Accuracy())
              .optDevices(devices)
              .optOptimizer(
                  Optimizer.adam()
                      .optLearningRateTracker(Tracker.fixed(options.learningRate()))
                      .build())
              .addTrainingListeners(TrainingListener.Defaults.logging())
              .addTrainingListeners(history);
      configure(config);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(1).addAll(data.imageShape()));
        afterInitialize(trainer);
        // The first epoch's seconds cover the training loop, not the initialization before it.
        history.startEpochClock();
        EasyTrain.fit(trainer, options.epochs(), data.train(), data.validation());
        afterTraining(model, trainer);
      }
      tree = model.getBlock().toString();
    }
    System.out.println(tree);
    JsonObject run = new JsonObject();
    run.addProperty("job", name);
    run.addProperty("network", "ResNetV1-" + options.layers());
    run.addProperty("dataset", data.name());
    run.addProperty("classes", data.classes());
    run.addProperty("epochs", options.epochs());
    run.addProperty("batch_size", options.batchSize());
    run.addProperty(
        "max_batches", options.maxBatches() == 0 ? "all" : String.valueOf(options.maxBatches()));
    run.addProperty(
        "devices", Arrays.stream(devices).map(Device::toString).collect(Collectors.joining(",")));
    Path out = options.out();
    if (surgeryLog && options.surgeryLog() != null && !Files.exists(options.surgeryLog())) {
      // Named on purpose: accepted before training (the agent may write it during the run), but a
      // report without it must not pass silently for one with the algorithms named.
      logger.warn(
          "{}: --surgery-log {} was not written during the run; the report shows only the changes"
              + " the job saw itself",
          name,
          options.surgeryLog());
    }
    Path thisRunsLog = surgeryLog ? logOfThisRun(options.surgeryLogPath(), leftover) : null;
    if (surgeryLog
        && options.planLog() != null
        && (thisRunsLog == null || !Files.isRegularFile(thisRunsLog))) {
      // The plans are placed beside what the surgery log says each entry changed: without it, the
      // tables have no planned column, which must not pass silently.
      logger.warn(
          "{}: --plan-log {} has no surgery log of this run to stand beside ({} not found): the"
              + " report's tables show no planned column; pass --surgery-log with the file the"
              + " config's report: writes",
          name,
          options.planLog(),
          options.surgeryLogPath());
    }
    Path html =
        SurgeryReportWriter.builder(name, history)
            .optSurgeryLog(thisRunsLog)
            .optPlanLog(surgeryLog ? options.planLog() : null)
            .optRun(run)
            .optBaseline(baseline)
            .build()
            .write(out);
    logger.info("{}: report written to {}", name, html.toAbsolutePath());
    return new Result(tree, history, html);
  }

  /**
   * Runs a job from a {@code main} method: prints usage and exits with status 2 on bad flags, with
   * status 2 and one line when {@code --out} cannot be created or written (before training), and
   * with status 1 when the dataset is unavailable. With {@value #COMPARE_BASELINE}, first trains
   * the same network without surgery into {@code <out>/baseline} (see {@link #trainBaseline}) and
   * draws both runs on the job's report.
   *
   * @param job creates the job from the parsed flags
   * @param jobName the job's name
   * @param args the command line
   * @param extraFlags job-specific flags
   * @throws Exception if training fails
   */
  static void main(
      java.util.function.Function<JobOptions, ImageClassificationJob> job,
      String jobName,
      String[] args,
      String... extraFlags)
      throws Exception {
    List<String> rest = new ArrayList<>(Arrays.asList(args));
    boolean compare = rest.remove(COMPARE_BASELINE);
    JobOptions options;
    try {
      options = JobOptions.parse(jobName, rest.toArray(new String[0]), extraFlags);
    } catch (JobOptions.HelpRequestedException e) {
      System.out.print(e.getMessage());
      System.out.println(
          "      "
              + COMPARE_BASELINE
              + "  also train without surgery into <out>/baseline and draw both runs");
      return;
    } catch (IllegalArgumentException e) {
      // A flag picocli could not parse comes with the usage, which lacks the flag taken out above;
      // a value refused after parsing is one line.
      boolean withUsage = e.getMessage() != null && e.getMessage().contains("\n");
      System.err.println(
          jobName
              + ": "
              + e.getMessage()
              + (withUsage
                  ? "\n  "
                      + COMPARE_BASELINE
                      + "  also train without surgery into <out>/baseline and draw both runs"
                  : ""));
      System.exit(2);
      return;
    }
    try {
      ImageClassificationJob j = job.apply(options);
      j.checkOut(); // before the baseline trains too
      if (compare) {
        j.setBaseline(trainBaseline(j, rest));
      }
      j.run();
    } catch (OutputDirectoryException e) {
      System.err.println(jobName + ": " + e.getMessage());
      System.exit(2);
    } catch (dev.surgery.samples.data.DatasetUnavailableException e) {
      System.err.println(jobName + ": " + e.getMessage());
      System.exit(1);
    }
  }

  /**
   * Trains the job's network without surgery, with the same flags and seed, writing its report to
   * {@code <out>/baseline}, and returns its figures. A job that adds surgery in code ({@link
   * #hasSurgery}) gets its baseline from a plain {@code ImageClassificationJob} in this process.
   * Under the java agent, whose configuration would change any training in this process, the
   * baseline runs {@link ResNetJob} in a child JVM started with this JVM's options less the {@code
   * -javaagent} ones.
   *
   * @param job the job to compare
   * @param args the job's flags (without {@value #COMPARE_BASELINE})
   * @return the baseline's figures
   * @throws IOException if the baseline cannot be run or its report read
   * @throws TranslateException if DJL fails to batch the data
   */
  public static SurgeryReportWriter.BaselineRun trainBaseline(
      ImageClassificationJob job, List<String> args) throws IOException, TranslateException {
    JobOptions options = job.getOptions();
    Path out = options.out().resolve("baseline");
    List<String> agents =
        ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
            .filter(a -> a.startsWith("-javaagent:"))
            .toList();
    if (agents.isEmpty()) {
      if (!job.hasSurgery()) {
        logger.warn(
            "{}: {} without a surgery configuration (no java agent, no surgery in code): both"
                + " runs train the same way",
            job.getName(),
            COMPARE_BASELINE);
      }
      ImageClassificationJob plain =
          new ImageClassificationJob(
              job.getName() + "-baseline", options.with(options.epochs(), out));
      // A surgery log named by --surgery-log (and a plan by --plan-log) belongs to the run with
      // surgery.
      plain.surgeryLog = false;
      return SurgeryReportWriter.BaselineRun.of("baseline", plain.run().history());
    }
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      // No agent of any kind: the baseline must train the network unchanged (and a debugger's
      // port would clash).
      if (!a.startsWith("-javaagent:")
          && !a.startsWith("-agentlib:")
          && !a.startsWith("-agentpath:")) {
        command.add(a);
      }
    }
    // Should an agent still arrive (JAVA_TOOL_OPTIONS), it stays off.
    command.add("-Dsurgery.enabled=false");
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(ResNetJob.class.getName());
    command.addAll(withOut(args, out));
    logger.info("{}: baseline without the agent: {}", job.getName(), command);
    ProcessBuilder builder = new ProcessBuilder(command).inheritIO();
    // The JVM adds these to the child's options itself: an agent given there would come back.
    builder.environment().remove("JAVA_TOOL_OPTIONS");
    builder.environment().remove("JDK_JAVA_OPTIONS");
    Process p = builder.start();
    try {
      int rc = p.waitFor();
      if (rc != 0) {
        throw new IOException("the baseline run (" + command + ") exited with " + rc);
      }
    } catch (InterruptedException e) {
      p.destroy();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while the baseline ran", e);
    }
    return SurgeryReportWriter.BaselineRun.read("baseline", out.resolve(SurgeryReportWriter.JSON));
  }

  /**
   * The flags for the baseline: {@code --out} set to {@code out}, and no {@code --surgery-log} (or
   * its old name {@code --surgery-report}) nor {@code --plan-log}: they belong to the run with
   * surgery.
   */
  static List<String> withOut(List<String> args, Path out) {
    List<String> result = new ArrayList<>();
    for (int i = 0; i < args.size(); i++) {
      String a = args.get(i);
      if (a.equals("--out")
          || a.equals("--surgery-log")
          || a.equals("--surgery-report")
          || a.equals("--plan-log")) {
        i++;
      } else if (!a.startsWith("--out=")
          && !a.startsWith("--surgery-log=")
          && !a.startsWith("--surgery-report=")
          && !a.startsWith("--plan-log=")) {
        result.add(a);
      }
    }
    result.add("--out");
    result.add(out.toString());
    return result;
  }

  /**
   * Tells whether this job adds surgery in code (then its baseline is a plain job in the same
   * process); the default says no.
   *
   * @return true when the job itself schedules surgery
   */
  protected boolean hasSurgery() {
    return false;
  }
}
