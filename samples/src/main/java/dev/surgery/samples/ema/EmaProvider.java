package dev.surgery.samples.ema;

import dev.surgery.core.algorithms.AlgorithmProvider;
import dev.surgery.core.algorithms.AlgorithmSpec;
import java.util.List;

/** Adds {@code ema} to the algorithms YAML configs can name (a {@code ServiceLoader} service). */
public final class EmaProvider implements AlgorithmProvider {

  /** Creates the provider; called by {@link java.util.ServiceLoader}. */
  public EmaProvider() {}

  /**
   * Returns the EMA's spec.
   *
   * @return {@link Ema#SPEC}
   */
  @Override
  public List<AlgorithmSpec> algorithms() {
    return List.of(Ema.SPEC);
  }
}
