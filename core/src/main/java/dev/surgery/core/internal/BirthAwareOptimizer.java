package dev.surgery.core.internal;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.training.optimizer.Adam;
import ai.djl.training.optimizer.AdamW;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.optimizer.Sgd;
import ai.djl.training.tracker.ParameterTracker;
import java.lang.reflect.Field;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * Stands in for a trainer's Adam, AdamW or SGD optimizer once surgery has added parameters to it,
 * so that every added ("born") parameter is updated exactly as a fresh optimizer of the same
 * hyperparameters, started at step 0, would update it.
 *
 * <p>DJL's Adam computes its bias correction from one global step count (the largest per-parameter
 * count), so a parameter added at global step {@code T} would start with zero moments and the
 * correction of step {@code T}: its first updates would be several times the learning rate. And
 * since the parameter store updates parameters in hash order, whether a born parameter sees {@code
 * T} or {@code T + 1} is arbitrary. This optimizer gives each born parameter the correction of its
 * own update count, and AdamW's decoupled weight decay the undistorted learning rate, by calling
 * the same native kernel with the arguments a fresh optimizer would pass. SGD asks its learning
 * rate tracker at that same global count, so a born parameter under a schedule had the same two
 * faults. Every other parameter goes to the user's optimizer untouched, and all state (moments,
 * momentum, update counts) stays in it, so the user's optimizer object remains the one source of
 * truth.
 *
 * <p>The learning-rate tracker of a born parameter is asked at the global position ({@code birth +
 * own count}), so a schedule continues where the rest of the model is rather than restarting.
 */
public final class BirthAwareOptimizer extends Optimizer {

  private final Optimizer delegate;
  private final boolean sgd;
  private final boolean decoupledDecay;

  /** The user's optimizer's tracker field, read per update: a stand-in may be put in it later. */
  private final Field learningRate;

  private final float beta1;
  private final float beta2;
  private final float epsilon;
  private final float momentum;
  private final Map<String, Map<Device, NDArray>> means;
  private final Map<String, Map<Device, NDArray>> variances;
  private final Map<String, Map<Device, NDArray>> momentumStates;
  private final Map<String, Integer> counts;

  // DJL's optimizers set these once, in their constructor: read once here, not per update.
  private final int beginNumUpdate;
  private final float weightDecay;
  private final float rescaleGrad;
  private final float clipGrad;

  /** Parameter id to the global update count when it was added. */
  private final IdMarks<Integer> births = new IdMarks<>();

  /**
   * The furthest position a born parameter has been updated at: kept here because a born parameter
   * that a later surgery removes takes its mark and count with it.
   */
  private final AtomicInteger furthestBorn = new AtomicInteger();

  private BirthAwareOptimizer(Optimizer delegate) {
    super(new NoSettings());
    this.delegate = delegate;
    this.sgd = delegate.getClass() == Sgd.class;
    this.decoupledDecay = delegate.getClass() == AdamW.class;
    if (sgd) {
      DjlInternals.SgdFields fields = DjlInternals.sgdFields();
      this.learningRate = fields.learningRateTracker();
      this.momentum = (Float) DjlInternals.read(fields.momentum(), delegate);
      this.momentumStates = stateMap(fields.momentumStates());
      this.beta1 = 0;
      this.beta2 = 0;
      this.epsilon = 0;
      this.means = null;
      this.variances = null;
    } else {
      DjlInternals.AdamFields fields = DjlInternals.adamFields(delegate.getClass());
      this.learningRate = fields.learningRateTracker();
      this.beta1 = (Float) DjlInternals.read(fields.beta1(), delegate);
      this.beta2 = (Float) DjlInternals.read(fields.beta2(), delegate);
      this.epsilon = (Float) DjlInternals.read(fields.epsilon(), delegate);
      this.means = stateMap(fields.means());
      this.variances = stateMap(fields.variances());
      this.momentum = 0;
      this.momentumStates = null;
    }
    this.counts = DjlOptimizers.updateCounts(delegate);
    this.beginNumUpdate = DjlOptimizers.beginNumUpdate(delegate);
    this.weightDecay = DjlOptimizers.weightDecay(delegate);
    this.rescaleGrad = DjlOptimizers.rescaleGrad(delegate);
    this.clipGrad = DjlOptimizers.clipGrad(delegate);
  }

  /**
   * Tells whether born parameters of this optimizer need a stand-in: only DJL's own Adam, AdamW and
   * Sgd, whose update depends on the global step count (a subclass may override the update, so it
   * is left alone).
   *
   * @param optimizer an optimizer
   * @return true for exactly {@link Adam}, {@link AdamW} and {@link Sgd}
   */
  public static boolean isNeededFor(Optimizer optimizer) {
    Class<?> type = optimizer.getClass();
    return type == Adam.class || type == AdamW.class || type == Sgd.class;
  }

