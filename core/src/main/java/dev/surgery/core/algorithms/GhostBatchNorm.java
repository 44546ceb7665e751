package dev.surgery.core.algorithms;

import ai.djl.nn.norm.BatchNorm;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.layers.GhostBatchNormBlock;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * Ghost batch normalization ({@code ghost_batchnorm}): every {@link BatchNorm} becomes a {@link
 * GhostBatchNormBlock} that normalizes chunks of {@code ghost_batch_size} samples separately during
 * training and equals the batch norm in evaluation.
 *
 * <p>The replacement keeps the batch norm's parameters (weights, running statistics, optimizer
 * state, checkpoint layout). Unlike Composer, a batch smaller than the ghost size is normalized as
 * one chunk instead of failing, and a chunk is never one sample of one value per channel (which
 * PyTorch cannot normalize in training: see {@link GhostBatchNormBlock}). Works before and during
 * training; idempotent (a ghost batch norm is not a {@code BatchNorm}, so it is never wrapped
 * again). It composes with the other algorithms in either order ({@link Composition}).
 */
public final class GhostBatchNorm extends AbstractSurgeryAlgorithm {

  /** The config name. */
  public static final String NAME = "ghost_batchnorm";

  /** {@code ghost_batch_size}: samples per normalization chunk in training. */
  public static final HyperParameter<Integer> GHOST_BATCH_SIZE =
      HyperParameter.ofInt(
          "ghost_batch_size", 32, 1, null, "samples per chunk normalized separately in training");

  /** The declaration used by the configuration layer. */
  public static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(NAME, List.of(GHOST_BATCH_SIZE), GhostBatchNorm::new);

  private GhostBatchNorm(HyperParameterValues values) {
    super(values);
  }

  /** {@return a builder with Composer's defaults} */
  public static Builder builder() {
    return new Builder();
  }

  /** {@inheritDoc} */
  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    return policy(
        BlockMatcher.ofClass(BatchNorm.class),
        (block, index) -> GhostBatchNormBlock.from((BatchNorm) block, value(GHOST_BATCH_SIZE)));
  }

  /** Builds {@link GhostBatchNorm}. */
  public static final class Builder extends AlgorithmBuilder<Builder, GhostBatchNorm> {

    Builder() {
      super(SPEC);
    }

    /**
     * Sets the number of samples per chunk in training.
     *
     * @param ghostBatchSize at least 1
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optGhostBatchSize(int ghostBatchSize) {
      return set(GHOST_BATCH_SIZE, ghostBatchSize);
    }
  }
}
