package dev.surgery.testplugin;

import dev.surgery.core.algorithms.AlgorithmProvider;
import dev.surgery.core.algorithms.AlgorithmSpec;
import java.util.List;

/** Provides {@code recording} and {@code throwing}. */
public final class TestPluginProvider implements AlgorithmProvider {

  @Override
  public List<AlgorithmSpec> algorithms() {
    return List.of(
        AlgorithmSpec.of(RecordingAlgorithm.NAME, List.of(), values -> new RecordingAlgorithm()),
        AlgorithmSpec.of(ThrowingAlgorithm.NAME, List.of(), values -> new ThrowingAlgorithm()));
  }
}
