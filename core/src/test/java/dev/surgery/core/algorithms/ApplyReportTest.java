package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Blocks;
import ai.djl.nn.LambdaBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.Dropout;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.nn.pooling.Pool;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.Targets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * What {@link AbstractSurgeryAlgorithm#apply} reports besides the changes: each application's own
 * warnings (an apply may run inside another's, as a plugin delegating to a built-in), its own
 * elapsed time, and the refusal of an include that matches no block with hints drawn from the
 * model.
 */
class ApplyReportTest {

  /**
   * The warnings of a {@link Delegating} application, whatever its inner one said: its own, then
   * the note that it changed nothing.
   */
  private static final List<String> OUTER_WARNINGS =
      List.of(
          "the delegating algorithm's own warning, after the inner apply",
          "Applying delegating_probe did not change any layers: {}");

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  /** An algorithm that, while choosing its policies, applies another one and then warns itself. */
  private static final class Delegating extends AbstractSurgeryAlgorithm {
    final Algorithm inner;
    SurgeryChanges innerChanges;

    private Delegating(HyperParameterValues values, Algorithm inner) {
      super(values);
      this.inner = inner;
    }

    static Delegating around(Algorithm inner) {
      return (Delegating)
          AlgorithmSpec.of("delegating_probe", List.of(), v -> new Delegating(v, inner))
              .create(Map.of());
    }

    @Override
    protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
      innerChanges = inner.apply(context);
      warn("the delegating algorithm's own warning, after the inner apply");
      return new LinkedHashMap<>();
    }
  }

  /** Linear, relu, Linear: nothing BlurPool (or the delegating probe) changes. */
  private static SequentialBlock mlp() {
    return new SequentialBlock()
        .add(Linear.builder().setUnits(4).build())
        .add(Activation.reluBlock())
        .add(Linear.builder().setUnits(2).build());
  }

  /**
   * A warning belongs to the application that gave it: the inner apply's no-effect warning is its
   * own, and the outer algorithm's warning given after the inner apply returned is the outer's (it
   * was lost when the inner apply dropped the outer's collection on its way out).
   */
  @Test
  void aNestedApplyKeepsEachApplicationsWarnings() {
    Delegating outer = Delegating.around(BlurPool.builder().optMinChannels(0).build());
    SurgeryChanges changes = outer.apply(SurgeryContext.of(mlp()));
    assertEquals(
        List.of("Applying blurpool did not change any layers: " + outer.inner.hyperparameters()),
        outer.innerChanges.warnings());
    assertEquals(OUTER_WARNINGS, changes.warnings());
  }

  /**
   * Layer freezing inside another application keeps its warning to itself too: the outer one
   * reports only its own (the freezing's was also added to the outer's warnings).
   */
  @Test
  void aNestedLayerFreezingKeepsItsWarningToItself() {
    Delegating outer = Delegating.around(LayerFreezing.builder().build());
    SurgeryChanges changes = outer.apply(new SurgeryContext(mlp(), List.of(), 1, 4));
    assertEquals(1, outer.innerChanges.warnings().size(), outer.innerChanges.warnings().toString());
    assertTrue(
        outer.innerChanges.warnings().get(0).startsWith("Applying layer_freezing did not freeze"));
    assertEquals(OUTER_WARNINGS, changes.warnings());
  }

  /** The reported time lies within the time the caller saw the apply take. */
  @Test
  void theReportedTimeIsTheApplicationsOwn() {
    SequentialBlock net = mlp();
    long start = System.nanoTime();
    SurgeryChanges changes = WeightStandardization.builder().build().apply(SurgeryContext.of(net));
    long elapsed = System.nanoTime() - start;
    assertTrue(changes.nanos() >= 0 && changes.nanos() <= elapsed, changes.nanos() + " " + elapsed);
    // Layer freezing reports its own, too.
    start = System.nanoTime();
    changes = LayerFreezing.builder().build().apply(new SurgeryContext(net, List.of(), 4, 4));
    elapsed = System.nanoTime() - start;
    assertEquals(1, changes.changes().size());
    assertTrue(changes.nanos() >= 0 && changes.nanos() <= elapsed, changes.nanos() + " " + elapsed);
  }

  /**
   * Ten block types under the root (a nested sequential block's one included, the root's own
   * excluded; DJL names its relu lambda ReLU, and a lambda's path key is LambdaBlock), the
   * convolution weight-standardized: {@code type:Conv2d} matches none of them. Without the dropout
   * and the sigmoid, eight.
   */
  private static SequentialBlock manyTypes(boolean ten) {
    SequentialBlock net =
        new SequentialBlock()
            .add(LiveTraining.conv(4, 1))
            .add(BatchNorm.builder().build())
            .add(Activation.reluBlock());
    if (ten) {
      net.add(Dropout.builder().optRate(0.1f).build());
    }
    net.add(Pool.maxPool2dBlock(new Shape(2, 2)))
        .add(LayerNorm.builder().build())
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build())
        .add(new SequentialBlock().add(Linear.builder().setUnits(2).build()));
    if (ten) {
      net.add(Activation.sigmoidBlock());
    }
    WeightStandardization.builder().build().apply(SurgeryContext.of(net));
    return net;
  }

  private static SequentialBlock manyTypes() {
    return manyTypes(true);
  }

  /** The refusal of {@code type:Conv2d} by weight standardization on a model. */
  private static String typeConv2dRefusal(SequentialBlock net) {
    return assertThrows(
            NothingTargetedException.class,
            () ->
                WeightStandardization.builder()
                    .build()
                    .withTargets(Targets.include("type:Conv2d"))
                    .apply(SurgeryContext.of(net)))
        .getMessage();
  }

  /**
   * A type pattern that matches nothing is told with the model's types: those that hold the
   * pattern's name first (the classes of replaced layers), then the rest in name order, each once,
   * eight at most and then an ellipsis; with the wildcard that would find the replaced layers.
   */
  @Test
  void anUnmatchedTypePatternListsTheModelsTypesNamedOnesFirst() {
    String prefix =
        "weight_standardization: include pattern 'type:Conv2d' matches no block of the model (a"
            + " type pattern matches whole class or lambda names, case-sensitively, not"
            + " subclasses; block types here: WeightStandardizedConv2d, BatchNorm, ";
    String suffix =
        "; 'type:*Conv2d' also matches the classes whose names end in 'Conv2d', such as those of"
            + " replaced layers)";
    assertEquals(
        prefix + "Dropout, LayerNorm, Linear, ReLU, SequentialBlock, batchFlatten, ..." + suffix,
        typeConv2dRefusal(manyTypes(true)));
    // Eight types are all shown, without an ellipsis.
    assertEquals(
        prefix + "LayerNorm, Linear, ReLU, SequentialBlock, batchFlatten, maxPool2d" + suffix,
        typeConv2dRefusal(manyTypes(false)));
  }

  /** A path pattern that matches nothing is told with the model's first four paths. */
  @Test
  void anUnmatchedPathPatternShowsTheFirstFourPaths() {
    NothingTargetedException e =
        assertThrows(
            NothingTargetedException.class,
            () ->
                GhostBatchNorm.builder()
                    .build()
                    .withTargets(Targets.include("**/07Conv2d"))
                    .apply(SurgeryContext.of(manyTypes())));
    assertEquals(
        "ghost_batchnorm: include pattern '**/07Conv2d' matches no block of the model (block"
            + " paths look like 01WeightStandardizedConv2d, 02BatchNorm, 03LambdaBlock, 04Dropout; type"
            + " patterns are written type:Conv2d)",
        e.getMessage());
    assertFalse(e.getMessage().contains("05maxPool2d"), e.getMessage());
  }

  /**
   * A plan tells what the apply then does, and refuses what the apply refuses: an include under
   * which nothing would change.
   */
  @Test
  void aPlanTellsWhatTheApplyDoesAndRefusesWhatItRefuses() {
    SequentialBlock net = manyTypes();
    Algorithm withinTheConvolution =
        GhostBatchNorm.builder().build().withTargets(Targets.include("01*"));
    for (Runnable call :
        List.<Runnable>of(
            () -> withinTheConvolution.plan(SurgeryContext.of(net)),
            () -> withinTheConvolution.apply(SurgeryContext.of(net)))) {
      NothingTargetedException e = assertThrows(NothingTargetedException.class, call::run);
      assertTrue(e.getMessage().contains("nothing among the included blocks"), e.getMessage());
    }
    Algorithm ghost = GhostBatchNorm.builder().build();
    assertEquals(
        List.of("02BatchNorm"),
        ghost.plan(SurgeryContext.of(net)).steps().stream()
            .map(dev.surgery.core.SurgeryPlan.Step::path)
            .toList());
    assertEquals(
        List.of("02BatchNorm"),
        ghost.apply(SurgeryContext.of(net)).changes().stream()
            .map(SurgeryChanges.Change::path)
            .toList());
  }

  /**
   * Replaces DJL's ReLU lambda by an identity lambda named stage1, and stage1 by one named stage2,
   * with the engine recursing on replacements: stage1 is an intermediate replacement.
   */
  private static final class Staged extends AbstractSurgeryAlgorithm {
    private Staged(HyperParameterValues values) {
      super(values);
    }

    static Staged create() {
      return (Staged) AlgorithmSpec.of("staged_probe", List.of(), Staged::new).create(Map.of());
    }

    @Override
    protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
      LinkedHashMap<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.lambdaNamed("ReLU"), (block, index) -> new LambdaBlock(x -> x, "stage1"));
      policies.put(
          BlockMatcher.lambdaNamed("stage1"), (block, index) -> new LambdaBlock(x -> x, "stage2"));
      return policies;
    }

    @Override
    protected dev.surgery.core.SurgeryOptions surgeryOptions(SurgeryContext context) {
      return dev.surgery.core.SurgeryOptions.builder()
          .optTrainers(context.trainers())
          .optRecurseOnReplacements(true)
          .build();
    }
  }

  /**
   * An intermediate replacement, which the model never held before the surgery, is reported at the
   * path its own replacement has after it.
   */
  @Test
  void anIntermediateReplacementIsReportedAtItsPathAfter() {
    SequentialBlock net = mlp();
    SurgeryChanges changes = Staged.create().apply(SurgeryContext.of(net));
    assertEquals(
        List.of(
            new SurgeryChanges.Change("02LambdaBlock", "ReLU", "stage1"),
            new SurgeryChanges.Change("02LambdaBlock", "stage1", "stage2")),
        changes.changes());
    assertEquals("stage2", ((LambdaBlock) net.getChildren().valueAt(1)).getName());
  }
}
