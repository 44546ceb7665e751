package dev.surgery.testplugin;

import dev.surgery.core.algorithms.AlgorithmProvider;
import dev.surgery.core.algorithms.AlgorithmSpec;
import java.util.List;

/**
 * A provider whose static initializer throws, so that {@link java.util.ServiceLoader} cannot make
 * it: the agent's refusal must name the jar and {@link #MESSAGE}, not a bare {@code
 * ExceptionInInitializerError}. Only the plugin jar's class loader ever initializes it.
 */
public final class FailingInitPluginProvider implements AlgorithmProvider {

  /** What the static initializer throws. */
  public static final String MESSAGE = "boom in the provider's static initializer";

  static {
    if (Boolean.parseBoolean("true")) {
      throw new IllegalStateException(MESSAGE);
    }
  }

  @Override
  public List<AlgorithmSpec> algorithms() {
    return List.of();
  }
}
