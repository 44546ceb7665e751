package dev.surgery.samples.jobs;

/**
 * The main sample: a DJL {@code ResNetV1} image classifier (20 layers at 28 x 28 by default, on the
 * generated dataset) trained with {@code EasyTrain.fit}, DJL's progress bar and logging. It knows
 * nothing of DJL Surgery; README runs it under the agent:
 *
 * <pre>
 * mvn -B -q -pl samples exec:exec@surgery     # -javaagent:agent/target/surgery-agent.jar=samples/configs/blurpool.yaml
 * </pre>
 *
 * <p>It prints the final block tree (with {@code BlurConv2d} blocks after BlurPool ran) and writes
 * {@code <out>/surgery-report.html} and {@code .json}. See {@link JobOptions#USAGE} for the flags.
 */
public final class ResNetJob {

  private ResNetJob() {}

  /**
   * Runs the job.
   *
   * @param args the flags
   * @throws Exception if training fails
   */
  public static void main(String[] args) throws Exception {
    ImageClassificationJob.main(
        o -> new ImageClassificationJob("resnet-job", o), "resnet-job", args);
  }
}
