package dev.surgery.core.algorithms;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.SurgeryLock;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.Targets;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.LinkedIdentityMap;
import dev.surgery.core.layers.GhostBatchNormBlock;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.slf4j.LoggerFactory;

/**
 * Layer freezing ({@code layer_freezing}): applied at epoch ends during training, it freezes the
 * first layers of the model in forward order, more of them as training goes on.
 *
 * <p>Layers are the leaf blocks that own parameters, in traversal order (pre-order over the block
 * tree); the last one is never frozen. With {@code t} the completed fraction of the planned epochs,
 * the frozen fraction is {@code 0} while {@code t <= freeze_start} and {@code freeze_level * (t -
 * freeze_start) / (1 - freeze_start)} after, and the first {@code floor(fraction * (layers - 1))}
 * layers are frozen (Composer's schedule; a product short of a whole number by rounding alone
 * counts as that number). Freezing stops the parameters' gradients and updates ({@link
 * Parameter#freeze}); unlike Composer, their optimizer state (Adam moments, momentum) and update
 * counts are also removed and closed, so nothing stale is kept. Layers are never unfrozen, and
 * applying it again at the same point freezes nothing more.
 *
 * <p>With the other algorithms, in either order:
 *
 * <ul>
 *   <li>After freezing, an algorithm that replaces a frozen layer leaves its replacement frozen
 *       ({@link AbstractSurgeryAlgorithm}): weight standardization, BlurPool, ghost batch norm and
 *       squeeze-excite's wrapped convolution adopt the layer's own frozen parameters, and new
 *       parameters built for a frozen layer are born frozen: Factorize's two layers (started from
 *       the frozen weight's truncated SVD) and the gate squeeze-excite puts on a frozen
 *       convolution. The trainer registers them and never updates them. Replacements of trainable
 *       layers train.
 *   <li>Freezing after Factorize or squeeze-excite counts their layers as Composer counts the
 *       PyTorch modules: the two layers of a factorized layer are two layers (the frozen prefix may
 *       end between them), a gate's two linears two more, each frozen as a whole.
 * </ul>
 */
public final class LayerFreezing extends AbstractSurgeryAlgorithm {

  /** The config name. */
  public static final String NAME = "layer_freezing";

  /** {@code freeze_start}: the fraction of training after which freezing begins. */
  public static final HyperParameter<Double> FREEZE_START =
      HyperParameter.ofFloat(
          "freeze_start", 0.5, 0.0, false, 1.0, "fraction of training after which layers freeze");

  /** {@code freeze_level}: the fraction of layers frozen at the end of training. */
  public static final HyperParameter<Double> FREEZE_LEVEL =
      HyperParameter.ofFloat(
          "freeze_level", 1.0, 0.0, false, 1.0, "fraction of layers frozen at the end of training");

  /** The declaration used by the configuration layer. */
  public static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(NAME, List.of(FREEZE_START, FREEZE_LEVEL), LayerFreezing::new);

  private LayerFreezing(HyperParameterValues values) {
    super(values);
  }

  /** {@return a builder with Composer's defaults} */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Returns the fraction of layers to freeze after a completed fraction of training.
   *
   * @param elapsed the completed fraction of training, in [0, 1]
   * @return the fraction of layers frozen
   * @throws IllegalArgumentException for a fraction outside [0, 1] or NaN
   */
  public double frozenFraction(double elapsed) {
    if (!(elapsed >= 0 && elapsed <= 1)) {
      throw new IllegalArgumentException(
          "the completed fraction of training must be in [0, 1], got " + elapsed);
    }
    return elapsed <= value(FREEZE_START)
        ? 0
        // Composer's order: the fraction of the freezing period first, then the level, so that
        // at the end of training it is exactly freeze_level (the other order can fall 1 ulp short
        // and freeze one layer fewer).
        : value(FREEZE_LEVEL) * ((elapsed - value(FREEZE_START)) / (1 - value(FREEZE_START)));
  }

