package dev.surgery.samples.report;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.SurgeryChanges;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongSupplier;

/**
 * A plain DJL {@code TrainingListener} that records what a report needs: the loss and accuracy of
 * every epoch (from DJL's own evaluator listener), the training loss of every batch (the trainer's
 * loss on the batch's predictions, before the step), and every change of the model's block tree,
 * found by comparing the tree with a snapshot, blocks and which layers are frozen (every parameter
 * of their own excluded from training). It knows nothing of DJL Surgery: whatever replaced or froze
 * the blocks (a {@code SurgeryListener} in code, the agent, or the program itself) shows up as a
 * change; a change to neither (an algorithm that only changes weights or a rate) does not.
 *
 * <p>Register it after {@code TrainingListener.Defaults.logging()} so that the evaluator listener
 * has computed an epoch's figures before {@link #onEpoch} reads them. The tree is compared when
 * training begins, at the first batch of every epoch and when training ends; a change seen at the
 * first batch of epoch {@code k + 1} is reported at epoch {@code k} (after {@code k} completed
 * epochs; 0 means before the first batch). A surgery inside an epoch (a step entry) is seen at the
 * next comparison; the surgery log's {@code step} places it exactly ({@link SurgeryReportWriter}).
 *
 * <p>An epoch's seconds run from the end of the previous epoch (its {@code onEpoch}) to its own
 * end, so they cover loading its data, every training batch (the first one too) and validation. The
 * first epoch's clock starts when training begins ({@code onTrainingBegin}, which DJL calls when
 * the trainer is created, before {@code trainer.initialize}); a program that calls {@link
 * #startEpochClock} right before its training loop leaves initialization out.
 */
public final class TrainingHistory extends TrainingListenerAdapter {

  /**
   * The prefix of a frozen layer's type in a {@link BlockChange}, as {@code layer_freezing} writes.
   */
  public static final String FROZEN = "frozen ";

  private final List<EpochMetrics> epochs = new ArrayList<>();
  private final List<ModelChange> changes = new ArrayList<>();
  private final List<BatchLoss> batchLosses = new ArrayList<>();
  private int batchInEpoch;
  private Map<String, Node> snapshot;
  private long snapshotParameters;
  private int completedEpochs;
  private boolean epochStarted;
  private final LongSupplier nanoClock;
  private long epochStartNanos;

  /** Creates an empty history. */
  public TrainingHistory() {
    this(System::nanoTime);
  }

  /** Creates an empty history that reads the time from a clock (nanoseconds), for tests. */
  TrainingHistory(LongSupplier nanoClock) {
    this.nanoClock = nanoClock;
    this.epochStartNanos = nanoClock.getAsLong();
  }

  /**
   * The figures of one completed epoch; NaN where the evaluator did not produce one (no validation
   * set).
   *
   * @param epoch the epoch number, from 1
   * @param trainLoss the mean training loss
   * @param validationLoss the validation loss
   * @param trainAccuracy the training accuracy
   * @param validationAccuracy the validation accuracy
   * @param seconds the wall time of the epoch, from the end of the previous epoch (the first: from
   *     the start of training, see {@link TrainingHistory}) to its own end: its data loading, every
   *     training batch and validation
   */
  public record EpochMetrics(
      int epoch,
      double trainLoss,
      double validationLoss,
      double trainAccuracy,
      double validationAccuracy,
      double seconds) {}

  /**
   * The training loss of one batch.
   *
   * @param epoch the epoch, from 1
   * @param batch the batch within the epoch, from 1
   * @param loss the loss on the batch's predictions before the step (mean over devices)
   */
  public record BatchLoss(int epoch, int batch, double loss) {}

  /**
   * One replaced (or frozen) block.
   *
   * @param path the block's path before the change, e.g. {@code 05ParallelBlock/01Conv2d}
   * @param oldType the old block's type (class simple name or lambda name; {@code frozen Conv2d}
   *     when its parameters were frozen)
   * @param newType the new block's type ({@code frozen Conv2d} for a layer that was frozen)
   */
  public record BlockChange(String path, String oldType, String newType) {}

