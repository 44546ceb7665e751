package dev.surgery.testplugin;

import dev.surgery.core.algorithms.AlgorithmProvider;
import dev.surgery.core.algorithms.AlgorithmSpec;
import java.util.List;

/** A second jar's provider that claims the name {@code recording} again. */
public final class DuplicatePluginProvider implements AlgorithmProvider {

  @Override
  public List<AlgorithmSpec> algorithms() {
    return List.of(
        AlgorithmSpec.of(RecordingAlgorithm.NAME, List.of(), values -> new RecordingAlgorithm()));
  }
}
