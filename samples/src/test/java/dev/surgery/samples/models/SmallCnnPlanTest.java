package dev.surgery.samples.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.SurgeryPlan;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.algorithms.WeightStandardization;
import dev.surgery.core.testing.PlanAssertions;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Plan equals apply on the samples' own network, {@link SmallCnn} (core's {@code PlanTest} and
 * {@code PlanStateTest} cover DJL's {@code ResNetV1}, the samples' other network): for each of the
 * seven algorithms after a training step, the plan leaves every parameter value as it was, and the
 * apply then changes exactly the blocks, types and parameter counts the plan listed (nothing, for
 * stochastic depth and ghost batch norm, which find no residual unit and no batch norm here).
 */
class SmallCnnPlanTest {

  static Stream<Arguments> algorithms() {
    return Stream.of(
        Arguments.of("blurpool", BlurPool.builder().optMinChannels(0).build()),
        Arguments.of("factorize", Factorize.builder().optMinChannels(16).build()),
        Arguments.of("ghost_batchnorm", GhostBatchNorm.builder().build()),
        Arguments.of("layer_freezing", LayerFreezing.builder().build()),
        Arguments.of("squeeze_excite", SqueezeExcite.builder().optMinChannels(16).build()),
        Arguments.of("stochastic_depth", StochasticDepth.builder().build()),
        Arguments.of("weight_standardization", WeightStandardization.builder().build()));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("algorithms")
  void theApplyDoesWhatThePlanSaid(String name, Algorithm algorithm) {
    Block net = SmallCnn.builder().setFilters(16, 32, 32).optGlobalPool(true).setClasses(4).build();
    Shape input = new Shape(4, 3, 16, 16);
    try (Model model = Model.newInstance("plan-" + name);
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      try (Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                  .optOptimizer(
                      Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build()))) {
        trainer.initialize(input);
        data.getEngine().setRandomSeed(3);
        NDArray x = data.randomNormal(input);
        try (GradientCollector gc = trainer.newGradientCollector()) {
          NDList out = trainer.forward(new NDList(x));
          gc.backward(
              trainer.getLoss().evaluate(new NDList(data.create(new float[] {0, 1, 2, 3})), out));
        }
        trainer.step();

        SurgeryContext context = SurgeryContext.live(net, trainer, 2, 2);
        String tree = net.toString();
        Map<String, float[]> values = values(net);
        SurgeryPlan plan = algorithm.plan(context);
        assertEquals(tree, net.toString(), "the plan changed the structure");
        Map<String, float[]> unchanged = values(net);
        values.forEach((k, v) -> assertArrayEquals(v, unchanged.get(k), "plan changed " + k));

        SurgeryChanges report = algorithm.apply(context);
        List<String> planned = PlanAssertions.assertAppliedAsPlanned(plan, report);
        // SmallCnn has no batch norm and no residual unit: those two find nothing, the rest do.
        boolean findsNothing = name.equals("stochastic_depth") || name.equals("ghost_batchnorm");
        assertEquals(findsNothing, planned.isEmpty(), name + ": " + planned);
        trainer.forward(new NDList(x)).close(); // the changed model still runs
      }
    }
  }

  private static Map<String, float[]> values(Block block) {
    Map<String, float[]> out = new LinkedHashMap<>();
    for (Pair<String, Parameter> p : block.getParameters()) {
      out.put(p.getKey(), p.getValue().getArray().toFloatArray());
    }
    return out;
  }
}
