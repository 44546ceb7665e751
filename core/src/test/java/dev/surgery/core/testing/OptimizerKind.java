package dev.surgery.core.testing;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntFunction;

/**
 * The optimizers the exactness oracle runs, each built fresh with the same settings on every call
 * (the born-parameter oracle is a fresh optimizer of the same kind). DJL's Nag, RmsProp, Adagrad
 * and Adadelta are absent: the PyTorch engine does not run them (see {@code
 * UnsupportedOptimizersTest}).
 */
public enum OptimizerKind {
  /** Plain SGD. */
  SGD(
      begin ->
          Optimizer.sgd()
              .setLearningRateTracker(Tracker.fixed(0.05f))
              .optBeginNumUpdate(begin)
              .build()),
  /** SGD with momentum and weight decay. */
  SGD_MOMENTUM(
      begin ->
          Optimizer.sgd()
              .setLearningRateTracker(Tracker.fixed(0.05f))
              .optMomentum(0.9f)
              .optWeightDecays(1e-3f)
              .optBeginNumUpdate(begin)
              .build()),
  /** Adam with its defaults but a larger learning rate, so moves are visible in a few steps. */
  ADAM(
      begin ->
          Optimizer.adam()
              .optLearningRateTracker(Tracker.fixed(0.01f))
              .optBeginNumUpdate(begin)
              .build()),
  /** AdamW with decoupled weight decay. */
  ADAMW(
      begin ->
          Optimizer.adamW()
              .optLearningRateTracker(Tracker.fixed(0.01f))
              .optWeightDecays(0.05f)
              .optBeginNumUpdate(begin)
              .build()),
  /**
   * Adam with a learning rate per parameter id ({@link RatesById}): a parameter that continues
   * under a new id (new {@code Parameter}s around its arrays, a 1:1 copy) must keep its own rate.
   */
  ADAM_RATE_PER_ID(
      begin ->
          Optimizer.adam()
              .optLearningRateTracker(RatesById.TRACKER)
              .optBeginNumUpdate(begin)
              .build()),
  /** SGD with momentum and a learning rate per parameter id ({@link RatesById}). */
  SGD_MOMENTUM_RATE_PER_ID(
      begin ->
          Optimizer.sgd()
              .setLearningRateTracker(RatesById.TRACKER)
              .optMomentum(0.9f)
              .optBeginNumUpdate(begin)
              .build()),
  /** A user-written optimizer: signed momentum, its state in a map like DJL's own. */
  USER(begin -> new SignMomentum(0.02f, 0.8f, begin));

  private final IntFunction<Optimizer> factory;

  OptimizerKind(IntFunction<Optimizer> factory) {
    this.factory = factory;
  }

  /**
   * Builds a fresh optimizer of this kind, started at step 0.
   *
   * @return a new optimizer with this kind's settings
   */
  public Optimizer create() {
    return factory.apply(0);
  }

  /**
   * Builds an optimizer of this kind resumed at a step count ({@code optBeginNumUpdate}), as a job
   * resuming from a checkpoint does: DJL saves no optimizer state.
   *
   * @param step the step count to resume at
   * @return a new optimizer with this kind's settings
   */
  public Optimizer resumed(int step) {
    return factory.apply(step);
  }

  /**
   * A user-written {@link Optimizer}: momentum of the gradient, step of the momentum's sign. Its
   * state lives in a {@code Map<String, Map<Device, NDArray>>} field as DJL's optimizers keep it.
   */
  public static final class SignMomentum extends Optimizer {
    private final float learningRate;
    private final float momentum;
    private final Map<String, Map<Device, NDArray>> velocities = new ConcurrentHashMap<>();

    SignMomentum(float learningRate, float momentum, int begin) {
      super(new Settings().optBeginNumUpdate(begin));
      this.learningRate = learningRate;
      this.momentum = momentum;
    }

    /** {@inheritDoc} */
    @Override
    public void update(String parameterId, NDArray weight, NDArray grad) {
      updateCount(parameterId);
      NDArray velocity =
          withDefaultState(velocities, parameterId, weight.getDevice(), k -> weight.zerosLike());
      velocity.muli(momentum).addi(grad);
      weight.subi(velocity.sign().mul(learningRate));
      if (weight.hasGradient()) {
        try (NDArray accumulated = weight.getGradient()) {
          accumulated.subi(accumulated); // as DJL's kernels do: backward accumulates otherwise
        }
      }
    }

    private static final class Settings extends OptimizerBuilder<Settings> {
      @Override
      protected Settings self() {
        return this;
      }
    }
  }
}
