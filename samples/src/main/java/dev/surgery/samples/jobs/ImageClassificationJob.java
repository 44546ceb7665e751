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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
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

  private final String name;
  private final JobOptions options;
  private Shape imageShape;

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
   * Returns the job's name.
   *
   * @return the name
   */
  public String getName() {
    return name;
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
   * Trains, prints the final block tree and writes the report.
   *
   * @return what the run produced
   * @throws IOException if the data or the report cannot be read or written
   * @throws TranslateException if DJL fails to batch the data
   */
  public Result run() throws IOException, TranslateException {
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
    Files.createDirectories(out);
    Path html =
        SurgeryReportWriter.builder(name, history)
            .optSurgeryLog(options.surgeryLogPath())
            .optRun(run)
            .build()
            .write(out);
    logger.info("{}: report written to {}", name, html.toAbsolutePath());
    return new Result(tree, history, html);
  }

  /**
   * Runs a job from a {@code main} method: prints usage and exits with status 2 on bad flags, and
   * with status 1 when the dataset is unavailable.
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
    JobOptions options;
    try {
      options = JobOptions.parse(jobName, args, extraFlags);
    } catch (JobOptions.HelpRequestedException e) {
      System.out.print(e.getMessage());
      return;
    } catch (IllegalArgumentException e) {
      System.err.println(jobName + ": " + e.getMessage());
      System.exit(2);
      return;
    }
    try {
      job.apply(options).run();
    } catch (dev.surgery.samples.data.DatasetUnavailableException e) {
      System.err.println(jobName + ": " + e.getMessage());
      System.exit(1);
    }
  }
}
