package dev.surgery.core;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmPolicies;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyModels;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every built-in algorithm applied through {@link Algorithm#apply} to a live small residual CNN,
 * alone and after another algorithm, with the trainer's own maps (store entries, optimizer state,
 * update counts) failing at their k-th change for k = 1, 2, ... until the application succeeds;
 * also on a model with a frozen layer and with a backward pending. After every failure {@link
 * KthFaultRig} checks everything reachable, object for object and bit for bit, and that ten more
 * steps match a twin that never tried.
 */
class KthChanceAlgorithmRollbackTest {

  private static final Shape INPUT = new Shape(4, 3, 8, 8);

  /** The chances. */
  enum Seam {
    /** The trainer's own maps, through {@link Algorithm#apply}. */
    TRAINER_MAPS,
    /** The algorithm's replacement function, at its k-th call, throwing before it runs. */
    FUNCTION_THROWS,
    /** The algorithm's matcher, at its k-th call. */
    MATCHER_THROWS,
    /** The engine's named points (initialize, trainer.remove, trainer.add), at the k-th of all. */
    ENGINE_POINTS
  }

  /** The model's state when the algorithm runs. */
  enum Setting {
    PLAIN,
    FROZEN_FIRST_CONV,
    PENDING_BACKWARD
  }

  private static Conv2d conv(int filters, int stride) {
    return TinyModels.conv3x3(filters, stride);
  }