  /**
   * {@code floor(fraction * freezable)}, where a product that falls short of a whole number by
   * rounding alone counts as that number: with freeze_start 0.5, after 3 of 5 epochs the fraction
   * is 0.2 but computes as 0.19999999999999996, and a fifth of 5 freezable layers came out as none
   * while the run's warning said "the frozen fraction 0.2000 of the 5 layers ... rounds down to
   * none" (an outside probe). The same tolerance as a duration's step ({@code TrainingLength}).
   */
  static int layersAt(double fraction, int freezable) {
    return (int) Math.floor(fraction * freezable + 1e-9);
  }

  /**
   * Lists the layers freezing works on: leaf blocks with learnable parameters, in traversal order.
   * A batch norm that neither scales nor centers learns nothing: DJL still gives it gamma, beta and
   * running statistics, but PyTorch's {@code BatchNorm(affine=False)}, which Composer counts, has
   * no parameters, so it is not a layer here either, nor is the ghost batch norm that replaces it.
   *
   * @param root the model
   * @return block to path
   */
  public static Map<Block, String> layers(Block root) {
    Map<Block, String> layers = new LinkedIdentityMap<>();
    for (Map.Entry<Block, String> e : BlockPaths.index(root).entrySet()) {
      Block b = e.getKey();
      if (b != root
          && b.getChildren().isEmpty()
          && !b.getDirectParameters().isEmpty()
          && !(b instanceof BatchNorm bn && learnsNothing(bn))
          && !(b instanceof GhostBatchNormBlock ghost && ghost.learnsNothing())) {
        layers.put(b, e.getValue());
      }
    }
    return layers;
  }

  private static boolean learnsNothing(BatchNorm bn) {
    DjlInternals.BatchNormSettings settings = DjlBlocks.batchNormSettings(bn);
    return !settings.scale() && !settings.center();
  }

  /** {@inheritDoc} */
  @Override
  public boolean needsTotalEpochs() {
    return true;
  }

  /**
   * Freezes the first layers (see {@link #layers}) for where training stands; with targets, the
   * fraction is taken of the targeted layers only.
   *
   * @param context the model, its trainers and where training stands
   * @return one change per frozen layer, to the type {@code frozen T}, or {@code frozen T (bias)}
   *     naming the parameters it froze where others of the layer were frozen already (by the
   *     program, or shared with a layer frozen before it)
   * @throws SurgeryException if the planned number of epochs is unknown, a trainer cannot be
   *     updated, an include pattern matches no block, no targeted block is a layer, or the included
   *     layers are so few that no run could ever freeze one (where more layers would freeze at the
   *     end of training: {@code freeze_level} above 0 and {@code freeze_start} below 1)
   */
  @Override
  public SurgeryChanges apply(SurgeryContext context) {
    // The decision and the surgery as one: another thread's surgery between them would leave this
    // one's changes untrue.
    Objects.requireNonNull(context, "context must not be null");
    return SurgeryLock.holding(() -> applyHoldingTheLock(context));
  }

  /** {@link #apply}, with {@link SurgeryLock} held. */
  private SurgeryChanges applyHoldingTheLock(SurgeryContext context) {
    long start = System.nanoTime();
    requireTotalEpochs(context);
    Block root = context.model();
    AbstractSurgeryAlgorithm.refuseFreedArrays(BlockPaths.index(root));
    long scalars = AbstractSurgeryAlgorithm.countParameterScalarsIfKnown(root);
    // Resolve every optimizer first: a trainer that cannot be handled fails before any change.
    for (Trainer t : context.trainers()) {
      try {
        DjlTrainers.optimizer(t);
      } catch (IllegalStateException e) {
        throw new SurgeryException(
            null, NAME + " cannot update this trainer: " + e.getMessage(), e);
      }
    }
    List<Parameter> frozen = new ArrayList<>();
    List<SurgeryChanges.Change> changes = new ArrayList<>();
    Freezing freezing = freezing(context, frozen);
    for (SurgeryPlan.Step step : freezing.steps()) {
      changes.add(new SurgeryChanges.Change(step.path(), step.oldType(), step.newType()));
    }
    ModuleSurgery.freezeParameters(frozen, context.trainers());
    List<String> warnings = new ArrayList<>();
    if (freezing.due() == 0) {
      // Said as every other algorithm says a run that changes nothing (an outside probe: an entry
      // at epoch 0, which can never freeze, was reported applied without a word); once layers are
      // due, a run that finds them frozen already is the schedule's way, and says nothing.
      // Two reasons: freezing has not started, or it has and the first fraction of the layers
      // that may freeze rounds down to none (an outside probe: an MLP of 3 layers after 1 of 3
      // epochs with freeze_start 0 was told that freezing had not started).
      String why =
          freezing.fraction() == 0
              ? " (freezing starts once more than freeze_start of them have passed)"
              : ": the frozen fraction "
                  + String.format(java.util.Locale.ROOT, "%.4g", freezing.fraction())
                  + " of the "
                  + freezing.freezable()
                  + " layers that may freeze (the last layer never does) rounds down to none";
      String message =
          "Applying "
              + NAME
              + " did not freeze any layers: after "
              + context.completedEpochs()
              + " of "
              + context.totalEpochs()
              + " planned epochs none is due"
              + why
              + ": "
              + hyperparameters();
      // Logged as warn() logs it, but kept to this application's own report: warn() would also
      // add it to the warnings of an application this one runs inside (a plugin delegating).
      // No static logger: the agent loads this class before main, and SLF4J bound then would
      // ignore the logging the program sets up in main.
      LoggerFactory.getLogger(LayerFreezing.class).warn(message);
      warnings.add(message);
    }
    return new SurgeryChanges(
        NAME, settings(), changes, scalars, scalars, System.nanoTime() - start, warnings);
  }

