package dev.surgery.core.testing;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * The gradients a model's trainable arrays have gathered and not yet stepped (gradient
 * accumulation), taken out before a surgery and added back after it to the arrays still in the
 * model: a twin whose arithmetic the library did not do.
 */
public final class PendingGradients {

  private PendingGradients() {}

  /**
   * Copies every pending gradient of a trainable parameter and zeroes it in place.
   *
   * @param root the model's block
   * @return each array's pending gradient
   */
  public static Map<NDArray, float[]> takeOut(Block root) {
    Map<NDArray, float[]> out = new IdentityHashMap<>();
    for (Parameter p : root.getParameters().values()) {
      if (!p.isInitialized() || !p.requiresGradient() || !p.getArray().hasGradient()) {
        continue;
      }
      NDArray array = p.getArray();
      if (out.containsKey(array)) {
        continue;
      }
      try (NDArray g = array.getGradient()) {
        out.put(array, g.toFloatArray());
        g.subi(g);
      }
    }
    return out;
  }

  /**
   * Adds the set-aside gradients back to the arrays still in the model that train.
   *
   * @param root the model's block
   * @param aside what {@link #takeOut} returned
   * @param manager where the added arrays are made
   */
  public static void putBack(Block root, Map<NDArray, float[]> aside, NDManager manager) {
    Map<NDArray, Boolean> done = new IdentityHashMap<>();
    for (Parameter p : root.getParameters().values()) {
      if (!p.isInitialized() || !p.requiresGradient()) {
        continue;
      }
      NDArray array = p.getArray();
      float[] kept = aside.get(array);
      if (kept == null || done.put(array, Boolean.TRUE) != null) {
        continue;
      }
      try (NDArray g = array.getGradient();
          NDArray add = manager.create(kept, array.getShape())) {
        g.addi(add);
      }
    }
  }
}
