package dev.surgery.core;

import static dev.surgery.core.GradientAccumulationRig.assertSameBits;
import static dev.surgery.core.GradientAccumulationRig.run;
import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.Trainer;
import dev.surgery.core.GradientAccumulationRig.At;
import dev.surgery.core.GradientAccumulationRig.Hook;
import dev.surgery.core.GradientAccumulationRig.Result;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyDense;
import dev.surgery.core.testing.TrajectoryOracle;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Gradient accumulation through the core API: surgery with the trainer passed, made between two
 * backward passes of one accumulation window (k = 2 and 3 batches per step), compared bit for bit
 * with a twin after every one of 30 to 40 steps under SGD with momentum, Adam and AdamW.
 *
 * <p>What a DJL user expects, read from the docs: a survivor (an adopted {@code Parameter}, a new
 * {@code Parameter} around the same array) is the same trainable array, so the gradient the window
 * accumulated in it stays and the step takes it once ("surviving parameters train bit for bit as
 * without surgery"): where the surgery keeps the function, the run equals one without surgery. A
 * born parameter (a fresh layer, a copy) has none of the window's gradient ("new ones start
 * without", the listener's warning); a parameter that left takes its gradient away. A refused
 * surgery leaves everything, pending gradients included, as it was.
 */
class GradientAccumulationSurgeryTest {

  private static final List<OptimizerKind> KINDS =
      List.of(OptimizerKind.SGD_MOMENTUM, OptimizerKind.ADAM, OptimizerKind.ADAMW);

  /** flatten - dense(16) - tanh - dense(16) - tanh - dense(4). */
  static SequentialBlock denseNet() {
    return new SequentialBlock()
        .add(Blocks.batchFlattenBlock())
        .add(new TinyDense(16))
        .add(Activation.tanhBlock())
        .add(new TinyDense(16))
        .add(Activation.tanhBlock())
        .add(new TinyDense(4));
  }

  /** The middle dense layer of {@link #denseNet}. */
  static TinyDense middle(Block root) {
    return (TinyDense) root.getChildren().get(3).getValue();
  }

  /** Replaces the middle layer by what {@code make} builds, with the trainer. */
  static Hook replaceMiddle(Function<TinyDense, Block> make) {
    return (trainer, root) -> {
      TinyDense target = middle(root);
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModuleClasses(
              root,
              Map.of(TinyDense.class, (b, i) -> b == target ? make.apply(target) : null),
              List.of(trainer),
              false,
              null);
      assertTrue(replaced.get(target) != target, "replaced");
    };
  }

  /** For every optimizer kind and k = 2, 3: the twin and the subject with the same surgeries. */
  private static void compare(
      String what, boolean twinMakesTheSurgery, Function<Integer, List<At>> surgeries, int steps) {
    List<Executable> checks = new ArrayList<>();
    for (OptimizerKind kind : KINDS) {
      for (int k = 2; k <= 3; k++) {
        int kk = k;
        checks.add(
            () -> {
              String name = what + " " + kind + " k=" + kk;
              Result subject =
                  run(
                      "subject",
                      GradientAccumulationSurgeryTest::denseNet,
                      kind::create,
                      41,
                      kk,
                      steps,
                      surgeries.apply(kk),
                      false);
              Result twin =
                  run(
                      "twin",
                      GradientAccumulationSurgeryTest::denseNet,
                      kind::create,
                      41,
                      kk,
                      steps,
                      twinMakesTheSurgery ? surgeries.apply(kk) : List.of(),
                      twinMakesTheSurgery);
              assertSameBits(name, twin, subject);
            });
      }
    }
    assertAll(what, checks.stream());
  }

  /** Inside the 4th window, after its first backward; and after the second-last of the 9th. */
  private static List<At> twoPoints(int k, Hook first, Hook second) {
    return List.of(new At(3 * k + 1, first), new At(9 * k - 1, second));
  }

  @Test
  void adoptedParametersKeepTheirPendingGradientAsWithoutSurgery() {
    compare(
        "adopting",
        false,
        k -> twoPoints(k, replaceMiddle(TinyDense::adopting), replaceMiddle(TinyDense::adopting)),
        30);
  }

  @Test
  void rewrappedParametersKeepTheirPendingGradientAsWithoutSurgery() {
    compare(
        "rewrapping",
        false,
        k ->
            twoPoints(
                k, replaceMiddle(TinyDense::rewrapping), replaceMiddle(TinyDense::rewrapping)),
        30);
  }

  /**
   * Surgeries after the last backward of a window, right before its step: the whole window is
   * pending. Rewrapped and adopted parameters keep all of it (the run without surgery); a born
   * layer has no gradient at all at that step (DJL reads zeros), in both runs alike.
   */
  @Test
  void surgeriesRightBeforeTheStep() {
    compare(
        "rewrap-before-step",
        false,
        k ->
            twoPoints(k, replaceMiddle(TinyDense::rewrapping), replaceMiddle(TinyDense::adopting))
                .stream()
                .map(a -> new At(k * ((a.afterBatch() + k - 1) / k), a.hook()))
                .toList(),
        25);
    compare(
        "born-before-step",
        true,
        k -> List.of(new At(4 * k, replaceMiddle(t -> new TinyDense(16)))),
        25);
  }

  /** A surgery in the first window, before the trainer's first step ever. */
  @Test
  void aRewrapInTheFirstWindowBeforeAnyStep() {
    compare(
        "rewrap-first-window",
        false,
        k -> List.of(new At(1, replaceMiddle(TinyDense::rewrapping))),
        20);
  }

  /** Two surgeries in one window (rewrap, then adopt the rewrapped). */
  @Test
  void twoSurgeriesInOneWindow() {
    compare(
        "two-in-one-window",
        false,
        k ->
            k == 2
                ? List.of(new At(5, replaceMiddle(TinyDense::rewrapping)))
                : List.of(
                    new At(10, replaceMiddle(TinyDense::rewrapping)),
                    new At(11, replaceMiddle(TinyDense::adopting))),
        25);
  }

  /**
   * A refused surgery inside a window (the first dense layer rewrapped, then the policy throws at
   * the last one): rolled back, pending gradients included.
   */
  @Test
  void aRefusedSurgeryLeavesThePendingGradientsAsTheyWere() {
    Hook refused =
        (trainer, root) -> {
          TinyDense first = (TinyDense) root.getChildren().get(1).getValue();
          TinyDense last = (TinyDense) root.getChildren().get(5).getValue();
          SurgeryException e =
              assertThrows(
                  SurgeryException.class,
                  () ->
                      ModuleSurgery.replaceModuleClasses(
                          root,
                          Map.of(
                              TinyDense.class,
                              (b, i) -> {
                                if (b == last) {
                                  throw new IllegalStateException("refused on purpose");
                                }
                                return b == first ? TinyDense.rewrapping(first) : null;
                              }),
                          List.of(trainer),
                          false,
                          null));
          assertNotNull(e.getMessage());
          assertTrue(root.getChildren().get(1).getValue() == first, "rolled back");
        };
    compare("refused", false, k -> twoPoints(k, refused, refused), 30);
  }

  /** Copies made with the trainer are born: fresh state, none of the window's gradient. */
  @Test
  void copiesWithTheTrainerStartWithoutThePendingGradient() {
    compare(
        "copying",
        true,
        k -> twoPoints(k, replaceMiddle(TinyDense::copying), replaceMiddle(TinyDense::copying)),
        30);
  }

  /** A copied weight beside the adopted bias: the bias keeps its gradient, the weight has none. */
  @Test
  void aCopiedWeightBesideAnAdoptedBias() {
    compare(
        "copying-weight",
        true,
        k ->
            twoPoints(
                k,
                replaceMiddle(TinyDense::copyingWeight),
                replaceMiddle(TinyDense::copyingWeight)),
        30);
  }

  /** A fresh layer in place of the middle one: born, without the window's gradient. */
  @Test
  void aBornLayerStartsWithoutThePendingGradient() {
    compare(
        "born",
        true,
        k ->
            twoPoints(
                k, replaceMiddle(t -> new TinyDense(16)), replaceMiddle(t -> new TinyDense(16))),
        30);
  }

  /**
   * Copies moved with {@code replaceParamsInOptimizer} (the user guide's way to carry the old state
   * over to copies): against the set-aside twin, the only thing lost is the window's gradient (the
   * surgery without trainers freed the old arrays, and it with them). Once: copies around arrays
   * declare no shape, and a second generation's move is refused by design (its Javadoc).
   */
  @Test
  void copiesMovedWithReplaceParamsInOptimizerLoseOnlyThePendingGradient() {
    compare("copied-then-moved (set-aside twin)", true, k -> List.of(new At(3 * k + 1, MOVE)), 30);
  }

  /**
   * New Parameters around the same arrays, made by a surgery without the trainer and then moved
   * with {@code replaceParamsInOptimizer} (same arrays: the store entry and state move): the
   * window's gradient stays in the arrays, so the run is the run without surgery.
   */
  @Test
  void rewrappedWithoutTheTrainerThenMovedKeepTheirPendingGradient() {
    Hook rewrapThenMove =
        (trainer, root) -> {
          TinyDense target = middle(root);
          List<Parameter> old = target.getDirectParameters().values();
          Map<Block, Block> replaced =
              ModuleSurgery.replaceModuleClasses(
                  root,
                  Map.of(
                      TinyDense.class, (b, i) -> b == target ? TinyDense.rewrapping(target) : null),
                  null,
                  false,
                  null);
          ModuleSurgery.replaceParamsInOptimizer(
              old, replaced.get(target).getDirectParameters().values(), List.of(trainer));
        };
    compare("rewrap-then-move", false, k -> List.of(new At(3 * k + 1, rewrapThenMove)), 25);
  }

  /** The surgery of the user guide's "carry the old state over to the copies". */
  static final Hook MOVE =
      (Trainer trainer, Block root) -> {
        TinyDense target = middle(root);
        List<Parameter> old = target.getDirectParameters().values();
        Map<Block, Block> replaced =
            ModuleSurgery.replaceModuleClasses(
                root,
                Map.of(TinyDense.class, (b, i) -> b == target ? TinyDense.copying(target) : null),
                null,
                false,
                null);
        TinyDense copy = (TinyDense) replaced.get(target);
        ModuleSurgery.replaceParamsInOptimizer(
            old, copy.getDirectParameters().values(), List.of(trainer));
      };

  static Map<String, Object> values(String algorithm) {
    return switch (algorithm) {
      case "blurpool" -> Map.of("min_channels", 8);
      case "ghost_batchnorm" -> Map.of("ghost_batch_size", 4);
      case "squeeze_excite" -> Map.of("min_channels", 8, "latent_channels", 4);
      case "factorize" -> Map.of("min_channels", 8, "latent_channels", 0.25, "min_features", 16);
      case "stochastic_depth" -> Map.of("drop_rate", 0.5, "stochastic_method", "block");
      case "layer_freezing" -> Map.of("freeze_start", 0.0, "freeze_level", 1.0);
      default -> Map.of();
    };
  }

  static Hook algorithm(String name, int completed, int total) {
    return (trainer, root) ->
        Algorithms.spec(name)
            .create(values(name))
            .apply(new SurgeryContext(root, List.of(trainer), completed, total));
  }

  /**
   * The seven built-in algorithms, each alone, inside a window (after the first backward of the 5th
   * window), on the probe's residual CNN, against the set-aside twin; k = 2 and 3, Adam.
   */
  @Test
  void eachBuiltInAlgorithmInsideAWindowMatchesTheSetAsideTwin() {
    List<Executable> checks = new ArrayList<>();
    for (String name : GradientAccumulationRig.BUILT_IN_ALGORITHMS) {
      for (int k = 2; k <= 3; k++) {
        int kk = k;
        checks.add(
            () -> {
              List<At> at = List.of(new At(4 * kk + 1, algorithm(name, 1, 4)));
              Result subject =
                  run("s", TrajectoryOracle::cnn, OptimizerKind.ADAM::create, 7, kk, 20, at, false);
              Result twin =
                  run("t", TrajectoryOracle::cnn, OptimizerKind.ADAM::create, 7, kk, 20, at, true);
              assertSameBits(name + " k=" + kk, twin, subject);
            });
      }
    }
    assertAll(checks.stream());
  }

  /** The seven composed at different points inside windows, under the three optimizers, k = 3. */
  @Test
  void theSevenComposedInsideWindowsMatchTheSetAsideTwin() {
    List<At> at =
        List.of(
            new At(4, algorithm("weight_standardization", 0, 4)),
            new At(8, algorithm("ghost_batchnorm", 0, 4)),
            new At(14, algorithm("blurpool", 1, 4)),
            new At(20, algorithm("squeeze_excite", 1, 4)),
            new At(26, algorithm("layer_freezing", 1, 4)),
            new At(32, algorithm("factorize", 2, 4)),
            new At(38, algorithm("stochastic_depth", 2, 4)),
            new At(44, algorithm("layer_freezing", 3, 4)));
    List<Executable> checks = new ArrayList<>();
    for (OptimizerKind kind : KINDS) {
      checks.add(
          () -> {
            Result subject = run("s", TrajectoryOracle::cnn, kind::create, 9, 3, 24, at, false);
            Result twin = run("t", TrajectoryOracle::cnn, kind::create, 9, 3, 24, at, true);
            assertSameBits("composed " + kind, twin, subject);
          });
    }
    assertAll(checks.stream());
  }
}
