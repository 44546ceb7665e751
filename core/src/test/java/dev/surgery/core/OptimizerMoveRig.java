package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
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
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.internal.BirthAwareOptimizer;
import dev.surgery.core.internal.DjlInternals;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.internal.KeptIdTracker;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.IntUnaryOperator;

/**
 * An outside probe's rig, taking nothing from the library's own test oracles: a four-layer
 * Linear/tanh model on fixed data, its twin, and a shadow that replays DJL's own optimizers on
 * copies of the weights, fed the subject's gradients.
 */
final class OptimizerMoveRig implements AutoCloseable {

  static final Shape INPUT = new Shape(4, 3);

  /** The optimizer kinds the probe runs (only these step on the PyTorch engine). */
  enum Kind {
    ADAM,
    ADAMW,
    SGD_MOMENTUM;

    /** An optimizer of this kind with the given rate tracker, resumed at {@code begin}. */
    Optimizer build(ParameterTracker rate, int begin) {
      switch (this) {
        case ADAM:
          return Optimizer.adam().optLearningRateTracker(rate).optBeginNumUpdate(begin).build();
        case ADAMW:
          return Optimizer.adamW()
              .optLearningRateTracker(rate)
              .optWeightDecays(0.05f)
              .optBeginNumUpdate(begin)
              .build();
        case SGD_MOMENTUM:
          return Optimizer.sgd()
              .setLearningRateTracker(rate)
              .optMomentum(0.9f)
              .optWeightDecays(1e-3f)
              .optBeginNumUpdate(begin)
              .build();
        default:
          throw new AssertionError(this);
      }
    }
  }

  final Model model;
  final SequentialBlock net;
  final Trainer trainer;

  /** A model of four Linear layers (4, 4, 4, 2 units) with tanh between, values from a seed. */
  OptimizerMoveRig(String name, Optimizer optimizer, long seed) {
    this(name, optimizer, seed, new SequentialBlock());
  }

