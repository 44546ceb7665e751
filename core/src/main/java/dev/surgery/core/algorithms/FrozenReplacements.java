package dev.surgery.core.algorithms;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import dev.surgery.core.ReplacementFunction;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * Keeps frozen layers frozen through the algorithms that replace blocks: the replacement of a block
 * whose parameters were all frozen (none requires a gradient, as {@link LayerFreezing} leaves a
 * layer) comes out frozen too. Its parameters that the model did not have before (Factorize's two
 * layers, a squeeze-excite gate on a frozen convolution) are frozen before the engine registers
 * them, so a trainer holds them without ever updating them (no optimizer state, no update count)
 * and a plan reports them so; adopted parameters are frozen already.
 *
 * <p>Algorithms only: {@link dev.surgery.core.ModuleSurgery} itself leaves a replacement as its
 * function built it, since replacing a frozen layer by a new trainable one (a new head on a frozen
 * backbone) is a common use of the engine. One instance serves one application (one apply or plan).
 */
final class FrozenReplacements {

  private final Block root;

  /** The model's parameters when the first frozen block was replaced; null until then. */
  private Set<Parameter> modelParameters;

  /** How many replacements had new parameters that were frozen. */
  private int frozen;

  /**
   * Creates the helper for one application.
   *
   * @param root the model's root
   */
  FrozenReplacements(Block root) {
    this.root = root;
  }

  /**
   * Wraps a replacement function so that the replacement of a frozen block comes out frozen.
   *
   * @param function the algorithm's function
   * @return the wrapped function
   */
  ReplacementFunction keepingFrozen(ReplacementFunction function) {
    return (block, index) -> {
      boolean wasFrozen = isFrozen(block);
      Block replacement = function.apply(block, index);
      if (wasFrozen && replacement != null && replacement != block) {
        if (freezeNewParameters(replacement)) {
          frozen++;
        }
      }
      return replacement;
    };
  }

  /**
   * Returns how many replacements of frozen blocks had new parameters, which were frozen.
   *
   * @return the count
   */
  int frozenReplacements() {
    return frozen;
  }

  /**
   * Tells whether a block is frozen: it has parameters and none of them requires a gradient. A
   * block without parameters (a pool) is not.
   *
   * @param block the block
   * @return true when frozen
   */
  static boolean isFrozen(Block block) {
    boolean any = false;
    for (Parameter p : block.getParameters().values()) {
      if (p.requiresGradient()) {
        return false;
      }
      any = true;
    }
    return any;
  }

  /** Freezes the replacement's parameters the model does not have; tells whether there were any. */
  private boolean freezeNewParameters(Block replacement) {
    boolean any = false;
    for (Parameter p : replacement.getParameters().values()) {
      // A parameter the model has (adopted, or shared with a live block) is left as it is: only
      // the replacement's own new parameters are born frozen.
      if (p.requiresGradient() && !modelParameters().contains(p)) {
        p.freeze(true);
        any = true;
      }
    }
    return any;
  }

  /**
   * The model's parameters, collected once. The engine places replacements only after every
   * replacement function ran (the matched block is "still in the tree"), so this is the model as it
   * was before the surgery.
   */
  private Set<Parameter> modelParameters() {
    if (modelParameters == null) {
      modelParameters = Collections.newSetFromMap(new IdentityHashMap<>());
      modelParameters.addAll(root.getParameters().values());
    }
    return modelParameters;
  }
}
