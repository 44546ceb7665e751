package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.Trainer;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.SurgeryException;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class LayerFreezingTest {

  @BeforeAll
  static void register() {
    LiveTraining.registerBuiltins();
  }

  private static List<Boolean> frozenLayers(Block root) {
    List<Boolean> frozen = new ArrayList<>();
    for (Block layer : LayerFreezing.layers(root).keySet()) {
      frozen.add(!layer.getDirectParameters().valueAt(0).requiresGradient());
    }
    return frozen;
  }

  /**
   * The plan with an input shape (what the agent's dry run asks) is the plan without one: the
   * inherited form planned replacements, of which freezing has none, and said nothing would change.
   */
  @Test
  void thePlanWithAnInputShapeIsThePlan() {
    Shape input = new Shape(2, 3, 8, 8);
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net = LiveTraining.smallCnn();
      net.initialize(manager, DataType.FLOAT32, input);
      LayerFreezing freezing = LayerFreezing.builder().optFreezeStart(0.0).build();
      SurgeryContext context = new SurgeryContext(net, List.of(), 2, 4);
      SurgeryPlan plain = freezing.plan(context);
      assertFalse(plain.isEmpty());
      assertEquals(plain.steps(), freezing.plan(context, input).steps());
    }
  }

  @Test
  void layersAreParameterLeavesInForwardOrder() {
    SequentialBlock net = LiveTraining.smallCnn();
    assertEquals(
        List.of("01Conv2d", "02BatchNorm", "04Conv2d", "05BatchNorm", "07Conv2d", "10Linear"),
        new ArrayList<>(LayerFreezing.layers(net).values()));
  }

  /**
   * At the end of training the fraction is exactly freeze_level, as in Composer's {@code level *
   * ((t - start) / (1 - start))}; multiplying first fell 1 ulp short for these settings and froze
   * one layer fewer than Composer's {@code int(level * (layers - 1))}.
   */
  @Test
  void theFractionAtTheEndIsExactlyTheLevel() {
    double[][] settings = {
      {0.3, 0.4, 6, 2}, {0.3, 0.75, 5, 3}, {0.2, 0.7, 11, 7}, {0.3, 0.1, 11, 1}
    };
    for (double[] c : settings) {
      LayerFreezing freezing =
          LayerFreezing.builder().optFreezeStart(c[0]).optFreezeLevel(c[1]).build();
      double fraction = freezing.frozenFraction(1.0);
      assertEquals(c[1], fraction, 0.0, java.util.Arrays.toString(c));
      assertEquals((int) c[3], (int) (fraction * (c[2] - 1)), java.util.Arrays.toString(c));
    }
  }

  /**
   * A batch norm that neither scales nor centers learns nothing: not a layer (Composer's count).
   */
  @Test
  void aBatchNormThatLearnsNothingIsNotALayer() {
    SequentialBlock net =
        new SequentialBlock()
            .add(Linear.builder().setUnits(4).build())
            .add(BatchNorm.builder().optScale(false).optCenter(false).build())
            .add(BatchNorm.builder().build())
            .add(Linear.builder().setUnits(2).build());
    assertEquals(
        List.of("01Linear", "03BatchNorm", "04Linear"),
        new ArrayList<>(LayerFreezing.layers(net).values()));
  }

  /**
   * The fraction is exact where the schedule is: after 3 of 5 epochs with freeze_start 0.5 it is
   * 0.2, and a fifth of the 5 layers that may freeze is one. In doubles it is 0.19999999999999996
   * (as in Composer's arithmetic), and the run froze none while its warning said "the frozen
   * fraction 0.2000 of the 5 layers that may freeze ... rounds down to none" (an outside probe).
   */
  @Test
  void aFractionThatFallsShortOfAWholeLayerByRoundingAloneFreezesThatLayer() {
    SequentialBlock net = LiveTraining.smallCnn(); // 6 layers, the last never frozen
    LayerFreezing freezing = LayerFreezing.builder().build(); // freeze_start 0.5, level 1
    SurgeryChanges changes = freezing.apply(new SurgeryContext(net, List.of(), 3, 5));
    assertEquals(List.of("01Conv2d"), changes.changes().stream().map(c -> c.path()).toList());
    assertEquals(List.of(true, false, false, false, false, false), frozenLayers(net));
    // After 4 of 6 epochs, 3 layers (2 freezable): a third of 2 -> 0.666..., none; 5 of 6 -> 1.
    SequentialBlock mlp =
        new SequentialBlock()
            .add(Linear.builder().setUnits(8).build())
            .add(Linear.builder().setUnits(8).build())
            .add(Linear.builder().setUnits(2).build());
    assertTrue(freezing.apply(new SurgeryContext(mlp, List.of(), 4, 6)).isEmpty());
    assertEquals(1, freezing.apply(new SurgeryContext(mlp, List.of(), 5, 6)).changes().size());
  }

  @Test
  void aRunWhoseFractionRoundsDownToNoLayerSaysSoRatherThanThatFreezingHasNotStarted() {
    // An outside probe (DJL's TrainMnist: an Mlp of three Linear layers, freeze_start 0, after 1
    // of 3 epochs): freezing had started, a third of the 2 freezable layers rounds down to none,
    // and the warning said freezing starts once more than freeze_start of the epochs have passed.
    LayerFreezing freezing = LayerFreezing.builder().optFreezeStart(0.0).build();
    SequentialBlock mlp =
        new SequentialBlock()
            .add(Linear.builder().setUnits(8).build())
            .add(Linear.builder().setUnits(8).build())
            .add(Linear.builder().setUnits(2).build());
    SurgeryChanges none = freezing.apply(new SurgeryContext(mlp, List.of(), 1, 3));
    assertTrue(none.isEmpty());
    assertEquals(
        List.of(
            "Applying layer_freezing did not freeze any layers: after 1 of 3 planned epochs none is"
                + " due: the frozen fraction 0.3333 of the 2 layers that may freeze (the last"
                + " layer never does) rounds down to none: "
                + freezing.hyperparameters()),
        none.warnings());
    // After 2 of 3: two thirds of 2 layers is one layer.
    assertEquals(1, freezing.apply(new SurgeryContext(mlp, List.of(), 2, 3)).changes().size());
  }

  @Test
  void followsComposersSchedule() {
    LayerFreezing freezing = LayerFreezing.builder().build(); // start 0.5, level 1
    assertEquals(0, freezing.frozenFraction(0.5));
    assertEquals(0.5, freezing.frozenFraction(0.75), 1e-12);
    assertEquals(1, freezing.frozenFraction(1.0), 1e-12);
    assertEquals(
        0.25,
        LayerFreezing.builder().optFreezeStart(0.2).optFreezeLevel(0.5).build().frozenFraction(0.6),
        1e-12);

    SequentialBlock net = LiveTraining.smallCnn();
    SurgeryChanges none = freezing.apply(new SurgeryContext(net, List.of(), 2, 4));
    assertTrue(none.isEmpty());
    // An outside probe: an entry that froze nothing (at epoch 0 it never can) said nothing.
    assertEquals(
        List.of(
            "Applying layer_freezing did not freeze any layers: after 2 of 4 planned epochs none is"
                + " due (freezing starts once more than freeze_start of them have passed): "
                + freezing.hyperparameters()),
        none.warnings());
    // t = 3/4: half of the 5 freezable layers (the last one never freezes), rounded down: 2.
    SurgeryChanges report = freezing.apply(new SurgeryContext(net, List.of(), 3, 4));
    assertEquals(
        List.of("01Conv2d", "02BatchNorm"),
        report.changes().stream().map(SurgeryChanges.Change::path).toList());
    assertEquals("frozen Conv2d", report.changes().get(0).newType());
    assertEquals(List.of(true, true, false, false, false, false), frozenLayers(net));
    SurgeryChanges again = freezing.apply(new SurgeryContext(net, List.of(), 3, 4));
    assertTrue(again.isEmpty(), "idempotent");
    // A review: once layers are due, a run that finds them frozen is the schedule's way (a
    // repeating entry), and says nothing.
    assertEquals(List.of(), again.warnings());
    freezing.apply(new SurgeryContext(net, List.of(), 4, 4));
    assertEquals(List.of(true, true, true, true, true, false), frozenLayers(net));
  }

  @Test
  void refusesInvalidValuesAndUnknownLength() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> LayerFreezing.builder().optFreezeStart(1.5).build());
    assertTrue(e.getMessage().contains("freeze_start") && e.getMessage().contains("[0, 1]"));
    assertThrows(
        IllegalArgumentException.class,
        () -> Algorithms.spec(LayerFreezing.NAME).create(Map.of("freeze_level", -0.1)));
    SequentialBlock net = LiveTraining.smallCnn();
    assertThrows(
        SurgeryException.class,
        () -> LayerFreezing.builder().build().apply(SurgeryContext.of(net)));
    assertEquals(List.of(false, false, false, false, false, false), frozenLayers(net));
  }

  @Test
  void liveFreezingStopsUpdatesAndDropsOptimizerState() throws Exception {
    List<float[]> atFreeze = new ArrayList<>();
    List<float[]> atEnd = new ArrayList<>();
    List<Integer> stateLeft = new ArrayList<>();
    List<Integer> stateOfUnfrozen = new ArrayList<>();
    String[] paths = {"01Conv2d", "04Conv2d"};
    LiveTraining.Result result =
        LiveTraining.fit(
            LiveTraining.smallCnn(),
            new Shape(3, 8, 8),
            4,
            List.of(1, 2, 3),
            LayerFreezing.builder().build(),
            (Trainer trainer) -> {
              Block root = trainer.getModel().getBlock();
              if (!frozenLayers(root).get(0)) {
                return;
              }
              for (String path : paths) {
                Parameter w = BlockPaths.resolve(root, path).getParameters().get("weight");
                atFreeze.add(w.getArray().toFloatArray());
                int count = 0;
                for (Map<String, ?> s :
                    DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer)).values()) {
                  count += s.containsKey(w.getId()) ? 1 : 0;
                }
                (path.equals("01Conv2d") ? stateLeft : stateOfUnfrozen).add(count);
              }
            },
            trainer -> {
              Block root = trainer.getModel().getBlock();
              for (String path : paths) {
                atEnd.add(
                    BlockPaths.resolve(root, path)
                        .getParameters()
                        .get("weight")
                        .getArray()
                        .toFloatArray());
              }
            });
    // Epochs 1 and 2 (t <= 0.5) freeze nothing; epoch 3 (t = 0.75) freezes conv1 and bn1.
    assertTrue(result.reports.get(0).isEmpty() && result.reports.get(1).isEmpty());
    assertEquals(2, result.reports.get(2).changes().size());
    assertEquals(List.of(0), stateLeft, "Adam state of the frozen weight removed");
    assertEquals(List.of(2), stateOfUnfrozen, "Adam state of a trained weight kept");
    assertArrayEquals(atFreeze.get(0), atEnd.get(0), 0f);
    assertFalse(java.util.Arrays.equals(atFreeze.get(1), atEnd.get(1)), "unfrozen still trains");
    assertTrue(Float.isFinite(result.lossAfter), "loss " + result.lossAfter);
  }

  /** Linear(8), Linear(8), Linear(2) on 4 inputs, initialized. */
  private static SequentialBlock mlp(NDManager manager) {
    SequentialBlock mlp =
        new SequentialBlock()
            .add(Linear.builder().setUnits(8).build())
            .add(Linear.builder().setUnits(8).build())
            .add(Linear.builder().setUnits(2).build());
    mlp.initialize(manager, DataType.FLOAT32, new Shape(2, 4));
    return mlp;
  }

  /**
   * Composer's schedule at its ends: nothing at t = 0, nothing while t <= freeze_start (also when
   * freeze_start is 1, where the formula's period is empty), and the training length is needed.
   */
  @Test
  void theScheduleAtItsEnds() {
    LayerFreezing freezing = LayerFreezing.builder().build();
    assertTrue(freezing.needsTotalEpochs());
    assertEquals(0, freezing.frozenFraction(0.0));
    assertEquals(0, LayerFreezing.builder().optFreezeStart(1.0).build().frozenFraction(1.0));
    assertThrows(IllegalArgumentException.class, () -> freezing.frozenFraction(-0.01));
    // A plan, like an apply, needs the planned number of epochs.
    assertThrows(
        SurgeryException.class, () -> freezing.plan(SurgeryContext.of(LiveTraining.smallCnn())));
  }

  /**
   * With targets the fraction is taken of the targeted layers alone: of smallCnn's three
   * convolutions at the end of training, the first floor(1 * (3 - 1)) = 2, and none of the batch
   * norms between them; an include that selects no layer is refused.
   */
  @Test
  void withTargetsTheFractionIsOfTheTargetedLayers() {
    SequentialBlock net = LiveTraining.smallCnn();
    SurgeryChanges report =
        LayerFreezing.builder()
            .build()
            .withTargets(dev.surgery.core.Targets.include("type:Conv2d"))
            .apply(new SurgeryContext(net, List.of(), 4, 4));
    assertEquals(
        List.of("01Conv2d", "04Conv2d"),
        report.changes().stream().map(SurgeryChanges.Change::path).toList());
    assertEquals(List.of(true, false, true, false, false, false), frozenLayers(net));
    NothingTargetedException e =
        assertThrows(
            NothingTargetedException.class,
            () ->
                LayerFreezing.builder()
                    .build()
                    .withTargets(dev.surgery.core.Targets.include("type:ReLU"))
                    .apply(new SurgeryContext(net, List.of(), 4, 4)));
    assertTrue(e.getMessage().contains("is a layer it can freeze"), e.getMessage());
  }

  /**
   * An include of one layer can never freeze it (the fraction is of the targeted layers, the last
   * of them never frozen), nor two at a freeze_level that rounds down to none at the end of
   * training: an include under which the algorithm finds nothing to change is an error (docs), not
   * a warning at every run. Before, both only warned "did not freeze any layers", at every run.
   */
  @Test
  void anIncludeThatCanNeverFreezeALayerIsRefused() {
    SequentialBlock net = LiveTraining.smallCnn();
    for (Algorithm never :
        List.of(
            LayerFreezing.builder()
                .build()
                .withTargets(dev.surgery.core.Targets.include("01Conv2d")),
            Algorithms.spec(LayerFreezing.NAME)
                .create(Map.of("freeze_level", 0.5, "include", List.of("01Conv2d", "04Conv2d"))))) {
      NothingTargetedException e =
          assertThrows(
              NothingTargetedException.class,
              () -> never.apply(new SurgeryContext(net, List.of(), 4, 4)));
      assertTrue(e.getMessage().contains("can ever freeze"), e.getMessage());
      assertThrows(
          NothingTargetedException.class,
          () -> never.plan(new SurgeryContext(net, List.of(), 1, 4)));
    }
    assertEquals(List.of(false, false, false, false, false, false), frozenLayers(net));
    // two layers at the full level: the first freezes at the end, and earlier runs only warn
    Algorithm two =
        LayerFreezing.builder()
            .build()
            .withTargets(dev.surgery.core.Targets.include("01Conv2d", "04Conv2d"));
    assertEquals(1, two.apply(new SurgeryContext(net, List.of(), 1, 4)).warnings().size());
    assertEquals(
        List.of("01Conv2d"),
        two.apply(new SurgeryContext(net, List.of(), 4, 4)).changes().stream()
            .map(SurgeryChanges.Change::path)
            .toList());
  }

  /**
   * Settings that freeze nothing at any point of training, whatever the layers ({@code
   * freeze_level: 0}, {@code freeze_start: 1}), are not made an error by an include: the include is
   * not why nothing freezes, so the entry only warns at each run, as it does without targets (a
   * reviewer: the refusal told such an entry to "include the layers before it too").
   */
  @Test
  void settingsThatNeverFreezeAreNotBlamedOnTheInclude() {
    SequentialBlock net = LiveTraining.smallCnn();
    for (Map<String, Object> never :
        List.<Map<String, Object>>of(Map.of("freeze_level", 0.0), Map.of("freeze_start", 1.0))) {
      Map<String, Object> settings = new java.util.HashMap<>(never);
      Algorithm all = Algorithms.spec(LayerFreezing.NAME).create(settings);
      settings.put("include", List.of("01Conv2d", "04Conv2d", "07Conv2d"));
      Algorithm included = Algorithms.spec(LayerFreezing.NAME).create(settings);
      for (Algorithm a : List.of(all, included)) {
        SurgeryChanges report = a.apply(new SurgeryContext(net, List.of(), 4, 4));
        assertEquals(List.of(), report.changes(), never.toString());
        assertEquals(1, report.warnings().size(), never + ": " + report.warnings());
        assertTrue(
            report.warnings().get(0).contains("did not freeze any layers"), never.toString());
        assertTrue(a.plan(new SurgeryContext(net, List.of(), 4, 4)).isEmpty(), never.toString());
      }
    }
    assertEquals(List.of(false, false, false, false, false, false), frozenLayers(net));
  }

  /**
   * A layer whose other parameters the program froze is reported with the parameters this froze; a
   * batch norm's running statistics, which never take a gradient, do not make it partly frozen. The
   * plan lists the parameters each step freezes.
   */
  @Test
  void aPartlyFrozenLayerNamesWhatThisFroze() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock mlp = mlp(manager);
      mlp.getChildren().valueAt(0).getParameters().get("weight").freeze(true);
      LayerFreezing freezing = LayerFreezing.builder().build();
      SurgeryContext end = new SurgeryContext(mlp, List.of(), 4, 4);
      SurgeryPlan plan = freezing.plan(end);
      assertEquals(
          List.of(List.of("bias"), List.of("weight", "bias")),
          plan.steps().stream()
              .map(s -> s.kept().stream().map(SurgeryPlan.PlannedParameter::name).toList())
              .toList());
      assertEquals(
          List.of("frozen Linear (bias)", "frozen Linear"),
          freezing.apply(end).changes().stream().map(SurgeryChanges.Change::newType).toList());
    }
    SequentialBlock net = LiveTraining.smallCnn();
    assertEquals(
        List.of("frozen Conv2d", "frozen BatchNorm"),
        LayerFreezing.builder()
            .build()
            .apply(new SurgeryContext(net, List.of(), 3, 4))
            .changes()
            .stream()
            .map(SurgeryChanges.Change::newType)
            .toList());
  }

  /**
   * A batch norm's running mean and variance are statistics; its gamma and beta, and weights, not.
   */
  @Test
  void runningStatisticsAreTheOnlyStatistics() {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock net =
          new SequentialBlock()
              .add(Linear.builder().setUnits(4).build())
              .add(BatchNorm.builder().build());
      net.initialize(manager, DataType.FLOAT32, new Shape(2, 3));
      Map<String, Boolean> statistic = new java.util.TreeMap<>();
      net.getParameters()
          .forEach(p -> statistic.put(p.getKey(), LayerFreezing.isStatistic(p.getValue())));
      assertEquals(
          Map.of(
              "01Linear_weight", false,
              "01Linear_bias", false,
              "02BatchNorm_gamma", false,
              "02BatchNorm_beta", false,
              "02BatchNorm_runningMean", true,
              "02BatchNorm_runningVar", true),
          statistic);
    }
  }
}
