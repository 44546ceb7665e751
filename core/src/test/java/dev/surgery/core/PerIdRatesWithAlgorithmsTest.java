package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
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
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.testing.TrajectoryOracle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Learning rates per parameter id (a {@link ParameterTracker} keyed by id, the layer-wise rates a
 * user builds from an initialized model) with the seven built-in algorithms applied live through
 * the core API, over 50 steps, under SGD with momentum, Adam and AdamW (each with weight decay).
 *
 * <p>The oracle is plain Java in double precision, fed DJL's gradients and weights before each
 * step, with the rate it computes itself from the id the user guide says must be asked ("Rates per
 * parameter id"): a parameter that goes on training (adopted, or moved 1:1 by {@code
 * replaceParamsInOptimizer}) at the rate of the id it had first; a born one (a gate, a factor) at
 * the tracker's default, as a fresh optimizer, with its own bias-correction count and the schedule
 * at the model's position; a frozen one not at all; an unfrozen one fresh, at its first id's rate.
 * Every parameter's every update is compared (the step alone: 1e-4 of the update plus 4 ulps of the
 * weight), and the ids the tracker was asked in each step must be exactly the ids the oracle used.
 */
class PerIdRatesWithAlgorithmsTest {

  private static final int BATCH = 8;
  private static final float DEFAULT = 0.01f;

  /** The user's tracker: a rate per id, a default for any other, a gentle schedule on top. */
  static final class LayerRates implements ParameterTracker {
    final Map<String, Float> rates = new HashMap<>();
    final List<String> asked = new ArrayList<>();

    float rate(String id, int numUpdate) {
      return rates.getOrDefault(id, DEFAULT) * (1f + numUpdate / 200f);
    }

    @Override
    public float getNewValue(String parameterId, int numUpdate) {
      asked.add(parameterId);
      return rate(parameterId, numUpdate);
    }
  }

  enum Kind {
    SGD_MOMENTUM,
    ADAM,
    ADAMW
  }

  static Optimizer optimizer(Kind kind, ParameterTracker tracker) {
    return switch (kind) {
      case SGD_MOMENTUM ->
          Optimizer.sgd()
              .setLearningRateTracker(tracker)
              .optMomentum(0.9f)
              .optWeightDecays(1e-3f)
              .build();
      case ADAM -> Optimizer.adam().optLearningRateTracker(tracker).optWeightDecays(1e-3f).build();
      case ADAMW ->
          Optimizer.adamW().optLearningRateTracker(tracker).optWeightDecays(0.05f).build();
    };
  }

  /** One action before a step's forward. */
  @FunctionalInterface
  interface Action {
    void apply(Block root, Trainer trainer, Oracle oracle) throws Exception;
  }

  record Ev(int step, String what, Action action) {}

  static Ev algorithm(int step, String name, Map<String, Object> values, int completed) {
    return new Ev(
        step,
        name,
        (root, trainer, oracle) ->
            Algorithms.spec(name)
                .create(values)
                .apply(new SurgeryContext(root, List.of(trainer), completed, 4)));
  }

  static final Map<String, Object> SE = Map.of("min_channels", 8, "latent_channels", 4);
  static final Map<String, Object> FACTORIZE =
      Map.of("min_channels", 8, "latent_channels", 0.25, "min_features", 4);

  static List<Ev> alone(String name) {
    Map<String, Object> values =
        switch (name) {
          case "blurpool" -> Map.of("min_channels", 8);
          case "ghost_batchnorm" -> Map.of("ghost_batch_size", 4);
          case "squeeze_excite" -> SE;
          case "factorize" -> FACTORIZE;
          case "stochastic_depth" -> Map.of("drop_rate", 0.5, "stochastic_method", "sample");
          case "layer_freezing" -> Map.of("freeze_start", 0.0, "freeze_level", 1.0);
          default -> Map.of();
        };
    return List.of(algorithm(20, name, values, 2));
  }

  @Test
  void eachBuiltInAlgorithmKeepsAdoptedRatesAndGivesBornOnesTheDefault() {
    List<Executable> runs = new ArrayList<>();
    for (String name : GradientAccumulationRig.BUILT_IN_ALGORITHMS) {
      for (Kind kind : Kind.values()) {
        runs.add(() -> train(name + "-" + kind, kind, 50, alone(name), 60 + kind.ordinal(), false));
      }
    }
    assertAll(runs.stream());
  }

