package dev.surgery.core;

import ai.djl.nn.Block;
import ai.djl.nn.LambdaBlock;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Selects blocks for surgery by looking at a block and its stable path (see {@link BlockPaths}).
 *
 * <p>A block held at several places (by two parents, or twice in one) is one block: the engine asks
 * a matcher about it once, with its first path ({@link BlockPaths#index}), and puts its one
 * replacement at every place. A path matcher that selects only a later place of such a block does
 * not select it; {@link Targets} (an algorithm's include and exclude) look at every place.
 *
 * <p>Class matching alone is not enough in DJL: pools and most activations are anonymous {@link
 * LambdaBlock}s, told apart only by their name. Matchers combine with {@link #and}, {@link #or} and
 * {@link #negate}.
 */
@FunctionalInterface
public interface BlockMatcher {

  /**
   * Tells whether a block is selected.
   *
   * @param block the candidate block
   * @param path its stable path from the root, for example {@code 05ParallelBlock/01Conv2d}; for a
   *     block held at several places, its first
   * @return true to select it
   */
  boolean matches(Block block, String path);

  /**
   * Matches blocks that are instances of any of the given classes (subclasses included).
   *
   * @param classes the classes
   * @return the matcher
   */
  static BlockMatcher ofClass(Class<?>... classes) {
    java.util.Objects.requireNonNull(classes, "classes must not be null");
    for (Class<?> c : classes) {
      java.util.Objects.requireNonNull(c, "classes must not hold null");
    }
    List<Class<?>> list = List.of(classes);
    if (list.size() == 1) {
      return PathFreeMatcher.ofClass(list.get(0));
    }
    // A plain loop: this runs once per block of a tree, where a stream's setup would dominate.
    return new PathFreeMatcher(
        block -> {
          for (Class<?> c : list) {
            if (c.isInstance(block)) {
              return true;
            }
          }
          return false;
        },
        true);
  }

  /**
   * Matches by looking at the block alone, never at its path, for example strided convolutions or
   * blocks with a given setting. Prefer it to a {@code (block, path)} lambda that ignores the path:
   * a surgery whose matchers all look at blocks alone builds no path strings while it walks, and
   * passes by the leaves no matcher selects without recording them one by one, which on a large
   * model is most of its work. Combining it with {@link #and}, {@link #or} or {@link #negate} keeps
   * that, as long as the other matchers are path-free too ({@link #ofClass}, {@link #lambdaNamed},
   * this). The test is asked about the model's blocks only (and about replacements under {@code
   * recurseOnReplacements}), so it may read what an initialized layer has, such as a weight's
   * shape.
   *
   * @param test what a selected block satisfies
   * @return the matcher
   */
  static BlockMatcher byBlock(java.util.function.Predicate<? super Block> test) {
    java.util.Objects.requireNonNull(test, "test must not be null");
    @SuppressWarnings("unchecked") // a test of any supertype of Block tests blocks
    java.util.function.Predicate<Block> blocks = (java.util.function.Predicate<Block>) test;
    return new PathFreeMatcher(blocks);
  }

  /**
   * Matches {@link LambdaBlock}s by their name, for example {@code maxPool2d}, {@code avgPool2d},
   * {@code ReLU} or {@code identity}.
   *
   * @param names the lambda names
   * @return the matcher
   */
  static BlockMatcher lambdaNamed(String... names) {
    java.util.Objects.requireNonNull(names, "names must not be null");
    for (String n : names) {
      java.util.Objects.requireNonNull(n, "names must not hold null");
    }
    Set<String> set = Set.copyOf(Arrays.asList(names));
    return new PathFreeMatcher(
        block -> block instanceof LambdaBlock l && set.contains(l.getName()), true);
  }

  /**
   * Matches blocks whose path matches a glob: {@code *} matches within one path segment, {@code **}
   * across segments, {@code ?} one character. Example: {@code 05ParallelBlock/**}{@code /*Conv2d}.
   * The patterns users write ({@code include}/{@code exclude}) are {@link Targets}: checked, with
   * {@code **} as whole segments that also match zero segments. A block held at several places is
   * matched by its first path only.
   *
   * @param glob the pattern
   * @return the matcher
   */
  static BlockMatcher pathGlob(String glob) {
    java.util.Objects.requireNonNull(glob, "glob must not be null");
    Pattern pattern = BlockPaths.globToRegex(glob);
    return (block, path) -> pattern.matcher(path).matches();
  }

  /**
   * Both this and the other matcher select the block.
   *
   * @param other the other matcher
   * @return the combined matcher
   */
  default BlockMatcher and(BlockMatcher other) {
    java.util.Objects.requireNonNull(other, "other must not be null");
    return (block, path) -> matches(block, path) && other.matches(block, path);
  }

  /**
   * This or the other matcher selects the block.
   *
   * @param other the other matcher
   * @return the combined matcher
   */
  default BlockMatcher or(BlockMatcher other) {
    java.util.Objects.requireNonNull(other, "other must not be null");
    return (block, path) -> matches(block, path) || other.matches(block, path);
  }

  /**
   * Selects the blocks this matcher does not.
   *
   * @return the negated matcher
   */
  default BlockMatcher negate() {
    return (block, path) -> !matches(block, path);
  }
}
