package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.util.Pair;
import dev.surgery.core.SurgeryPlan.PlannedParameter;
import dev.surgery.core.SurgeryPlan.StateFate;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.Factorize;
import dev.surgery.core.algorithms.GhostBatchNorm;
import dev.surgery.core.algorithms.LayerFreezing;
import dev.surgery.core.algorithms.SqueezeExcite;
import dev.surgery.core.algorithms.StochasticDepth;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.algorithms.WeightStandardization;
import dev.surgery.core.internal.BirthAwareOptimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
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
 * every state the plan does not name is untouched.
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

  /** A parameter the plan names, found in the model. */
  private record Claim(
      String role, String step, String where, Parameter parameter, PlannedParameter planned) {}

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
      step(trainer, x, y);
      step(trainer, x, y);

      SurgeryContext context = SurgeryContext.live(resnet, trainer, 2, 2);
      Map<String, Map<String, float[]>> stateBefore = state(optimizer);
      Map<String, Integer> countsBefore = new HashMap<>(DjlOptimizers.updateCounts(optimizer));

      SurgeryPlan plan = algorithm.plan(context);
      assertFalse(plan.isEmpty(), plan.toTable(name));
      // Where each step's block sits, to find its replacement after the apply.
      Map<String, Block> byPath = new HashMap<>();
      BlockPaths.index(resnet).forEach((b, p) -> byPath.put(BlockPaths.display(p), b));
      List<Claim> claims = new ArrayList<>();
      Map<SurgeryPlan.Step, Block> parents = new LinkedHashMap<>();
      Map<SurgeryPlan.Step, Integer> positions = new HashMap<>();
      for (SurgeryPlan.Step s : plan.steps()) {
        Block old = byPath.get(s.path());
        assertNotNull(old, s.path());
        Map<String, Parameter> params = named(old);
        for (PlannedParameter p : s.removed()) {
          claims.add(claim("removed", s, params, p));
        }
        for (PlannedParameter p : s.kept()) {
          claims.add(claim("kept", s, params, p));
        }
        int slash = s.path().lastIndexOf('/');
        Block parent = slash < 0 ? resnet : byPath.get(s.path().substring(0, slash));
        parents.put(s, parent);
        positions.put(s, BlockPaths.children(parent).values().indexOf(old));
      }

      algorithm.apply(context);

      for (SurgeryPlan.Step s : plan.steps()) {
        if (s.added().isEmpty()) {
          continue;
        }
        Block replacement = BlockPaths.children(parents.get(s)).values().get(positions.get(s));
        Map<String, Parameter> params = named(replacement);
        for (PlannedParameter p : s.added()) {
          claims.add(claim("added", s, params, p));
        }
      }
      Map<String, Map<String, float[]>> stateAfter = state(optimizer);
      Map<String, Integer> countsAfter = DjlOptimizers.updateCounts(optimizer);
      BirthAwareOptimizer births = DjlTrainers.birthAwareOptimizer(trainer, false);
      Set<String> expectedIds = new HashSet<>(stateBefore.keySet());
      Map<String, String> movedTo = new HashMap<>(); // old id -> id now holding its state
      int fresh = 0;
      int rekeyed = 0;
      for (Claim c : claims) {
        String id = c.parameter().getId();
        StateFate fate = c.planned().state();
        String what = c.role() + " " + c.where() + " " + fate + " in\n" + plan.toTable(name);
        switch (c.role() + "/" + fate) {
          case "kept/MOVED":
            assertTrue(stateBefore.containsKey(id), what);
            assertSameState(stateBefore.get(id), stateAfter.get(id), what);
            assertEquals(countsBefore.get(id), countsAfter.get(id), what);
            movedTo.put(id, id);
            break;
          case "removed/MOVED":
            {
              Claim heir = heirOf(c, claims);
              assertNotNull(heir, "no added parameter of the step takes over " + what);
              String newId = heir.parameter().getId();
              assertTrue(stateBefore.containsKey(id), what);
              assertSameState(stateBefore.get(id), stateAfter.get(newId), what);
              assertEquals(countsBefore.get(id), countsAfter.get(newId), what);
              assertFalse(stateAfter.containsKey(id), what);
              expectedIds.remove(id);
              expectedIds.add(newId);
              movedTo.put(id, newId);
              rekeyed++;
              break;
            }
          case "added/MOVED":
            assertNotNull(heirOf(c, claims), "nothing moves into " + what);
            break;
          case "removed/DROPPED":
          case "kept/DROPPED":
            assertTrue(stateBefore.containsKey(id), "nothing to drop: " + what);
            assertFalse(stateAfter.containsKey(id), what);
            assertFalse(countsAfter.containsKey(id), what);
            expectedIds.remove(id);
            break;
          case "added/FRESH":
            fresh++;
            assertTrue(c.parameter().requiresGradient(), what);
            assertFalse(stateAfter.containsKey(id), what);
            assertFalse(countsAfter.containsKey(id), what);
            Integer birth = births == null ? null : births.birthOf(id);
            assertEquals(c.planned().bornExact(), birth != null, "birth mark of " + what);
            break;
          case "removed/NONE":
          case "kept/NONE":
          case "added/NONE":
            assertFalse(stateBefore.containsKey(id), what);
            assertFalse(stateAfter.containsKey(id), what);
            assertTrue(births == null || births.birthOf(id) == null, what);
            break;
          default:
            throw new AssertionError("a plan cannot say " + what);
        }
      }
      // Nothing the plan does not name changed: the same ids hold state, untouched.
      assertEquals(new TreeSet<>(expectedIds), new TreeSet<>(stateAfter.keySet()));
      for (Map.Entry<String, Map<String, float[]>> e : stateBefore.entrySet()) {
        String now = movedTo.getOrDefault(e.getKey(), e.getKey());
        if (stateAfter.containsKey(now)) {
          assertSameState(e.getValue(), stateAfter.get(now), e.getKey());
        }
      }

      // One more step: a fresh parameter starts from zero state, a NONE one never gets any.
      Map<String, float[]> gradients = new HashMap<>();
      try (GradientCollector gc = trainer.newGradientCollector()) {
        NDList out = trainer.forward(new NDList(x));
        gc.backward(trainer.getLoss().evaluate(new NDList(y), out));
      }
      for (Claim c : claims) {
        if (c.planned().state() == StateFate.FRESH) {
          gradients.put(
              c.parameter().getId(), c.parameter().getArray().getGradient().toFloatArray());
        }
      }
      trainer.step();
      Map<String, Map<String, float[]>> stateNext = state(optimizer);
      for (Claim c : claims) {
        String id = c.parameter().getId();
        if (c.planned().state() == StateFate.NONE
            || c.role().equals("kept") && c.planned().state() == StateFate.DROPPED) {
          assertFalse(stateNext.containsKey(id), "state after the next step: " + c);
        }
        if (c.planned().state() == StateFate.FRESH && kind == OptimizerKind.ADAM) {
          float[] g = gradients.get(id);
          float[] m = only(stateNext.get(id), "means");
          float[] v = only(stateNext.get(id), "variances");
          for (int i = 0; i < g.length; i++) {
            assertEquals(0.1f * g[i], m[i], 1e-6f + 1e-5f * Math.abs(g[i]), c.toString());
            assertEquals(0.001f * g[i] * g[i], v[i], 1e-9f + 1e-5f * g[i] * g[i], c.toString());
          }
        }
      }
      if (name.startsWith("factorize") || name.startsWith("squeeze")) {
        assertTrue(fresh > 0, "the algorithm adds trainable parameters:\n" + plan.toTable(name));
      }
      if (name.startsWith("new Parameters")) {
        assertTrue(rekeyed > 0, "state moves to the new ids:\n" + plan.toTable(name));
      }
    }
  }

  /** The added parameter of the same step around the same array as a removed one, or back. */
  private static Claim heirOf(Claim c, List<Claim> claims) {
    for (Claim other : claims) {
      if (other != c
          && other.step().equals(c.step())
          && !other.role().equals(c.role())
          && !other.role().equals("kept")
          && other.planned().state() == StateFate.MOVED
          && other.parameter().getArray() == c.parameter().getArray()) {
        return other;
      }
    }
    return null;
  }

  private static Claim claim(
      String role, SurgeryPlan.Step s, Map<String, Parameter> params, PlannedParameter p) {
    Parameter parameter = params.get(p.name());
    assertNotNull(parameter, role + " " + s.path() + " " + p.name() + " not in " + params.keySet());
    assertEquals(String.valueOf(parameter.getShape()), String.valueOf(p.shape()));
    return new Claim(role, s.path(), s.path() + " " + p.name(), parameter, p);
  }

  private static Map<String, Parameter> named(Block block) {
    Map<String, Parameter> out = new LinkedHashMap<>();
    for (Pair<String, Parameter> p : block.getParameters()) {
      out.putIfAbsent(p.getKey(), p.getValue());
    }
    return out;
  }

  private static void step(Trainer trainer, NDArray x, NDArray y) {
    try (GradientCollector gc = trainer.newGradientCollector()) {
      NDList out = trainer.forward(new NDList(x));
      gc.backward(trainer.getLoss().evaluate(new NDList(y), out));
    }
    trainer.step();
  }

  /** Parameter id to state field and device to a bitwise copy, for ids with any state. */
  private static Map<String, Map<String, float[]>> state(Optimizer optimizer) {
    Map<String, Map<String, float[]>> out = new TreeMap<>();
    for (Map.Entry<String, Map<String, Map<Device, NDArray>>> field :
        DjlOptimizers.optimizerStates(optimizer).entrySet()) {
      for (Map.Entry<String, Map<Device, NDArray>> e : field.getValue().entrySet()) {
        for (Map.Entry<Device, NDArray> d : e.getValue().entrySet()) {
          out.computeIfAbsent(e.getKey(), k -> new TreeMap<>())
              .put(field.getKey() + "@" + d.getKey(), d.getValue().toFloatArray());
        }
      }
    }
    return out;
  }

  private static float[] only(Map<String, float[]> state, String field) {
    assertNotNull(state, "no state");
    for (Map.Entry<String, float[]> e : state.entrySet()) {
      if (e.getKey().contains("." + field + "@")) {
        return e.getValue();
      }
    }
    throw new AssertionError("no " + field + " in " + state.keySet());
  }

  private static void assertSameState(
      Map<String, float[]> expected, Map<String, float[]> actual, String what) {
    assertNotNull(actual, "state gone: " + what);
    assertEquals(expected.keySet(), actual.keySet(), what);
    for (Map.Entry<String, float[]> e : expected.entrySet()) {
      assertArrayEquals(e.getValue(), actual.get(e.getKey()), e.getKey() + " " + what);
    }
  }
}
