package dev.surgery.trainer;

import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListenerAdapter;
import java.nio.file.Path;

/**
 * Applies scheduled surgery algorithms to a model while a DJL {@link Trainer} trains it (work in
 * progress: this contract is final, the body lands with the trainer-integration issue).
 */
public final class SurgeryListener extends TrainingListenerAdapter {

  private SurgeryListener() {}

  /**
   * Builds a listener from a YAML config file.
   *
   * @param config the YAML file
   * @return the listener
   * @throws dev.surgery.trainer.config.SurgeryConfigException listing every problem in the file
   */
  public static SurgeryListener fromYaml(Path config) {
    throw new UnsupportedOperationException("not yet implemented");
  }

  /**
   * Runs the surgery that was due before training but needed an initialized model (for example
   * BlurPool with {@code min_channels}). Call it right after {@code trainer.initialize(shapes)};
   * the agent calls it from its {@code Trainer.initialize} hook.
   *
   * @param trainer the trainer that was just initialized
   */
  public void onInitialized(Trainer trainer) {
    throw new UnsupportedOperationException("not yet implemented");
  }
}
