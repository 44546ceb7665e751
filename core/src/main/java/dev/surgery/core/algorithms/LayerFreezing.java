package dev.surgery.core.algorithms;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.internal.DjlInternals;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Layer freezing ({@code layer_freezing}): applied at epoch ends during training, it freezes the
 * first layers of the model in forward order, more of them as training goes on.
 *
 * <p>Layers are the leaf blocks that own parameters, in traversal order (pre-order over the block
 * tree); the last one is never frozen. With {@code t} the completed fraction of the planned epochs,
 * the frozen fraction is {@code 0} while {@code t <= freeze_start} and {@code freeze_level * (t -
 * freeze_start) / (1 - freeze_start)} after, and the first {@code floor(fraction * (layers - 1))}
 * layers are frozen (Composer's schedule). Freezing stops the parameters' gradients and updates
 * ({@link Parameter#freeze}); unlike Composer, their optimizer state (Adam moments, momentum) and
 * update counts are also removed and closed, so nothing stale is kept. Layers are never unfrozen,
 * and applying it again at the same point freezes nothing more.
 */
public final class LayerFreezing implements Algorithm {

  /** The config name. */
  public static final String NAME = "layer_freezing";

  /** {@code freeze_start}: the fraction of training after which freezing begins. */
  public static final HyperParameter FREEZE_START =
      HyperParameter.ofFloat(
          "freeze_start", 0.5, 0.0, false, 1.0, "fraction of training after which layers freeze");

  /** {@code freeze_level}: the fraction of layers frozen at the end of training. */
  public static final HyperParameter FREEZE_LEVEL =
      HyperParameter.ofFloat(
          "freeze_level", 1.0, 0.0, false, 1.0, "fraction of layers frozen at the end of training");

  /** The declaration used by the configuration layer. */
  public static final AlgorithmSpec SPEC =
      new AlgorithmSpec(
          NAME,
          List.of(FREEZE_START, FREEZE_LEVEL),
          values ->
              builder()
                  .optFreezeStart(((Number) values.get("freeze_start")).doubleValue())
                  .optFreezeLevel(((Number) values.get("freeze_level")).doubleValue())
                  .build());

  private final double freezeStart;
  private final double freezeLevel;

  private LayerFreezing(Builder builder) {
    FREEZE_START.check(builder.freezeStart);
    FREEZE_LEVEL.check(builder.freezeLevel);
    freezeStart = builder.freezeStart;
    freezeLevel = builder.freezeLevel;
  }

  /**
   * Creates a builder with Composer's defaults.
   *
   * @return a builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /** {@inheritDoc} */
  @Override
  public String name() {
    return NAME;
  }

  /** {@inheritDoc} */
  @Override
  public Map<String, Object> hyperparameters() {
    Map<String, Object> map = new LinkedHashMap<>();
    map.put(FREEZE_START.name(), freezeStart);
    map.put(FREEZE_LEVEL.name(), freezeLevel);
    return map;
  }

  /**
   * Returns the fraction of layers to freeze after a completed fraction of training.
   *
   * @param elapsed the completed fraction of training, in [0, 1]
   * @return the fraction of layers frozen
   */
  public double frozenFraction(double elapsed) {
    return elapsed <= freezeStart ? 0 : freezeLevel * (elapsed - freezeStart) / (1 - freezeStart);
  }

  /**
   * Lists the layers freezing works on: leaf blocks with parameters, in traversal order.
   *
   * @param root the model
   * @return block to path
   */
  public static Map<Block, String> layers(Block root) {
    Map<Block, String> layers = new LinkedHashMap<>();
    for (Map.Entry<Block, String> e : BlockPaths.index(root).entrySet()) {
      Block b = e.getKey();
      if (b != root && b.getChildren().isEmpty() && !b.getDirectParameters().isEmpty()) {
        layers.put(b, e.getValue());
      }
    }
    return layers;
  }

  /** {@inheritDoc} */
  @Override
  public boolean needsTotalEpochs() {
    return true;
  }

  /** {@inheritDoc} */
  @Override
  public SurgeryReport apply(SurgeryContext context) {
    long start = System.nanoTime();
    if (context.totalEpochs() <= 0) {
      throw new SurgeryException(
          null, NAME + " needs the planned number of epochs (SurgeryContext.totalEpochs)");
    }
    Block root = context.model();
    long scalars = AbstractSurgeryAlgorithm.countParameterScalars(root);
    // Resolve every optimizer first: a trainer that cannot be handled fails before any change.
    for (Trainer t : context.trainers()) {
      try {
        DjlInternals.optimizer(t);
      } catch (IllegalStateException e) {
        throw new SurgeryException(
            null, NAME + " cannot update this trainer: " + e.getMessage(), e);
      }
    }
    double elapsed = Math.min(1.0, (double) context.completedEpochs() / context.totalEpochs());
    Map<Block, String> layers = layers(root);
    int depth = (int) (frozenFraction(elapsed) * (layers.size() - 1));
    List<SurgeryReport.Change> changes = new ArrayList<>();
    List<Parameter> frozen = new ArrayList<>();
    int i = 0;
    for (Map.Entry<Block, String> layer : layers.entrySet()) {
      if (i++ >= depth) {
        break;
      }
      boolean changed = false;
      for (Parameter p : layer.getKey().getDirectParameters().values()) {
        if (p.requiresGradient()) {
          frozen.add(p);
          changed = true;
        }
      }
      if (changed) {
        String type = BlockPaths.typeName(layer.getKey());
        changes.add(
            new SurgeryReport.Change(BlockPaths.display(layer.getValue()), type, "frozen " + type));
      }
    }
    ModuleSurgery.freezeParameters(frozen, context.trainers());
    return new SurgeryReport(
        NAME, hyperparameters(), changes, scalars, scalars, System.nanoTime() - start);
  }

  @Override
  public String toString() {
    return NAME + hyperparameters();
  }

  /** Builds {@link LayerFreezing}. */
  public static final class Builder {

    private double freezeStart = 0.5;
    private double freezeLevel = 1.0;

    Builder() {}

    /**
     * Sets the fraction of training after which freezing begins.
     *
     * @param freezeStart in [0, 1]
     * @return this builder
     */
    public Builder optFreezeStart(double freezeStart) {
      this.freezeStart = freezeStart;
      return this;
    }

    /**
     * Sets the fraction of layers frozen at the end of training.
     *
     * @param freezeLevel in [0, 1]
     * @return this builder
     */
    public Builder optFreezeLevel(double freezeLevel) {
      this.freezeLevel = freezeLevel;
      return this;
    }

    /**
     * Builds the algorithm.
     *
     * @return the algorithm
     * @throws IllegalArgumentException naming the invalid hyperparameter
     */
    public LayerFreezing build() {
      return new LayerFreezing(this);
    }
  }
}
