package dev.surgery.core.layers;

import ai.djl.MalformedModelException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import ai.djl.util.RandomUtils;
import dev.surgery.core.internal.DjlShapes;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Arrays;

/**
 * Stochastic depth for the residual branch of a residual unit: while training, the branch is
 * dropped (replaced by zeros, so the unit passes its shortcut on) with probability {@code
 * dropRate}, and a kept branch is scaled by {@code 1 / (1 - dropRate)} so that its expected output
 * is the original one; in evaluation the branch runs exactly as it is.
 *
 * <p>{@link Mode#BLOCK} draws once per forward pass for the whole batch and skips the branch's
 * computation when it is dropped; {@link Mode#SAMPLE} draws per sample. Draws come from DJL's
 * engine random generator, so they repeat for a given {@code Engine.setRandomSeed}.
 *
 * <p>The wrapper has no parameters or metadata of its own and saves and loads exactly as the
 * wrapped branch does, so checkpoints move freely between the plain and the stochastic model.
 */
public class StochasticResidual extends AbstractBlock {

  /** How the branch is dropped. */
  public enum Mode {
    /** One draw per forward pass, for the whole batch. */
    BLOCK,
    /** One draw per sample. */
    SAMPLE
  }

  private final Block branch;
  private final Mode mode;

  /**
   * The rate as given: a float64 branch draws against it in double and is scaled by {@code 1 / (1 -
   * dropRate)} in double.
   */
  private final double dropRate;

  /** The rate as a float, below 1, which float32 and float16 branches draw against and scale by. */
  private final float drawRate;

  /**
   * Output shapes for the last input shapes seen; one immutable pair, safe across device threads.
   */
  private volatile ShapeCache shapeCache;

  private record ShapeCache(Shape[] in, Shape[] out) {}

  /**
   * Wraps a residual branch. When the branch is initialized, so is the wrapper (same input shapes),
   * and nothing needs to be initialized again.
   *
   * @param branch the branch; kept as it is, with its parameters
   * @param mode per batch or per sample
   * @param dropRate the drop probability, in [0, 1): at 1 the branch would never train, yet
   *     evaluation would run it at full weight
   * @throws IllegalArgumentException if the rate is outside [0, 1)
   */
  public StochasticResidual(Block branch, Mode mode, float dropRate) {
    this(branch, mode, checked(dropRate));
  }

  /** Refuses a float rate outside [0, 1) as written (1.1, not its double 1.100000023841858). */
  private static double checked(float dropRate) {
    if (!(dropRate >= 0 && dropRate < 1)) {
      throw new IllegalArgumentException("drop_rate must be in [0, 1), got " + dropRate);
    }
    return dropRate;
  }

  /**
   * Wraps a residual branch, with the drop rate in double precision: a float64 branch kept in
   * training is scaled by {@code 1 / (1 - dropRate)} of this very value (0.2 as written, not the
   * float 0.2f, whose complement left every kept output 3.7e-9 too large), and draws against it in
   * double; float32 and float16 branches draw and scale with it as a float, kept below 1.
   *
   * @param branch the branch; kept as it is, with its parameters
   * @param mode per batch or per sample
   * @param dropRate the drop probability, in [0, 1)
   * @throws IllegalArgumentException if the rate is outside [0, 1)
   */
  @SuppressWarnings("this-escape") // JDK 21+ lint: see FactorizedBlock's constructor
  public StochasticResidual(Block branch, Mode mode, double dropRate) {
    if (!(dropRate >= 0 && dropRate < 1)) {
      throw new IllegalArgumentException("drop_rate must be in [0, 1), got " + dropRate);
    }
    this.branch = addChildBlock(branch.getClass().getSimpleName(), branch);
    this.mode = mode;
    this.dropRate = dropRate;
    // A rate below 1 in double can round to 1 in float (0.99999999): keep it below, as accepted.
    this.drawRate = Math.min((float) dropRate, Math.nextDown(1f));
    inputShapes = DjlShapes.recordedInputShapes(branch);
  }

  /**
   * Returns the wrapped branch.
   *
   * @return the branch
   */
  public Block getBranch() {
    return branch;
  }

  /**
   * Returns the drop mode.
   *
   * @return block or sample
   */
  public Mode getMode() {
    return mode;
  }

  /**
   * Returns the drop probability while training, as the float that float32 and float16 branches
   * draw against (a float64 branch draws against the rate as given, in double).
   *
   * @return the rate
   */
  public float getDropRate() {
    return drawRate;
  }

