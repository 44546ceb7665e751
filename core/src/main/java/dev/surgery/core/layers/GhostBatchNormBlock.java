package dev.surgery.core.layers;

import ai.djl.Device;
import ai.djl.MalformedModelException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.surgery.core.BlockInspector;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlShapes;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.LoggerFactory;

/**
 * Ghost batch normalization: in training, the batch is cut into chunks of about {@code
 * ghostBatchSize} samples and each chunk is normalized with its own statistics; in evaluation it
 * computes exactly what the {@link BatchNorm} it replaces computes (running statistics).
 *
 * <p>Chunks follow {@code torch.chunk}: {@code n = ceil(B / ghostBatchSize)} chunks of {@code
 * ceil(B / n)} samples, the last one smaller (B = 12 with ghost size 5 gives three chunks of 4). A
 * batch no larger than the ghost size is one chunk, which is plain batch normalization. Where a
 * sample holds one value per channel ({@code (B, C)} or {@code (B, C, 1, 1)} inputs), which PyTorch
 * cannot normalize alone in training, a chunk is at least two samples: a last chunk of one joins
 * the chunk before it (B = 7 with ghost size 3 gives chunks of 3 and 4). The running statistics
 * take one update per chunk, each with the batch norm's update weight divided by the number of
 * chunks, so that one step moves them about as far as plain batch norm would.
 *
 * <p>Built with {@link #from(BatchNorm, int)}, it reuses the batch norm's own {@link Parameter}
 * objects (gamma, beta, running mean and variance) and writes the same checkpoint layout (version,
 * metadata and parameters), so the optimizer loses nothing and checkpoints load either way. DJL's
 * {@code BatchNorm} cannot be subclassed outside its package, hence a separate class.
 */
public class GhostBatchNormBlock extends SingleInputBlock implements BatchNormLayer {

  /** BatchNorm's own encoding version, so that checkpoints are interchangeable. */
  private static final byte VERSION = 2;

  private final int ghostBatchSize;
  private final int axis;
  private final float epsilon;
  private final float momentum;
  private final boolean learnsNothing;
  private long inChannels;

  /**
   * Whether a training batch no larger than the ghost size was warned of, once per JVM: such a
   * batch is one chunk, plain batch normalization, and the replacement then changes nothing.
   */
  private static final AtomicBoolean WARNED_ONE_CHUNK = new AtomicBoolean();

  /**
   * Whether this block has met its first training batch (only that one is judged). A plain field:
   * read at every forward, and a race at most judges a second batch, whose warning the flag above
   * still gives once.
   */
  private boolean trainedOnce;

  private final Parameter gamma;
  private final Parameter beta;
  private final Parameter runningMean;
  private final Parameter runningVar;

  private GhostBatchNormBlock(BatchNorm bn, int ghostBatchSize) {
    super(VERSION);
    if (ghostBatchSize < 1) {
      throw new IllegalArgumentException("ghost_batch_size must be >= 1, got " + ghostBatchSize);
    }
    this.ghostBatchSize = ghostBatchSize;
    DjlInternals.BatchNormSettings settings = BlockInspector.batchNorm(bn);
    axis = settings.axis();
    epsilon = settings.epsilon();
    momentum = settings.momentum();
    learnsNothing = !settings.scale() && !settings.center();
    // Adopt in BatchNorm's order (gamma, beta, runningMean, runningVar): the saved layout follows.
    PairList<String, Parameter> own = new PairList<>();
    for (Parameter p : bn.getDirectParameters().values()) {
      addParameter(p);
      own.add(p.getName(), p);
    }
    gamma = own.get("gamma");
    beta = own.get("beta");
    runningMean = own.get("runningMean");
    runningVar = own.get("runningVar");
    Shape[] shapes = DjlShapes.recordedInputShapes(bn);
    if (shapes != null) {
      inputShapes = shapes;
      inChannels = shapes[0].size(axis);
    }
  }

  /**
   * Creates a ghost batch norm that takes over {@code bn}'s parameters and settings (axis, epsilon,
   * momentum).
   *
   * @param bn the batch norm to replace; it must not be used anywhere else afterwards
   * @param ghostBatchSize the chunk size, at least 1
   * @return the replacement
   * @throws IllegalArgumentException if the ghost batch size is below 1
   */
  public static GhostBatchNormBlock from(BatchNorm bn, int ghostBatchSize) {
    Objects.requireNonNull(bn, "bn must not be null");
    return new GhostBatchNormBlock(bn, ghostBatchSize);
  }

  /**
   * Whether the block neither scales nor centers, as the batch norm it replaced: like PyTorch's
   * {@code BatchNorm(affine=False)} it learns no parameter (its gamma and beta stay fixed), and
   * layer freezing does not count it as a layer.
   *
   * @return true when the batch norm it replaced had neither {@code scale} nor {@code center}
   */
  public boolean learnsNothing() {
    return learnsNothing;
  }

