package dev.surgery.core;

import ai.djl.training.tracker.ParameterTracker;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Wraps an Adam/AdamW learning-rate tracker so that parameters added during training get the bias
 * correction of their own step count.
 *
 * <p>DJL's Adam computes the bias correction from one global step count {@code t}. A parameter born
 * at global step {@code t0} starts with zero moments, so with the global correction its first
 * updates are about 3x to 6.5x the learning rate. This tracker multiplies the learning rate of such
 * a parameter by {@code c(k) / c(t)}, where {@code c(n) = sqrt(1 - beta2^n) / (1 - beta1^n)} and
 * {@code k = t - t0}, which is exactly the step a fresh optimizer would take. Once the two
 * corrections agree the parameter is forgotten. (AdamW's decoupled weight decay also reads the
 * learning rate and is scaled by the same factor for those first steps.)
 */
public final class BirthStepTracker implements ParameterTracker {

  /** Beyond this relative difference between the two corrections a parameter stays tracked. */
  private static final double SETTLED = 1e-7;

  private final ParameterTracker delegate;
  private final double beta1;
  private final double beta2;
  private final Map<String, Integer> births = new ConcurrentHashMap<>();

  BirthStepTracker(ParameterTracker delegate, float beta1, float beta2) {
    this.delegate = delegate;
    this.beta1 = beta1;
    this.beta2 = beta2;
  }

  /**
   * Returns the tracker this one wraps.
   *
   * @return the user's learning-rate tracker
   */
  public ParameterTracker getDelegate() {
    return delegate;
  }

  /** {@inheritDoc} */
  @Override
  public float getNewValue(String parameterId, int numUpdate) {
    float base = delegate.getNewValue(parameterId, numUpdate);
    Integer born = births.get(parameterId);
    if (born == null) {
      return base;
    }
    int own = Math.max(1, numUpdate - born);
    double factor = correction(own) / correction(numUpdate);
    if (Math.abs(factor - 1) < SETTLED) {
      births.remove(parameterId);
    }
    return (float) (base * factor);
  }

  private double correction(int steps) {
    return Math.sqrt(1 - Math.pow(beta2, steps)) / (1 - Math.pow(beta1, steps));
  }

  /** Marks a parameter as born at the given global step count; returns the previous mark. */
  Integer recordBirth(String parameterId, int globalStep) {
    return births.put(parameterId, globalStep);
  }

  /** Removes and returns a parameter's birth mark. */
  Integer forget(String parameterId) {
    return births.remove(parameterId);
  }

  /** Restores a birth mark (rollback). */
  void restore(String parameterId, Integer birth) {
    if (birth == null) {
      births.remove(parameterId);
    } else {
      births.put(parameterId, birth);
    }
  }

  /**
   * Returns the global step at which a parameter was added, if it is still being corrected.
   *
   * @param parameterId the parameter id
   * @return the birth step, or null
   */
  public Integer birthOf(String parameterId) {
    return births.get(parameterId);
  }
}