  /** {@inheritDoc} */
  @Override
  protected NDList forwardInternal(
      ParameterStore parameterStore,
      NDList inputs,
      boolean training,
      PairList<String, Object> params) {
    if (!training || drawRate == 0f) {
      return branch.forward(parameterStore, inputs, training, params);
    }
    NDManager manager = inputs.head().getManager();
    if (mode == Mode.BLOCK) {
      // Drawn on the host from DJL's seeded generator (Engine.setRandomSeed): no device round trip.
      // A float64 branch draws in double against the double rate it is scaled by, so that the
      // expected output stays the branch's at any rate (a float draw on its 2^-24 grid against the
      // double 0.99999999 kept the branch six times as often as its scaling assumes).
      boolean drop =
          inputs.head().getDataType() == DataType.FLOAT64
              ? RandomUtils.random() < dropRate
              : RandomUtils.nextFloat() < drawRate;
      if (drop) {
        return zeros(manager, inputs);
      }
      NDArray out = branch.forward(parameterStore, inputs, true, params).singletonOrThrow();
      return new NDList(out.div(keepRate(out)));
    }
    NDArray out = branch.forward(parameterStore, inputs, true, params).singletonOrThrow();
    long[] maskShape = new long[out.getShape().dimension()];
    Arrays.fill(maskShape, 1);
    maskShape[0] = out.getShape().get(0);
    NDArray keep = keepRate(out);
    // floor(keep + U[0,1)) is 1 with probability keep: one Bernoulli draw per sample. The draw is
    // float32; a half-precision branch draws in float32 too (U near 1 would round to 1) and takes
    // the mask in its own type, so the block's output keeps the branch's type. A float64 branch
    // draws in float64, against the double keep rate it is scaled by.
    NDArray uniform =
        out.getDataType() == DataType.FLOAT64
            ? manager.randomUniform(0f, 1f, new Shape(maskShape), DataType.FLOAT64)
            : manager.randomUniform(0f, 1f, new Shape(maskShape));
    NDArray keepForDraw =
        out.getDataType() == DataType.FLOAT16 ? keep.toType(DataType.FLOAT32, false) : keep;
    NDArray mask = uniform.add(keepForDraw).floor();
    if (mask.getDataType() != out.getDataType()) {
      mask = mask.toType(out.getDataType(), false);
    }
    return new NDList(out.mul(mask.div(keep)));
  }

  /**
   * Returns {@code 1 - dropRate} as a scalar array owned by the engine, on the device and of the
   * type of {@code like}, and attached to its manager.
   *
   * <p>Not {@code div(float)}: on the PyTorch CPU engine a number operand becomes a tensor over a
   * Java direct buffer, which is freed once the buffer is garbage collected. PyTorch's division
   * keeps its divisor for backward, so a collection between forward and backward (any allocation
   * may trigger one) left the kept branch's gradient scaled by freed memory: garbage, then NaN.
   */
  private NDArray keepRate(NDArray like) {
    NDManager manager = like.getManager();
    if (like.getDataType() == DataType.FLOAT64) {
      // 1 - p in double, from the rate as given: the float 1f - p rounds (0.2f: 0.80000001, every
      // kept branch 1.9e-8 too small), and so does the float p itself (0.2f: 3.7e-9 too large).
      return float64Scalar(manager, 1.0 - dropRate);
    }
    return manager.full(new Shape(), 1f - drawRate, like.getDataType());
  }

  /**
   * Returns an engine-made float64 scalar that holds {@code value} exactly. {@code NDManager.full}
   * takes a float, so the value is made of three floats (24 bits each, a double has 53), which
   * float64 additions put together without rounding.
   */
  private static NDArray float64Scalar(NDManager manager, double value) {
    float hi = (float) value;
    float mid = (float) (value - hi);
    float lo = (float) (value - hi - mid);
    try (NDArray a = manager.full(new Shape(), hi, DataType.FLOAT64);
        NDArray b = manager.full(new Shape(), mid, DataType.FLOAT64);
        NDArray c = manager.full(new Shape(), lo, DataType.FLOAT64);
        NDArray ab = a.add(b)) {
      return ab.add(c);
    }
  }

  private NDList zeros(NDManager manager, NDList inputs) {
    Shape[] in = inputs.getShapes();
    ShapeCache cache = shapeCache;
    if (cache == null || !Arrays.equals(cache.in(), in)) {
      cache = new ShapeCache(in, branch.getOutputShapes(in));
      shapeCache = cache;
    }
    NDList result = new NDList(cache.out().length);
    for (Shape s : cache.out()) {
      result.add(manager.zeros(s, inputs.head().getDataType(), inputs.head().getDevice()));
    }
    return result;
  }

  /** {@inheritDoc} */
  @Override
  public Shape[] getOutputShapes(Shape[] inputs) {
    return branch.getOutputShapes(inputs);
  }

  /** {@inheritDoc} */
  @Override
  protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
    branch.initialize(manager, dataType, inputShapes);
  }

  /** Writes exactly what the branch alone writes. */
  @Override
  public void saveParameters(DataOutputStream os) throws IOException {
    branch.saveParameters(os);
  }

  /** Reads what the branch alone wrote. */
  @Override
  public void loadParameters(NDManager manager, DataInputStream is)
      throws IOException, MalformedModelException {
    branch.loadParameters(manager, is);
    if (inputShapes == null) {
      inputShapes = DjlShapes.recordedInputShapes(branch);
    }
  }
}
