package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.ParameterList;
import dev.surgery.core.internal.DjlInternals;

/**
 * Gives a freshly built block copies of another block's weights without computing anything that is
 * thrown away: no random initialization to overwrite, no trip through host memory.
 *
 * <p>The usual DJL way, {@code fresh.initialize(...)} then {@code old.copyTo(new)}, runs the
 * initializer for every parameter and then copies each array through a host buffer. Here each
 * parameter of the fresh block receives a native duplicate of the matching old array (same device,
 * data type and manager), so when the engine initializes the replacement, DJL finds every array in
 * place and only records input shapes (its own and its children's) and attaches gradients.
 *
 * <pre>{@code
 * (block, index) -> WeightCopy.into(Conv2d.builder()...build(), block)
 * }</pre>
 */
public final class WeightCopy {

  private WeightCopy() {}

  /**
   * Copies the weights of {@code from} into {@code fresh}, parameter by parameter in the order of
   * {@code getParameters()} (names must match), and returns {@code fresh}.
   *
   * @param fresh a block that has never been initialized, with the same parameter layout
   * @param from an initialized block to copy
   * @param <B> the type of the fresh block
   * @return {@code fresh}, holding copies of {@code from}'s arrays
   * @throws IllegalArgumentException if {@code fresh} already has arrays or shapes, if the
   *     parameter lists differ in length or names, or if {@code from} is not initialized
   */
  public static <B extends Block> B into(B fresh, Block from) {
    ParameterList target = fresh.getParameters();
    ParameterList source = from.getParameters();
    if (target.size() != source.size()) {
      throw new IllegalArgumentException(
          "cannot copy weights: "
              + from.getClass().getSimpleName()
              + " has "
              + source.size()
              + " parameters, "
              + fresh.getClass().getSimpleName()
              + " has "
              + target.size());
    }
    if (DjlInternals.recordedInputShapes(from) == null) {
      throw new IllegalArgumentException(
          "cannot copy weights: " + from.getClass().getSimpleName() + " is not initialized");
    }
    for (int i = 0; i < target.size(); i++) {
      Parameter to = target.valueAt(i);
      Parameter of = source.valueAt(i);
      if (!to.getName().equals(of.getName())) {
        throw new IllegalArgumentException(
            "cannot copy weights: parameter "
                + i
                + " is '"
                + of.getName()
                + "' in the old block and '"
                + to.getName()
                + "' in the new one");
      }
      if (!of.isInitialized()) {
        throw new IllegalArgumentException(
            "cannot copy weights: parameter '" + of.getName() + "' has no array");
      }
      if (to.isInitialized() || to.getShape() != null) {
        throw new IllegalArgumentException(
            "cannot copy weights into an initialized block: parameter '"
                + to.getName()
                + "' already has a shape");
      }
    }
    for (int i = 0; i < target.size(); i++) {
      NDArray copy = source.valueAt(i).getArray().duplicate();
      target.valueAt(i).setArray(copy);
    }
    return fresh;
  }
}