  /**
   * conv BN relu, a ResNetV1-style unit (branch + identity), strided conv BN relu, pool, linear.
   */
  static Block residualCnn() {
    SequentialBlock branch =
        new SequentialBlock()
            .add(conv(8, 1))
            .add(BatchNorm.builder().build())
            .add(Activation.reluBlock())
            .add(conv(8, 1))
            .add(BatchNorm.builder().build());
    SequentialBlock shortcut = new SequentialBlock().add(Blocks.identityBlock());
    ParallelBlock unit =
        new ParallelBlock(
            list -> new NDList(list.get(0).singletonOrThrow().add(list.get(1).singletonOrThrow())),
            List.of(branch, shortcut));
    return new SequentialBlock()
        .add(conv(8, 1))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(unit)
        .add(Activation.reluBlock())
        .add(conv(16, 2))
        .add(BatchNorm.builder().build())
        .add(Activation.reluBlock())
        .add(Pool.maxPool2dBlock(new Shape(2, 2)))
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  static Algorithm algorithm(String name) {
    Map<String, Object> settings =
        switch (name) {
          case "blurpool" -> Map.of("min_channels", 1);
          case "factorize" -> Map.of("min_channels", 4, "min_features", 4);
          case "ghost_batchnorm" -> Map.of("ghost_batch_size", 2);
          case "squeeze_excite" -> Map.of("min_channels", 4, "latent_channels", 0.5);
          default -> Map.of();
        };
    return Algorithms.spec(name).create(settings);
  }

  static final List<String> ALGORITHMS =
      List.of(
          "blurpool",
          "factorize",
          "ghost_batchnorm",
          "squeeze_excite",
          "stochastic_depth",
          "weight_standardization",
          "layer_freezing");

  /**
   * A selection that runs in about half a minute: each algorithm once, with a backward pending, at
   * a seam that reaches it (an algorithm that keeps every parameter object gives the trainer's maps
   * nothing to fail), two on a model with a frozen layer, and four compositions whose second
   * algorithm fails. {@code -Dsurgery.kth.full=true} runs every algorithm and composition at every
   * seam and setting (some four minutes).
   */
  static Stream<Arguments> cases() {
    if (Boolean.getBoolean("surgery.kth.full")) {
      return everyCase();
    }
    Setting pending = Setting.PENDING_BACKWARD;
    return Stream.of(
        Arguments.of(pending, null, "blurpool", Seam.MATCHER_THROWS),
        Arguments.of(pending, null, "factorize", Seam.ENGINE_POINTS),
        Arguments.of(pending, null, "ghost_batchnorm", Seam.FUNCTION_THROWS),
        Arguments.of(pending, null, "squeeze_excite", Seam.TRAINER_MAPS),
        Arguments.of(pending, null, "stochastic_depth", Seam.FUNCTION_THROWS),
        Arguments.of(pending, null, "weight_standardization", Seam.FUNCTION_THROWS),
        Arguments.of(pending, null, "layer_freezing", Seam.TRAINER_MAPS),
        Arguments.of(Setting.FROZEN_FIRST_CONV, null, "squeeze_excite", Seam.FUNCTION_THROWS),
        Arguments.of(
            Setting.FROZEN_FIRST_CONV, null, "weight_standardization", Seam.MATCHER_THROWS),
        Arguments.of(Setting.PLAIN, "weight_standardization", "blurpool", Seam.FUNCTION_THROWS),
        Arguments.of(pending, "blurpool", "squeeze_excite", Seam.ENGINE_POINTS),
        Arguments.of(pending, "stochastic_depth", "weight_standardization", Seam.FUNCTION_THROWS),
        Arguments.of(Setting.PLAIN, "blurpool", "layer_freezing", Seam.TRAINER_MAPS));
  }

  static Stream<Arguments> everyCase() {
    List<Arguments> cases = new ArrayList<>();
    for (String a : ALGORITHMS) {
      for (Setting s : Setting.values()) {
        for (Seam seam : Seam.values()) {
          if (seam == Seam.TRAINER_MAPS || !a.equals("layer_freezing")) {
            cases.add(Arguments.of(s, null, a, seam));
          }
        }
      }
    }
    String[][] pairs = {
      {"weight_standardization", "blurpool"},
      {"blurpool", "squeeze_excite"},
      {"factorize", "squeeze_excite"},
      {"squeeze_excite", "factorize"},
      {"ghost_batchnorm", "stochastic_depth"},
      {"stochastic_depth", "weight_standardization"},
      {"layer_freezing", "blurpool"},
      {"blurpool", "layer_freezing"},
      {"weight_standardization", "factorize"}
    };
    for (String[] p : pairs) {
      for (Seam seam : Seam.values()) {
        if (seam == Seam.TRAINER_MAPS || !p[1].equals("layer_freezing")) {
          cases.add(Arguments.of(Setting.PLAIN, p[0], p[1], seam));
          cases.add(Arguments.of(Setting.PENDING_BACKWARD, p[0], p[1], seam));
        }
      }
    }
    return cases.stream();
  }

  /** Applies an algorithm live. */
  private static void apply(KthFaultRig rig, String name) {
    algorithm(name).apply(SurgeryContext.live(rig.roots.get(0), rig.trainers.get(0), 3, 4));
  }

  /**
   * The algorithm's own policies and options run by the engine with a failure at the k-th chance of
   * the seam: its function or matcher throwing, or the engine's named points.
   */
  private static void injected(
      KthFaultRig rig, String name, Seam seam, KthFaultRig.Injector injector) {
    Algorithm algorithm = algorithm(name);
    SurgeryContext context = SurgeryContext.live(rig.roots.get(0), rig.trainers.get(0), 3, 4);
    SurgeryOptions options = AlgorithmPolicies.options(algorithm, context);
    List<TreeSurgery.Policy> policies = new ArrayList<>();
    int i = 0;
    for (Map.Entry<BlockMatcher, ReplacementFunction> e :
        AlgorithmPolicies.of(algorithm, context).entrySet()) {
      BlockMatcher m = e.getKey();
      ReplacementFunction f = e.getValue();
      BlockMatcher matcher =
          seam == Seam.MATCHER_THROWS
              ? (block, path) -> {
                injector.hit("matcher");
                return m.matches(block, path);
              }
              : m;
      ReplacementFunction function =
          seam == Seam.FUNCTION_THROWS
              ? (block, index) -> {
                injector.hit("function");
                return f.apply(block, index);
              }
              : f;
      policies.add(new TreeSurgery.Policy(m, "#" + i++, matcher, function));
    }
    Faults faults = seam == Seam.ENGINE_POINTS ? point -> injector.hit(point) : Faults.NONE;
    new TreeSurgery(
            rig.roots.get(0),
            policies,
            options.getTrainers(),
            options.isRecurseOnReplacements(),
            options.isAllowShapeChange(),
            new HashMap<>(),
            faults)
        .run();
  }

  @ParameterizedTest(name = "{0}: {1} then {2}, {3}")
  @MethodSource("cases")
  void everyChanceOfAnApplicationIsRolledBackExactly(
      Setting setting, String first, String second, Seam seam) throws Exception {
    Consumer<KthFaultRig> prepare =
        rig -> {
          if (seam == Seam.TRAINER_MAPS) {
            rig.armTrainerMaps(); // before a stand-in optimizer takes the maps it holds
          }
          if (setting == Setting.FROZEN_FIRST_CONV) {
            List<Parameter> conv =
                new ArrayList<>(rig.roots.get(0).getChildren().valueAt(0).getParameters().values());
            ModuleSurgery.freezeParameters(conv, rig.trainers);
          }
          if (first != null) {
            Engine.getInstance().setRandomSeed(11); // the twins' fresh layers draw alike
            apply(rig, first);
          }
        };
    Consumer<KthFaultRig> beforeAttempt =
        rig -> {
          if (setting == Setting.PENDING_BACKWARD) {
            rig.round(false);
          }
        };
    String label = setting + "-" + (first == null ? "" : first + "+") + second + "-" + seam;
    KthFaultRig.Sweep sweep =
        KthFaultRig.sweep(
            label,
            name ->
                new KthFaultRig(
                    name,
                    List.of(residualCnn()),
                    INPUT,
                    DataType.FLOAT32,
                    OptimizerKind.ADAM_RATE_PER_ID),
            prepare,
            beforeAttempt,
            (rig, injector) -> {
              if (seam == Seam.TRAINER_MAPS) {
                apply(rig, second);
              } else {
                injected(rig, second, seam, injector);
              }
            },
            true);
    sweep.reportAndAssertNoDefect();
  }
}
