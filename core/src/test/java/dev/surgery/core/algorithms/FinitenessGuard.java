package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Test guard: no NaN or infinity in a trainer's parameters, their gradients, or its optimizer's
 * state. Call it after a surgery and after each batch's backward (gradients are zeroed by the
 * step).
 */
final class FinitenessGuard {

  private FinitenessGuard() {}

  /**
   * Fails naming every parameter, gradient and optimizer state that holds a NaN or an infinity.
   *
   * @param trainer the live trainer
   * @param when where training stands, for the message (e.g. "epoch 1, batch 3")
   */
  static void assertFinite(Trainer trainer, String when) {
    List<String> bad = new ArrayList<>();
    Map<String, String> names = new HashMap<>();
    for (Pair<String, Parameter> p : trainer.getModel().getBlock().getParameters()) {
      names.put(p.getValue().getId(), p.getKey());
      if (p.getValue().isInitialized()) {
        check(p.getValue().getArray(), "parameter " + p.getKey(), bad);
      }
    }
    // Gradients as the optimizer will read them: those of the trainer's registered copies.
    for (Map.Entry<String, Object> entry :
        DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).entrySet()) {
      for (NDArray array : DjlTrainers.mirrors(entry.getValue())) {
        if (!array.isReleased() && array.hasGradient()) {
          // A fresh array each call (zeros when backward never reached it): ours to close.
          try (NDArray gradient = array.getGradient()) {
            check(
                gradient, "gradient of " + names.getOrDefault(entry.getKey(), entry.getKey()), bad);
          }
        }
      }
    }
    Map<String, Map<String, Map<Device, NDArray>>> states =
        DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer));
    for (Map.Entry<String, Map<String, Map<Device, NDArray>>> state : states.entrySet()) {
      for (Map.Entry<String, Map<Device, NDArray>> perParameter : state.getValue().entrySet()) {
        for (NDArray array : perParameter.getValue().values()) {
          String of = names.getOrDefault(perParameter.getKey(), perParameter.getKey());
          check(array, "optimizer state " + state.getKey() + " of " + of, bad);
        }
      }
    }
    if (!bad.isEmpty()) {
      fail("not finite at " + when + ": " + String.join(", ", bad));
    }
  }

  private static void check(NDArray array, String what, List<String> bad) {
    float[] values;
    if (array.getDataType() == DataType.FLOAT32) {
      values = array.toFloatArray();
    } else if (array.getDataType().isFloating()) {
      try (NDArray copy = array.toType(DataType.FLOAT32, true)) {
        values = copy.toFloatArray();
      }
    } else {
      return;
    }
    for (float v : values) {
      if (!Float.isFinite(v)) {
        bad.add(what + " (" + v + ")");
        return;
      }
    }
  }
}