  /**
   * Wraps DJL's Adam, AdamW or Sgd.
   *
   * @param delegate the trainer's optimizer
   * @return a stand-in with no born parameters yet
   * @throws IllegalArgumentException if {@link #isNeededFor(Optimizer)} is false
   */
  public static BirthAwareOptimizer wrap(Optimizer delegate) {
    if (!isNeededFor(delegate)) {
      throw new IllegalArgumentException("not DJL's Adam, AdamW or Sgd: " + delegate.getClass());
    }
    return new BirthAwareOptimizer(delegate);
  }

  /**
   * Returns the model's position in training, in optimizer steps, as a parameter born now must
   * start from: the furthest any parameter has got. DJL's global count alone lags behind it where
   * only born parameters train (a frozen backbone: their own counts restart at birth), and before
   * the first step of a resumed run, where it is 0 until then although the optimizer was told to
   * begin at {@code beginNumUpdate}.
   *
   * @return the global step a parameter born now continues from
   */
  public int globalStep() {
    // A born parameter's position (birth + own updates) is in furthestBorn once it was updated,
    // and its birth alone was this same maximum when it was born: the three never decrease, so
    // no walk over the birth marks is needed.
    int step = Math.max(DjlOptimizers.globalUpdateCount(delegate), beginNumUpdate);
    return Math.max(step, furthestBorn.get());
  }

  /**
   * Returns the user's optimizer, which holds all state.
   *
   * @return the wrapped optimizer
   */
  public Optimizer getDelegate() {
    return delegate;
  }

  /**
   * Returns each born parameter's id mapped to the global update count when it was added.
   *
   * @return the marks, which surgery sets and its rollback puts back
   */
  public IdMarks<Integer> births() {
    return births;
  }

  /**
   * Returns the global step at which a parameter was added, or null for a parameter the user's
   * optimizer updates.
   *
   * @param parameterId the parameter id
   * @return the birth step, or null
   */
  public Integer birthOf(String parameterId) {
    return births.get(parameterId);
  }

  /** {@inheritDoc} */
  @Override
  public void update(String parameterId, NDArray weight, NDArray grad) {
    Integer birth = births.get(parameterId);
    if (birth == null) {
      delegate.update(parameterId, weight, grad);
      return;
    }
    // Count as DJL would (per-id and global counts stay what they would be without the stand-in).
    DjlOptimizers.countUpdate(delegate, parameterId);
    // DJL starts a new id's count at beginNumUpdate + 1; what follows uses the updates this
    // parameter has had itself, as a fresh optimizer started at step 0 would.
    int own = counts.get(parameterId) - beginNumUpdate;
    // The schedule continues at the model's position: birth + the updates since birth.
    int position = birth + own;
    furthestBorn.accumulateAndGet(position, Math::max);
    float newLearningRate =
        ((ParameterTracker) DjlInternals.read(learningRate, delegate))
            .getNewValue(parameterId, position);
    Function<String, NDArray> zeros = k -> weight.zerosLike();
    Device device = weight.getDevice();
    if (sgd) {
      // The same kernel and arguments as DJL's Sgd.update, with the learning rate of that position.
      NDList inputs =
          momentum != 0f
              ? new NDList(
                  weight,
                  grad,
                  DjlOptimizers.stateArray(delegate, momentumStates, parameterId, device, zeros))
              : new NDList(weight, grad);
      weight
          .getNDArrayInternal()
          .sgdUpdate(
              inputs,
              new NDList(weight),
              newLearningRate,
              weightDecay,
              rescaleGrad,
              clipGrad,
              momentum,
              true);
      return;
    }
    double coef1 = 1.0 - Math.pow(beta1, own);
    double coef2 = 1.0 - Math.pow(beta2, own);
    float learningRateBiasCorrection = (float) (newLearningRate * Math.sqrt(coef2) / coef1);
    if (!Float.isFinite(learningRateBiasCorrection) || !Float.isFinite(weightDecay)) {
      throw new IllegalArgumentException("learning rate or weight decay is nan or infinite");
    }
    NDList inputs =
        new NDList(
            weight,
            grad,
            DjlOptimizers.stateArray(delegate, means, parameterId, device, zeros),
            DjlOptimizers.stateArray(delegate, variances, parameterId, device, zeros));
    // The same kernel and arguments as DJL's own update of a fresh optimizer at step `own`.
    weight
        .getNDArrayInternal()
        .adamUpdate(
            inputs,
            new NDList(weight),
            newLearningRate,
            learningRateBiasCorrection,
            weightDecay,
            rescaleGrad,
            clipGrad,
            beta1,
            beta2,
            epsilon,
            true,
            decoupledDecay);
  }

  @SuppressWarnings("unchecked")
  private Map<String, Map<Device, NDArray>> stateMap(Field field) {
    return (Map<String, Map<Device, NDArray>>) DjlInternals.read(field, delegate);
  }

  /** The base class needs a builder; the stand-in's own settings are never read. */
  private static final class NoSettings extends OptimizerBuilder<NoSettings> {
    @Override
    protected NoSettings self() {
      return this;
    }
  }
}
