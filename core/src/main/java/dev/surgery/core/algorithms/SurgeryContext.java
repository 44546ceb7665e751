package dev.surgery.core.algorithms;

import ai.djl.nn.Block;
import ai.djl.training.Trainer;
import java.util.List;
import java.util.Objects;

/**
 * What an {@link Algorithm} applies to: the model's root block, the live trainers that train it
 * (empty before training or in model-only mode), and where training stands.
 *
 * @param model the root block; never replaced itself
 * @param trainers the trainers whose parameter stores and optimizers must follow the change
 * @param completedEpochs training epochs completed so far (0 before training)
 * @param totalEpochs the planned number of epochs, or 0 when unknown
 */
public record SurgeryContext(
    Block model, List<Trainer> trainers, int completedEpochs, int totalEpochs) {

  /**
   * Validates and copies the trainer list.
   *
   * @param model the root block; never replaced itself
   * @param trainers the trainers whose parameter stores and optimizers must follow the change
   * @param completedEpochs training epochs completed so far (0 before training)
   * @param totalEpochs the planned number of epochs, or 0 when unknown
   */
  public SurgeryContext {
    if (model == null) {
      throw new IllegalArgumentException("model must not be null");
    }
    if (trainers != null && trainers.stream().anyMatch(Objects::isNull)) {
      throw new IllegalArgumentException("trainers must not hold null, got " + trainers);
    }
    trainers = trainers == null ? List.of() : List.copyOf(trainers);
    if (completedEpochs < 0 || totalEpochs < 0) {
      throw new IllegalArgumentException(
          "epochs must be >= 0, got completedEpochs="
              + completedEpochs
              + ", totalEpochs="
              + totalEpochs);
    }
  }

  /**
   * A context for structural surgery on a model that is not training.
   *
   * @param model the root block
   * @return the context
   */
  public static SurgeryContext of(Block model) {
    return new SurgeryContext(model, List.of(), 0, 0);
  }

  /**
   * A context for live surgery during training.
   *
   * @param model the root block
   * @param trainer the live trainer
   * @param completedEpochs epochs completed so far
   * @param totalEpochs the planned number of epochs, or 0 when unknown
   * @return the context
   * @throws IllegalArgumentException if the model or the trainer is null (without a trainer, use
   *     {@link #of})
   */
  public static SurgeryContext live(
      Block model, Trainer trainer, int completedEpochs, int totalEpochs) {
    if (trainer == null) {
      throw new IllegalArgumentException(
          "trainer must not be null (for surgery on a model that is not training use"
              + " SurgeryContext.of)");
    }
    return new SurgeryContext(model, List.of(trainer), completedEpochs, totalEpochs);
  }
}
