package dev.surgery.core.algorithms;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.norm.BatchNorm;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.layers.BatchNormLayer;
import dev.surgery.core.layers.ConvolutionLayer;
import dev.surgery.core.layers.StochasticResidual;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Stochastic depth ({@code stochastic_depth}) for DJL's {@code ResNetV1} residual units: the
 * residual branch of each unit is wrapped in a {@link StochasticResidual}, which drops it while
 * training with the unit's scheduled probability and runs it unchanged in evaluation. The unit's
 * own merge function ({@code relu(branch + shortcut)}) is kept.
 *
 * <p>A residual unit is a {@link ParallelBlock} of two {@link SequentialBlock}s: a branch holding
 * at least one convolution, and a shortcut that is either DJL's {@code identity} lambda or a
 * convolution followed by a batch norm (the shape of every unit {@code ResNetV1} builds, basic or
 * bottleneck). A convolution is a {@link Conv2d} or a {@link ConvolutionLayer} (the project's
 * blurred, weight-standardized, squeeze-excite and factorized convolutions); a batch norm is a
 * {@code BatchNorm} or a {@link BatchNormLayer} (ghost batch norm): units the other algorithms
 * changed are still units, and a new layer joins by implementing the marker. With the {@code
 * linear} distribution the i-th unit in traversal order (from 0, of L) drops with {@code (i + 1) /
 * L * drop_rate}; with {@code uniform} every unit uses {@code drop_rate}. Unlike Composer, a kept
 * branch is scaled by {@code 1 / (1 - p)} in training so that evaluation can use the branch exactly
 * as it is.
 *
 * <p>No parameter changes, so the optimizer is untouched, and the checkpoint layout stays that of
 * the plain model. Works before and during training; a wrapped branch is never wrapped again.
 */
public final class StochasticDepth extends AbstractSurgeryAlgorithm {

  /** The config name. */
  public static final String NAME = "stochastic_depth";

  /** {@code target_layer_name}: which residual units to target. */
  public static final HyperParameter<String> TARGET_LAYER_NAME =
      HyperParameter.ofChoice(
          "target_layer_name",
          "ResNetV1Unit",
          List.of("ResNetV1Unit"),
          "residual units to target (the units of DJL's ResNetV1, basic or bottleneck)");

  /** {@code stochastic_method}: drop the whole batch's branch, or per sample. */
  public static final HyperParameter<String> STOCHASTIC_METHOD =
      HyperParameter.ofChoice(
          "stochastic_method",
          "block",
          List.of("block", "sample"),
          "block: one draw per batch; sample: one draw per sample");

  /** {@code drop_rate}: the (largest) drop probability. */
  public static final HyperParameter<Double> DROP_RATE =
      // 1 is excluded: a branch never kept never trains, yet evaluation runs it at full weight.
      HyperParameter.ofFloat(
          "drop_rate",
          0.2,
          0.0,
          false,
          1.0,
          true,
          "drop probability (of the last unit when linear)");

  /** {@code drop_distribution}: how the rate grows with depth. */
  public static final HyperParameter<String> DROP_DISTRIBUTION =
      HyperParameter.ofChoice(
          "drop_distribution",
          "linear",
          List.of("uniform", "linear"),
          "uniform: every unit drops with drop_rate; linear: rate grows with depth");

  /** The declaration used by the configuration layer. */
  public static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(
          NAME,
          List.of(TARGET_LAYER_NAME, STOCHASTIC_METHOD, DROP_RATE, DROP_DISTRIBUTION),
          StochasticDepth::new);

  private StochasticDepth(HyperParameterValues values) {
    super(values);
  }

  /**
   * {@return a builder with Composer's defaults (drop_rate 0.2, linear, per block), targeting DJL's
   * {@code ResNetV1Unit} where Composer targets torchvision's {@code ResNetBottleneck}}
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Finds the residual branches of the residual units under {@code root}, in traversal order.
   *
   * @param root the model
   * @return the branches not wrapped yet
   */
  public static List<Block> residualBranches(Block root) {
    List<Block> branches = new ArrayList<>();
    for (Block branch : branchesByDepth(BlockPaths.index(root))) {
      if (!(branch instanceof StochasticResidual)) {
        branches.add(branch);
      }
    }
    return branches;
  }

