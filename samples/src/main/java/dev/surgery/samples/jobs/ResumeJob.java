package dev.surgery.samples.jobs;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.trainer.SurgeryCheckpoint;
import dev.surgery.trainer.SurgeryListener;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Resuming after surgery, across processes. Phase 1 trains with a {@link SurgeryListener} ({@code
 * blurpool} and {@code squeeze_excite} after epoch 1), saves the model with {@code model.save} (the
 * surgery record travels in the file's properties) and the network's outputs on a fixed batch, then
 * starts phase 2 in a <b>new JVM</b>: it builds the original ResNetV1, loads the checkpoint with
 * {@link SurgeryCheckpoint#load} (which replays the surgery before the parameters load), checks
 * that the outputs on the fixed batch are bit-for-bit those of phase 1, and trains on.
 *
 * <p>Run: {@code mvn -B -q -pl samples exec:exec -Dsample.main=dev.surgery.samples.jobs.ResumeJob}.
 * Phase 1 writes its report to {@code <out>}, the checkpoint to {@code <out>/checkpoint}, and phase
 * 2 its report to {@code <out>/resumed}. Exit status 3 if the loaded outputs differ.
 */
public final class ResumeJob extends ImageClassificationJob {

  private static final Logger logger = LoggerFactory.getLogger(ResumeJob.class);

  /** The model name, and the prefix of the checkpoint file. */
  public static final String NAME = "resume-job";

  /** The file beside the checkpoint holding the outputs on the fixed batch. */
  public static final String OUTPUTS = "fixed-batch-outputs.bin";

  private final Path resumeFrom;
  private final SurgeryListener surgery;
  private boolean outputsMatch = true;

  ResumeJob(JobOptions options) {
    super(NAME, options);
    String from = options.extra("resume-from");
    resumeFrom = from == null ? null : Path.of(from);
    surgery =
        resumeFrom != null
            ? null
            : SurgeryListener.builder()
                .add(BlurPool.builder().build(), 1)
                .add(SqueezeExcite.builder().optMinChannels(64).build(), 1)
                .optTotalEpochs(options.epochs())
                .optReportPath(options.surgeryLogPath())
                .build();
  }

  /** Phase 1 registers the surgery; phase 2 trains the loaded (already changed) model plainly. */
  @Override
  protected void configure(DefaultTrainingConfig config) {
    if (surgery != null) {
      config.addTrainingListeners(surgery);
    }
  }

  @Override
  protected void afterInitialize(Trainer trainer) {
    if (surgery != null) {
      surgery.onInitialized(trainer);
    }
  }

  /** Phase 2: replay the recorded surgery on the fresh original network, load, compare outputs. */
  @Override
  protected void prepareModel(Model model) throws IOException {
    if (resumeFrom == null) {
      return;
    }
    try {
      SurgeryCheckpoint.load(model, resumeFrom, NAME);
    } catch (MalformedModelException e) {
      // Most often a checkpoint of another depth than the network built to load it.
      throw new IOException(
          "cannot load the checkpoint in "
              + resumeFrom
              + " into ResNetV1-"
              + getOptions().layers()
              + " (was it saved with other --layers?)",
          e);
    }
    float[] expected = readOutputs(resumeFrom.resolve(OUTPUTS));
    float[] actual = outputs(model);
    outputsMatch = Arrays.equals(expected, actual);
    logger.info(
        "{}: loaded {} with SurgeryCheckpoint.load in a new process; outputs on the fixed batch"
            + " identical to the saved model's: {}",
        NAME,
        resumeFrom,
        outputsMatch);
  }

  /** Phase 1: save the trained (changed) model and its outputs on the fixed batch. */
  @Override
  protected void afterTraining(Model model, Trainer trainer) throws IOException {
    if (resumeFrom != null) {
      return;
    }
    Path dir = getOptions().out().resolve("checkpoint");
    Files.createDirectories(dir);
    model.save(dir, NAME);
    writeOutputs(dir.resolve(OUTPUTS), outputs(model));
    logger.info("{}: saved the model after surgery to {}", NAME, dir);
  }

  /** The network's outputs (evaluation mode) on a batch of 4 fixed pseudo-random images. */
  private float[] outputs(Model model) {
    Shape shape = new Shape(4).addAll(getImageShape());
    float[] values = new float[(int) shape.size()];
    SplittableRandom random = new SplittableRandom(2024);
    for (int i = 0; i < values.length; i++) {
      values[i] = (float) random.nextDouble();
    }
    try (NDManager manager = model.getNDManager().newSubManager()) {
      NDArray x = manager.create(values, shape);
      NDList out =
          model.getBlock().forward(new ParameterStore(manager, false), new NDList(x), false);
      return out.singletonOrThrow().toFloatArray();
    }
  }

  private static void writeOutputs(Path file, float[] values) throws IOException {
    try (DataOutputStream out = new DataOutputStream(Files.newOutputStream(file))) {
      out.writeInt(values.length);
      for (float v : values) {
        out.writeFloat(v);
      }
    }
  }

  private static float[] readOutputs(Path file) throws IOException {
    try (DataInputStream in = new DataInputStream(Files.newInputStream(file))) {
      float[] values = new float[in.readInt()];
      for (int i = 0; i < values.length; i++) {
        values[i] = in.readFloat();
      }
      return values;
    }
  }

  /**
   * The JVM flags phase 2 starts with: this JVM's own ({@code -Dsample.jvmArgs}, {@code -Pcuda}'s
   * online mode, an agent), but a debugger's, whose port would clash.
   *
   * @param inputArguments this JVM's flags
   * @return the flags for the new JVM
   */
  static List<String> childJvmFlags(List<String> inputArguments) {
    return inputArguments.stream()
        .filter(a -> !a.startsWith("-agentlib:jdwp") && !a.startsWith("-Xrunjdwp"))
        .toList();
  }

  /** Starts phase 2 in a new JVM with the same class path and flags; returns its exit status. */
  private int resumeInNewProcess() throws IOException, InterruptedException {
    JobOptions o = getOptions();
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.addAll(childJvmFlags(ManagementFactory.getRuntimeMXBean().getInputArguments()));
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(ResumeJob.class.getName());
    command.addAll(
        List.of(
            "--resume-from",
            o.out().resolve("checkpoint").toString(),
            "--out",
            o.out().resolve("resumed").toString(),
            "--epochs",
            String.valueOf(o.epochs()),
            "--batch-size",
            String.valueOf(o.batchSize()),
            "--max-batches",
            String.valueOf(o.maxBatches()),
            "--dataset",
            o.dataset(),
            "--seed",
            String.valueOf(o.seed()),
            "--lr",
            String.valueOf(o.learningRate()),
            "--layers",
            String.valueOf(o.layers())));
    if (o.devices() > 0) {
      command.addAll(List.of("--devices", String.valueOf(o.devices())));
    }
    if (o.dataDir() != null) {
      command.addAll(List.of("--data-dir", o.dataDir().toString()));
    }
    ProcessBuilder pb = new ProcessBuilder(command).inheritIO();
    pb.environment().putIfAbsent("DJL_OFFLINE", "true"); // -Pcuda runs online
    pb.environment().put("OPT_OUT_TRACKING", "true");
    logger.info("{}: starting phase 2 in a new JVM", NAME);
    return pb.start().waitFor();
  }

  /**
   * Runs phase 1 and then phase 2 in a new process, or only phase 2 with {@code --resume-from DIR}.
   *
   * @param args the flags, see {@link JobOptions#USAGE}, plus {@code --resume-from DIR}
   * @throws Exception if training fails
   */
  public static void main(String[] args) throws Exception {
    JobOptions options;
    try {
      options = JobOptions.parse(NAME, args, "resume-from");
    } catch (JobOptions.HelpRequestedException e) {
      System.out.print(e.getMessage() + "  --resume-from DIR: phase 2 only, from DIR\n");
      return;
    } catch (IllegalArgumentException e) {
      System.err.println(NAME + ": " + e.getMessage() + "\n  --resume-from DIR  phase 2 only");
      System.exit(2);
      return;
    }
    ResumeJob job = new ResumeJob(options);
    try {
      job.run();
    } catch (OutputDirectoryException e) {
      System.err.println(NAME + ": " + e.getMessage());
      System.exit(2);
      return;
    } catch (dev.surgery.samples.data.DatasetUnavailableException e) {
      System.err.println(NAME + ": " + e.getMessage());
      System.exit(1);
      return;
    } catch (java.nio.file.NoSuchFileException e) {
      System.err.println(NAME + ": no such file: " + e.getFile());
      System.exit(1);
      return;
    } catch (IOException e) {
      // One line, as for the other jobs' data errors: the message and its cause, no stack trace.
      System.err.println(
          NAME
              + ": "
              + e.getMessage()
              + (e.getCause() == null ? "" : " (" + e.getCause().getMessage() + ")"));
      System.exit(1);
      return;
    }
    if (job.resumeFrom != null) {
      if (!job.outputsMatch) {
        System.err.println(NAME + ": the loaded model's outputs differ from the saved model's");
        System.exit(3);
      }
      return;
    }
    int status = job.resumeInNewProcess();
    if (status != 0) {
      System.err.println(NAME + ": phase 2 (resume in a new process) exited with " + status);
      System.exit(status);
    }
  }
}
