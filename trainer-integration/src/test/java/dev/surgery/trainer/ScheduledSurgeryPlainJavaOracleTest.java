package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.algorithms.AbstractSurgeryAlgorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameterValues;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * A {@link SurgeryListener} built from YAML drives surgery in a hand-written loop of 300 steps (4
 * epochs of 75): a plugin that replaces the head by a fresh Linear {@code every: 90ba}, a plugin
 * that wraps the third Linear's arrays in new Parameters at {@code step: 200}, and {@code
 * layer_freezing} {@code every: 1ep}. After every step the model is compared with an oracle written
 * here in plain Java (double precision, DJL's Adam / SGD-momentum formulas from Adam.java, Sgd.java
 * and the PyTorch engine's adamUpdate / sgdUpdate kernels; no DJL optimizer or tracker), which
 * learns what each event changed only from the model: a parameter new to the model is born (fresh
 * state, own count, schedule at the model's position) unless it wraps the array of one that left
 * (then it carries on), a parameter that stopped requiring gradients is frozen. Tolerance and
 * reasoning as in core's {@code LongTrajectoryPlainJavaOracleTest}: {@code |djl - oracle| <= 1e-4
 * (|oracle| + 0.01 max|tensor|)} along the trajectory, and each step within float32 rounding.
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
  void aYamlScheduleOfPluginsAndLayerFreezingStaysOnThePlainJavaOracle() throws Exception {
    List<Executable> runs = new ArrayList<>();
    for (boolean adam : new boolean[] {true, false}) {
      runs.add(() -> new Run(adam).train());
    }
    assertAll(runs.stream());
  }

  /** The oracle's own record of one parameter. */
  static final class Slot {
    double[] w;
    double[] m;
    double[] v;
    boolean frozen;
    boolean born;
    int birth;
    int own;
    final String origin;

    Slot(String origin, double[] w) {
      this.origin = origin;
      this.w = w;
    }

    void startFresh(int position) {
      frozen = false;
      born = true;
      birth = position;
      own = 0;
      m = null;
      v = null;
    }
  }

  static final class Run {
    final boolean adam;
    final float weightDecay = 1e-3f;
    final float clip = 0.2f;
    final float rescale = 0.5f;
    final float momentum = 0.9f;
    final float start;
    final float base;
    final float fin;
    final int warm = 25;
    final int max = 400;
    final Map<Parameter, Slot> slots = new IdentityHashMap<>();
    final List<String> applied = new ArrayList<>();
    int position;
    SequentialBlock net;

    Run(boolean adam) {
      this.adam = adam;
      this.start = adam ? 1e-4f : 1e-3f;
      this.base = adam ? 0.01f : 0.05f;
      this.fin = adam ? 1e-4f : 1e-3f;
    }

    String name() {
      return adam ? "listener-adam" : "listener-sgd-momentum";
    }

    Tracker tracker() {
      return Tracker.warmUp()
          .optWarmUpBeginValue(start)
          .optWarmUpSteps(warm)
          .setMainTracker(
              Tracker.cosine().setBaseValue(base).optFinalValue(fin).setMaxUpdates(max).build())
          .build();
    }

    double lr(int n) {
      if (n < warm) {
        return start + (cosine(0) - start) * n / warm;
      }
      return cosine(n - warm);
    }

    private double cosine(int k) {
      if (k > max) {
        return fin;
      }
      return fin + ((double) base - fin) / 2 * (1 + Math.cos(Math.PI * k / max));
    }

    void train() throws Exception {
      SurgeryListener listener =
          SurgeryListener.fromConfig(SurgeryConfig.parse(YAML, "oracle.yaml"), SurgeryTrain.EVENTS);
      try (Model model = Model.newInstance(name());
          NDManager data = NDManager.newBaseManager()) {
        data.getEngine().setRandomSeed(adam ? 5 : 6);
        net = new SequentialBlock();
        net.add(Linear.builder().setUnits(HIDDEN).build())
            .add(Activation.reluBlock())
            .add(Linear.builder().setUnits(HIDDEN).build())
            .add(Activation.reluBlock())
            .add(Linear.builder().setUnits(HIDDEN).build())
            .add(Activation.reluBlock())
            .add(Linear.builder().setUnits(OUT).build());
        model.setBlock(net);
        Optimizer optimizer =
            adam
                ? Optimizer.adam()
                    .optLearningRateTracker(tracker())
                    .optWeightDecays(weightDecay)
                    .optClipGrad(clip)
                    .setRescaleGrad(rescale)
                    .build()
                : Optimizer.sgd()
                    .setLearningRateTracker(tracker())
                    .optMomentum(momentum)
                    .optWeightDecays(weightDecay)
                    .optClipGrad(clip)
                    .setRescaleGrad(rescale)
                    .build();
        DefaultTrainingConfig config =
            new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(optimizer);
        config.addTrainingListeners(listener);
        List<NDList[]> batches = batches(data, adam ? 5 : 6);
        try (Trainer trainer = model.newTrainer(config)) {
          trainer.initialize(new Shape(BATCH, IN));
          for (Pair<String, Parameter> p : net.getParameters()) {
            slots.put(p.getValue(), new Slot(p.getKey(), values(p.getValue())));
          }
          listener.onEvent(Event.INIT, trainer);
          listener.onEvent(Event.FIT_START, trainer);
          int step = 0;
          for (int epoch = 0; epoch < 4; epoch++) {
            listener.onEvent(Event.EPOCH_START, trainer);
            reconcile("epoch start " + epoch);
            for (int b = 0; b < EPOCH; b++) {
              listener.onEvent(Event.BATCH_START, trainer);
              reconcile("batch start " + step);
              NDList[] batch = batches.get(step % batches.size());
              try (GradientCollector collector = trainer.newGradientCollector()) {
                NDArray prediction = trainer.forward(batch[0]).singletonOrThrow();
                collector.backward(trainer.getLoss().evaluate(batch[1], new NDList(prediction)));
              }
              Map<Parameter, float[]> grads = new IdentityHashMap<>();
              Map<Parameter, float[]> before = new IdentityHashMap<>();
              Map<Parameter, double[]> oracleBefore = new IdentityHashMap<>();
              for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
                if (!e.getValue().frozen) {
                  NDArray g = e.getKey().getArray().getGradient();
                  grads.put(e.getKey(), g.toFloatArray());
                  g.close();
                  before.put(e.getKey(), e.getKey().getArray().toFloatArray());
                  oracleBefore.put(e.getKey(), e.getValue().w.clone());
                }
              }
              trainer.step();
              step++;
              oracleStep(grads);
              String when = "step " + step;
              compareStep(when, before, oracleBefore);
              compare(when);
              listener.onEvent(Event.BATCH_END, trainer);
              reconcile("batch end " + step);
            }
            listener.onEvent(Event.EPOCH_END, trainer);
            reconcile("epoch end " + (epoch + 1));
          }
          listener.onEvent(Event.FIT_END, trainer);
        }
      }
      // What the schedule was to do: heads at 90, 180, 270; the rewrap at 200; L0 frozen at the
      // end of epoch 2, L1 at the end of epoch 3, the rewrapped L2 at the end of epoch 4.
      assertEquals(
          List.of(
              "batch end 90: born 2",
              "epoch end 2: frozen 2",
              "batch end 180: born 2",
              "batch end 200: moved 2",
              "epoch end 3: frozen 2",
              "batch end 270: born 2",
              "epoch end 4: frozen 2"),
          applied,
          name());
    }

    /** Learns from the model what an event changed, as the promise says it must have. */
    void reconcile(String when) {
      Map<Parameter, Boolean> live = new IdentityHashMap<>();
      List<Parameter> added = new ArrayList<>();
      for (Pair<String, Parameter> p : net.getParameters()) {
        live.put(p.getValue(), Boolean.TRUE);
        if (!slots.containsKey(p.getValue())) {
          added.add(p.getValue());
        }
      }
      Map<NDArray, Slot> leftByArray = new IdentityHashMap<>();
      for (Parameter p : new ArrayList<>(slots.keySet())) {
        if (!live.containsKey(p)) {
          leftByArray.put(p.getArray(), slots.remove(p));
        }
      }
      int born = 0;
      int moved = 0;
      int frozen = 0;
      for (Parameter p : added) {
        Slot old = leftByArray.get(p.getArray());
        Slot slot;
        if (old != null && !old.frozen && p.requiresGradient()) {
          slot = old;
          moved++;
        } else {
          slot = new Slot(p.getName() + "@" + when, values(p));
          if (p.requiresGradient()) {
            slot.startFresh(position);
            born++;
          } else {
            slot.frozen = true;
          }
        }
        slots.put(p, slot);
      }
      for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
        if (!e.getKey().requiresGradient() && !e.getValue().frozen) {
          e.getValue().frozen = true;
          e.getValue().m = null;
          e.getValue().v = null;
          frozen++;
        }
        assertEquals(
            !e.getValue().frozen, e.getKey().requiresGradient(), name() + " " + when + " flags");
      }
      StringBuilder what = new StringBuilder();
      if (born > 0) {
        what.append(": born ").append(born);
      }
      if (moved > 0) {
        what.append(": moved ").append(moved);
      }
      if (frozen > 0) {
        what.append(": frozen ").append(frozen);
      }
      if (what.length() > 0) {
        applied.add(when + what);
        compare("after the surgery at " + when);
      }
    }

    void oracleStep(Map<Parameter, float[]> grads) {
      position++;
      for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
        Slot slot = e.getValue();
        if (slot.frozen) {
          continue;
        }
        float[] g = grads.get(e.getKey());
        assertNotNull(g, name() + ": gradient of " + slot.origin);
        int t = position;
        if (slot.born) {
          slot.own++;
          t = slot.own;
        }
        double lr = lr(position);
        double[] w = slot.w;
        if (slot.m == null) {
          slot.m = new double[w.length];
          slot.v = new double[w.length];
        }
        if (adam) {
          double b1 = 0.9f;
          double b2 = 0.999f;
          double eps = 1e-8f;
          double corrected = lr * Math.sqrt(1 - Math.pow(b2, t)) / (1 - Math.pow(b1, t));
          for (int i = 0; i < w.length; i++) {
            double gi = Math.min(g[i] * (double) rescale, clip) + weightDecay * w[i];
            slot.m[i] = b1 * slot.m[i] + (1 - b1) * gi;
            slot.v[i] = b2 * slot.v[i] + (1 - b2) * gi * gi;
            w[i] -= slot.m[i] * corrected / (Math.sqrt(slot.v[i]) + eps);
          }
        } else {
          for (int i = 0; i < w.length; i++) {
            double gi = Math.min(g[i] * (double) rescale, clip);
            slot.m[i] = momentum * slot.m[i] + (gi + weightDecay * w[i]) * lr;
            w[i] -= slot.m[i];
          }
        }
      }
    }

    void compare(String when) {
      for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
        float[] actual = e.getKey().getArray().toFloatArray();
        double[] expected = e.getValue().w;
        double scale = 0;
        for (double x : expected) {
          scale = Math.max(scale, Math.abs(x));
        }
        for (int i = 0; i < actual.length; i++) {
          double room = 1e-4 * (Math.abs(expected[i]) + 0.01 * scale);
          if (!(Math.abs(actual[i] - expected[i]) <= room)) {
            fail(
                String.format(
                    "%s %s: %s[%d] djl=%.9g oracle=%.9g",
                    name(), when, e.getValue().origin, i, actual[i], expected[i]));
          }
        }
      }
    }

    void compareStep(
        String when, Map<Parameter, float[]> before, Map<Parameter, double[]> oracleBefore) {
      for (Map.Entry<Parameter, float[]> e : before.entrySet()) {
        Slot slot = slots.get(e.getKey());
        float[] w0 = e.getValue();
        float[] w1 = e.getKey().getArray().toFloatArray();
        double[] o0 = oracleBefore.get(e.getKey());
        double largest = 0;
        for (int i = 0; i < w0.length; i++) {
          largest = Math.max(largest, Math.abs(slot.w[i] - o0[i]));
        }
        for (int i = 0; i < w0.length; i++) {
          double delta = slot.w[i] - o0[i];
          double error = Math.abs(w1[i] - (w0[i] + delta));
          double room =
              4 * Math.ulp(Math.max(Math.abs(w0[i]), Math.abs(w1[i])))
                  + 1e-4 * Math.abs(delta)
                  + 1e-6 * largest;
          assertTrue(
              error <= room,
              String.format(
                  "%s %s: the step of %s[%d] was %.9g in DJL, %.9g in the oracle (%s)",
                  name(),
                  when,
                  slot.origin,
                  i,
                  w1[i] - w0[i],
                  delta,
                  slot.born ? "born at " + slot.birth + ", own " + slot.own : "survivor"));
        }
      }
    }
  }

  private static double[] values(Parameter p) {
    float[] f = p.getArray().toFloatArray();
    double[] d = new double[f.length];
    for (int i = 0; i < f.length; i++) {
      d[i] = f[i];
    }
    return d;
  }

  private static List<NDList[]> batches(NDManager manager, long seed) {
    Random random = new Random(seed);
    List<NDList[]> list = new ArrayList<>();
    for (int b = 0; b < 5; b++) {
      float[] x = new float[BATCH * IN];
      float[] y = new float[BATCH * OUT];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) random.nextGaussian();
      }
      for (int r = 0; r < BATCH; r++) {
        for (int o = 0; o < OUT; o++) {
          double sum = 0;
          for (int i = 0; i < IN; i++) {
            sum += x[r * IN + i] * Math.sin(1 + i + 2 * o);
          }
          y[r * OUT + o] = (float) (Math.tanh(sum) + 0.1 * random.nextGaussian());
        }
      }
      list.add(
          new NDList[] {
            new NDList(manager.create(x, new Shape(BATCH, IN))),
            new NDList(manager.create(y, new Shape(BATCH, OUT)))
          });
    }
    return list;
  }
}
