package dev.surgery.core;

import ai.djl.nn.Block;

/**
 * Builds the replacement for one matched block during {@link ModuleSurgery#replaceModuleClasses}.
 *
 * <p>The function may return a new block (surgery writes it wherever the old block was referenced),
 * the same block (treated as "leave it"), or {@code null} (leave it). It must not change the tree
 * itself: the engine does that, and undoes everything if any later step fails.
 */
@FunctionalInterface
public interface ReplacementFunction {

  /**
   * Returns the replacement for {@code module}, or null to leave it.
   *
   * @param module the matched block, still in the tree
   * @param moduleIndex the i-th instance seen for this policy (counts calls that returned null too)
   * @return the replacement block, or {@code null} to keep {@code module}
   */
  Block apply(Block module, int moduleIndex);
}