  /**
   * The branch of every residual unit in traversal order, those an earlier entry wrapped included
   * (as their {@link StochasticResidual}): a unit's depth, and so its linear rate, counts them.
   */
  private static List<Block> branchesByDepth(Map<Block, String> paths) {
    List<Block> branches = new ArrayList<>();
    for (Block b : paths.keySet()) {
      if (b instanceof ParallelBlock unit && isResidualUnit(unit)) {
        branches.add(unit.getChildren().valueAt(0));
      }
    }
    return branches;
  }

  private static boolean isResidualUnit(ParallelBlock unit) {
    BlockList children = unit.getChildren();
    Block first = children.size() == 2 ? children.valueAt(0) : null;
    if (first instanceof StochasticResidual wrapped) {
      first = wrapped.getBranch();
    }
    if (!(first instanceof SequentialBlock branch)
        || !(children.valueAt(1) instanceof SequentialBlock shortcut)) {
      return false;
    }
    boolean hasConv =
        branch.getChildren().values().stream().anyMatch(StochasticDepth::isConvolution);
    List<Block> cut = shortcut.getChildren().values();
    boolean identity =
        cut.size() == 1 && cut.get(0) instanceof LambdaBlock l && "identity".equals(l.getName());
    boolean projection = cut.size() == 2 && isConvolution(cut.get(0)) && isBatchNorm(cut.get(1));
    return hasConv && (identity || projection) && joinsBySum(unit);
  }

  /**
   * Whether a unit joins its two branches as a residual unit does, {@code relu(branch + shortcut)}
   * or {@code branch + shortcut}: its join is run on two small fixed arrays (no random draw) and
   * must give one of those. A block of the same shape that concatenates or multiplies the branches
   * is no residual unit, and dropping its branch would change what it computes.
   */
  private static boolean joinsBySum(ParallelBlock unit) {
    try (NDManager manager = NDManager.newBaseManager()) {
      NDArray branch = manager.arange(0f, 24f).reshape(2, 3, 2, 2).sub(11.5f).mul(0.37f);
      NDArray shortcut = manager.arange(0f, 24f).reshape(2, 3, 2, 2).mul(-0.21f).add(1.3f);
      NDList joined =
          DjlBlocks.parallelJoin(unit).apply(List.of(new NDList(branch), new NDList(shortcut)));
      if (joined == null || joined.size() != 1) {
        return false;
      }
      NDArray out = joined.singletonOrThrow();
      NDArray sum = branch.add(shortcut);
      return out.getShape().equals(sum.getShape())
          && (out.allClose(sum, 1e-6, 1e-6, false)
              || out.allClose(ai.djl.nn.Activation.relu(sum), 1e-6, 1e-6, false));
    } catch (RuntimeException e) {
      return false; // a join that cannot take two arrays of one shape: no residual unit
    }
  }

  /**
   * A convolution as the other algorithms leave it: DJL's, or a layer marked as one (blurred,
   * weight-standardized, gated by squeeze-excite, factorized), so that the algorithms compose in
   * any order.
   */
  private static boolean isConvolution(Block block) {
    return block instanceof Conv2d || block instanceof ConvolutionLayer;
  }

  private static boolean isBatchNorm(Block block) {
    return block instanceof BatchNorm || block instanceof BatchNormLayer;
  }

  /**
   * Returns the drop probability of the i-th of {@code count} units.
   *
   * @param index the unit's position in traversal order, from 0
   * @param count the number of units
   * @return its drop probability
   */
  double rateOf(int index, int count) {
    // In double, as given: a float64 model scales a kept branch by 1 / (1 - rate) of this value.
    return "linear".equals(value(DROP_DISTRIBUTION))
        ? value(DROP_RATE) * (index + 1) / count
        : value(DROP_RATE);
  }