  private OptimizerMoveRig(String name, Optimizer optimizer, long seed, SequentialBlock net) {
    this.net = net;
    for (int i = 0; i < 4; i++) {
      net.add(Linear.builder().setUnits(i == 3 ? 2 : 4).build());
      if (i < 3) {
        net.add(Activation.tanhBlock());
      }
    }
    model = Model.newInstance(name);
    model.setBlock(net);
    trainer =
        model.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(optimizer));
    trainer.initialize(INPUT);
    Random r = new Random(seed);
    for (Parameter p : params(net)) {
      float[] v = new float[(int) p.getArray().getShape().size()];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) (r.nextGaussian() * 0.6);
      }
      p.getArray().set(FloatBuffer.wrap(v));
      assertArrayEquals(v, p.getArray().toFloatArray());
    }
  }

  /** A rig whose optimizer of {@code kind} trains at the fixed {@code rate} from step 0. */
  static OptimizerMoveRig atFixedRate(String name, Kind kind, float rate, long seed) {
    return new OptimizerMoveRig(name, kind.build(Tracker.fixed(rate), 0), seed);
  }

  /**
   * A four-unit Linear built frozen around {@code old}'s arrays: the arrays, still the old layer's,
   * keep taking gradients while no update zeroes them.
   */
  static Linear frozenWrapperOf(Linear old) {
    Linear l = Linear.builder().setUnits(4).build();
    l.freezeParameters(true); // built frozen
    for (Parameter p : params(l)) {
      p.setArray(old.getParameters().get(p.getName()).getArray());
    }
    return l;
  }

  /** Unfreezes the parameters of child {@code i} through this rig's trainer. */
  void unfreezeChild(int i) {
    ModuleSurgery.unfreezeParameters(params(child(i)), List.of(trainer));
  }

  Linear layer(int i) {
    return (Linear) net.getChildren().get(2 * i).getValue();
  }

  Block child(int i) {
    return net.getChildren().get(2 * i).getValue();
  }

  List<Parameter> params() {
    return params(net);
  }

  static List<Parameter> params(Block block) {
    List<Parameter> list = new ArrayList<>();
    for (Pair<String, Parameter> p : block.getParameters()) {
      list.add(p.getValue());
    }
    return list;
  }

  void forwardBackward(Batches.Batch b) {
    forwardBackward(trainer, b);
  }

  static void forwardBackward(Trainer trainer, Batches.Batch b) {
    try (GradientCollector collector = trainer.newGradientCollector()) {
      NDArray prediction = trainer.forward(new NDList(b.x())).singletonOrThrow();
      collector.backward(trainer.getLoss().evaluate(new NDList(b.y()), new NDList(prediction)));
    }
  }

  void step(Batches.Batch b) {
    forwardBackward(b);
    trainer.step();
  }

  @Override
  public void close() {
    trainer.close();
    model.close();
  }

  /** One step of a subject and of its twin, which must then agree bit for bit. */
  static void stepTwins(
      OptimizerMoveRig subject, OptimizerMoveRig twin, Batches.Batch b, String when) {
    subject.step(b);
    twin.step(b);
    assertSameValues(subject, twin, when);
  }

  /** Asserts two rigs' parameters, by position, bit for bit. */
  static void assertSameValues(OptimizerMoveRig subject, OptimizerMoveRig twin, String when) {
    assertSameValues(subject.params(), twin.params(), when);
  }

  /** The subject's parameters bit for bit the twin's, and finite. */
  static void assertSameValues(List<Parameter> a, List<Parameter> b, String when) {
    assertEquals(b.size(), a.size(), when + ": parameter count");
    for (int i = 0; i < a.size(); i++) {
      float[] x = a.get(i).getArray().toFloatArray();
      float[] y = b.get(i).getArray().toFloatArray();
      assertArrayEquals(
          y,
          x,
          when
              + ": parameter "
              + i
              + " ("
              + a.get(i).getName()
              + ") differs from the twin without surgery");
      for (float v : x) {
        // Equal NaNs would pass the comparison: a twin that went wrong alike proves nothing.
        assertTrue(Float.isFinite(v), when + ": parameter " + i + " is finite");
      }
    }
  }

  /** Fixed batches of (4, 3) inputs and (4, 2) targets. */
  static final class Batches implements AutoCloseable {
    record Batch(NDArray x, NDArray y) {}

    final NDManager manager = NDManager.newBaseManager();
    final List<Batch> batches = new ArrayList<>();

    Batches(long seed, int n) {
      Random r = new Random(seed);
      for (int k = 0; k < n; k++) {
        batches.add(new Batch(array(r, INPUT), array(r, new Shape(4, 2))));
      }
    }

    private NDArray array(Random r, Shape shape) {
      float[] v = new float[(int) shape.size()];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) r.nextGaussian();
      }
      return manager.create(v, shape);
    }

    Batch get(int k) {
      return batches.get(k % batches.size());
    }

    @Override
    public void close() {
      manager.close();
    }
  }

  /**
   * The shadow oracle: each followed subject parameter has a slot, a copy of its value updated by a
   * DJL optimizer of the test's choosing (the run's own settings, or a fresh one at a birth) with
   * the gradient the subject's parameter received. A slot carried to a new parameter goes on with
   * its optimizer's state; a restarted slot starts in a new optimizer.
   */
  static final class Shadow implements AutoCloseable {
    final NDManager manager = NDManager.newBaseManager();
    private final Map<Parameter, Slot> slots = new IdentityHashMap<>();
    private final List<Parameter> order = new ArrayList<>();
    private int next;

    private static final class Slot {
      final Optimizer optimizer;
      final String id;
      final NDArray weight;
      NDArray grad;

      Slot(Optimizer optimizer, String id, NDArray weight) {
        this.optimizer = optimizer;
        this.id = id;
        this.weight = weight;
      }
    }

    /** Follows a parameter from its current value in {@code optimizer}; returns its shadow id. */
    String follow(Parameter p, Optimizer optimizer) {
      String id = "shadow-" + next++;
      NDArray w = manager.create(p.getArray().toFloatArray(), p.getArray().getShape());
      Slot old = slots.put(p, new Slot(optimizer, id, w));
      if (old == null) {
        order.add(p);
      }
      return id;
    }

    /** The slot of {@code from} goes on as {@code to}'s (state carried). */
    void carry(Parameter from, Parameter to) {
      Slot s = slots.remove(from);
      order.set(order.indexOf(from), to);
      slots.put(to, s);
    }

    /** Stops following a parameter. */
    void drop(Parameter p) {
      slots.remove(p);
      order.remove(p);
    }

    /** Reads the gradients the subject's trainable parameters hold now (before its step). */
    void collect() {
      for (Parameter p : order) {
        Slot s = slots.get(p);
        if (p.requiresGradient()) {
          try (NDArray g = p.getArray().getGradient()) {
            s.grad = manager.create(g.toFloatArray(), g.getShape());
          }
        } else {
          s.grad = null;
        }
      }
    }

    /** Steps every slot that got a gradient, in follow order. */
    void update() {
      for (Parameter p : order) {
        Slot s = slots.get(p);
        if (s.grad != null) {
          s.optimizer.update(s.id, s.weight, s.grad);
          s.grad.close();
          s.grad = null;
        }
      }
    }

    /** Asserts every followed parameter equals its shadow bit for bit. */
    void assertMatches(String when) {
      for (Parameter p : order) {
        Slot s = slots.get(p);
        assertArrayEquals(
            s.weight.toFloatArray(),
            p.getArray().toFloatArray(),
            when
                + ": '"
                + p.getName()
                + "' ("
                + p.getId()
                + ") differs from its oracle (DJL optimizer "
                + s.optimizer.getClass().getSimpleName()
                + " fed the same gradients)");
      }
    }

    /** One step of the subject with the shadow beside it, checked after. */
    void step(OptimizerMoveRig subject, Batches.Batch b, String when) {
      subject.forwardBackward(b);
      collect();
      subject.trainer.step();
      update();
      assertMatches(when);
    }

    @Override
    public void close() {
      manager.close();
    }
  }

  /** A tracker giving rates by id from a map, else a default, at a shifted step. */
  static ParameterTracker ratesById(Map<String, Float> rates, float fallback) {
    return (id, n) -> rates.getOrDefault(id, fallback);
  }

  /** A warm-up-like schedule a fresh optimizer can be shifted along. */
  static ParameterTracker schedule(IntUnaryOperator shift) {
    return (id, n) -> 0.02f / (1 + 0.05f * shift.applyAsInt(n));
  }

  /**
   * What the trainer keeps for a set of parameter ids, read through the library's internals only to
   * compare a before with an after (never as an oracle of values): store keys, each entry's
   * parameter, optimizer state values, update counts, birth marks, first ids, which optimizer and
   * tracker objects are installed, and whether each store array takes gradients.
   */
  static Map<String, Object> snapshot(Trainer trainer, List<Parameter> params) {
    Map<String, Object> out = new LinkedHashMap<>();
    Map<String, Object> entries = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer));
    out.put("store ids", new TreeMap<>(toKeys(entries)));
    Optimizer optimizer = DjlTrainers.optimizer(trainer);
    BirthAwareOptimizer births = DjlTrainers.birthAwareOptimizer(trainer, false);
    out.put("stand-in installed", births != null);
    java.lang.reflect.Field trackerField = DjlOptimizers.learningRateTrackerField(optimizer);
    Object tracker = trackerField == null ? null : DjlInternals.read(trackerField, optimizer);
    out.put("tracker", tracker == null ? "none" : tracker.getClass().getName());
    out.put("counts", new TreeMap<>(DjlOptimizers.updateCounts(optimizer)));
    out.put("global", DjlOptimizers.globalUpdateCount(optimizer));
    for (Map.Entry<String, Map<String, Map<Device, NDArray>>> e :
        DjlOptimizers.optimizerStates(optimizer).entrySet()) {
      Map<String, String> values = new TreeMap<>();
      for (Map.Entry<String, Map<Device, NDArray>> s : e.getValue().entrySet()) {
        StringBuilder sb = new StringBuilder();
        for (NDArray a : s.getValue().values()) {
          sb.append(java.util.Arrays.toString(a.toFloatArray()));
        }
        values.put(s.getKey(), sb.toString());
      }
      out.put("state " + e.getKey(), values);
    }
    for (Parameter p : params) {
      String id = p.getId();
      out.put("birth " + id, births == null ? null : births.birthOf(id));
      out.put(
          "first id " + id, tracker instanceof KeptIdTracker kept ? kept.firstIds().get(id) : null);
      Object entry = entries.get(id);
      out.put(
          "entry parameter " + id,
          entry == null ? null : DjlTrainers.entryParameter(entry).getId());
      out.put(
          "array grad " + id,
          p.isInitialized() && !p.getArray().isReleased() ? p.getArray().hasGradient() : null);
    }
    return out;
  }

  private static Map<String, String> toKeys(Map<String, Object> entries) {
    Map<String, String> m = new TreeMap<>();
    for (Map.Entry<String, Object> e : entries.entrySet()) {
      m.put(e.getKey(), DjlTrainers.entryParameter(e.getValue()).getName());
    }
    return m;
  }
}
