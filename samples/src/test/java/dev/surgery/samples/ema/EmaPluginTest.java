package dev.surgery.samples.ema;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import dev.surgery.trainer.SurgeryCheckpoint;
import dev.surgery.trainer.SurgeryListener;
import dev.surgery.trainer.SurgeryTrain;
import dev.surgery.trainer.config.SurgeryConfig;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The EMA plugin in library mode ({@link SurgeryTrain#fit}): evaluation sees the averaged weights,
 * training goes on from the raw ones, and the average survives a checkpoint. The oracle is an EMA
 * computed here from the weights recorded after every optimizer step.
 */
class EmaPluginTest {

  private static final double SMOOTHING = 0.9;

  @TempDir Path dir;

  /** Records the weights at each event it is asked about; runs after ema (YAML order). */
  static final class Probe implements Algorithm {
    static final List<String> EVENTS = new ArrayList<>();
    static final List<List<float[]>> WEIGHTS = new ArrayList<>();

    @Override
    public String name() {
      return "t_ema_probe";
    }

    @Override
    public Map<String, Object> hyperparameters() {
      return Map.of();
    }

    @Override
    public Set<Event> events() {
      return EnumSet.of(Event.BATCH_END, Event.EVAL_START, Event.EVAL_END);
    }

    @Override
    public boolean match(Event event, State state) {
      EVENTS.add(event + "@" + state.globalSteps());
      WEIGHTS.add(weights(state.model()));
      return false;
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      throw new UnsupportedOperationException();
    }
  }

  @BeforeAll
  static void loadPlugin() throws Exception {
    // The plugin's own files (classes and service file) as the build gathers them for its jar.
    Path plugin = Path.of(System.getProperty("samples.emaPlugin", "target/ema-plugin"));
    assertTrue(
        Files.isRegularFile(
            plugin.resolve("META-INF/services/dev.surgery.core.algorithms.AlgorithmProvider")));
    URLClassLoader loader =
        new URLClassLoader(
            new URL[] {plugin.toUri().toURL()}, EmaPluginTest.class.getClassLoader());
    Algorithms.loadPlugins(loader);
    assertEquals(Ema.SPEC, Algorithms.spec("ema"));
    if (Algorithms.find("t_ema_probe").isEmpty()) {
      Algorithms.register(new AlgorithmSpec("t_ema_probe", List.of(), v -> new Probe()));
    }
  }

  /** A listener with the EMA, then the probe that records the weights at each event. */
  private static SurgeryListener emaWithProbe() {
    Probe.EVENTS.clear();
    Probe.WEIGHTS.clear();
    return SurgeryListener.fromConfig(
        SurgeryConfig.parse(
            "algorithms:\n  - name: ema\n    smoothing: " + SMOOTHING + "\n  - name: t_ema_probe\n",
            "ema.yaml"),
        SurgeryTrain.EVENTS);
  }

  private static Model model(String name) {
    Model model = Model.newInstance(name);
    model.setBlock(
        new SequentialBlock()
            .add(Linear.builder().setUnits(8).build())
            .add(Activation.tanhBlock())
            .add(Linear.builder().setUnits(3).build()));
    return model;
  }

  private static ArrayDataset data(NDManager manager, int seed) {
    manager.getEngine().setRandomSeed(seed);
    NDArray x = manager.randomNormal(new Shape(32, 5));
    NDArray y = manager.arange(32).toType(DataType.FLOAT32, false).mod(3);
    return new ArrayDataset.Builder().setData(x).optLabels(y).setSampling(8, false).build();
  }

  private static Trainer trainer(Model model, TrainingListener... listeners) {
    Trainer trainer =
        model.newTrainer(
            new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.3f)).build())
                .addTrainingListeners(listeners));
    trainer.initialize(new Shape(8, 5));
    return trainer;
  }

  static List<float[]> weights(Model model) {
    List<float[]> out = new ArrayList<>();
    for (Pair<String, ai.djl.nn.Parameter> p : model.getBlock().getParameters()) {
      out.add(p.getValue().getArray().toFloatArray());
    }
    return out;
  }

  private static void assertClose(List<float[]> expected, List<float[]> actual, String where) {
    assertEquals(expected.size(), actual.size(), where);
    for (int i = 0; i < expected.size(); i++) {
      for (int j = 0; j < expected.get(i).length; j++) {
        float e = expected.get(i)[j];
        float a = actual.get(i)[j];
        assertTrue(
            Math.abs(e - a) <= 1e-6 * Math.max(1, Math.abs(e)),
            where + ": parameter " + i + "[" + j + "] is " + a + ", the oracle says " + e);
      }
    }
  }

  private static void assertBitsEqual(List<float[]> expected, List<float[]> actual, String where) {
    assertEquals(expected.size(), actual.size(), where);
    for (int i = 0; i < expected.size(); i++) {
      assertArrayEquals(expected.get(i), actual.get(i), where + ": parameter " + i);
    }
  }

  @Test
  void evaluationSeesTheAverageTrainingTheRawWeightsAndTheAverageIsCheckpointed() throws Exception {
    SurgeryListener listener = emaWithProbe();
    Ema ema = (Ema) listener.getSchedule().get(0).algorithm();
    try (NDManager manager = NDManager.newBaseManager();
        Model subject = model("subject");
        Model control = model("control");
        Trainer subjectTrainer = trainer(subject, listener);
        Trainer controlTrainer = trainer(control)) {
      List<ai.djl.nn.Parameter> from = new ArrayList<>();
      subject.getBlock().getParameters().forEach(p -> from.add(p.getValue()));
      List<ai.djl.nn.Parameter> to = new ArrayList<>();
      control.getBlock().getParameters().forEach(p -> to.add(p.getValue()));
      for (int i = 0; i < from.size(); i++) {
        from.get(i).getArray().copyTo(to.get(i).getArray());
      }
      ArrayDataset train = data(manager, 1);
      ArrayDataset validation = data(manager, 2);

      SurgeryTrain.fit(subjectTrainer, 2, train, validation);
      EasyTrain.fit(controlTrainer, 2, train, validation);

      // Training used the raw weights: the same as a run without the plugin, bit for bit.
      assertBitsEqual(weights(control), weights(subject), "after training");

      // The oracle: the EMA of the weights recorded after each step (4 steps per epoch).
      List<float[]> average = null;
      int batchEnds = 0;
      for (int e = 0; e < Probe.EVENTS.size(); e++) {
        String event = Probe.EVENTS.get(e);
        List<float[]> w = Probe.WEIGHTS.get(e);
        if (event.startsWith("BATCH_END")) {
          batchEnds++;
          average = update(average, w);
        } else if (event.startsWith("EVAL_START")) {
          assertClose(average, w, "at " + event + " the model holds the average");
        } else {
          List<float[]> raw = Probe.WEIGHTS.get(e - 2); // the last BATCH_END before EVAL_START
          assertBitsEqual(raw, w, "at " + event + " the raw weights are back");
        }
      }
      assertEquals(8, batchEnds);
      assertEquals(12, Probe.EVENTS.size(), Probe.EVENTS.toString());
      assertClose(average, new ArrayList<>(ema.averageOf(subject).values()), "the average");

      // The average in a checkpoint: a DJL checkpoint of its own, loadable like any other.
      ema.saveAverage(subject, dir, "mlp");
      assertBitsEqual(weights(control), weights(subject), "saving leaves the raw weights");
      try (Model loaded = model("loaded")) {
        SurgeryCheckpoint.load(loaded, dir, "mlp-ema");
        assertClose(average, weights(loaded), "the saved average");
      }
    }
  }

  /**
   * A surgery that replaces the root block keeps the model: the average goes on over the same
   * parameters instead of starting again (and the old root's copies are not left behind).
   */
  @Test
  void theAverageGoesOnWhenASurgeryReplacesTheRootBlock() throws Exception {
    SurgeryListener listener = emaWithProbe();
    Ema ema = (Ema) listener.getSchedule().get(0).algorithm();
    try (NDManager manager = NDManager.newBaseManager();
        Model subject = model("rooted");
        Trainer trainer = trainer(subject, listener)) {
      ArrayDataset train = data(manager, 1);
      SurgeryTrain.fit(trainer, 1, train, null);
      // The same parameters under a new root, as a root-replacing surgery leaves them.
      subject.setBlock(new SequentialBlock().add(subject.getBlock()));
      SurgeryTrain.fit(trainer, 1, train, null);

      List<float[]> average = null;
      for (int e = 0; e < Probe.EVENTS.size(); e++) {
        if (Probe.EVENTS.get(e).startsWith("BATCH_END")) {
          average = update(average, Probe.WEIGHTS.get(e));
        }
      }
      assertEquals(8, Probe.EVENTS.size(), Probe.EVENTS.toString());
      assertClose(average, new ArrayList<>(ema.averageOf(subject).values()), "the average");
    }
  }

  /** One EMA step as the plugin documents it, in float arithmetic. */
  private static List<float[]> update(List<float[]> average, List<float[]> weights) {
    if (average == null) {
      List<float[]> first = new ArrayList<>();
      weights.forEach(w -> first.add(w.clone()));
      return first;
    }
    for (int i = 0; i < average.size(); i++) {
      float[] a = average.get(i);
      float[] w = weights.get(i);
      for (int j = 0; j < a.length; j++) {
        a[j] = (float) SMOOTHING * a[j] + (float) (1 - SMOOTHING) * w[j];
      }
    }
    return average;
  }
}
