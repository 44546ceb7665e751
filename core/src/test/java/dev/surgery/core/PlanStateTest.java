package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.algorithms.WeightStandardization;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.PlanStateCheck;
import dev.surgery.core.testing.TinyModels;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The optimizer-state column of a plan is what the apply does: for the seven built-in algorithms on
 * a ResNetV1 (20 layers, 1x28x28) trained two steps under Adam (and two cases under SGD with
 * momentum), and for a policy that rewraps every convolution's array in a new Parameter, each
 * parameter the plan names is found in the model, and the optimizer's state is compared before and
 * after the apply. MOVED: the state (every array, bit for bit, and the update count) is where the
 * parameter now is; DROPPED: the state is gone; FRESH: no state yet, a birth mark exactly when the
 * plan says "born exact", and after one more step Adam's moments are those of a first step from
 * zero ({@code (1 - beta1) g}, {@code (1 - beta2) g^2}); NONE: no state before, after, nor after
 * the next step. The ids holding state after the apply are exactly those the plan accounts for, and
 * every state the plan does not name is untouched. The checks are {@link PlanStateCheck}'s, which
 * the composed schedules of {@code ComposedPlanStatePropertiesTest} run too.
 */
class PlanStateTest {

  private static final Shape INPUT = new Shape(4, 1, 28, 28);

  /** A surgery that can tell its plan: an algorithm, or a policy run through the engine. */
  private interface Surgery {
    SurgeryPlan plan(SurgeryContext context);

    void apply(SurgeryContext context);
  }

  private static Surgery of(Algorithm algorithm) {
    return new Surgery() {
      @Override
      public SurgeryPlan plan(SurgeryContext context) {
        return algorithm.plan(context);
      }

      @Override
      public void apply(SurgeryContext context) {
        algorithm.apply(context);
      }
    };
  }

  /** Every convolution replaced by a block that holds new Parameter objects around its arrays. */
  private static Surgery rewrapping() {
    Map<BlockMatcher, ReplacementFunction> policies =
        Map.of(
            BlockMatcher.ofClass(Conv2d.class),
            (block, index) -> PropertyTrees.Holding2d.rewrapping(block));
    return new Surgery() {
      @Override
      public SurgeryPlan plan(SurgeryContext context) {
        return ModuleSurgery.plan(context.model(), policies, options(context));
      }

      @Override
      public void apply(SurgeryContext context) {
        ModuleSurgery.replaceModules(context.model(), policies, options(context));
      }

      private SurgeryOptions options(SurgeryContext context) {
        return SurgeryOptions.builder().optTrainers(context.trainers()).build();
      }
    };
  }

  static Stream<Arguments> cases() {
    return Stream.of(
        Arguments.of("blurpool", of(BlurPool.builder().build()), OptimizerKind.ADAM),
        Arguments.of(
            "factorize", of(Factorize.builder().optMinChannels(16).build()), OptimizerKind.ADAM),
        Arguments.of("ghost_batchnorm", of(GhostBatchNorm.builder().build()), OptimizerKind.ADAM),
        Arguments.of("layer_freezing", of(LayerFreezing.builder().build()), OptimizerKind.ADAM),
        Arguments.of(
            "squeeze_excite",
            of(SqueezeExcite.builder().optMinChannels(16).optLatentChannels(0.25).build()),
            OptimizerKind.ADAM),
        Arguments.of("stochastic_depth", of(StochasticDepth.builder().build()), OptimizerKind.ADAM),
        Arguments.of(
            "weight_standardization",
            of(WeightStandardization.builder().build()),
            OptimizerKind.ADAM),
        Arguments.of(
            "factorize, SGD momentum",
            of(Factorize.builder().optMinChannels(16).build()),
            OptimizerKind.SGD_MOMENTUM),
        Arguments.of(
            "layer_freezing, SGD momentum",
            of(LayerFreezing.builder().build()),
            OptimizerKind.SGD_MOMENTUM),
        Arguments.of("new Parameters around the old arrays", rewrapping(), OptimizerKind.ADAM));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void thePlannedStateFatesAreWhatTheApplyDoes(String name, Surgery algorithm, OptimizerKind kind) {
    Block resnet = TinyModels.resNet20();
    Optimizer optimizer = kind.create();
    DefaultTrainingConfig config =
        new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()).optOptimizer(optimizer);
    try (Model model = TinyModels.model("plan-state-" + name, resnet);
        Trainer trainer = model.newTrainer(config);
        NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(11);
      trainer.initialize(INPUT);
      NDArray x = data.randomNormal(INPUT);
      NDArray y = data.create(new float[] {0, 1, 2, 3});
      Fixtures.lossStep(trainer, x, y);
      Fixtures.lossStep(trainer, x, y);

      SurgeryContext context = SurgeryContext.live(resnet, trainer, 2, 2);
      PlanStateCheck check =
          PlanStateCheck.plan(name, resnet, trainer, () -> algorithm.plan(context));
      assertFalse(check.plan().isEmpty(), check.table());

      algorithm.apply(context);
      check.applied();
      // Every parameter trained two steps: each MOVED and DROPPED one had state to move or drop.
      assertEquals(0, check.notYetUpdated(), check.table());

      // One more step: a fresh parameter starts from zero state, a NONE one never gets any.
      check.nextStep(x, y, kind);
      if (name.startsWith("factorize") || name.startsWith("squeeze")) {
        assertTrue(check.fresh() > 0, "the algorithm adds trainable parameters:\n" + check.table());
      }
      if (name.startsWith("new Parameters")) {
        assertTrue(check.rekeyed() > 0, "state moves to the new ids:\n" + check.table());
      }
    }
  }
}
