package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.events.Event;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.PendingGradients;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Gradient accumulation through {@code SurgeryListener}: a hand loop that accumulates gradients
 * over k = 2 or 3 batches per {@code trainer.step()}, with 5 batches per epoch, so that most epoch
 * ends fall inside an accumulation window; epochs reported with {@code trainer.notifyListeners(l ->
 * l.onEpoch(trainer))}, steps with {@code onEvent(BATCH_END)} right after {@code trainer.step()}.
 * The schedule mixes {@code epoch:}, {@code every: Nep} and {@code step:} entries of six built-in
 * algorithms (and layer_freezing).
 *
 * <p>The twin runs the same listener and schedule, but takes every pending gradient out (copied,
 * zeroed in place) just before {@code onEpoch} and adds it back, right after, to the arrays still
 * in the model that train: its surgeries meet no pending gradient. Bit for bit after every step,
 * the run with the window open across the surgery must be the twin (kept parameters keep their
 * gradient once, replaced ones lose theirs, new ones start without: the user guide's "Gradient
 * accumulation" paragraph); the subject is warned once per replacing entry that ran with gradients
 * pending, the twin never, and nobody for a freeze or a {@code step:} entry.
 */
class ListenerGradientAccumulationTest {

  private static final int BATCH = 8;
  private static final int PER_EPOCH = 5;
  private static final int EPOCHS = 12;

  private static final String YAML =
      "algorithms:\n"
          + "  - {name: weight_standardization, epoch: 1}\n"
          + "  - {name: blurpool, every: 2ep, min_channels: 8}\n"
          + "  - {name: ghost_batchnorm, step: 7, ghost_batch_size: 4}\n"
          + "  - {name: squeeze_excite, epoch: 5, min_channels: 8, latent_channels: 4}\n"
          + "  - {name: factorize, epoch: 7, min_channels: 8, latent_channels: 0.25,"
          + " min_features: 16}\n"
          + "  - {name: stochastic_depth, step: 13, drop_rate: 0.3}\n"
          + "  - {name: layer_freezing, epoch: 8, freeze_start: 0.0}\n"
          + "total_epochs: 12\n";

  record Run(List<List<float[]>> afterSteps, List<String> names, SurgeryListener listener) {}

  @Test
  void epochEndsInsideAWindowMatchTheSetAsideTwin() {
    List<Executable> checks = new ArrayList<>();
    for (OptimizerKind kind :
        List.of(OptimizerKind.ADAM, OptimizerKind.SGD_MOMENTUM, OptimizerKind.ADAMW)) {
      for (int k = 2; k <= 3; k++) {
        int kk = k;
        checks.add(
            () -> {
              String what = kind + " k=" + kk;
              Run subject = run(what, kind::create, kk, false);
              Run twin = run(what, kind::create, kk, true);
              assertSameBits(what, twin, subject);
              assertEquals(
                  outcomes(twin.listener()), outcomes(subject.listener()), what + " outcomes");
              assertEquals(
                  List.of(),
                  twin.listener().getWarnings().stream()
                      .filter(w -> w.contains("gradients pending"))
                      .toList(),
                  what);
              List<String> pending =
                  subject.listener().getWarnings().stream()
                      .filter(w -> w.contains("gradients pending"))
                      .toList();
              // Epoch ends with a window open: 5e batches, not a multiple of k.
              List<String> expected = new ArrayList<>();
              if (5 % kk != 0) {
                expected.add("weight_standardization at epoch 1");
              }
              expected.add("blurpool every 2ep"); // 10 batches: open for k = 3; 20: for k = 3 ..
              expected.add("squeeze_excite at epoch 5");
              expected.add("factorize at epoch 7");
              List<String> said = new ArrayList<>();
              for (String e : expected) {
                if (pending.stream().anyMatch(w -> w.startsWith("Surgery: " + e + " "))) {
                  said.add(e);
                }
              }
              List<String> wanted =
                  expected.stream()
                      .filter(e -> !(kk == 2 && e.startsWith("blurpool")))
                      .collect(Collectors.toList());
              assertEquals(wanted, said, what + ": " + pending);
              assertEquals(wanted.size(), pending.size(), what + ": " + pending);
            });
      }
    }
    assertAll(checks.stream());
  }

  static List<String> outcomes(SurgeryListener listener) {
    return listener.getOutcomes().stream()
        .map(o -> o.algorithm() + "@" + o.epoch() + "/" + o.step() + ":" + o.status())
        .toList();
  }

  static Run run(String name, Supplier<Optimizer> optimizer, int k, boolean setAside)
      throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse(YAML, "probe-g.yaml"),
            EnumSet.of(Event.INIT, Event.BATCH_END, Event.EPOCH_END));
    List<List<float[]>> afterSteps = new ArrayList<>();
    List<String> names = new ArrayList<>();
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed(23);
      Block root = TrajectoryOracle.cnn();
      model.setBlock(root);
      List<NDList[]> batches =
          TrajectoryOracle.batches(data, 23, PER_EPOCH, BATCH, DataType.FLOAT32);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(optimizer.get())
              .addTrainingListeners(listener);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(BATCH, 3, 8, 8));
        listener.onEvent(Event.INIT, trainer);
        int batch = 0;
        for (int epoch = 0; epoch < EPOCHS; epoch++) {
          for (NDList[] b : batches) {
            TrajectoryOracle.forwardBackward(trainer, b);
            if (++batch % k == 0) {
              trainer.step();
              listener.onEvent(Event.BATCH_END, trainer);
              afterSteps.add(snapshot(root));
            }
          }
          Map<NDArray, float[]> aside = setAside ? PendingGradients.takeOut(root) : null;
          trainer.notifyListeners(l -> l.onEpoch(trainer));
          if (aside != null) {
            PendingGradients.putBack(root, aside, data);
          }
        }
        root.getParameters().forEach(p -> names.add(p.getKey()));
      }
    }
    return new Run(afterSteps, names, listener);
  }

  static List<float[]> snapshot(Block root) {
    List<float[]> list = new ArrayList<>();
    for (Parameter p : root.getParameters().values()) {
      list.add(p.getArray().toFloatArray());
    }
    return list;
  }

  static void assertSameBits(String what, Run expected, Run actual) {
    assertEquals(expected.afterSteps().size(), actual.afterSteps().size(), what + ": steps");
    assertTrue(expected.afterSteps().size() >= 20, what + ": steps");
    assertEquals(expected.names(), actual.names(), what + ": parameter names");
    for (int s = 0; s < expected.afterSteps().size(); s++) {
      List<float[]> e = expected.afterSteps().get(s);
      List<float[]> a = actual.afterSteps().get(s);
      assertEquals(e.size(), a.size(), what + ": parameters after step " + (s + 1));
      for (int i = 0; i < e.size(); i++) {
        float[] x = e.get(i);
        float[] y = a.get(i);
        assertEquals(x.length, y.length, what + ": size after step " + (s + 1));
        for (int j = 0; j < x.length; j++) {
          if (Float.floatToIntBits(x[j]) != Float.floatToIntBits(y[j])) {
            fail(
                String.format(
                    "%s: after step %d, parameter #%d[%d]: twin %.9g, subject %.9g",
                    what, s + 1, i, j, x[j], y[j]));
          }
        }
      }
    }
  }
}
