package dev.surgery.core;

import ai.djl.nn.Block;

/**
 * Builds the replacement for one matched block during {@link ModuleSurgery#replaceModuleClasses}.
 *
 * <p>The function may return a new block (surgery writes it wherever the old block was referenced),
 * the same block (the block stays; as in Composer's {@code replaced_pairs}, the surgery's returned
 * map then holds the pair of it with itself, and no other policy may replace it), or {@code null}
 * (leave it, and let a later policy decide). It must not change the tree itself: the engine does
 * that, and undoes everything if any later step fails; a surgery (or a plan) it starts through
 * {@link ModuleSurgery} is refused, which fails the running surgery.
 *
 * <p>Every policy that matches a block is called for it, in policy order, as in Composer: when an
 * earlier policy already replaced the block, a later matching one is called with the block that has
 * just left the tree, and must return {@code null} (any block, even the same, is refused as a
 * second replacement).
 */
@FunctionalInterface
public interface ReplacementFunction {

  /**
   * Returns the replacement for {@code module}, or null to leave it.
   *
   * @param module the matched block: in the tree, unless an earlier policy replaced it just now
   * @param moduleIndex the i-th instance seen for this policy (counts calls that returned null too)
   * @return the replacement block, or {@code null} to keep {@code module}
   */
  Block apply(Block module, int moduleIndex);
}
