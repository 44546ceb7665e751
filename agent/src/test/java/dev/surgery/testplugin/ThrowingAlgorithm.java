package dev.surgery.testplugin;

import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

/**
 * A broken plugin: at the second {@code BATCH_END} it throws from {@code match} or from {@code
 * apply}, as the system property {@code surgery.test.throw} says ({@code match} or {@code apply}).
 */
public final class ThrowingAlgorithm implements Algorithm {

  /** The config name. */
  public static final String NAME = "throwing";

  /** The message of what it throws. */
  public static final String MESSAGE = "THROWING-PLUGIN-FAILURE";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Map<String, Object> hyperparameters() {
    return Map.of();
  }

  @Override
  public Set<Event> events() {
    return EnumSet.of(Event.BATCH_END);
  }

  @Override
  public boolean match(Event event, State state) {
    if (state.globalSteps() != 2) {
      return false;
    }
    if ("match".equals(System.getProperty("surgery.test.throw"))) {
      throw new IllegalStateException(MESSAGE + " in match");
    }
    return true;
  }

  @Override
  public SurgeryChanges apply(Event event, State state) {
    throw new IllegalStateException(MESSAGE + " in apply");
  }

  @Override
  public SurgeryChanges apply(SurgeryContext context) {
    throw new IllegalStateException(MESSAGE + " in apply");
  }
}
