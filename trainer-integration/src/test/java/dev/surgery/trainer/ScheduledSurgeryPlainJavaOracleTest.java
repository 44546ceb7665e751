package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.algorithms.AbstractSurgeryAlgorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameterValues;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.core.testing.TrajectoryOracle.Delta;
import dev.surgery.core.testing.TrajectoryOracle.Optim;
import dev.surgery.core.testing.TrajectoryOracle.Settings;
import dev.surgery.core.testing.TrajectoryOracle.WarmupCosine;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A {@link SurgeryListener} built from YAML drives surgery in a hand-written loop of 300 steps (4
 * epochs of 75, {@link OracleLoop}): a plugin that replaces the head by a fresh Linear {@code
 * every: 90ba}, a plugin that wraps the third Linear's arrays in new Parameters at {@code step:
 * 200}, and {@code layer_freezing} {@code every: 1ep}. After every step the model is compared with
 * the plain-Java oracle {@link TrajectoryOracle} (double precision, DJL's Adam / SGD-momentum
 * formulas from Adam.java, Sgd.java and the PyTorch engine's adamUpdate / sgdUpdate kernels; no DJL
 * optimizer or tracker), which learns what each event changed only from the model: a parameter new
 * to the model is born (fresh state, own count, schedule at the model's position) unless it wraps
 * the array of one that left (then it carries on), a parameter that stopped requiring gradients is
 * frozen. Tolerance as in core's {@code LongTrajectoryPlainJavaOracleTest} (the oracle's {@code
 * pathRoom} 0): {@code |djl - oracle| <= 1e-4 (|oracle| + 0.01 max|tensor|)} along the trajectory,
 * and each step within float32 rounding.
 */
class ScheduledSurgeryPlainJavaOracleTest {

  private static final int IN = 6;
  private static final int HIDDEN = 8;
  private static final int OUT = 3;
  private static final int BATCH = 8;
  private static final int EPOCH = 75;

  static final String FRESH_HEAD = "probe_fresh_head";
  static final String REWRAP_THIRD = "probe_rewrap_third";

  /** The head (last child) replaced by a fresh Linear. */
  static final class FreshHead extends AbstractSurgeryAlgorithm {
    FreshHead(HyperParameterValues values) {
      super(values);
    }

    @Override
    protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
      ai.djl.nn.BlockList children = context.model().getChildren();
      Block head = children.get(children.size() - 1).getValue();
      return policy(
          BlockMatcher.byBlock(b -> b == head), (b, i) -> Linear.builder().setUnits(OUT).build());
    }
  }

  /** The third Linear (child 4) replaced by a new Linear whose new Parameters wrap its arrays. */
  static final class RewrapThird extends AbstractSurgeryAlgorithm {
    RewrapThird(HyperParameterValues values) {
      super(values);
    }

    @Override
    protected LinkedHashMap<BlockMatcher, ReplacementFunction> policies(SurgeryContext context) {
      Block third = context.model().getChildren().get(4).getValue();
      return policy(
          BlockMatcher.byBlock(b -> b == third),
          (b, i) -> {
            Linear fresh = Linear.builder().setUnits(HIDDEN).build();
            for (Pair<String, Parameter> p : fresh.getParameters()) {
              p.getValue().setArray(b.getParameters().get(p.getKey()).getArray());
            }
            return fresh;
          });
    }
  }

  @BeforeAll
  static void register() {
    if (Algorithms.find(FRESH_HEAD).isEmpty()) {
      Algorithms.register(AlgorithmSpec.of(FRESH_HEAD, List.of(), FreshHead::new));
    }
    if (Algorithms.find(REWRAP_THIRD).isEmpty()) {
      Algorithms.register(AlgorithmSpec.of(REWRAP_THIRD, List.of(), RewrapThird::new));
    }
  }

  private static final String YAML =
      "algorithms:\n"
          + "  - name: "
          + FRESH_HEAD
          + "\n"
          + "    every: 90ba\n"
          + "  - name: "
          + REWRAP_THIRD
          + "\n"
          + "    step: 200\n"
          + "  - name: layer_freezing\n"
          + "    every: 1ep\n"
          + "    freeze_start: 0.25\n"
          + "    freeze_level: 1.0\n"
          + "total_epochs: 4\n";

  @Test
  void aYamlScheduleOfPluginsAndLayerFreezingStaysOnThePlainJavaOracle() {
    assertAll(() -> train(true), () -> train(false));
  }

  private static void train(boolean adam) throws Exception {
    String name = adam ? "listener-adam" : "listener-sgd-momentum";
    long seed = adam ? 5 : 6;
    Settings s =
        adam
            ? new Settings(
                Optim.ADAM,
                1e-3f,
                0.2f,
                0.5f,
                0f,
                0,
                new WarmupCosine(1e-4f, 25, 0.01f, 1e-4f, 400))
            : new Settings(
                Optim.SGD_MOMENTUM,
                1e-3f,
                0.2f,
                0.5f,
                0.9f,
                0,
                new WarmupCosine(1e-3f, 25, 0.05f, 1e-3f, 400));
    SurgeryListener listener =
        SurgeryListener.fromConfig(SurgeryConfig.parse(YAML, "oracle.yaml"), SurgeryTrain.EVENTS);
    List<Map.Entry<String, Delta>> applied = new ArrayList<>();
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed((int) seed);
      SequentialBlock net = TrajectoryOracle.mlp(HIDDEN, OUT);
      model.setBlock(net);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(s.build());
      config.addTrainingListeners(listener);
      List<NDList[]> batches = TrajectoryOracle.regression(data, seed, 5, BATCH, IN, OUT);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(BATCH, IN));
        TrajectoryOracle oracle = new TrajectoryOracle(name, net, s);
        oracle.pathRoom = 0;
        OracleLoop.run(
            listener,
            trainer,
            oracle,
            batches,
            4,
            EPOCH,
            0,
            "",
            (when, step, delta) -> {
              if (!delta.equals(Delta.NONE)) {
                applied.add(Map.entry(when, delta));
              }
            });
        System.out.println(oracle.summary());
      }
    }
    // What the schedule was to do: heads at 90, 180, 270 (the old head leaves, the new one is
    // born); the rewrap at 200 (moved); L0 frozen at the end of epoch 2, L1 at the end of epoch 3,
    // the rewrapped L2 at the end of epoch 4.
    Delta head = Delta.bornRemoved(2, 2);
    assertEquals(
        List.of(
            Map.entry("batch end 90", head),
            Map.entry("epoch end 2", Delta.frozen(2)),
            Map.entry("batch end 180", head),
            Map.entry("batch end 200", new Delta(0, 0, 2, 0, 0, 0)),
            Map.entry("epoch end 3", Delta.frozen(2)),
            Map.entry("batch end 270", head),
            Map.entry("epoch end 4", Delta.frozen(2))),
        applied,
        name);
  }
}