  /**
   * A change of the block tree.
   *
   * @param epoch the number of completed epochs when it happened (0: before the first batch)
   * @param blocks the replaced (outermost only) and frozen blocks, in tree order
   * @param parametersBefore the number of parameter values before
   * @param parametersAfter the number after
   */
  public record ModelChange(
      int epoch, List<BlockChange> blocks, long parametersBefore, long parametersAfter) {}

  /**
   * Returns the figures of every completed epoch.
   *
   * @return the epochs, in order
   */
  public List<EpochMetrics> getEpochs() {
    return List.copyOf(epochs);
  }

  /**
   * Returns the training loss of every batch so far.
   *
   * @return the batch losses, in order
   */
  public List<BatchLoss> getBatchLosses() {
    return List.copyOf(batchLosses);
  }

  /**
   * Returns every change of the block tree seen so far.
   *
   * @return the changes, in order
   */
  public List<ModelChange> getChanges() {
    return List.copyOf(changes);
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingBegin(Trainer trainer) {
    Block root = trainer.getModel().getBlock();
    snapshot = snapshot(root);
    snapshotParameters = root == null ? 0 : parameterCountNow(root);
    completedEpochs = 0;
    epochStarted = false;
    batchInEpoch = 0;
    startEpochClock();
  }

  /**
   * Starts the current epoch's clock now. Call it right before the training loop ({@code
   * EasyTrain.fit}) so that the first epoch's seconds leave out what came before, such as {@code
   * trainer.initialize}; otherwise the clock starts when training begins.
   */
  public void startEpochClock() {
    epochStartNanos = nanoClock.getAsLong();
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingBatch(Trainer trainer, BatchData batchData) {
    if (!epochStarted) {
      epochStarted = true;
      compare(trainer.getModel().getBlock());
    }
    batchInEpoch++;
    double loss = batchLoss(trainer.getLoss(), batchData);
    batchLosses.add(new BatchLoss(completedEpochs + 1, batchInEpoch, loss));
  }

  /** The loss on each device's predictions, averaged over the devices; NaN when none. */
  private static double batchLoss(Loss loss, BatchData batchData) {
    if (loss == null || batchData.getPredictions() == null) {
      return Double.NaN;
    }
    double sum = 0;
    int devices = 0;
    for (Map.Entry<Device, NDList> e : batchData.getPredictions().entrySet()) {
      NDList labels = batchData.getLabels().get(e.getKey());
      if (labels == null) {
        continue;
      }
      try (NDArray value = loss.evaluate(labels, e.getValue())) {
        sum += value.getFloat();
        devices++;
      }
    }
    return devices == 0 ? Double.NaN : sum / devices;
  }

  /** {@inheritDoc} */
  @Override
  public void onEpoch(Trainer trainer) {
    completedEpochs++;
    Map<String, Float> values = trainer.getTrainingResult().getEvaluations();
    long now = nanoClock.getAsLong();
    double seconds = (now - epochStartNanos) / 1e9;
    // The next epoch starts here: its first batch's data loading and step count towards it.
    epochStartNanos = now;
    epochs.add(
        new EpochMetrics(
            completedEpochs,
            value(values, "train_loss"),
            value(values, "validate_loss"),
            value(values, "train_Accuracy"),
            value(values, "validate_Accuracy"),
            seconds));
    epochStarted = false;
    batchInEpoch = 0;
  }

  /** {@inheritDoc} */
  @Override
  public void onTrainingEnd(Trainer trainer) {
    compare(trainer.getModel().getBlock());
  }

  private static double value(Map<String, Float> values, String key) {
    Float v = values == null ? null : values.get(key);
    return v == null ? Double.NaN : v;
  }

  /** Compares the tree with the snapshot, records what changed, and takes a new snapshot. */
  private void compare(Block root) {
    if (snapshot == null || root == null) {
      snapshot = snapshot(root);
      snapshotParameters = root == null ? 0 : parameterCountNow(root);
      return;
    }
    Map<String, Node> now = snapshot(root);
    List<BlockChange> blocks = new ArrayList<>();
    List<String> replacedPrefixes = new ArrayList<>();
    for (Map.Entry<String, Node> e : snapshot.entrySet()) {
      String position = e.getKey();
      if (replacedPrefixes.stream().anyMatch(position::startsWith)) {
        continue; // inside a block already reported as replaced
      }
      Node before = e.getValue();
      Node after = now.get(position);
      if (after == null) {
        blocks.add(new BlockChange(before.path(), before.type(), "(removed)"));
        replacedPrefixes.add(position + "/");
      } else if (after.block() != before.block()) {
        blocks.add(new BlockChange(before.path(), before.type(), after.type()));
        replacedPrefixes.add(position + "/");
      } else if (after.frozen() != before.frozen()) {
        // Freezing replaces no block (layer_freezing): without this it would not show at all.
        blocks.add(new BlockChange(before.path(), before.label(), after.label()));
      }
    }
    for (Map.Entry<String, Node> e : now.entrySet()) {
      String position = e.getKey();
      if (!snapshot.containsKey(position)
          && replacedPrefixes.stream().noneMatch(position::startsWith)) {
        blocks.add(new BlockChange(e.getValue().path(), "(none)", e.getValue().type()));
        replacedPrefixes.add(position + "/");
      }
    }
    long parameters = parameterCountNow(root);
    if (!blocks.isEmpty()) {
      changes.add(new ModelChange(completedEpochs, blocks, snapshotParameters, parameters));
    }
    snapshot = now;
    snapshotParameters = parameters;
  }

  /** Position path ("0/3/1") to node, in pre-order; a shared block is listed at its first path. */
  private static Map<String, Node> snapshot(Block root) {
    Map<String, Node> nodes = new LinkedHashMap<>();
    if (root != null) {
      Set<Block> seen = Collections.newSetFromMap(new IdentityHashMap<>());
      seen.add(root);
      walk(root, "", "", nodes, seen);
    }
    return nodes;
  }

  private static void walk(
      Block block, String position, String path, Map<String, Node> nodes, Set<Block> seen) {
    int i = 0;
    for (Pair<String, Block> child : block.getChildren()) {
      String childPosition = position.isEmpty() ? String.valueOf(i) : position + "/" + i;
      String childPath = path.isEmpty() ? child.getKey() : path + "/" + child.getKey();
      i++;
      Block b = child.getValue();
      if (seen.add(b)) {
        nodes.put(childPosition, new Node(childPath, typeName(b), b, frozen(b)));
        walk(b, childPosition, childPath, nodes, seen);
      }
    }
  }

  /**
   * Returns a display type: a named lambda's name ({@code maxPool2d}), else the class simple name.
   *
   * @param block a block
   * @return the type name
   */
  public static String typeName(Block block) {
    if (block.getClass() == LambdaBlock.class) {
      String name = ((LambdaBlock) block).getName();
      if (name != null && !LambdaBlock.DEFAULT_NAME.equals(name)) {
        return name;
      }
    }
    return block.getClass().getSimpleName();
  }

  /**
   * Counts the parameter values of a block tree (shared parameters once), or returns {@link
   * SurgeryChanges#UNKNOWN_PARAMETERS} when a parameter has no shape yet (before {@code
   * Trainer.initialize}): counted as 0 it made a surgery there read "0 -> 274,298".
   *
   * @param root the root block
   * @return the number of scalars, or {@link SurgeryChanges#UNKNOWN_PARAMETERS}
   */
  public static long parameterCountNow(Block root) {
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    long total = 0;
    for (Pair<String, Parameter> p : root.getParameters()) {
      if (seen.add(p.getValue())) {
        Shape shape = p.getValue().getShape();
        if (shape == null) {
          return SurgeryChanges.UNKNOWN_PARAMETERS;
        }
        total += shape.size();
      }
    }
    return total;
  }

  /** Whether the block has parameters of its own and none of them trains. */
  private static boolean frozen(Block block) {
    boolean any = false;
    for (Pair<String, Parameter> p : block.getDirectParameters()) {
      if (p.getValue().requiresGradient()) {
        return false;
      }
      any = true;
    }
    return any;
  }

  private record Node(String path, String type, Block block, boolean frozen) {
    /** The type, as {@code layer_freezing} names a frozen layer: {@code frozen Conv2d}. */
    String label() {
      return frozen ? FROZEN + type : type;
    }
  }
}