  /**
   * Tells which layers {@link #apply} would freeze; freezing adds and removes no parameter. Each
   * step keeps the layer's trainable parameters, whose optimizer state would be dropped in the
   * context's trainers ({@link SurgeryPlan.StateFate#DROPPED}).
   *
   * @param context the model, its trainers and where training stands
   * @return one step per layer that would be frozen
   */
  @Override
  public SurgeryPlan plan(SurgeryContext context) {
    Objects.requireNonNull(context, "context must not be null");
    // Read as one state of the model.
    return SurgeryLock.holding(() -> planHoldingTheLock(context));
  }

  /** {@link #plan}, with {@link SurgeryLock} held. */
  private SurgeryPlan planHoldingTheLock(SurgeryContext context) {
    AbstractSurgeryAlgorithm.refuseFreedArrays(BlockPaths.index(context.model()));
    // Unknown, not 0, for a model not initialized: as the apply reports it.
    long scalars = AbstractSurgeryAlgorithm.countParameterScalarsIfKnown(context.model());
    return new SurgeryPlan(freezing(context, new ArrayList<>()).steps(), scalars, scalars);
  }

  /**
   * The same plan as {@link #plan(SurgeryContext)}: freezing replaces no block, so an input shape
   * adds nothing to count (the agent's dry run asks this form, and the inherited one planned the
   * replacements freezing has none of: an empty plan for layers the apply then froze).
   *
   * @param context the model and where training stands
   * @param inputShape ignored
   * @return the plan
   */
  @Override
  public SurgeryPlan plan(SurgeryContext context, Shape inputShape) {
    return plan(context);
  }

  private static void requireTotalEpochs(SurgeryContext context) {
    if (context.totalEpochs() <= 0) {
      throw new SurgeryException(
          null, NAME + " needs the planned number of epochs (SurgeryContext.totalEpochs)");
    }
  }

  /** The layers a run freezes, and how many of the first layers are due frozen by now. */
  private record Freezing(List<SurgeryPlan.Step> steps, int due, double fraction, int freezable) {}

