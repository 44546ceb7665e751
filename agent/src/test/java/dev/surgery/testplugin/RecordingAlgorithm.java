package dev.surgery.testplugin;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.events.Event;
import dev.surgery.core.events.State;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Records every event it is asked about, one line each, in the file named by the system property
 * {@code surgery.test.record}: {@code <EVENT> steps=<global steps> epochs=<completed epochs>
 * blur=<whether the model has a BlurConv2d>}, and at {@code BATCH_END} {@code exact=ok} or what is
 * not exact (the trainer's parameter store against the model's parameters, the optimizer's state
 * against the live parameters). It never changes anything.
 */
public final class RecordingAlgorithm implements Algorithm {

  /** The config name. */
  public static final String NAME = "recording";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public Map<String, Object> hyperparameters() {
    return Map.of();
  }

  @Override
  public Set<Event> events() {
    return EnumSet.allOf(Event.class);
  }

  @Override
  public boolean match(Event event, State state) {
    StringBuilder line = new StringBuilder(event.name());
    line.append(" steps=").append(state.globalSteps());
    line.append(" epochs=").append(state.completedEpochs());
    Model model = state.model();
    line.append(" blur=").append(model.getBlock().toString().contains("BlurConv2d"));
    if (event == Event.BATCH_END && state.trainer() != null) {
      line.append(" exact=").append(exactness(state.trainer()));
    }
    append(line.toString());
    return false;
  }

  @Override
  public SurgeryChanges apply(SurgeryContext context) {
    throw new IllegalStateException("the recording plugin has no surgery");
  }

  /** The store holds exactly the model's parameters, with their values; state only for them. */
  static String exactness(Trainer trainer) {
    Map<String, Parameter> live = new HashMap<>();
    for (Pair<String, Parameter> p : trainer.getModel().getBlock().getParameters()) {
      live.put(p.getValue().getId(), p.getValue());
    }
    Map<String, Object> entries = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer));
    if (!entries.keySet().equals(live.keySet())) {
      return "store-ids-differ";
    }
    for (Map.Entry<String, Object> e : entries.entrySet()) {
      Parameter p = live.get(e.getKey());
      if (DjlTrainers.entryParameter(e.getValue()) != p) {
        return "store-entry-of-another-parameter:" + e.getKey();
      }
      List<NDArray> mirrors = DjlTrainers.mirrors(e.getValue());
      for (NDArray mirror : mirrors) {
        if (!Arrays.equals(mirror.toFloatArray(), p.getArray().toFloatArray())) {
          return "store-value-differs:" + e.getKey();
        }
      }
    }
    for (Map.Entry<String, Map<String, Map<ai.djl.Device, NDArray>>> state :
        DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer)).entrySet()) {
      for (String id : state.getValue().keySet()) {
        if (!live.containsKey(id)) {
          return "optimizer-state-for-a-removed-parameter:" + state.getKey() + "/" + id;
        }
      }
    }
    return "ok";
  }

  private static void append(String line) {
    String file = System.getProperty("surgery.test.record");
    if (file == null) {
      return;
    }
    try {
      Files.writeString(
          Path.of(file),
          line + "\n",
          StandardCharsets.UTF_8,
          StandardOpenOption.CREATE,
          StandardOpenOption.APPEND);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