  /** Freezes (layer_freezing), unfreezes, moves and replaces, all in one run. */
  static List<Ev> sequence() {
    return List.of(
        // the strided convolution copied and moved (first ids kept), then adopted by blurpool,
        // weight standardization and a squeeze-excite wrapper: still its first ids' rates
        new Ev(
            3,
            "copy of the strided conv, moved",
            PerIdRatesWithAlgorithmsTest::copyStridedConvAndMove),
        algorithm(5, "blurpool", Map.of("min_channels", 8), 0),
        algorithm(10, "layer_freezing", Map.of("freeze_start", 0.0, "freeze_level", 1.0), 2),
        // gates on unit 1's frozen convolutions are born frozen, the others born
        algorithm(15, "squeeze_excite", SE, 2),
        new Ev(
            20,
            "unfreeze all",
            (root, trainer, oracle) -> {
              List<Parameter> frozen = new ArrayList<>();
              for (Parameter p : root.getParameters().values()) {
                if (TrajectoryOracle.tracked(p) && !p.requiresGradient()) {
                  frozen.add(p);
                }
              }
              assertTrue(frozen.size() > 0);
              ModuleSurgery.unfreezeParameters(frozen, List.of(trainer));
            }),
        new Ev(25, "copy of the head, moved", PerIdRatesWithAlgorithmsTest::copyHeadAndMove),
        // "A moved parameter is always asked with its first id, also after it is frozen and
        // unfrozen; a rate you add for its new id is not read" (copyHeadAndMove added one).
        new Ev(
            27,
            "freeze the moved head",
            (root, trainer, oracle) ->
                ModuleSurgery.freezeParameters(
                    head(root).getParameters().values(), List.of(trainer))),
        new Ev(
            29,
            "unfreeze the moved head",
            (root, trainer, oracle) ->
                ModuleSurgery.unfreezeParameters(
                    head(root).getParameters().values(), List.of(trainer))),
        algorithm(30, "weight_standardization", Map.of(), 2),
        algorithm(35, "ghost_batchnorm", Map.of("ghost_batch_size", 4), 2),
        // the moved head among the factorized linears: it leaves, its factors are born
        algorithm(40, "factorize", FACTORIZE, 3),
        // "a tracker of your own can give it a rate by its new id after the surgery"
        new Ev(
            42,
            "rates for the born factors",
            (root, trainer, oracle) -> {
              for (Parameter p : root.getParameters().values()) {
                if (TrajectoryOracle.tracked(p) && !oracle.rates.rates.containsKey(p.getId())) {
                  oracle.rates.rates.put(p.getId(), 0.004f);
                }
              }
            }),
        algorithm(45, "stochastic_depth", Map.of("drop_rate", 0.3), 3));
  }

  @Test
  void composedWithFreezingUnfreezingAndAMovedCopy() {
    List<Executable> runs = new ArrayList<>();
    for (Kind kind : Kind.values()) {
      runs.add(() -> train("sequence-" + kind, kind, 55, sequence(), 80 + kind.ordinal(), false));
    }
    assertAll(runs.stream());
  }

  /** The oracle has teeth: survivors read at the default rate are caught at the first step. */
  @Test
  void aWrongReadingIsCaught() {
    AssertionError e =
        assertThrows(
            AssertionError.class,
            () -> train("mutant", Kind.ADAM, 30, alone("blurpool"), 61, true));
    assertTrue(e.getMessage().contains("step 1 "), e.getMessage());
  }

  /** The strided Conv2d copied (WeightCopy) without the trainer, then moved 1:1. */
  static void copyStridedConvAndMove(Block root, Trainer trainer, Oracle oracle) {
    Conv2d target = null;
    for (Pair<String, Block> child : root.getChildren()) {
      if (child.getValue() instanceof Conv2d c && c.getStride().get(0) == 2) {
        target = c;
      }
    }
    Conv2d strided = target;
    List<Parameter> old = strided.getDirectParameters().values();
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(
            root,
            Map.of(
                Conv2d.class,
                (b, i) ->
                    b == strided
                        ? WeightCopy.into(
                            dev.surgery.core.layers.AdoptingConv2d.settingsOf(strided).build(),
                            strided)
                        : null),
            null,
            false,
            null);
    List<Parameter> moved = replaced.get(strided).getDirectParameters().values();
    ModuleSurgery.replaceParamsInOptimizer(old, moved, List.of(trainer));
    for (int i = 0; i < old.size(); i++) {
      oracle.moved.put(moved.get(i), old.get(i));
      oracle.rates.rates.put(moved.get(i).getId(), 0.05f); // must not be read
    }
  }

  static Linear head(Block root) {
    Linear head = null;
    for (Pair<String, Block> child : root.getChildren()) {
      if (child.getValue() instanceof Linear l) {
        head = l;
      }
    }
    return head;
  }

