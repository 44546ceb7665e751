package dev.surgery.core.testing;

import ai.djl.nn.Parameter;
import ai.djl.training.tracker.ParameterTracker;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A learning rate per parameter id, as DJL's {@code FixedPerVarTracker} gives one: the kind of
 * schedule a user builds from the ids of an initialized model (layer-wise rates, a smaller rate for
 * a pretrained backbone). The oracle gives the subject's parameters and their control twins the
 * same rate by position; any other id (a parameter a surgery creates) gets {@link #DEFAULT}, as a
 * fresh optimizer with this tracker would give it.
 */
public final class RatesById {

  /** The rate of an id that was never assigned one. */
  public static final float DEFAULT = 0.01f;

  private static final Map<String, Float> RATES = new ConcurrentHashMap<>();

  /** The tracker every optimizer of a per-id kind shares (ids are unique across models). */
  public static final ParameterTracker TRACKER =
      (parameterId, numUpdate) -> RATES.getOrDefault(parameterId, DEFAULT);

  private RatesById() {}

  /**
   * Gives each parameter its own rate by position (none of them {@link #DEFAULT}), so that twins
   * listed in the same order get the same rates.
   *
   * @param parameters the parameters, in order
   */
  public static void assign(List<Parameter> parameters) {
    for (int i = 0; i < parameters.size(); i++) {
      RATES.put(parameters.get(i).getId(), 0.002f + 0.0015f * (i % 5));
    }
  }
}
