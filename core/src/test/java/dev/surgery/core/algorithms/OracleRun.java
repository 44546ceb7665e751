package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.util.Pair;
import dev.surgery.core.testing.TrajectoryOracle;
import dev.surgery.core.testing.TrajectoryOracle.Delta;
import dev.surgery.core.testing.TrajectoryOracle.Settings;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * A run of {@link TrajectoryOracle#cnn} by one or more trainers of one model, which step in turn,
 * with built-in algorithms applied live through the core API ({@code Algorithms.spec(name)
 * .create(values).apply(context)} with every trainer) at given iterations, each application's
 * {@link Delta} compared with what the docs say it changes, and every step checked against the
 * oracle.
 */
final class OracleRun {

  static final int BATCH = 8;
  static final Shape INPUT = new Shape(BATCH, 3, 8, 8);

  /**
   * One application: at {@code step} (before that iteration's forward), the algorithm with its
   * values, in a context of {@code completed} of {@code total} epochs; what the docs say it
   * changes: {@code changes} replacements (-1: not checked) and {@code expected} (null for
   * layer_freezing: the test computes the freezes from the model, see {@link #expectedFreezes}).
   */
  record Ev(
      int step,
      String algorithm,
      Map<String, Object> values,
      int completed,
      int total,
      int changes,
      Delta expected) {

    /** An application whose replacements are not counted. */
    Ev(
        int step,
        String algorithm,
        Map<String, Object> values,
        int completed,
        int total,
        Delta expected) {
      this(step, algorithm, values, completed, total, -1, expected);
    }
  }

  /** A layer_freezing application (freeze_start 0, freeze_level 1) whose freezes are computed. */
  static Ev freeze(int step, int completed, int total) {
    return new Ev(
        step,
        LayerFreezing.NAME,
        Map.of("freeze_start", 0.0, "freeze_level", 1.0),
        completed,
        total,
        -1,
        null);
  }

  final String name;
  final long seed;
  final Settings[] books;
  DataType type = DataType.FLOAT32;
  int batchCount = 6;
  Consumer<TrajectoryOracle> setup = o -> {};

  /**
   * A run.
   *
   * @param name the run's name
   * @param seed the engine's and the data's seed
   * @param books each trainer's settings; trainer {@code i} steps at the iterations {@code it} with
   *     {@code it % books.length == i}
   */
  OracleRun(String name, long seed, Settings... books) {
    this.name = name;
    this.seed = seed;
    this.books = books.clone();
  }

  /** Sets the oracle up before the first step (its mutant flags, float16 mode). */
  OracleRun with(Consumer<TrajectoryOracle> setup) {
    this.setup = setup;
    return this;
  }

  /** A model of this type (float16: the oracle checks each step at float16 resolution). */
  OracleRun of(DataType type) {
    this.type = type;
    return this;
  }

  /** How many batches the data has. */
  OracleRun batches(int count) {
    this.batchCount = count;
    return this;
  }

  void train(int iterations, List<Ev> events) throws Exception {
    try (Model model = Model.newInstance(name);
        NDManager data = NDManager.newBaseManager()) {
      Engine.getInstance().setRandomSeed((int) seed);
      if (type != DataType.FLOAT32) {
        model.setDataType(type);
      }
      SequentialBlock net = TrajectoryOracle.cnn();
      model.setBlock(net);
      List<NDList[]> batches = TrajectoryOracle.batches(data, seed, batchCount, BATCH, type);
      List<Trainer> trainers = new ArrayList<>();
      try {
        for (Settings s : books) {
          trainers.add(
              model.newTrainer(
                  new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                      .optOptimizer(s.build())));
        }
        for (Trainer t : trainers) {
          t.initialize(INPUT);
        }
        assertAllOfType(net, name + " at the start");
        TrajectoryOracle oracle = new TrajectoryOracle(name, net, books);
        oracle.half = type == DataType.FLOAT16;
        setup.accept(oracle);
        boolean one = books.length == 1;
        for (int it = 0; it < iterations; it++) {
          for (Ev ev : events) {
            if (ev.step() == it) {
              String when = ev.algorithm() + " before " + (one ? "step " : "iteration ") + (it + 1);
              apply(ev, when, net, trainers, oracle);
              assertAllOfType(net, name + " after " + when);
            }
          }
          int which = it % books.length;
          Trainer t = trainers.get(which);
          TrajectoryOracle.forwardBackward(t, batches.get(it % batches.size()));
          oracle.beforeStep(which);
          t.step();
          oracle.afterStep(
              one
                  ? "step " + (it + 1) + " "
                  : "iteration " + (it + 1) + " (trainer " + which + ")");
        }
        for (int i = 0; i < books.length; i++) {
          int steps = (iterations - i + books.length - 1) / books.length;
          assertEquals(books[i].begin() + steps, oracle.position(i), name + ": trainer " + i);
        }
        assertAllOfType(net, name + " at the end");
        System.out.println(oracle.summary());
      } finally {
        Collections.reverse(trainers);
        trainers.forEach(Trainer::close);
      }
    }
  }

  private void apply(
      Ev ev, String when, Block net, List<Trainer> trainers, TrajectoryOracle oracle) {
    int[] freezes = ev.expected() == null ? expectedFreezes(net, ev) : null;
    SurgeryChanges changes =
        Algorithms.spec(ev.algorithm())
            .create(ev.values())
            .apply(new SurgeryContext(net, trainers, ev.completed(), ev.total()));
    Delta delta = oracle.reconcile(when);
    System.out.println(name + " " + when + ": " + changes.countsByType() + " " + delta);
    if (ev.changes() >= 0) {
      assertEquals(ev.changes(), changes.changes().size(), name + " " + when + ": " + changes);
    }
    if (freezes == null) {
      assertEquals(ev.expected(), delta, name + " " + when + ": " + changes.countsByType());
    } else {
      assertEquals(
          Delta.frozen(freezes[0]), delta, name + " " + when + ": " + changes.countsByType());
      assertEquals(freezes[1], changes.changes().size(), name + " " + when);
    }
  }

  /**
   * What docs/algorithms.md says layer_freezing freezes now: the first {@code floor(completed /
   * total * (layers - 1))} layers; returns the parameters that still train among them and the
   * layers that hold one.
   */
  private static int[] expectedFreezes(Block net, Ev ev) {
    List<List<Parameter>> layers = layers(net);
    // In whole numbers, exact: no rounding of the fraction to fall short of a whole layer.
    int k = (int) ((long) ev.completed() * (layers.size() - 1) / ev.total());
    int parameters = 0;
    int changed = 0;
    for (int i = 0; i < k; i++) {
      boolean any = false;
      for (Parameter p : layers.get(i)) {
        if (p.requiresGradient()) {
          parameters++;
          any = true;
        }
      }
      if (any) {
        changed++;
      }
    }
    return new int[] {parameters, changed};
  }

  /**
   * The layers as docs/algorithms.md counts them for layer_freezing: the leaf blocks (no children)
   * that own learnable parameters, in traversal order, with their learnable parameters.
   */
  static List<List<Parameter>> layers(Block root) {
    List<List<Parameter>> list = new ArrayList<>();
    collect(root, list);
    return list;
  }

  private static void collect(Block block, List<List<Parameter>> list) {
    if (block.getChildren().isEmpty()) {
      List<Parameter> own = new ArrayList<>();
      for (Pair<String, Parameter> p : block.getDirectParameters()) {
        if (TrajectoryOracle.tracked(p.getValue())) {
          own.add(p.getValue());
        }
      }
      if (!own.isEmpty()) {
        list.add(own);
      }
      return;
    }
    for (Pair<String, Block> child : block.getChildren()) {
      collect(child.getValue(), list);
    }
  }

  private void assertAllOfType(SequentialBlock net, String when) {
    for (Pair<String, Parameter> p : net.getParameters()) {
      assertEquals(type, p.getValue().getArray().getDataType(), when + ": " + p.getKey());
    }
  }
}
