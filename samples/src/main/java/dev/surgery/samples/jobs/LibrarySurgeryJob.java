package dev.surgery.samples.jobs;

import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.trainer.SurgeryListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The main job in library mode: the same ResNetV1 training, with a {@link SurgeryListener}
 * registered in code that applies several algorithms at different epochs:
 *
 * <ul>
 *   <li>epoch 0 (before the first batch): {@code ghost_batchnorm} (ghost batches of 8);
 *   <li>epoch 1: {@code blurpool} (strided convolutions with 16 or more input channels);
 *   <li>epoch 2: {@code squeeze_excite} (convolutions with 64 or more channels get a gate) and
 *       {@code stochastic_depth} (residual branches dropped with a linearly growing rate up to
 *       0.1); left out of a run of one epoch, which never reaches them.
 * </ul>
 *
 * The listener writes its surgery log to {@code <out>/surgery-log.json}, which the job's surgery
 * report includes. Run: {@code mvn -B -q -pl samples exec:exec
 * -Dsample.main=dev.surgery.samples.jobs.LibrarySurgeryJob}.
 */
public final class LibrarySurgeryJob extends ImageClassificationJob {

  private final SurgeryListener surgery;

  /**
   * Creates the job.
   *
   * @param options the flags
   */
  public LibrarySurgeryJob(JobOptions options) {
    super("library-surgery-job", options);
    SurgeryListener.Builder builder =
        SurgeryListener.builder()
            .add(GhostBatchNorm.builder().optGhostBatchSize(8).build(), 0)
            .add(BlurPool.builder().build(), 1);
    if (options.epochs() >= 2) {
      builder
          .add(SqueezeExcite.builder().optMinChannels(64).build(), 2)
          .add(StochasticDepth.builder().optDropRate(0.1).build(), 2);
    } else {
      // The listener refuses an entry after the planned last epoch, as a config file does.
      logger.info(
          "squeeze_excite and stochastic_depth (epoch 2) are left out: a run of {} epoch never"
              + " reaches them",
          options.epochs());
    }
    surgery =
        builder.optTotalEpochs(options.epochs()).optReportPath(options.surgeryLogPath()).build();
  }

  private static final Logger logger = LoggerFactory.getLogger(LibrarySurgeryJob.class);

  /**
   * Returns the listener that applies the surgery.
   *
   * @return the listener
   */
  public SurgeryListener getSurgery() {
    return surgery;
  }

  /** This job schedules its surgery in code. */
  @Override
  protected boolean hasSurgery() {
    return true;
  }

  /** Registers the surgery listener after DJL's listeners and the report's history. */
  @Override
  protected void configure(DefaultTrainingConfig config) {
    config.addTrainingListeners(surgery);
  }

  /** Runs the epoch-0 surgery that needs an initialized model (none here, but it is the rule). */
  @Override
  protected void afterInitialize(Trainer trainer) {
    surgery.onInitialized(trainer);
  }

  /**
   * Runs the job.
   *
   * @param args the flags, see {@link JobOptions#USAGE}
   * @throws Exception if training fails
   */
  public static void main(String[] args) throws Exception {
    ImageClassificationJob.main(LibrarySurgeryJob::new, "library-surgery-job", args);
  }
}
