package dev.surgery.trainer;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListenerAdapter;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.Composition;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.trainer.config.OnError;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.SurgeryConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.WeakHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Applies scheduled surgery algorithms to a model while a DJL {@link Trainer} trains it.
 *
 * <p>Register it with {@code DefaultTrainingConfig.addTrainingListeners(...)}. Each entry of the
 * schedule names an algorithm and the number of completed epochs after which it runs:
 *
 * <ul>
 *   <li>epoch 0 runs in {@link #onTrainingBegin}, which DJL fires from the {@code Trainer}
 *       constructor, usually before {@code trainer.initialize}: the surgery is then structural and
 *       {@code initialize} initializes the new blocks. An epoch-0 algorithm that needs an
 *       initialized model ({@link Algorithm#needsInitializedModel()}) waits for {@link
 *       #onInitialized}, which the program must call right after {@code trainer.initialize} (the
 *       agent does it by itself); training refuses to start while it waits.
 *   <li>epoch k &gt; 0 runs in the k-th {@link #onEpoch}, between steps and outside any gradient
 *       collector, through the core engine with the live trainer, so its parameter store and
 *       optimizer state stay exact.
 * </ul>
 *
 * <p>One instance may serve several trainers, each with its own epoch count; per-trainer state is
 * held weakly and dropped at {@link #onTrainingEnd}. Every application is logged at INFO, recorded
 * in the model's {@code surgery} property (so that {@link SurgeryCheckpoint#load} can replay it),
 * and written to the surgery log (a JSON file) when one is configured. Entries whose epoch passes
 * unseen (a custom loop that never notifies {@code onEpoch}) or that never run are reported as
 * warnings, through SLF4J and {@link #getWarnings()}.
 *
 * <p>Algorithms that follow the planned length of training ({@link Algorithm#needsTotalEpochs()},
 * such as layer freezing) get it from the training loop when it is known ({@link #onPlannedEpochs},
 * which the agent calls when {@code EasyTrain.fit} starts), from the configured number otherwise
 * ({@code total_epochs} in YAML, {@link Builder#optTotalEpochs}); without either they fail with an
 * error that names the setting.
 */
public final class SurgeryListener extends TrainingListenerAdapter {

  /** The model property that records applied surgery, as a JSON array. */
  public static final String PROPERTY = "surgery";

  /** How many batches the loss means before and after an application average. */
  public static final int LOSS_WINDOW = 20;

  private static final Logger logger = LoggerFactory.getLogger(SurgeryListener.class);

  private final List<ScheduledAlgorithm> schedule;
  private final OnError onError;
  private final Path reportPath;
  private final int totalEpochs;
  private final String totalEpochsHint;

  private final Map<Trainer, TrainerState> states =
      Collections.synchronizedMap(new WeakHashMap<>());
  private final AtomicInteger trainerCount = new AtomicInteger();
  private final List<String> warnings = Collections.synchronizedList(new ArrayList<>());
  private final SurgeryLogWriter surgeryLog;

  private SurgeryListener(
      List<ScheduledAlgorithm> schedule,
      OnError onError,
      Path reportPath,
      int totalEpochs,
      String totalEpochsHint) {
    // Fail at start-up, naming the DJL field, rather than in the middle of a training run.
    DjlInternals.verify();
    this.schedule = List.copyOf(schedule);
    this.onError = onError;
    this.reportPath = reportPath;
    this.surgeryLog = new SurgeryLogWriter(reportPath);
    this.totalEpochs = totalEpochs;
    this.totalEpochsHint = totalEpochsHint;
  }

  /**
   * Creates a builder for a schedule written in code.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Builds a listener from a YAML config file (see {@link SurgeryConfig} for the format).
   *
   * @param config the YAML file
   * @return the listener
   * @throws dev.surgery.trainer.config.SurgeryConfigException listing every problem in the file
   */
  public static SurgeryListener fromYaml(Path config) {
    return fromConfig(SurgeryConfig.load(config));
  }

  /**
   * Builds a listener from a validated config.
   *
   * @param config the config
   * @return the listener
   */
  public static SurgeryListener fromConfig(SurgeryConfig config) {
    return new SurgeryListener(
        config.getAlgorithms(),
        config.getOnError(),
        config.getReportPath().orElse(null),
        config.getTotalEpochs(),
        "set 'total_epochs: <n>' at the top level of " + config.getFileName());
  }

  /**
   * Returns the schedule, in order.
   *
   * @return the scheduled algorithms
   */
  public List<ScheduledAlgorithm> getSchedule() {
    return schedule;
  }

  /**
   * Returns what happens when an algorithm fails.
   *
   * @return the policy
   */
  public OnError getOnError() {
    return onError;
  }

  /**
   * Returns where the surgery log (JSON) is written.
   *
   * @return the surgery log's path, if any
   */
  public Optional<Path> getReportPath() {
    return Optional.ofNullable(reportPath);
  }

  /**
   * Returns the configured planned number of epochs ({@code total_epochs}, {@link
   * Builder#optTotalEpochs}); a length learnt from the training loop ({@link #onPlannedEpochs})
   * takes precedence for its trainer, see {@link #getPlannedEpochs(Trainer)}.
   *
   * @return the number, or 0 when not configured
   */
  public int getTotalEpochs() {
    return totalEpochs;
  }

  /**
   * Returns the planned number of epochs algorithms get for a trainer: the length learnt from its
   * training loop when there is one, the configured one otherwise.
   *
   * @param trainer the trainer
   * @return the number, or 0 when unknown
   */
  public int getPlannedEpochs(Trainer trainer) {
    TrainerState st = states.get(trainer);
    return st == null ? totalEpochs : plannedEpochs(st);
  }

  private int plannedEpochs(TrainerState st) {
    return st.plannedEpochs > 0 ? st.plannedEpochs : totalEpochs;
  }

  private boolean lacksLength(TrainerState st, ScheduledAlgorithm entry) {
    return entry.algorithm().needsTotalEpochs() && plannedEpochs(st) <= 0;
  }

  /**
   * Returns every warning this listener has logged so far (entries whose epoch passed unseen,
   * entries that never ran), in order.
   *
   * @return a snapshot of the warnings
   */
  public List<String> getWarnings() {
    synchronized (warnings) {
      return List.copyOf(warnings);
    }
  }

  /**
   * Returns the outcome of every scheduled entry that ran so far, over all trainers, in order.
   *
   * @return a snapshot of the outcomes
   */
  public List<SurgeryOutcome> getOutcomes() {
    return surgeryLog.outcomes();
  }

  // ------------------------------------------------------------------ lifecycle

  /** {@inheritDoc} */
  @Override
  public void onTrainingBegin(Trainer trainer) {
    TrainerState st = state(trainer);
    if (st.begun) {
      return; // the agent and the program may both forward this event
    }
    st.begun = true;
    Block block = trainer.getModel().getBlock();
    boolean initialized = block != null && block.isInitialized();
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.get(i);
      if (entry.epoch() != 0 || st.status[i] != EntryStatus.PENDING) {
        continue;
      }
      if (!initialized && entry.algorithm().needsInitializedModel()) {
        st.status[i] = EntryStatus.DEFERRED;
        logger.debug(
            "Surgery: {} waits for the model to be initialized (onInitialized)", entry.describe());
        continue;
      }
      if (lacksLength(st, entry)) {
        awaitLength(st, i);
        continue;
      }
      apply(trainer, st, i, 0);
    }
  }

  /**
   * Tells the listener how many more epochs the training loop is about to run for a trainer, so
   * that algorithms that follow the length of training ({@link Algorithm#needsTotalEpochs()}) know
   * it. The planned length becomes the epochs already completed plus {@code epochs}, and takes
   * precedence over the configured {@code total_epochs}. The agent calls it when {@code
   * EasyTrain.fit(trainer, epochs, ...)} starts; a program with its own loop may call it before
   * training. Epoch-0 entries that waited for the length run now.
   *
   * @param trainer the trainer about to train
   * @param epochs the number of epochs the loop will run; nothing happens when it is not positive
   */
  public void onPlannedEpochs(Trainer trainer, int epochs) {
    if (epochs <= 0) {
      return;
    }
    TrainerState st = state(trainer);
    int planned = st.passedEpochs() + epochs;
    // Only schedules that follow the length care; the others would only get noise.
    boolean lengthMatters = schedule.stream().anyMatch(e -> e.algorithm().needsTotalEpochs());
    if (lengthMatters && st.plannedEpochs > 0 && st.plannedEpochs != planned) {
      warn(
          "Surgery: the training loop announced "
              + planned
              + " epochs in all after "
              + st.passedEpochs()
              + " completed, where it had announced "
              + st.plannedEpochs
              + "; algorithms that follow the length of training now use "
              + planned);
    } else if (lengthMatters
        && st.plannedEpochs == 0
        && totalEpochs > 0
        && totalEpochs != planned) {
      warn(
          "Surgery: the training loop runs "
              + planned
              + " epochs but the configured total is "
              + totalEpochs
              + "; algorithms that follow the length of training use the loop's "
              + planned);
    }
    st.plannedEpochs = planned;
    if (st.passedEpochs() > 0) {
      return;
    }
    Block block = trainer.getModel().getBlock();
    boolean initialized = block != null && block.isInitialized();
    for (int i = 0; i < schedule.size(); i++) {
      if (st.status[i] != EntryStatus.AWAITING_LENGTH) {
        continue;
      }
      if (!initialized && schedule.get(i).algorithm().needsInitializedModel()) {
        st.status[i] = EntryStatus.DEFERRED;
        continue;
      }
      apply(trainer, st, i, 0);
    }
  }

  private void awaitLength(TrainerState st, int index) {
    st.status[index] = EntryStatus.AWAITING_LENGTH;
    logger.debug(
        "Surgery: {} waits for the planned number of epochs (EasyTrain.fit under the agent,"
            + " onPlannedEpochs)",
        schedule.get(index).describe());
  }

  /**
   * Runs the epoch-0 surgery that needed an initialized model (for example BlurPool with {@code
   * min_channels}). Call it right after {@code trainer.initialize(shapes)}; the agent calls it from
   * its {@code Trainer.initialize} hook. Does nothing when nothing waits.
   *
   * @param trainer the trainer that was just initialized
   */
  public void onInitialized(Trainer trainer) {
    TrainerState st = state(trainer);
    st.begun = true;
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.get(i);
      boolean due =
          st.status[i] == EntryStatus.DEFERRED
              || (entry.epoch() == 0 && st.status[i] == EntryStatus.PENDING && st.batches == 0);
      if (due && st.completedEpochs == 0) {
        if (lacksLength(st, entry)) {
          awaitLength(st, i);
          continue;
        }
        apply(trainer, st, i, 0);
      }
    }
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingBatch(Trainer trainer, BatchData batchData) {
    TrainerState st = state(trainer);
    if (st.batches == 0) {
      firstBatch(trainer, st);
    }
    st.batches++;
    Batch batch = batchData.getBatch();
    long progress = batch == null ? 0 : batch.getProgress();
    long progressTotal = batch == null ? 0 : batch.getProgressTotal();
    if (!st.epochSinceLastBatch
        && st.lastProgress > 0
        && progressTotal > 0
        && progress <= st.lastProgress) {
      // The dataset iteration started over, but no onEpoch came in between.
      st.unseenEpochs++;
      warnUnseen(st);
    }
    st.epochSinceLastBatch = false;
    st.lastProgress = progress;

    if (st.losses.needsLoss(st.passedEpochs(), nextDue(st), batch, progress, progressTotal)) {
      float loss = st.losses.batchLoss(trainer, batchData, this);
      if (Float.isFinite(loss) && st.losses.add(loss, st.batches)) {
        surgeryLog.write();
      }
    }
  }

  /** {@inheritDoc} */
  @Override
  public void onEpoch(Trainer trainer) {
    TrainerState st = state(trainer);
    st.completedEpochs++;
    st.epochSinceLastBatch = true;
    // Epochs that ended without an onEpoch still passed: count them, or later entries run late.
    int completed = st.passedEpochs();
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.get(i);
      if (st.status[i] == EntryStatus.PENDING && entry.epoch() < completed) {
        // The listener was attached after that epoch (or missed onTrainingBegin).
        st.status[i] = EntryStatus.MISSED;
        warn(
            "Surgery: "
                + entry.describe()
                + " did not run: the listener first saw this trainer after that point (epoch "
                + completed
                + " has completed)");
      } else if (st.status[i] == EntryStatus.PENDING && entry.epoch() == completed) {
        apply(trainer, st, i, completed);
      }
    }
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingEnd(Trainer trainer) {
    TrainerState st = states.remove(trainer);
    if (st == null) {
      return;
    }
    for (int i = 0; i < schedule.size(); i++) {
      if (st.status[i] != EntryStatus.PENDING
          && st.status[i] != EntryStatus.DEFERRED
          && st.status[i] != EntryStatus.AWAITING_LENGTH) {
        continue;
      }
      ScheduledAlgorithm entry = schedule.get(i);
      String reason;
      if (st.status[i] == EntryStatus.AWAITING_LENGTH) {
        reason =
            "it waited for the planned number of epochs, which never came (" + lengthHint() + ")";
      } else if (st.status[i] == EntryStatus.DEFERRED) {
        reason = "it waited for onInitialized(trainer), which was never called";
      } else if (st.completedEpochs == 0 && st.batches > 0) {
        reason =
            "the listener saw "
                + st.batches
                + " training batches but no onEpoch event; a custom training loop must call"
                + " trainer.notifyListeners(listener -> listener.onEpoch(trainer)) after each"
                + " epoch";
      } else {
        reason = "training ended after " + st.completedEpochs + " completed epochs";
      }
      warn("Surgery: " + entry.describe() + " never ran: " + reason);
      surgeryLog.addNotRun(st.ordinal, entry, reason);
    }
    surgeryLog.write();
  }

  // ------------------------------------------------------------------ applying

  private void apply(Trainer trainer, TrainerState st, int index, int completed) {
    ScheduledAlgorithm entry = schedule.get(index);
    Algorithm algorithm = entry.algorithm();
    Model model = trainer.getModel();
    Block block = model.getBlock();
    if (block == null) {
      failed(st, index, completed, new IllegalStateException("the model has no block"), 0, null, 0);
      return;
    }
    int planned = plannedEpochs(st);
    if (algorithm.needsTotalEpochs() && planned <= 0) {
      failed(
          st,
          index,
          completed,
          new IllegalStateException(
              algorithm.name()
                  + " needs the planned number of epochs, which is unknown: "
                  + lengthHint()),
          0,
          st.losses.meanBefore(),
          st.losses.beforeBatches());
      return;
    }
    // A trainer whose store is still empty (before trainer.initialize) has nothing to keep exact:
    // initialize registers the new blocks' parameters like all others.
    boolean live = block.isInitialized() && ModuleSurgery.hasRegisteredParameters(trainer);
    SurgeryContext context =
        live
            ? SurgeryContext.live(block, trainer, completed, planned)
            : new SurgeryContext(block, List.of(), completed, planned);
    Double lossBefore = st.losses.meanBefore();
    int lossBeforeBatches = st.losses.beforeBatches();
    long start = System.nanoTime();
    SurgeryChanges changes;
    try {
      changes = algorithm.apply(context);
    } catch (RuntimeException e) {
      long nanos = System.nanoTime() - start;
      failed(st, index, completed, e, nanos, lossBefore, lossBeforeBatches);
      return;
    }
    long nanos = changes.nanos() > 0 ? changes.nanos() : System.nanoTime() - start;
    st.status[index] = EntryStatus.APPLIED;
    PendingOutcome applied =
        new PendingOutcome(
            st.ordinal,
            entry,
            algorithm.settings(),
            completed,
            SurgeryOutcome.Status.APPLIED,
            changes,
            null,
            nanos,
            lossBefore,
            lossBeforeBatches);
    surgeryLog.add(applied);
    st.losses.awaitAfter(applied);
    record(model, algorithm, completed, planned);
    if (logger.isInfoEnabled()) {
      logger.info(logLine(algorithm.name(), completed, changes, nanos));
    }
    surgeryLog.write();
  }

  private void failed(
      TrainerState st,
      int index,
      int completed,
      RuntimeException e,
      long nanos,
      Double lossBefore,
      int lossBeforeBatches) {
    ScheduledAlgorithm entry = schedule.get(index);
    String path = e instanceof SurgeryException se ? se.getBlockPath() : null;
    String cause = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    String where = path == null || cause.contains(path) ? "" : " at block " + path;
    SurgeryOutcome.Status status =
        onError == OnError.FAIL ? SurgeryOutcome.Status.FAILED : SurgeryOutcome.Status.SKIPPED;
    surgeryLog.add(
        new PendingOutcome(
            st.ordinal,
            entry,
            entry.algorithm().settings(),
            completed,
            status,
            null,
            cause,
            nanos,
            lossBefore,
            lossBeforeBatches));
    if (onError == OnError.FAIL) {
      st.status[index] = EntryStatus.FAILED;
      surgeryLog.write();
      throw new SurgeryFailedException(
          "Surgery: "
              + entry.describe()
              + " failed"
              + where
              + ": "
              + cause
              + ". The model is as it was before "
              + entry.algorithm().name()
              + " (on_error: fail stops training; use on_error: skip to train on without it)",
          entry.algorithm().name(),
          completed,
          path,
          e);
    }
    st.status[index] = EntryStatus.SKIPPED;
    logger.error(
        "Surgery: {} failed{} and was skipped (on_error: skip), the model is unchanged: {}",
        entry.describe(),
        where,
        cause);
    // The stack trace helps only when debugging the algorithm itself.
    logger.debug("Surgery: failure of {}", entry.describe(), e);
    surgeryLog.write();
  }

  /** Formats the INFO line, e.g. {@code Surgery: blurpool at epoch 1 replaced 4 blocks (...)}. */
  static String logLine(String algorithm, int epoch, SurgeryChanges changes, long nanos) {
    StringBuilder sb = new StringBuilder("Surgery: ").append(algorithm).append(" at epoch ");
    sb.append(epoch).append(" replaced ");
    int n = changes.changes().size();
    if (n == 0) {
      sb.append("no blocks");
    } else {
      sb.append(n).append(n == 1 ? " block (" : " blocks (");
      sb.append(
          changes.countsByType().entrySet().stream()
              .map(e -> e.getKey() + " x" + e.getValue())
              .collect(Collectors.joining(", ")));
      sb.append(')');
    }
    sb.append(
        String.format(
            Locale.ROOT,
            ", parameters %,d -> %,d, %d ms",
            changes.parametersBefore(),
            changes.parametersAfter(),
            Math.round(nanos / 1e6)));
    return sb.toString();
  }

  /** Appends the application to the model's {@code surgery} property, which model.save keeps. */
  private void record(Model model, Algorithm algorithm, int epoch, int planned) {
    List<SurgeryRecord> records = new ArrayList<>();
    String existing = model.getProperty(PROPERTY);
    if (existing != null && !existing.isBlank()) {
      try {
        records.addAll(SurgeryJson.recordsFromJson(existing));
      } catch (IllegalArgumentException e) {
        warn(
            "Surgery: the model's '"
                + PROPERTY
                + "' property is not a surgery record and is replaced ("
                + e.getMessage()
                + ")");
      }
    }
    records.add(new SurgeryRecord(algorithm.name(), algorithm.settings(), epoch, planned));
    model.setProperty(PROPERTY, SurgeryJson.recordsToJson(records));
  }

  // ------------------------------------------------------------------ batches and loss

  private void firstBatch(Trainer trainer, TrainerState st) {
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.get(i);
      if (st.status[i] == EntryStatus.AWAITING_LENGTH) {
        // Training starts without the length: fails (or is skipped) naming where to set it.
        apply(trainer, st, i, 0);
        continue;
      }
      if (st.status[i] == EntryStatus.DEFERRED) {
        throw new IllegalStateException(
            "Surgery: "
                + entry.describe()
                + " needs an initialized model and is still waiting: call"
                + " surgeryListener.onInitialized(trainer) right after trainer.initialize(...)"
                + " (the surgery agent does this by itself), or schedule it at epoch 1 or later");
      }
      if (entry.epoch() == 0 && st.status[i] == EntryStatus.PENDING) {
        st.status[i] = EntryStatus.MISSED;
        warn(
            "Surgery: "
                + entry.describe()
                + " did not run: the listener did not see onTrainingBegin for this trainer"
                + " (it was added after the Trainer was created)");
      }
    }
  }

  /** Says where the planned number of epochs can come from, for this listener's origin. */
  private String lengthHint() {
    return totalEpochsHint
        + ", or train with EasyTrain.fit(trainer, epochs, ...) under the surgery agent, which passes"
        + " its number of epochs";
  }

  private void warnUnseen(TrainerState st) {
    int passed = st.passedEpochs();
    for (int i = 0; i < schedule.size(); i++) {
      ScheduledAlgorithm entry = schedule.get(i);
      if (st.status[i] == EntryStatus.PENDING && entry.epoch() > 0 && entry.epoch() <= passed) {
        // Never run it late: mark it so that a later onEpoch does not apply it at the wrong time.
        st.status[i] = EntryStatus.MISSED;
        warn(
            "Surgery: "
                + entry.describe()
                + " did not run: epoch "
                + entry.epoch()
                + " ended without an onEpoch event. A custom training loop must call"
                + " trainer.notifyListeners(listener -> listener.onEpoch(trainer)) after each"
                + " epoch");
      }
    }
  }

  /** The epoch of the next pending entry that is still ahead, or Integer.MAX_VALUE when none. */
  private int nextDue(TrainerState st) {
    int passed = st.passedEpochs();
    int nextDue = Integer.MAX_VALUE;
    for (int i = 0; i < schedule.size(); i++) {
      int epoch = schedule.get(i).epoch();
      if (st.status[i] == EntryStatus.PENDING && epoch > passed) {
        nextDue = Math.min(nextDue, epoch);
      }
    }
    return nextDue;
  }

  // ------------------------------------------------------------------ warnings

  private void warn(String message) {
    warnings.add(message);
    logger.warn(message);
  }

  private TrainerState state(Trainer trainer) {
    synchronized (states) {
      return states.computeIfAbsent(
          trainer, t -> new TrainerState(trainerCount.incrementAndGet(), schedule.size()));
    }
  }

  // ------------------------------------------------------------------ builder

  /** Builds a {@link SurgeryListener} from a schedule written in code. */
  public static final class Builder {

    private final List<Algorithm> algorithms = new ArrayList<>();
    private final List<Integer> epochs = new ArrayList<>();
    private OnError onError = OnError.FAIL;
    private Path reportPath;
    private int totalEpochs;

    Builder() {}

    /**
     * Schedules an algorithm. Entries run in the order they are added when they share an epoch.
     *
     * @param algorithm the configured algorithm
     * @param epoch the number of completed epochs after which it runs; 0 runs it before training
     * @return this builder
     * @throws IllegalArgumentException if the epoch is negative or beyond {@link
     *     SurgeryConfig#MAX_EPOCH}
     */
    public Builder add(Algorithm algorithm, int epoch) {
      if (algorithm == null) {
        throw new IllegalArgumentException("algorithm must not be null");
      }
      if (epoch < 0 || epoch > SurgeryConfig.MAX_EPOCH) {
        throw new IllegalArgumentException(
            "epoch must be in [0, " + SurgeryConfig.MAX_EPOCH + "], got " + epoch);
      }
      algorithms.add(algorithm);
      epochs.add(epoch);
      return this;
    }

    /**
     * Sets what happens when an algorithm fails (default {@link OnError#FAIL}).
     *
     * @param onError the policy
     * @return this builder
     */
    public Builder optOnError(OnError onError) {
      this.onError = onError == null ? OnError.FAIL : onError;
      return this;
    }

    /**
     * Sets where to write the surgery log, a JSON file (relative paths resolve against the working
     * directory).
     *
     * @param reportPath the file, or null for no surgery log
     * @return this builder
     */
    public Builder optReportPath(Path reportPath) {
      this.reportPath = reportPath;
      return this;
    }

    /**
     * Sets the planned number of epochs, passed to algorithms that follow a schedule.
     *
     * @param totalEpochs the number of epochs, or 0 when unknown
     * @return this builder
     */
    public Builder optTotalEpochs(int totalEpochs) {
      if (totalEpochs < 0) {
        throw new IllegalArgumentException("totalEpochs must be >= 0, got " + totalEpochs);
      }
      this.totalEpochs = totalEpochs;
      return this;
    }

    /**
     * Builds the listener.
     *
     * @return the listener
     * @throws IllegalArgumentException if an entry cannot follow an earlier one (see {@link
     *     Composition}); the message names both
     */
    public SurgeryListener build() {
      List<ScheduledAlgorithm> schedule = new ArrayList<>();
      for (int i = 0; i < algorithms.size(); i++) {
        schedule.add(
            new ScheduledAlgorithm(
                algorithms.get(i), epochs.get(i), i, "builder entry " + (i + 1)));
      }
      List<ScheduledAlgorithm> order = new ArrayList<>(schedule);
      order.sort(
          Comparator.comparingInt(ScheduledAlgorithm::epoch)
              .thenComparingInt(ScheduledAlgorithm::index));
      List<Composition.Conflict> conflicts =
          Composition.check(
              order.stream().map(ScheduledAlgorithm::algorithm).toList(),
              order.stream().map(ScheduledAlgorithm::epoch).toList());
      if (!conflicts.isEmpty()) {
        Composition.Conflict c = conflicts.get(0);
        throw new IllegalArgumentException(
            order.get(c.later()).describe()
                + " cannot follow "
                + order.get(c.earlier()).describe()
                + ": "
                + c.reason());
      }
      return new SurgeryListener(
          schedule,
          onError,
          reportPath,
          totalEpochs,
          "call SurgeryListener.builder().optTotalEpochs(n) or listener.onPlannedEpochs(trainer, n)");
    }
  }
}
