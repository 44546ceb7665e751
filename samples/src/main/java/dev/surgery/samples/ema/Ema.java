package dev.surgery.samples.ema;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.algorithms.HyperParameterValues;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * Exponential moving average of the weights ({@code ema}, after Composer's {@code EMA}): an
 * event-driven algorithm that changes no structure.
 *
 * <ul>
 *   <li>{@link Event#BATCH_END}, every {@code update_interval} optimizer steps: {@code average =
 *       smoothing * average + (1 - smoothing) * weights} for every parameter of the model (running
 *       statistics included), starting from the weights at the first update;
 *   <li>{@link Event#EVAL_START}: the averaged weights are copied into the model's parameters (in
 *       place, so the trainer's parameter store sees them) and the raw weights kept aside;
 *   <li>{@link Event#EVAL_END}: the raw weights are copied back, so training goes on from them.
 * </ul>
 *
 * <p>Parameters that a surgery adds start their average at their current value; removed ones drop
 * theirs. Checkpoints: {@link #saveAverage} writes the averaged weights as a second DJL checkpoint
 * ({@code <name>-ema}) next to the raw one, with the model's surgery record, so that {@code
 * SurgeryCheckpoint.load(model, dir, name + "-ema")} loads the averaged model; {@link
 * #restoreAverage} resumes the average from such a checkpoint. In YAML, an entry without a
 * schedule:
 *
 * <pre>{@code
 * algorithms:
 *   - name: ema
 *     smoothing: 0.999
 * }</pre>
 */
public final class Ema implements Algorithm {

  /** The config name. */
  public static final String NAME = "ema";

  /** {@code smoothing}: the weight of the old average at each update. */
  public static final HyperParameter<Double> SMOOTHING =
      HyperParameter.ofFloat(
          "smoothing", 0.999, 0.0, true, 1.0, "weight of the old average at each update");

  /** {@code update_interval}: the number of optimizer steps between updates. */
  public static final HyperParameter<Integer> UPDATE_INTERVAL =
      HyperParameter.ofInt(
          "update_interval", 1, 1, null, "optimizer steps between two updates of the average");

  /** The declaration a plugin provider returns. */
  public static final AlgorithmSpec SPEC =
      AlgorithmSpec.of(NAME, List.of(SMOOTHING, UPDATE_INTERVAL), Ema::new);

  private static final Set<Event> EVENTS =
      Set.of(Event.BATCH_END, Event.EVAL_START, Event.EVAL_END);

  private final HyperParameterValues values;

  /**
   * The averages per model, held weakly: a dropped model's averages go with it. Keyed by the model,
   * not its root block, so that a surgery that replaces the root keeps the averages of the
   * parameters that stay and frees those of the ones that left (at the next update).
   */
  private final Map<Model, Averages> averages = Collections.synchronizedMap(new WeakHashMap<>());

  private Ema(HyperParameterValues values) {
    this.values = values;
  }

  /**
   * Creates an EMA.
   *
   * @param smoothing the weight of the old average, in (0, 1]
   * @param updateInterval optimizer steps between updates, at least 1
   * @return the algorithm
   */
  public static Ema of(double smoothing, int updateInterval) {
    Map<String, Object> given = new LinkedHashMap<>();
    given.put(SMOOTHING.name(), smoothing);
    given.put(UPDATE_INTERVAL.name(), updateInterval);
    return (Ema) SPEC.create(given);
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Map<String, Object> hyperparameters() {
    return new LinkedHashMap<>(values.asMap());
  }

  @Override
  public Set<Event> events() {
    return EVENTS;
  }

  @Override
  public boolean match(Event event, State state) {
    Averages a = averages.get(state.model());
    switch (event) {
      case BATCH_END:
        return state.globalSteps() % values.get(UPDATE_INTERVAL) == 0;
      case EVAL_START:
        return a != null && !a.average.isEmpty() && a.raw.isEmpty();
      case EVAL_END:
        return a != null && !a.raw.isEmpty();
      default:
        return false;
    }
  }

  @Override
  public SurgeryChanges apply(Event event, State state) {
    Model model = state.model();
    switch (event) {
      case BATCH_END:
        averages
            .computeIfAbsent(model, m -> new Averages())
            .update(model.getBlock(), values.get(SMOOTHING));
        break;
      case EVAL_START:
        averages.get(model).swapIn();
        break;
      case EVAL_END:
        averages.get(model).swapOut();
        break;
      default:
        break;
    }
    return null; // no structural change: nothing for the surgery record
  }

  /**
   * Changes nothing: the EMA works through events, not as a structural surgery.
   *
   * @param context the model
   * @return an empty report
   */
  @Override
  public SurgeryChanges apply(SurgeryContext context) {
    return new SurgeryChanges(NAME, settings(), List.of(), 0, 0, 0);
  }

  /**
   * Returns a copy of the averaged value of each parameter of a model, in {@code getParameters()}
   * order, for inspection and tests.
   *
   * @param model the model
   * @return parameter name to a copy of its average as floats; empty before the first update
   */
  public Map<String, float[]> averageOf(Model model) {
    Averages a = averages.get(model);
    Map<String, float[]> out = new LinkedHashMap<>();
    if (a == null) {
      return out;
    }
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      NDArray avg = a.average.get(p.getValue());
      if (avg != null) {
        out.put(p.getKey(), avg.toFloatArray());
      }
    }
    return out;
  }

  /**
   * Writes the averaged weights as a DJL checkpoint {@code <name>-ema} in {@code dir} (with the
   * model's properties, so its surgery record), and leaves the model's raw weights as they were.
   *
   * @param model the model being trained
   * @param dir the checkpoint directory
   * @param name the model's checkpoint name; the average is saved as {@code name + "-ema"}
   * @throws IOException if the file cannot be written
   * @throws IllegalStateException if there is no average yet
   */
  public void saveAverage(Model model, Path dir, String name) throws IOException {
    Averages a = averages.get(model);
    if (a == null || a.average.isEmpty()) {
      throw new IllegalStateException("ema: no average of " + model.getName() + " yet");
    }
    boolean swapped = a.raw.isEmpty();
    if (swapped) {
      a.swapIn();
    }
    try {
      model.save(dir, name + "-ema");
    } finally {
      if (swapped) {
        a.swapOut();
      }
    }
  }

  /**
   * Resumes the average from a model that holds averaged weights, such as one loaded from a
   * checkpoint written by {@link #saveAverage}: parameter by parameter, in order.
   *
   * @param training the model being trained (same architecture)
   * @param averaged the model holding the averaged weights
   * @throws IllegalArgumentException if the architectures differ
   */
  public void restoreAverage(Model training, Model averaged) {
    List<Parameter> to = parameters(training.getBlock());
    List<Parameter> from = parameters(averaged.getBlock());
    if (to.size() != from.size()) {
      throw new IllegalArgumentException(
          "ema: the averaged model has " + from.size() + " parameters, the model " + to.size());
    }
    Averages a = averages.computeIfAbsent(training, m -> new Averages());
    a.clear();
    for (int i = 0; i < to.size(); i++) {
      NDArray w = to.get(i).getArray();
      NDArray src = from.get(i).getArray();
      if (!w.getShape().equals(src.getShape())) {
        throw new IllegalArgumentException(
            "ema: parameter " + i + " has shape " + src.getShape() + ", expected " + w.getShape());
      }
      NDArray avg = w.duplicate();
      avg.set(src.toByteBuffer());
      a.average.put(to.get(i), avg);
    }
  }

  /**
   * Shows the algorithm as its config name and hyperparameters.
   *
   * @return for example {@code ema{smoothing=0.999, update_interval=1}}
   */
  @Override
  public String toString() {
    return NAME + hyperparameters();
  }

  private static List<Parameter> parameters(Block block) {
    List<Parameter> out = new ArrayList<>();
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Pair<String, Parameter> p : block.getParameters()) {
      if (p.getValue().isInitialized() && seen.add(p.getValue())) {
        out.add(p.getValue());
      }
    }
    return out;
  }

  /** The average of one model's parameters, and its raw weights while evaluation runs. */
  private static final class Averages {
    final Map<Parameter, NDArray> average = new IdentityHashMap<>();
    final Map<Parameter, NDArray> raw = new IdentityHashMap<>();

    synchronized void update(Block block, double smoothing) {
      List<Parameter> live = parameters(block);
      Set<Parameter> liveSet = Collections.newSetFromMap(new IdentityHashMap<>());
      liveSet.addAll(live);
      for (Iterator<Map.Entry<Parameter, NDArray>> it = average.entrySet().iterator();
          it.hasNext(); ) {
        Map.Entry<Parameter, NDArray> e = it.next();
        if (!liveSet.contains(e.getKey())) {
          e.getValue().close(); // a surgery removed the parameter
          it.remove();
        }
      }
      for (Parameter p : live) {
        NDArray w = p.getArray();
        NDArray avg = average.get(p);
        if (avg == null || !avg.getShape().equals(w.getShape())) {
          if (avg != null) {
            avg.close();
          }
          average.put(p, w.duplicate());
          continue;
        }
        avg.muli(smoothing);
        try (NDArray part = w.mul(1 - smoothing)) {
          avg.addi(part);
        }
      }
    }

    synchronized void swapIn() {
      for (Map.Entry<Parameter, NDArray> e : average.entrySet()) {
        NDArray w = e.getKey().getArray();
        raw.put(e.getKey(), w.duplicate());
        w.set(e.getValue().toByteBuffer());
      }
    }

    synchronized void swapOut() {
      for (Map.Entry<Parameter, NDArray> e : raw.entrySet()) {
        e.getKey().getArray().set(e.getValue().toByteBuffer());
        e.getValue().close();
      }
      raw.clear();
    }

    synchronized void clear() {
      average.values().forEach(NDArray::close);
      average.clear();
    }
  }
}
