package dev.surgery.core.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The exactness oracle: trains a subject model that undergoes surgery beside oracles whose answers
 * the engine did not produce, and compares them step by step.
 *
 * <ul>
 *   <li><b>Control</b>: a twin model with the same initial values trained on the same batches
 *       without surgery. Parameters that survive surgery (adopted, copied 1:1, rewrapped) must stay
 *       bit-identical to their control twins, optimizer state and update counts included.
 *   <li><b>Fresh optimizer</b>: for parameters a surgery adds ("born"), a new optimizer of the same
 *       kind and settings holding copies of their starting values, fed the gradients recorded from
 *       the subject. The born parameters must match it within {@link #BORN_TOLERANCE} (relative).
 * </ul>
 *
 * <p>The network is a stack of {@link TinyDense} layers with tanh, trained on deterministic batches
 * with a squared-error loss; the layer named by {@link #target()} is the one surgery changes.
 */
public final class ExactnessOracle implements AutoCloseable {

  /** Relative tolerance for born parameters against the fresh optimizer: a few float ulps. */
  public static final double BORN_TOLERANCE = 1e-6;

  /** The input shape: a batch of 4 rows of 5 features. */
  public static final Shape INPUT = new Shape(4, 5);

  private static final int OUT = 3;

  private final OptimizerKind kind;
  private final boolean withControl;
  private Model subject;
  private Trainer subjectTrainer;
  private List<TinyDense> subjectLayers;
  private final Model control;
  private final Trainer controlTrainer;
  private final List<TinyDense> controlLayers;
  private final NDManager scratch = NDManager.newBaseManager();
  private int step;
  private FreshOptimizer fresh;

  /**
   * Builds the subject (and, when asked, its control twin with identical values).
   *
   * @param kind the optimizer kind both trainers use
   * @param extraLayers layers before the target, to test surgery among many old parameters
   * @param freezeOthers freeze every layer but the target, so surgery makes every trainable
   *     parameter new
   * @param withControl whether to train a control twin
   */
  public ExactnessOracle(
      OptimizerKind kind, int extraLayers, boolean freezeOthers, boolean withControl) {
    this.kind = kind;
    this.withControl = withControl;
    subjectLayers = new ArrayList<>();
    subject = model("subject", extraLayers, subjectLayers);
    subjectTrainer = trainer(subject, kind.create());
    RatesById.assign(parameters(subjectLayers));
    if (withControl) {
      controlLayers = new ArrayList<>();
      control = model("control", extraLayers, controlLayers);
      controlTrainer = trainer(control, kind.create());
      List<Parameter> from = parameters(subjectLayers);
      List<Parameter> to = parameters(controlLayers);
      for (int i = 0; i < from.size(); i++) {
        from.get(i).getArray().copyTo(to.get(i).getArray());
      }
      RatesById.assign(to);
    } else {
      controlLayers = null;
      control = null;
      controlTrainer = null;
    }
    if (freezeOthers) {
      for (TinyDense layer : subjectLayers) {
        if (layer != target()) {
          layer.freezeParameters(true);
        }
      }
      if (withControl) {
        for (TinyDense layer : controlLayers) {
          if (layer != controlTarget()) {
            layer.freezeParameters(true);
          }
        }
      }
    }
  }

  private static Model model(String name, int extraLayers, List<TinyDense> layers) {
    SequentialBlock net = new SequentialBlock();
    for (int i = 0; i < extraLayers + 1; i++) {
      layers.add(new TinyDense(6));
    }
    layers.add(new TinyDense(6)); // the target
    layers.add(new TinyDense(OUT));
    for (int i = 0; i < layers.size(); i++) {
      net.add(layers.get(i));
      if (i < layers.size() - 1) {
        net.add(Activation.tanhBlock()); // no dead units: every layer always learns
      }
    }
    Model model = Model.newInstance(name);
    model.setBlock(net);
    return model;
  }

  private static Trainer trainer(Model model, Optimizer optimizer) {
    Trainer trainer =
        model.newTrainer(new DefaultTrainingConfig(new GcSafeL2Loss()).optOptimizer(optimizer));
    trainer.initialize(INPUT);
    return trainer;
  }

  /**
   * Returns the subject's layer that surgery changes (the second to last).
   *
   * @return the target layer as the subject's tree holds it now
   */
  public TinyDense target() {
    return subjectLayers.get(subjectLayers.size() - 2);
  }

  /**
   * Returns the control twin of the target layer.
   *
   * @return the control's target layer
   */
  public TinyDense controlTarget() {
    return controlLayers.get(controlLayers.size() - 2);
  }

  /**
   * Returns the subject's root block.
   *
   * @return the subject network
   */
  public Block subjectRoot() {
    return subject.getBlock();
  }

  /**
   * Returns the subject's trainer.
   *
   * @return the trainer surgery must keep exact
   */
  public Trainer subjectTrainer() {
    return subjectTrainer;
  }

  /**
   * Returns the control's trainer.
   *
   * @return the twin trainer, never changed by surgery
   */
  public Trainer controlTrainer() {
    return controlTrainer;
  }

  /**
   * Records that the subject's tree now holds {@code replacement} where the target was.
   *
   * @param replacement the block surgery put in place of the target, if it is a {@link TinyDense}
   */
  public void targetReplacedBy(TinyDense replacement) {
    subjectLayers.set(subjectLayers.size() - 2, replacement);
  }

  /**
   * Starts the fresh-optimizer oracle for parameters the subject just received.
   *
   * @param born the subject's new parameters, at their starting values
   */
  public void startFreshOptimizer(List<Parameter> born) {
    if (fresh != null) {
      fresh.close();
    }
    fresh = new FreshOptimizer(kind.create(), born, scratch);
  }

  /**
   * Trains subject and control one step each on the same batch; feeds the fresh optimizer the
   * gradients the subject's born parameters received.
   */
  public void step() {
    stepOne(subjectTrainer, fresh);
    if (withControl) {
      stepOne(controlTrainer, null);
    }
    step++;
  }

  /**
   * Trains {@code n} steps.
   *
   * @param n the number of steps
   */
  public void steps(int n) {
    for (int i = 0; i < n; i++) {
      step();
    }
  }

  private void stepOne(Trainer trainer, FreshOptimizer oracle) {
    try (NDManager batch = scratch.newSubManager()) {
      NDArray x = batch.arange(20f).reshape(INPUT).add(step * 0.37f).sin();
      NDArray y = batch.arange(12f).reshape(4, OUT).mul(0.5f).add(step * 0.11f).cos();
      try (GradientCollector collector = trainer.newGradientCollector()) {
        NDArray out = trainer.forward(new NDList(x)).singletonOrThrow();
        collector.backward(out.sub(y).square().sum());
      }
      if (oracle != null) {
        oracle.record(batch);
      }
      trainer.step();
      if (oracle != null) {
        oracle.update();
      }
    }
  }

  /**
   * Asserts that the born parameters equal the fresh optimizer's within {@link #BORN_TOLERANCE}.
   *
   * @return the largest relative difference seen
   */
  public double assertBornMatchFreshOptimizer() {
    return fresh.assertMatches(step);
  }

  /**
   * Asserts that every subject parameter except those in {@code exempt} is bit-identical to its
   * control twin (by position), with bit-identical optimizer state and equal update counts.
   *
   * @param exemptControlLayers control layers whose parameters are not compared
   */
  public void assertSurvivorsBitIdentical(List<Integer> exemptControlLayers) {
    for (int layer = 0; layer < controlLayers.size(); layer++) {
      if (!exemptControlLayers.contains(layer)) {
        assertTwinsBitIdentical(
            controlLayers.get(layer).getDirectParameters().values(),
            controlTrainer,
            subjectLayers.get(layer).getDirectParameters().values(),
            subjectTrainer,
            "layer " + layer + " after step " + step);
      }
    }
  }

  /**
   * Asserts that parameters of two trainers, paired by position, are bit-identical and finite, with
   * bit-identical optimizer state on every device it is kept on and equal update counts.
   *
   * @param control the control's parameters
   * @param controlTrainer the control's trainer
   * @param subject the subject's parameters, in the same order
   * @param subjectTrainer the subject's trainer
   * @param when where in the run, for the messages
   */
  public static void assertTwinsBitIdentical(
      List<Parameter> control,
      Trainer controlTrainer,
      List<Parameter> subject,
      Trainer subjectTrainer,
      String when) {
    assertEquals(control.size(), subject.size(), "parameters " + when);
    Optimizer subjectOptimizer = DjlTrainers.optimizer(subjectTrainer);
    Optimizer controlOptimizer = DjlTrainers.optimizer(controlTrainer);
    Map<String, Map<String, Map<Device, NDArray>>> subjectStates =
        DjlOptimizers.optimizerStates(subjectOptimizer);
    Map<String, Map<String, Map<Device, NDArray>>> controlStates =
        DjlOptimizers.optimizerStates(controlOptimizer);
    for (int i = 0; i < subject.size(); i++) {
      Parameter s = subject.get(i);
      Parameter c = control.get(i);
      String where = "parameter #" + i + " (" + s.getName() + ") " + when;
      assertBitsEqual(c.getArray(), s.getArray(), where);
      for (String field : controlStates.keySet()) {
        Map<Device, NDArray> cs = controlStates.get(field).get(c.getId());
        Map<Device, NDArray> ss = subjectStates.get(field).get(s.getId());
        assertEquals(cs == null, ss == null, field + " present, " + where);
        if (cs != null) {
          // Per device the state is kept on: the CPU here, the GPU(s) under scripts/gpu-check.sh.
          assertEquals(cs.keySet(), ss.keySet(), field + " devices, " + where);
          for (Map.Entry<Device, NDArray> d : cs.entrySet()) {
            assertBitsEqual(
                d.getValue(), ss.get(d.getKey()), field + " on " + d.getKey() + ", " + where);
          }
        }
      }
      assertEquals(
          DjlOptimizers.updateCounts(controlOptimizer).get(c.getId()),
          DjlOptimizers.updateCounts(subjectOptimizer).get(s.getId()),
          "update count, " + where);
    }
  }

  /**
   * Asserts that the subject's trainer holds exactly the model's parameters, and optimizer state
   * and update counts only for them.
   */
  public void assertTrainerHoldsOnlyLiveParameters() {
    List<String> live = new ArrayList<>();
    for (Parameter p : subject.getBlock().getParameters().values()) {
      live.add(p.getId());
    }
    Map<String, Object> entries =
        DjlTrainers.storeEntries(DjlTrainers.parameterStore(subjectTrainer));
    assertEquals(new java.util.TreeSet<>(live), new java.util.TreeSet<>(entries.keySet()), "store");
    Optimizer optimizer = DjlTrainers.optimizer(subjectTrainer);
    DjlOptimizers.optimizerStates(optimizer)
        .forEach(
            (field, state) ->
                assertTrue(live.containsAll(state.keySet()), field + " holds a dead parameter"));
    assertTrue(
        live.containsAll(DjlOptimizers.updateCounts(optimizer).keySet()),
        "update counts of dead parameters");
  }

  /**
   * Asserts that no parameter with one of these ids is known to the subject's trainer.
   *
   * @param ids parameter ids
   */
  public void assertForgotten(List<String> ids) {
    Optimizer optimizer = DjlTrainers.optimizer(subjectTrainer);
    for (String id : ids) {
      assertFalse(
          DjlTrainers.storeEntries(DjlTrainers.parameterStore(subjectTrainer)).containsKey(id));
      DjlOptimizers.optimizerStates(optimizer)
          .forEach((field, state) -> assertFalse(state.containsKey(id), field + " of " + id));
      assertFalse(DjlOptimizers.updateCounts(optimizer).containsKey(id), "count of " + id);
    }
  }

  /**
   * Replaces the subject by a copy saved and loaded through DJL, with a new trainer whose optimizer
   * is resumed at the current step count ({@code optBeginNumUpdate}; DJL saves no optimizer state).
   *
   * @param directory where to save
   * @throws Exception on I/O or model errors
   */
  public void reloadSubject(java.nio.file.Path directory) throws Exception {
    reloadSubject(directory, Model::load);
  }

  /** How a saved model is loaded back (DJL's own {@code Model.load}, or a checkpoint loader). */
  @FunctionalInterface
  public interface Loader {
    /**
     * Loads the parameters saved under {@code name} in {@code directory} into {@code model}.
     *
     * @param model a fresh model of the same architecture
     * @param directory the directory
     * @param name the model name
     * @throws Exception on I/O or model errors
     */
    void load(Model model, java.nio.file.Path directory, String name) throws Exception;
  }

  /**
   * Like {@link #reloadSubject(java.nio.file.Path)}, loading with the given loader.
   *
   * @param directory where to save
   * @param loader how to load the saved subject into a fresh model
   * @throws Exception on I/O or model errors
   */
  public void reloadSubject(java.nio.file.Path directory, Loader loader) throws Exception {
    subject.save(directory, "subject");
    subjectTrainer.close();
    subject.close();
    List<TinyDense> layers = new ArrayList<>();
    int extra = subjectLayers.size() - 3;
    subject = model("subject", extra, layers);
    loader.load(subject, directory, "subject");
    subjectLayers = layers;
    subjectTrainer = trainer(subject, kind.resumed(step));
  }

  /** {@inheritDoc} */
  @Override
  public void close() {
    if (fresh != null) {
      fresh.close();
    }
    subjectTrainer.close();
    subject.close();
    if (withControl) {
      controlTrainer.close();
      control.close();
    }
    scratch.close();
  }

  static List<Parameter> parameters(List<TinyDense> layers) {
    List<Parameter> all = new ArrayList<>();
    for (TinyDense layer : layers) {
      all.addAll(layer.getDirectParameters().values());
    }
    return all;
  }

  /**
   * Asserts two arrays are equal bit for bit and finite (two NaNs with the same bits are a
   * failure).
   *
   * @param expected the oracle's array
   * @param actual the subject's array
   * @param where what is compared, for the message
   */
  public static void assertBitsEqual(NDArray expected, NDArray actual, String where) {
    assertEquals(expected.getDataType(), actual.getDataType(), "data type of " + where);
    assertBitsEqual(floats(expected), floats(actual), where);
  }

  /**
   * Asserts two float arrays are equal bit for bit and finite (two NaNs with the same bits are a
   * failure).
   *
   * @param e the oracle's values
   * @param a the subject's values
   * @param where what is compared, for the message
   */
  public static void assertBitsEqual(float[] e, float[] a, String where) {
    assertEquals(e.length, a.length, where);
    for (int i = 0; i < e.length; i++) {
      if (!Float.isFinite(a[i])) {
        throw new AssertionError(where + ": element " + i + " is " + a[i]);
      }
      if (Float.floatToRawIntBits(e[i]) != Float.floatToRawIntBits(a[i])) {
        throw new AssertionError(
            where + ": element " + i + " is " + a[i] + ", the oracle says " + e[i]);
      }
    }
  }

  /**
   * Copies every optimizer state array of a trainer, keyed {@code state/parameter id/device}, so
   * that a test can compare the state bit by bit before and after a surgery.
   *
   * @param trainer the trainer
   * @return the state values, in the optimizer's order
   */
  public static Map<String, float[]> optimizerStateValues(Trainer trainer) {
    Map<String, float[]> values = new LinkedHashMap<>();
    DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer))
        .forEach(
            (name, state) ->
                state.forEach(
                    (id, perDevice) ->
                        perDevice.forEach(
                            (device, array) ->
                                values.put(name + "/" + id + "/" + device, floats(array)))));
    return values;
  }

  /**
   * Reads an array's values as floats: float32 as they are, float16 (and other types) converted,
   * which is exact from float16, so equal bits here mean equal bits there.
   *
   * @param array the array
   * @return its values as floats
   */
  public static float[] floats(NDArray array) {
    if (array.getDataType() == ai.djl.ndarray.types.DataType.FLOAT32) {
      return array.toFloatArray();
    }
    try (NDArray converted = array.toType(ai.djl.ndarray.types.DataType.FLOAT32, true)) {
      return converted.toFloatArray();
    }
  }

  /** A fresh optimizer holding copies of born parameters, fed the subject's gradients. */
  private static final class FreshOptimizer implements AutoCloseable {
    private final Optimizer optimizer;
    private final NDManager manager;
    private final Map<Parameter, NDArray> copies = new IdentityHashMap<>();
    private final Map<Parameter, String> ids = new IdentityHashMap<>();
    private final Map<Parameter, NDArray> gradients = new LinkedHashMap<>();

    FreshOptimizer(Optimizer optimizer, List<Parameter> born, NDManager parent) {
      this.optimizer = optimizer;
      this.manager = parent.newSubManager();
      for (Parameter p : born) {
        NDArray copy = p.getArray().duplicate();
        copy.attach(manager);
        copies.put(p, copy);
        // Keyed as the subject's optimizer keys it: a tracker with a rate per id (RatesById)
        // answers both alike, the default for a new id, the parameter's own for an unfrozen one.
        ids.put(p, p.getId());
      }
    }

    void record(NDManager batch) {
      gradients.clear();
      for (Parameter p : copies.keySet()) {
        try (NDArray g = p.getArray().getGradient()) {
          NDArray kept = g.duplicate();
          kept.attach(batch);
          gradients.put(p, kept);
        }
      }
    }

    void update() {
      for (Map.Entry<Parameter, NDArray> e : gradients.entrySet()) {
        optimizer.update(ids.get(e.getKey()), copies.get(e.getKey()), e.getValue());
      }
    }

    double assertMatches(int step) {
      double worst = 0;
      for (Map.Entry<Parameter, NDArray> e : copies.entrySet()) {
        float[] expected = e.getValue().toFloatArray();
        float[] actual = e.getKey().getArray().toFloatArray();
        for (int i = 0; i < expected.length; i++) {
          double scale = Math.max(Math.abs(expected[i]), 1e-3);
          if (!Float.isFinite(actual[i]) || !Float.isFinite(expected[i])) {
            throw new AssertionError(
                "born "
                    + e.getKey().getName()
                    + " element "
                    + i
                    + " is "
                    + actual[i]
                    + " (fresh optimizer: "
                    + expected[i]
                    + ") after step "
                    + step);
          }
          double relative = Math.abs(expected[i] - actual[i]) / scale;
          worst = Math.max(worst, relative);
          if (relative > BORN_TOLERANCE) {
            throw new AssertionError(
                "born "
                    + e.getKey().getName()
                    + " element "
                    + i
                    + " after step "
                    + step
                    + ": "
                    + actual[i]
                    + ", a fresh optimizer gives "
                    + expected[i]
                    + " (relative difference "
                    + relative
                    + ")");
          }
        }
      }
      return worst;
    }

    @Override
    public void close() {
      manager.close();
    }
  }
}