  /** {@inheritDoc} */
  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    // Rates by depth among all units: one an earlier entry wrapped keeps its place (and rate), so
    // a second entry over the rest gives each unit the rate a single entry would have.
    // One index of the tree for both looks: the units by depth and the branches' other places.
    Map<Block, String> paths = BlockPaths.index(context.model());
    List<Block> branches = branchesByDepth(paths);
    Map<Block, Double> rates = new IdentityHashMap<>();
    for (int i = 0; i < branches.size(); i++) {
      if (!(branches.get(i) instanceof StochasticResidual)) {
        // A branch several units share gets one wrapper: at the rate of its first unit, as a unit
        // held at several places counts at its first (the last unit's rate overwrote it before).
        rates.putIfAbsent(branches.get(i), rateOf(i, branches.size()));
      }
    }
    leaveAloneBranchesHeldOutsideUnits(paths, rates);
    StochasticResidual.Mode mode =
        StochasticResidual.Mode.valueOf(value(STOCHASTIC_METHOD).toUpperCase(Locale.ROOT));
    return policy(
        BlockMatcher.byBlock(rates::containsKey),
        (block, index) -> new StochasticResidual(block, mode, rates.get(block)));
  }

  /**
   * Takes out of {@code rates} the branches also held at a place where they are no residual unit's
   * branch (tied: the same block run on its own too), and warns of each. A replacement goes to
   * every place of its block, and dropped there, with no shortcut beside it, the block's output
   * would be zeros (an outside probe: 18 of 20 training forwards at drop_rate 0.9).
   */
  private void leaveAloneBranchesHeldOutsideUnits(
      Map<Block, String> paths, Map<Block, Double> rates) {
    if (rates.isEmpty()) {
      return;
    }
    Map<Block, String> elsewhere = new IdentityHashMap<>();
    for (Map.Entry<Block, String> e : paths.entrySet()) {
      Block parent = e.getKey();
      BlockList children = BlockPaths.children(parent);
      for (int i = 0; i < children.size(); i++) {
        Block child = children.valueAt(i);
        if (rates.containsKey(child)
            && !elsewhere.containsKey(child)
            && !(i == 0 && parent instanceof ParallelBlock unit && isResidualUnit(unit))) {
          String at = e.getValue().isEmpty() ? "" : e.getValue() + "/";
          elsewhere.put(child, at + children.keyAt(i));
        }
      }
    }
    for (Map.Entry<Block, String> e : elsewhere.entrySet()) {
      rates.remove(e.getKey());
      warn(
          name()
              + ": the residual branch "
              + BlockPaths.display(paths.get(e.getKey()))
              + " is also held at "
              + e.getValue()
              + ", where it is no residual unit's branch; it is left unwrapped, since one block"
              + " changes at every place and dropped there it would put zeros in place of its"
              + " output");
    }
  }

  @Override
  protected String whyNothingChanged(Block root) {
    // The one setting, target_layer_name, names a kind of block: say when the model has none.
    return branchesByDepth(BlockPaths.index(root)).isEmpty()
        ? "the model has no ResNetV1Unit (DJL ResNetV1's residual unit: a ParallelBlock joining a"
            + " convolution branch with an identity or a 1 x 1 convolution + BatchNorm shortcut),"
            + " the only block stochastic depth wraps"
        : null;
  }

  /** Builds {@link StochasticDepth}. */
  public static final class Builder extends AlgorithmBuilder<Builder, StochasticDepth> {

    Builder() {
      super(SPEC);
    }

    /**
     * Sets which residual units to target; only {@code ResNetV1Unit} exists.
     *
     * @param name the target name
     * @return this builder
     * @throws IllegalArgumentException for a value not among the choices, naming them
     */
    public Builder optTargetLayerName(String name) {
      return set(TARGET_LAYER_NAME, name);
    }

    /**
     * Sets how the branch is dropped: {@code block} (per batch) or {@code sample}.
     *
     * @param method the method
     * @return this builder
     * @throws IllegalArgumentException for a value not among the choices, naming them
     */
    public Builder optStochasticMethod(String method) {
      return set(STOCHASTIC_METHOD, method);
    }

    /**
     * Sets the drop probability (of the deepest unit with the linear distribution).
     *
     * @param dropRate in [0, 1)
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optDropRate(double dropRate) {
      return set(DROP_RATE, dropRate);
    }

    /**
     * Sets how the probability depends on depth: {@code uniform} or {@code linear}.
     *
     * @param distribution the distribution
     * @return this builder
     * @throws IllegalArgumentException for a value not among the choices, naming them
     */
    public Builder optDropDistribution(String distribution) {
      return set(DROP_DISTRIBUTION, distribution);
    }
  }
}