  /** The last Linear copied (WeightCopy) without the trainer, then moved 1:1 in the optimizer. */
  static void copyHeadAndMove(Block root, Trainer trainer, Oracle oracle) {
    Linear target = head(root);
    List<Parameter> old = target.getDirectParameters().values();
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(
            root,
            Map.of(
                Linear.class,
                (b, i) ->
                    b == target
                        ? WeightCopy.into(Linear.builder().setUnits(4).build(), target)
                        : null),
            null,
            false,
            null);
    Block copy = replaced.get(target);
    List<Parameter> moved = copy.getDirectParameters().values();
    ModuleSurgery.replaceParamsInOptimizer(old, moved, List.of(trainer));
    for (int i = 0; i < old.size(); i++) {
      oracle.moved.put(moved.get(i), old.get(i));
      oracle.rates.rates.put(moved.get(i).getId(), 0.05f); // must not be read
    }
  }

  // ----------------------------------------------------------------------------- the run

  static void train(String name, Kind kind, int steps, List<Ev> events, long seed, boolean mutant)
      throws Exception {
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed((int) seed);
      Block root = TrajectoryOracle.cnn();
      model.setBlock(root);
      List<NDList[]> batches = TrajectoryOracle.batches(data, seed, 6, BATCH, DataType.FLOAT32);
      LayerRates rates = new LayerRates();
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(optimizer(kind, rates));
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(BATCH, 3, 8, 8));
        // Layer-wise rates built from the initialized model: one per parameter, by position.
        int i = 0;
        for (Parameter p : root.getParameters().values()) {
          if (TrajectoryOracle.tracked(p)) {
            rates.rates.put(p.getId(), 0.002f + 0.0015f * (i++ % 5));
          }
        }
        Oracle oracle = new Oracle(name, kind, root, rates, mutant);
        for (int step = 0; step < steps; step++) {
          for (Ev ev : events) {
            if (ev.step() == step) {
              ev.action().apply(root, trainer, oracle);
              oracle.reconcile(ev.what() + " before step " + (step + 1));
            }
          }
          TrajectoryOracle.forwardBackward(trainer, batches.get(step % batches.size()));
          oracle.beforeStep();
          rates.asked.clear();
          trainer.step();
          oracle.afterStep("step " + (step + 1) + " ");
        }
        System.out.println(oracle.summary());
      }
    }
  }

  /** The double-precision oracle with per-id rates. */
  static final class Oracle {
    final String name;
    final Kind kind;
    final Block root;
    final LayerRates rates;
    final boolean mutant;
    final Map<Parameter, Slot> slots = new IdentityHashMap<>();
    final Map<Parameter, Parameter> moved = new IdentityHashMap<>();
    int position;
    double worst;
    int born;
    int bornFrozen;
    int unfrozen;
    int movedCount;
    int frozen;
    private Map<Parameter, float[]> grads;
    private Map<Parameter, float[]> before;

    static final class Slot {
      String firstId;
      boolean frozen;
      boolean born;
      int birth;
      int own;
      double[] m;
      double[] v;
    }

    Oracle(String name, Kind kind, Block root, LayerRates rates, boolean mutant) {
      this.name = name;
      this.kind = kind;
      this.root = root;
      this.rates = rates;
      this.mutant = mutant;
      for (Parameter p : root.getParameters().values()) {
        if (TrajectoryOracle.tracked(p)) {
          Slot s = new Slot();
          s.firstId = p.getId();
          s.frozen = !p.requiresGradient();
          slots.put(p, s);
        }
      }
    }

    void reconcile(String when) {
      Map<Parameter, Slot> next = new IdentityHashMap<>();
      Map<NDArray, Slot> leftByArray = new IdentityHashMap<>();
      Map<Parameter, Boolean> live = new IdentityHashMap<>();
      for (Parameter p : root.getParameters().values()) {
        live.put(p, Boolean.TRUE);
      }
      for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
        if (!live.containsKey(e.getKey()) && !e.getKey().getArray().isReleased()) {
          leftByArray.put(e.getKey().getArray(), e.getValue());
        }
      }
      for (Parameter p : root.getParameters().values()) {
        if (!TrajectoryOracle.tracked(p)) {
          continue;
        }
        boolean trains = p.requiresGradient();
        Slot s = slots.get(p);
        if (s == null && moved.containsKey(p)) {
          s = slots.get(moved.get(p)); // moved 1:1: state, count and first id go on
          movedCount++;
        }
        if (s == null && leftByArray.containsKey(p.getArray())) {
          s = leftByArray.get(p.getArray()); // a new Parameter around the same array
          movedCount++;
        }
        if (s == null) {
          s = new Slot();
          s.firstId = p.getId();
          s.frozen = !trains;
          if (trains) {
            s.born = true;
            s.birth = position;
            born++;
          } else {
            bornFrozen++;
          }
        } else if (s.frozen && trains) {
          s.frozen = false;
          s.born = true; // unfrozen: fresh, at its first id's rate
          s.birth = position;
          s.own = 0;
          s.m = null;
          s.v = null;
          unfrozen++;
        } else if (!s.frozen && !trains) {
          frozen++;
          s.frozen = true;
          s.m = null;
          s.v = null;
        }
        next.put(p, s);
      }
      slots.clear();
      slots.putAll(next);
      moved.clear();
      System.out.println(
          name
              + " "
              + when
              + ": born "
              + born
              + ", born frozen "
              + bornFrozen
              + ", unfrozen "
              + unfrozen
              + ", moved "
              + movedCount
              + ", frozen "
              + frozen);
    }

    void beforeStep() {
      grads = new IdentityHashMap<>();
      before = new IdentityHashMap<>();
      for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
        NDArray a = e.getKey().getArray();
        before.put(e.getKey(), a.toFloatArray());
        if (!e.getValue().frozen) {
          try (NDArray g = a.getGradient()) {
            grads.put(e.getKey(), g.toFloatArray());
          }
        }
      }
    }

    void afterStep(String when) {
      position++;
      Map<String, Integer> expectedAsks = new TreeMap<>();
      for (Map.Entry<Parameter, Slot> e : slots.entrySet()) {
        Parameter p = e.getKey();
        Slot s = e.getValue();
        float[] w0 = before.get(p);
        float[] w1 = p.getArray().toFloatArray();
        String where = name + " " + when + p.getName() + " (" + p.getId() + ")";
        if (s.frozen) {
          for (int i = 0; i < w0.length; i++) {
            if (Float.floatToIntBits(w0[i]) != Float.floatToIntBits(w1[i])) {
              fail(where + ": a frozen parameter changed");
            }
          }
          continue;
        }
        String id = mutant && !s.born ? "unknown" : s.firstId;
        expectedAsks.merge(s.firstId, 1, Integer::sum);
        int t = position;
        if (s.born) {
          s.own++;
          assertEquals(position, s.birth + s.own, "oracle bookkeeping");
          t = s.own;
        }
        double lr = rates.rate(id, position);
        float[] g = grads.get(p);
        if (s.m == null) {
          s.m = new double[w0.length];
          s.v = new double[w0.length];
        }
        double[] expected = new double[w0.length];
        double largest = 0;
        for (int i = 0; i < w0.length; i++) {
          double w = w0[i];
          double gi = g[i];
          if (kind == Kind.SGD_MOMENTUM) {
            double step = (gi + 1e-3f * w) * lr;
            s.m[i] = 0.9f * s.m[i] + step;
            expected[i] = w - s.m[i];
          } else {
            double b1 = 0.9f;
            double b2 = 0.999f;
            double eps = 1e-8f;
            double corrected = lr * Math.sqrt(1 - Math.pow(b2, t)) / (1 - Math.pow(b1, t));
            double x = w;
            if (kind == Kind.ADAMW) {
              x -= w * lr * 0.05f;
            } else {
              gi += 1e-3f * w;
            }
            s.m[i] = b1 * s.m[i] + (1 - b1) * gi;
            s.v[i] = b2 * s.v[i] + (1 - b2) * gi * gi;
            expected[i] = x - s.m[i] * corrected / (Math.sqrt(s.v[i]) + eps);
          }
          largest = Math.max(largest, Math.abs(expected[i] - w));
        }
        for (int i = 0; i < w0.length; i++) {
          double change = Math.abs(expected[i] - w0[i]);
          double room = 1e-4 * change + 4 * Math.ulp(w0[i]) + 1e-5 * largest;
          double off = Math.abs(w1[i] - expected[i]);
          worst = Math.max(worst, off / Math.max(room, Double.MIN_NORMAL));
          if (!(off <= room)) {
            fail(
                String.format(
                    "%s[%d]: djl %.9g, oracle %.9g (change %.3g, off %.3g > %.3g); %s, rate of"
                        + " id %s",
                    where,
                    i,
                    w1[i],
                    expected[i],
                    change,
                    off,
                    room,
                    s.born ? "born at " + s.birth + ", own step " + s.own : "survivor",
                    id));
          }
        }
      }
      Map<String, Integer> asked = new TreeMap<>();
      for (String id : rates.asked) {
        asked.merge(id, 1, Integer::sum);
      }
      assertEquals(expectedAsks, asked, name + " " + when + ": the ids the tracker was asked");
    }

    String summary() {
      return String.format(
          "%s: %d steps, worst %.3f of the room; born %d, born frozen %d, unfrozen %d, moved %d,"
              + " frozen %d",
          name, position, worst, born, bornFrozen, unfrozen, movedCount, frozen);
    }
  }
}