  /** Picks the layers to freeze; adds their trainable parameters to {@code frozen}. */
  private Freezing freezing(SurgeryContext context, List<Parameter> frozen) {
    requireTotalEpochs(context);
    Block root = context.model();
    Targets.Selection selection = selectTargets(root);
    Map<Block, String> layers = layers(root);
    if (selection != null) {
      layers.keySet().removeIf(b -> !selection.contains(b));
      if (layers.isEmpty() && !targets().includes().isEmpty()) {
        throw new NothingTargetedException(
            NAME
                + ": no included block ("
                + targets()
                + ") is a layer it can freeze (a leaf block with parameters)");
      }
      double atTheEnd = frozenFraction(1.0);
      int mostEver = layersAt(atTheEnd, layers.size() - 1);
      if (mostEver == 0 && atTheEnd > 0 && !targets().includes().isEmpty()) {
        // The include is the error the docs promise, not a run that waits for its layers: no run
        // of it, at any point of training, freezes anything (a single targeted layer is the last).
        // Settings that freeze nothing whatever the layers (freeze_level 0, freeze_start 1) are
        // not the include's doing: those runs warn, as without targets.
        throw new NothingTargetedException(
            NAME
                + ": nothing among the included blocks ("
                + targets()
                + ") can ever freeze: the fraction is of the "
                + layers.size()
                + " targeted layer(s), the last of them never freezes, and "
                + hyperparameters()
                + " freezes none of the "
                + (layers.size() - 1)
                + " before it even at the end of training; include the layers before it too");
      }
    }
    double elapsed = Math.min(1.0, (double) context.completedEpochs() / context.totalEpochs());
    double fraction = frozenFraction(elapsed);
    int freezable = Math.max(0, layers.size() - 1);
    int depth = layersAt(fraction, layers.size() - 1);
    List<SurgeryPlan.Step> steps = new ArrayList<>();
    int i = 0;
    for (Map.Entry<Block, String> layer : layers.entrySet()) {
      if (i++ >= depth) {
        break;
      }
      List<Parameter> freezing = new ArrayList<>();
      List<String> names = new ArrayList<>();
      boolean partly = false; // a parameter of it frozen already (by the program, or a shared one)
      for (Pair<String, Parameter> p : layer.getKey().getDirectParameters()) {
        if (p.getValue().requiresGradient()) {
          freezing.add(p.getValue());
          names.add(p.getKey());
        } else {
          partly |= !isStatistic(p.getValue());
        }
      }
      if (!freezing.isEmpty()) {
        frozen.addAll(freezing);
        // Frozen in place: the parameters stay, their optimizer state is dropped.
        List<SurgeryPlan.StateFate> fates = ModuleSurgery.planFreeze(freezing, context.trainers());
        List<SurgeryPlan.PlannedParameter> kept = new ArrayList<>();
        for (int k = 0; k < freezing.size(); k++) {
          kept.add(
              new SurgeryPlan.PlannedParameter(
                  names.get(k), freezing.get(k).getShape(), fates.get(k), false));
        }
        String type = BlockPaths.typeName(layer.getKey());
        // Which of its parameters this froze, where not all: a checkpoint's replay freezes those
        // alone, as the program's own freeze of the others is not in the file.
        String only = partly ? " (" + String.join(", ", names) + ")" : "";
        steps.add(
            new SurgeryPlan.Step(
                BlockPaths.display(layer.getValue()),
                type,
                "frozen " + type + only,
                List.of(),
                List.of(),
                kept));
      }
    }
    return new Freezing(steps, depth, fraction, freezable);
  }

  /**
   * Whether a parameter is a running statistic (a batch norm's mean or variance): it takes no
   * gradient whether frozen or not, so freezing neither counts nor names it.
   *
   * @param p a parameter
   * @return true for {@code RUNNING_MEAN} and {@code RUNNING_VAR}
   */
  public static boolean isStatistic(Parameter p) {
    return p.getType() == Parameter.Type.RUNNING_MEAN || p.getType() == Parameter.Type.RUNNING_VAR;
  }

  /**
   * Not used: freezing replaces no block.
   *
   * @param context unused
   * @return no policies
   */
  @Override
  protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
    return new LinkedHashMap<>();
  }

  /** Builds {@link LayerFreezing}. */
  public static final class Builder extends AlgorithmBuilder<Builder, LayerFreezing> {

    Builder() {
      super(SPEC);
    }

    /**
     * Sets the fraction of training after which freezing begins.
     *
     * @param freezeStart in [0, 1]
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optFreezeStart(double freezeStart) {
      return set(FREEZE_START, freezeStart);
    }

    /**
     * Sets the fraction of layers frozen at the end of training.
     *
     * @param freezeLevel in [0, 1]
     * @return this builder
     * @throws IllegalArgumentException if it is out of that range, naming the range
     */
    public Builder optFreezeLevel(double freezeLevel) {
      return set(FREEZE_LEVEL, freezeLevel);
    }
  }
}
