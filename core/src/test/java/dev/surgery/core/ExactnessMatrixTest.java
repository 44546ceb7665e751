package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.util.PairList;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.KeptIdTracker;
import dev.surgery.core.testing.ConstantDense;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.RatesById;
import dev.surgery.core.testing.TinyDense;
import java.lang.reflect.Field;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Assume;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Exactness beyond the first step: every kind of surgery under every optimizer the PyTorch engine
 * runs, checked for {@value #STEPS} steps after surgery against oracles the engine did not compute
 * (see {@link ExactnessOracle}): born parameters against a fresh optimizer, surviving parameters
 * bit for bit against the same training without surgery, removed parameters gone from the trainer.
 */
class ExactnessMatrixTest {

  /** Steps compared after each surgery. */
  static final int STEPS = 50;

  /** What a surgery does to the target layer's parameters. */
  enum SurgeryKind {
    /** A new layer with new random parameters. */
    BORN(false),
    /** A new layer holding the old Parameter objects. */
    ADOPTED(true),
    /** New Parameters with copied values, swapped through replaceParamsInOptimizer. */
    COPIED(true),
    /**
     * The same in the other order, as a replacement function that copies (WeightCopy) allows: the
     * surgery without the trainer, then replaceParamsInOptimizer with the returned map's blocks.
     */
    COPIED_THEN_MOVED(true),
    /** New Parameters around the very same arrays. */
    REWRAPPED(true),
    /** The layer frozen into constants: its parameters leave the model. */
    REMOVED(true),
    /** Frozen for a few steps, then trained again. */
    FROZEN_THEN_UNFROZEN(false),
    /** Replaced by a born layer, which is replaced by another born layer a few steps later. */
    REPLACED_TWICE(false),
    /** Saved, loaded into a new model with a new optimizer, and replaced right away. */
    AFTER_LOAD(false);

    final boolean needsControl;

    SurgeryKind(boolean needsControl) {
      this.needsControl = needsControl;
    }
  }

  static Stream<Arguments> matrix() {
    List<Arguments> cases = new ArrayList<>();
    for (OptimizerKind optimizer : OptimizerKind.values()) {
      for (SurgeryKind kind : SurgeryKind.values()) {
        cases.add(Arguments.of(optimizer, kind, 20));
      }
    }
    return cases.stream();
  }

  @ParameterizedTest(name = "{1} under {0} at step {2}")
  @MethodSource("matrix")
  void everyKindOfSurgeryUnderEveryOptimizer(OptimizerKind optimizer, SurgeryKind kind, int at)
      throws Exception {
    check(optimizer, kind, at, 0, false);
  }

  static Stream<Arguments> bornAt() {
    List<Arguments> cases = new ArrayList<>();
    for (OptimizerKind optimizer : List.of(OptimizerKind.ADAM, OptimizerKind.ADAMW)) {
      for (int at : new int[] {0, 1, 20, 1000}) {
        for (boolean onlyNew : new boolean[] {false, true}) {
          cases.add(Arguments.of(optimizer, at, onlyNew));
        }
      }
    }
    return cases.stream();
  }

  /**
   * Defects 1 and 2: born Adam/AdamW parameters follow a fresh optimizer for 50 steps, whenever
   * they are born and also when every trainable parameter is new (all others frozen), where DJL's
   * global step count stands still.
   */
  @ParameterizedTest(name = "born under {0} at step {1}, only new trainable: {2}")
  @MethodSource("bornAt")
  void bornParametersFollowAFreshOptimizer(OptimizerKind optimizer, int at, boolean onlyNew)
      throws Exception {
    check(optimizer, SurgeryKind.BORN, at, 0, onlyNew);
  }

  /** Many old parameters around the changed layer. */
  @ParameterizedTest(name = "{0} among many old parameters under Adam")
  @MethodSource("kinds")
  void amongManyOldParameters(SurgeryKind kind) throws Exception {
    check(OptimizerKind.ADAM, kind, 3, 12, false);
  }

  static Stream<SurgeryKind> kinds() {
    return Stream.of(SurgeryKind.values());
  }

  /**
   * The matrix explored: any optimizer, any kind of surgery, at any early step, with or without
   * extra layers and frozen neighbours. A new optimizer or surgery kind joins by adding an enum
   * constant.
   */
  @Property(tries = 12)
  void anySurgeryStaysExact(
      @ForAll OptimizerKind optimizer,
      @ForAll SurgeryKind kind,
      @ForAll("earlySteps") int at,
      @ForAll("extraLayers") int extra,
      @ForAll boolean freezeOthers)
      throws Exception {
    // With every other layer frozen, freezing or removing the target leaves nothing to train.
    Assume.that(
        !freezeOthers || (kind != SurgeryKind.REMOVED && kind != SurgeryKind.FROZEN_THEN_UNFROZEN));
    check(optimizer, kind, at, extra, freezeOthers);
  }

  @Provide
  Arbitrary<Integer> earlySteps() {
    return Arbitraries.integers().between(0, 25);
  }

  @Provide
  Arbitrary<Integer> extraLayers() {
    return Arbitraries.integers().between(0, 4);
  }

  /**
   * Defect 8: DJL registers a parameter on its first forward pass, so a branch that never ran is in
   * no store; replacing it must not fail the surgery (Composer skips what the optimizer lacks).
   */
  @Test
  void replacingABranchNoTrainerRegisteredSucceeds() {
    TinyDense used = new TinyDense(3);
    TinyDense unused = new TinyDense(3);
    UsesFirstChildOnly net = new UsesFirstChildOnly(used, unused);
    try (Model model = Model.newInstance("lazy")) {
      model.setBlock(net);
      net.initialize(model.getNDManager(), DataType.FLOAT32, ExactnessOracle.INPUT);
      try (Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss())
                  .optOptimizer(OptimizerKind.ADAM.create()))) {
        try (GradientCollector collector = trainer.newGradientCollector()) {
          NDArray out =
              trainer
                  .forward(new NDList(model.getNDManager().ones(ExactnessOracle.INPUT)))
                  .singletonOrThrow();
          collector.backward(out.sum());
        }
        // No step: DJL's first step() registers every parameter while checking gradients.
        assertFalse(TrainerSurgery.holds(trainer, unused.getWeight()), "never registered");
        Map<Block, Block> replaced =
            ModuleSurgery.replaceModuleClasses(
                net,
                Map.of(TinyDense.class, (b, i) -> b == unused ? new TinyDense(3) : null),
                List.of(trainer),
                false,
                null);
        assertEquals(1, replaced.size());
        assertTrue(unused.getWeight().getArray().isReleased(), "the old branch is freed");
        assertTrue(TrainerSurgery.holds(trainer, used.getWeight()), "the rest is untouched");
      }
    }
  }

  /**
   * A surgery that moved a parameter to new objects (rewrapped, so its rate per id must follow it)
   * and then failed leaves the user's own tracker in the optimizer and trains on as the control;
   * the move, retried, keeps the moved parameters' rates (bit for bit with the control).
   */
  @Test
  void aMoveRolledBackLeavesTheUsersTrackerAndARetryKeepsTheRate() {
    try (ExactnessOracle o = new ExactnessOracle(OptimizerKind.ADAM_RATE_PER_ID, 0, false, true)) {
      o.steps(3);
      TinyDense target = o.target();
      List<Block> layers =
          o.subjectRoot().getChildren().values().stream()
              .filter(b -> b instanceof TinyDense)
              .toList();
      TinyDense last = (TinyDense) layers.get(layers.size() - 1);
      Optimizer optimizer = DjlTrainers.optimizer(o.subjectTrainer());
      Field trackerField = DjlOptimizers.learningRateTrackerField(optimizer);
      Map<Class<? extends Block>, ReplacementFunction> policies =
          Map.of(
              TinyDense.class,
              (block, index) ->
                  block == target
                      ? TinyDense.rewrapping(target)
                      : block == last ? new TinyDense(last.getUnits()) : null);
      Faults failAfterTheMove =
          point -> {
            if (point.equals("trainer.remove")) {
              throw new IllegalStateException("planted after the move");
            }
          };
      assertThrows(
          SurgeryException.class,
          () ->
              ModuleSurgery.replaceModuleClasses(
                  o.subjectRoot(),
                  policies,
                  List.of(o.subjectTrainer()),
                  false,
                  null,
                  failAfterTheMove));
      assertSame(RatesById.TRACKER, DjlInternals.read(trackerField, optimizer));
      for (int i = 0; i < 5; i++) {
        o.step();
        o.assertSurvivorsBitIdentical(List.of());
      }
      // The retry, of the move alone: the moved parameters keep their rates.
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModuleClasses(
              o.subjectRoot(),
              Map.of(
                  TinyDense.class,
                  (block, index) -> block == target ? TinyDense.rewrapping(target) : null),
              List.of(o.subjectTrainer()),
              false,
              null);
      o.targetReplacedBy((TinyDense) replaced.get(target));
      assertInstanceOf(KeptIdTracker.class, DjlInternals.read(trackerField, optimizer));
      for (int i = 0; i < 10; i++) {
        o.step();
        o.assertSurvivorsBitIdentical(List.of());
      }
    }
  }

  /**
   * A parameter moved to new objects, then frozen and unfrozen, trains at its own rate again: bit
   * for bit with a twin frozen and unfrozen at the same steps without the move.
   */
  @ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.EnumSource(
      value = OptimizerKind.class,
      names = {"ADAM_RATE_PER_ID", "SGD_MOMENTUM_RATE_PER_ID"})
  void aMovedParameterFrozenAndUnfrozenKeepsItsRate(OptimizerKind kind) {
    try (ExactnessOracle o = new ExactnessOracle(kind, 0, false, true)) {
      o.steps(3);
      replace(o, TinyDense::rewrapping);
      List<Parameter> moved = o.target().getDirectParameters().values();
      List<Parameter> twins = o.controlTarget().getDirectParameters().values();
      ModuleSurgery.freezeParameters(moved, List.of(o.subjectTrainer()));
      ModuleSurgery.freezeParameters(twins, List.of(o.controlTrainer()));
      o.steps(2);
      ModuleSurgery.unfreezeParameters(moved, List.of(o.subjectTrainer()));
      ModuleSurgery.unfreezeParameters(twins, List.of(o.controlTrainer()));
      for (int i = 0; i < 10; i++) {
        o.step();
        o.assertSurvivorsBitIdentical(List.of());
      }
    }
  }

  /** A block whose forward uses only its first child (an auxiliary head that never ran). */
  static final class UsesFirstChildOnly extends AbstractBlock {
    UsesFirstChildOnly(Block first, Block second) {
      addChildBlock("first", first);
      addChildBlock("second", second);
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return children.get(0).getValue().forward(store, inputs, training);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return children.get(0).getValue().getOutputShapes(inputs);
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputs) {
      for (Block child : children.values()) {
        child.initialize(manager, dataType, inputs);
      }
    }
  }

  static void check(
      OptimizerKind optimizer, SurgeryKind kind, int at, int extra, boolean freezeOthers)
      throws Exception {
    boolean control = kind.needsControl && !freezeOthers;
    try (ExactnessOracle o = new ExactnessOracle(optimizer, extra, freezeOthers, control)) {
      o.steps(at);
      int targetIndex = extra + 1;
      switch (kind) {
        case BORN -> born(o);
        case ADOPTED -> replace(o, TinyDense::adopting);
        case REWRAPPED -> replace(o, TinyDense::rewrapping);
        case COPIED -> copied(o);
        case COPIED_THEN_MOVED -> copiedThenMoved(o);
        case REMOVED -> removed(o, control);
        case FROZEN_THEN_UNFROZEN -> frozenThenUnfrozen(o);
        case REPLACED_TWICE -> {
          born(o);
          o.steps(3);
          born(o);
        }
        case AFTER_LOAD -> {
          Path dir = Files.createTempDirectory("exactness");
          try {
            o.reloadSubject(dir);
          } finally {
            deleteTree(dir);
          }
          born(o);
        }
      }
      o.assertTrainerHoldsOnlyLiveParameters();
      boolean bornKind = !kind.needsControl;
      for (int i = 0; i < STEPS; i++) {
        o.step();
        if (bornKind) {
          o.assertBornMatchFreshOptimizer();
        } else if (control) {
          o.assertSurvivorsBitIdentical(
              kind == SurgeryKind.REMOVED ? List.of(targetIndex) : List.of());
        }
      }
      o.assertTrainerHoldsOnlyLiveParameters();
    }
  }

  /** Deletes a saved model's directory (jqwik properties get no {@code @TempDir}). */
  private static void deleteTree(Path dir) throws java.io.IOException {
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }

  private static TinyDense replace(ExactnessOracle o, UnaryOperator<TinyDense> how) {
    TinyDense target = o.target();
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(
            o.subjectRoot(),
            Map.of(TinyDense.class, (block, index) -> block == target ? how.apply(target) : null),
            List.of(o.subjectTrainer()),
            false,
            null);
    TinyDense replacement = (TinyDense) replaced.get(target);
    o.targetReplacedBy(replacement);
    return replacement;
  }

  private static void born(ExactnessOracle o) {
    TinyDense replacement = replace(o, old -> new TinyDense(old.getUnits()));
    o.startFreshOptimizer(replacement.getDirectParameters().values());
  }

  private static void copied(ExactnessOracle o) {
    TinyDense target = o.target();
    TinyDense copy = TinyDense.copying(target);
    ModuleSurgery.replaceParamsInOptimizer(
        target.getDirectParameters().values(),
        copy.getDirectParameters().values(),
        List.of(o.subjectTrainer()));
    ModuleSurgery.replaceModuleClasses(
        o.subjectRoot(),
        Map.of(TinyDense.class, (block, index) -> block == target ? copy : null),
        null,
        false,
        null);
    o.targetReplacedBy(copy);
  }

  private static void copiedThenMoved(ExactnessOracle o) {
    TinyDense target = o.target();
    List<Parameter> old = target.getDirectParameters().values();
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(
            o.subjectRoot(),
            Map.of(
                TinyDense.class,
                (block, index) -> block == target ? TinyDense.copying(target) : null),
            null,
            false,
            null);
    TinyDense copy = (TinyDense) replaced.get(target);
    ModuleSurgery.replaceParamsInOptimizer(
        old, copy.getDirectParameters().values(), List.of(o.subjectTrainer()));
    o.targetReplacedBy(copy);
  }

  private static void removed(ExactnessOracle o, boolean control) {
    TinyDense target = o.target();
    List<Parameter> gone = target.getDirectParameters().values();
    List<String> ids = gone.stream().map(Parameter::getId).toList();
    List<NDArray> arrays = gone.stream().map(Parameter::getArray).toList();
    ModuleSurgery.replaceModuleClasses(
        o.subjectRoot(),
        Map.of(
            TinyDense.class, (block, index) -> block == target ? new ConstantDense(target) : null),
        List.of(o.subjectTrainer()),
        false,
        null);
    o.assertForgotten(ids);
    for (NDArray array : arrays) {
      assertTrue(array.isReleased(), "the arrays of removed parameters are freed");
    }
    if (control) {
      // The control never trains those parameters again: frozen where they are.
      List<Parameter> twins = o.controlTarget().getDirectParameters().values();
      ModuleSurgery.freezeParameters(twins, List.of(o.controlTrainer()));
    }
  }

  private static void frozenThenUnfrozen(ExactnessOracle o) {
    List<Parameter> params = o.target().getDirectParameters().values();
    ModuleSurgery.freezeParameters(params, List.of(o.subjectTrainer()));
    float[] frozenAt = params.get(0).getArray().toFloatArray();
    o.steps(3);
    assertEquals(
        java.util.Arrays.toString(frozenAt),
        java.util.Arrays.toString(params.get(0).getArray().toFloatArray()),
        "frozen parameters do not move");
    ModuleSurgery.unfreezeParameters(params, List.of(o.subjectTrainer()));
    o.startFreshOptimizer(params);
  }
}
