package dev.surgery.core;

import ai.djl.nn.Block;
import java.util.function.Predicate;

/**
 * A matcher that looks at the block only, never at its path: traversals then skip building the path
 * string of every block they pass and build paths only for the blocks that need one (matched
 * blocks, messages).
 */
final class PathFreeMatcher implements BlockMatcher {

  private final Predicate<Block> test;

  /**
   * The one class of a class matcher, else null. Tested directly: a traversal asks once per block,
   * and a call through the predicate there is a megamorphic call that is never inlined.
   */
  private final Class<?> onlyClass;

  /**
   * Whether the test reads only what any block can tell at any time (its class, a lambda's name),
   * so that the engine may ask it about blocks that are not the model's (a replacement, not yet
   * initialized) where that spares work; a predicate of the program's own ({@link
   * BlockMatcher#byBlock}) is asked only about what the documentation says it is.
   */
  private final boolean ourOwn;

  PathFreeMatcher(Predicate<Block> test) {
    this(test, false);
  }

  /** A matcher whose test is the library's own ({@code ourOwn}) or the program's. */
  PathFreeMatcher(Predicate<Block> test, boolean ourOwn) {
    this.test = test;
    this.onlyClass = null;
    this.ourOwn = ourOwn;
  }

  private PathFreeMatcher(Class<?> onlyClass) {
    this.test = onlyClass::isInstance;
    this.onlyClass = onlyClass;
    this.ourOwn = true;
  }

  /** Whether the engine may ask it about any block (see {@link #ourOwn}). */
  boolean isOurOwn() {
    return ourOwn;
  }

  /** Matches the instances of one class (subclasses included). */
  static PathFreeMatcher ofClass(Class<?> type) {
    return new PathFreeMatcher(type);
  }

  /** Whether a matcher may need the path: anything not known to be path-free. */
  static boolean usesPath(BlockMatcher matcher) {
    return !(matcher instanceof PathFreeMatcher);
  }

  /** Matches without a path. */
  boolean matches(Block block) {
    Class<?> type = onlyClass;
    return type != null ? type.isInstance(block) : test.test(block);
  }

  @Override
  public boolean matches(Block block, String path) {
    return matches(block);
  }

  @Override
  public BlockMatcher and(BlockMatcher other) {
    if (other instanceof PathFreeMatcher o) {
      return new PathFreeMatcher(b -> test.test(b) && o.test.test(b), ourOwn && o.ourOwn);
    }
    return BlockMatcher.super.and(other);
  }

  @Override
  public BlockMatcher or(BlockMatcher other) {
    if (other instanceof PathFreeMatcher o) {
      return new PathFreeMatcher(b -> test.test(b) || o.test.test(b), ourOwn && o.ourOwn);
    }
    return BlockMatcher.super.or(other);
  }

  @Override
  public BlockMatcher negate() {
    return new PathFreeMatcher(test.negate(), ourOwn);
  }
}
