package dev.surgery.core;

import static java.lang.Boolean.TRUE;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.ParameterList;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.DjlShapes;
import java.util.Arrays;
import java.util.Map;
import java.util.Objects;

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
 *
 * <p>The copies are new parameters: a surgery given the trainers registers them with fresh
 * optimizer state, as Composer's {@code replace_module_classes} does. To carry the old parameters'
 * state (Adam's moments, update counts) over to their copies, run the surgery without the trainers
 * and, before the next step, swap each old block's parameters for its copy's:
 *
 * <pre>{@code
 * Map<Block, Block> replaced = ModuleSurgery.replaceModuleClasses(root, policies, null, false, null);
 * replaced.forEach((old, copy) -> {
 *   if (old != copy) {
 *     ModuleSurgery.replaceParamsInOptimizer(
 *         old.getParameters().values(), copy.getParameters().values(), List.of(trainer));
 *   }
 * });
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
   * @throws IllegalArgumentException if {@code fresh} already has arrays, or a parameter shape set
   *     when it was built (as DJL's {@code IdEmbedding} sets them) that differs from the copied
   *     array's, if the parameter lists differ in length or names, if {@code from} is not
   *     initialized, or if {@code fresh}'s settings give one of its own parameters another shape
   *     than the array copied into it (for {@code from}'s input shapes), or refuse those inputs
   */
  public static <B extends Block> B into(B fresh, Block from) {
    Objects.requireNonNull(fresh, "fresh must not be null");
    Objects.requireNonNull(from, "from must not be null");
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
    if (DjlShapes.recordedInputShapes(from) == null) {
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
      if (to.isInitialized()) {
        throw new IllegalArgumentException(
            "cannot copy weights into an initialized block: parameter '"
                + to.getName()
                + "' already holds an array");
      }
      Shape preset = to.getShape();
      if (preset != null && !preset.equals(of.getArray().getShape())) {
        // Some DJL blocks (IdEmbedding) set their parameters' shapes when built.
        throw new IllegalArgumentException(
            "cannot copy weights: parameter '"
                + to.getName()
                + "' is "
                + of.getArray().getShape()
                + " in the old "
                + from.getClass().getSimpleName()
                + ", but the new "
                + fresh.getClass().getSimpleName()
                + " was built with the shape "
                + preset);
      }
    }
    refuseOtherShapes(fresh, from, target, source);
    for (int i = 0; i < target.size(); i++) {
      Parameter to = target.valueAt(i);
      NDArray copy = source.valueAt(i).getArray().duplicate();
      if (to.getShape() == null) {
        to.setArray(copy);
      } else {
        // Parameter.setArray refuses a parameter that has a shape, even the array's own.
        copy.setName(to.getName());
        DjlBlocks.restoreParameter(to, copy, copy.getShape());
      }
    }
    return fresh;
  }

  /**
   * Refuses copies into a block whose own settings give a parameter another shape for the old
   * block's inputs (a 5 x 5 kernel declared, a 3 x 3 weight copied): nothing else would notice, as
   * the replacement's declared output shapes follow its settings while its forward follows the
   * arrays. Asked of the fresh block's own parameters, as its {@code initialize} would shape them:
   * blocks inside it learn their inputs only when it is initialized, so a surgery that places the
   * copy checks theirs then.
   */
  private static void refuseOtherShapes(
      Block fresh, Block from, ParameterList target, ParameterList source) {
    if (!(fresh instanceof AbstractBaseBlock block)) {
      return;
    }
    Shape[] inputs = DjlShapes.recordedInputShapes(from);
    boolean allFit = true;
    for (int i = 0; i < target.size(); i++) {
      Shape copied = source.valueAt(i).getArray().getShape();
      allFit &= TRUE.equals(DjlShapes.declaresShape(fresh, inputs, target.valueAt(i), copied));
    }
    if (allFit) {
      return; // the usual answer, told without building the declared shapes
    }
    Map<Parameter, Shape> declared;
    try {
      declared = DjlShapes.declaredShapes(block, inputs);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException(
          "cannot copy weights: the new "
              + fresh.getClass().getSimpleName()
              + " does not take the old block's input shapes "
              + Arrays.toString(inputs)
              + ": "
              + e.getMessage(),
          e);
    }
    for (int i = 0; i < target.size(); i++) {
      Shape wanted = declared.get(target.valueAt(i));
      Shape copied = source.valueAt(i).getArray().getShape();
      if (wanted != null && !wanted.equals(copied)) {
        throw new IllegalArgumentException(
            "cannot copy weights: parameter '"
                + target.valueAt(i).getName()
                + "' is "
                + copied
                + " in the old "
                + from.getClass().getSimpleName()
                + ", but the new "
                + fresh.getClass().getSimpleName()
                + "'s settings make it "
                + wanted
                + " for the old block's input shapes "
                + Arrays.toString(inputs));
      }
    }
  }
}