  /**
   * Returns the chunk size used in training.
   *
   * @return the ghost batch size
   */
  public int getGhostBatchSize() {
    return ghostBatchSize;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardSingle(ParameterStore parameterStore, NDArray input, boolean training) {
    Device device = input.getDevice();
    NDArray g = parameterStore.getValue(gamma, device, training);
    NDArray b = parameterStore.getValue(beta, device, training);
    NDArray mean = parameterStore.getValue(runningMean, device, training);
    NDArray var = parameterStore.getValue(runningVar, device, training);
    long batch = input.getShape().get(0);
    if (training && !trainedOnce) {
      trainedOnce = true;
      warnIfOneChunk(batch);
    }
    long[] bounds = chunkBounds(batch, ghostBatchSize, valuesPerSample(input.getShape(), axis));
    if (!training || bounds.length == 0) {
      return BatchNorm.batchNorm(input, mean, var, g, b, axis, momentum, epsilon, training);
    }
    NDList chunks = input.split(bounds, 0);
    // DJL's momentum is the weight kept by the running statistics; spread the update over chunks.
    float chunkMomentum = 1f - (1f - momentum) / chunks.size();
    NDList outputs = new NDList(chunks.size());
    for (NDArray chunk : chunks) {
      outputs.add(
          BatchNorm.batchNorm(chunk, mean, var, g, b, axis, chunkMomentum, epsilon, true)
              .singletonOrThrow());
    }
    return new NDList(NDArrays.concat(outputs, 0));
  }

  /**
   * Warns once per JVM when a block's first training batch is no larger than the ghost size: every
   * such batch is one chunk, normalized as the batch norm it replaced would (an outside probe met
   * it in DJL's examples, whose batch of 32 equals the default ghost size). Only the first batch is
   * judged: an epoch's last batch may be smaller than the others.
   */
  private void warnIfOneChunk(long batch) {
    if (batch <= ghostBatchSize && WARNED_ONE_CHUNK.compareAndSet(false, true)) {
      LoggerFactory.getLogger(GhostBatchNormBlock.class)
          .warn(
              "Ghost batch norm: a training batch of {} samples is no larger than"
                  + " ghost_batch_size {}, so each batch is one chunk, normalized as the batch norm"
                  + " it replaced would: ghost batch normalization changes nothing at this batch"
                  + " size (choose a ghost_batch_size below the batch size)",
              batch,
              ghostBatchSize);
    }
  }

  /** Lets the next one-chunk batch be warned of again: for tests, which share one JVM. */
  static void forgetOneChunkWarning() {
    WARNED_ONE_CHUNK.set(false);
  }

  /**
   * Computes where {@code torch.chunk} cuts a batch into {@code ceil(batch / ghostBatchSize)}
   * chunks.
   *
   * @param batch the batch size
   * @param ghostBatchSize the ghost batch size
   * @return the split indices (empty when the batch is one chunk)
   */
  static long[] chunkBounds(long batch, int ghostBatchSize) {
    long n = (batch + ghostBatchSize - 1) / ghostBatchSize;
    if (n <= 1) {
      return new long[0];
    }
    long size = (batch + n - 1) / n;
    int cuts = (int) ((batch - 1) / size);
    long[] bounds = new long[cuts];
    for (int i = 0; i < cuts; i++) {
      bounds[i] = (i + 1) * size;
    }
    return bounds;
  }

  /**
   * The chunks of {@link #chunkBounds(long, int)}, except where a sample holds one value per
   * channel (a {@code (B, C)} or {@code (B, C, 1, 1)} input): PyTorch refuses to normalize a chunk
   * of one such sample in training, so chunks are then at least two samples (a ghost size of 1 is
   * taken as 2) and a last chunk of one sample joins the one before it.
   *
   * @param batch the batch size
   * @param ghostBatchSize the ghost batch size
   * @param valuesPerSample values per channel in one sample (the product of the other axes)
   * @return the split indices (empty when the batch is one chunk)
   */
  static long[] chunkBounds(long batch, int ghostBatchSize, long valuesPerSample) {
    if (valuesPerSample > 1) {
      return chunkBounds(batch, ghostBatchSize);
    }
    long[] bounds = chunkBounds(batch, Math.max(ghostBatchSize, 2));
    if (bounds.length > 0 && batch - bounds[bounds.length - 1] < 2) {
      return java.util.Arrays.copyOf(bounds, bounds.length - 1);
    }
    return bounds;
  }

  /**
   * Values per channel in one sample: the product of the axes other than the batch and {@code
   * axis}.
   */
  static long valuesPerSample(Shape shape, int axis) {
    int channel = axis < 0 ? axis + shape.dimension() : axis;
    long values = 1;
    for (int d = 1; d < shape.dimension(); d++) {
      if (d != channel) {
        values *= shape.get(d);
      }
    }
    return values;
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputs) {
    return new Shape[] {inputs[0]};
  }

  /** {@inheritDoc} */
  @Override
  protected void beforeInitialize(Shape... shapes) {
    super.beforeInitialize(shapes);
    inChannels = shapes[0].size(axis);
  }

  /** {@inheritDoc} */
  @Override
  public void prepare(Shape[] shapes) {
    for (Parameter p : new Parameter[] {gamma, beta, runningMean, runningVar}) {
      p.setShape(new Shape(inChannels));
    }
  }

  /** {@inheritDoc} */
  @Override
  protected void saveMetadata(DataOutputStream os) throws IOException {
    saveInputShapes(os);
    os.writeLong(inChannels);
  }

  /** {@inheritDoc} */
  @Override
  public void loadMetadata(byte loadVersion, DataInputStream is)
      throws IOException, MalformedModelException {
    if (loadVersion == VERSION) {
      readInputShapes(is);
    } else if (loadVersion != 1) {
      throw new MalformedModelException("Unsupported encoding version: " + loadVersion);
    }
    inChannels = is.readLong();
  }
}
