package dev.surgery.core;

import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.LambdaBlock;
import ai.djl.util.Pair;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.LinkedIdentityMap;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Stable, human-readable block paths: the children keys from the root down, joined by {@code /},
 * for example {@code 05ParallelBlock/01SequentialBlock/01Conv2d}. The root's path is the empty
 * string, shown as {@code <root>} in messages. A block reachable along several paths is named by
 * the first one in traversal order.
 *
 * <p>During a surgery, matchers and errors see the paths of the tree as the surgery began: a
 * replacement takes the path of the block it replaces, and a block below a replaced or wrapped one
 * keeps its own, which is where the caller finds it again if the surgery is refused and rolled
 * back. (Under {@code recurseOnReplacements}, a child a replacement brings is named by the
 * replacement's path joined with its own key.)
 */
public final class BlockPaths {

  /** How the root is shown in messages. */
  public static final String ROOT = "<root>";

  private BlockPaths() {}

  /**
   * Maps every block under {@code root} (root included) to its first path, in pre-order.
   *
   * @param root the root block
   * @return identity map from block to path; iteration order is traversal order
   */
  public static Map<Block, String> index(Block root) {
    // Keyed by identity: a user's block class may override equals, and two equal blocks are two
    // places in the model.
    Map<Block, String> paths = new LinkedIdentityMap<>();
    IdentityHashMap<Block, Boolean> seen = new IdentityHashMap<>();
    seen.put(root, true);
    paths.put(root, "");
    walk(root, "", seen, paths);
    return paths;
  }

  private static void walk(
      Block block, String prefix, IdentityHashMap<Block, Boolean> seen, Map<Block, String> out) {
    // Pre-order with a stack of its own, not recursion: a chain thousands of blocks deep must not
    // overflow the thread's stack where DJL's own walks do not.
    Deque<Iterator<Pair<String, Block>>> children = new ArrayDeque<>();
    Deque<String> prefixes = new ArrayDeque<>();
    children.push(children(block).iterator());
    prefixes.push(prefix);
    while (!children.isEmpty()) {
      Iterator<Pair<String, Block>> it = children.peek();
      if (!it.hasNext()) {
        children.pop();
        prefixes.pop();
        continue;
      }
      Pair<String, Block> child = it.next();
      if (seen.put(child.getValue(), true) == null) {
        String path = join(prefixes.peek(), child.getKey());
        out.put(child.getValue(), path);
        children.push(children(child.getValue()).iterator());
        prefixes.push(path);
      }
    }
  }

  /**
   * Finds the path of a block.
   *
   * @param root the root block
   * @param target the block to find
   * @return its path, or null when it is not under {@code root}
   */
  public static String pathOf(Block root, Block target) {
    return index(root).get(target);
  }

  /**
   * Finds a block by path.
   *
   * @param root the root
   * @param path a path as produced by {@link #index}
   * @return the block, or null
   */
  public static Block resolve(Block root, String path) {
    if (path.isEmpty()) {
      return root;
    }
    Block current = root;
    for (String key : path.split("/")) {
      Block next = children(current).get(key);
      if (next == null) {
        // A key that holds '/' itself: the path is one that index gave, so the index finds it.
        for (Map.Entry<Block, String> e : index(root).entrySet()) {
          if (e.getValue().equals(path)) {
            return e.getKey();
          }
        }
        return null;
      }
      current = next;
    }
    return current;
  }

  /**
   * Returns the children of a block as DJL keeps them: the live list of an {@code AbstractBlock},
   * or the (read-only) copy other blocks give.
   *
   * @param block a block
   * @return its children with their keys
   */
  public static BlockList children(Block block) {
    BlockList live = DjlBlocks.liveChildren(block);
    return live != null ? live : block.getChildren();
  }

  /**
   * Shows a path in a message.
   *
   * @param path a path, possibly empty
   * @return the path, or {@link #ROOT} for the root
   */
  public static String display(String path) {
    return path == null || path.isEmpty() ? ROOT : path;
  }

  /**
   * Returns a short display type of a block: the lambda name for a named {@link LambdaBlock},
   * otherwise the class's simple name.
   *
   * @param block a block
   * @return for example {@code Conv2d} or {@code maxPool2d}
   */
  public static String typeName(Block block) {
    if (block instanceof LambdaBlock l
        && block.getClass() == LambdaBlock.class
        && !LambdaBlock.DEFAULT_NAME.equals(l.getName())) {
      return l.getName();
    }
    return block.getClass().getSimpleName();
  }

  static String join(String prefix, String key) {
    if (prefix.isEmpty()) {
      return key;
    }
    // Not '+': an indy concatenation is costly while the surgery's walk still runs interpreted.
    return new StringBuilder(prefix.length() + 1 + key.length())
        .append(prefix)
        .append('/')
        .append(key)
        .toString();
  }

  /**
   * Translates a glob: {@code **} any run of characters, {@code *} any within a segment, {@code ?}
   * one character of a segment. {@link Targets} passes it single segments and type names.
   */
  static Pattern globToRegex(String glob) {
    return compileWhole(globToRegexText(glob));
  }

  /** {@link #globToRegex} as regex text, for a caller that joins several before compiling. */
  static String globToRegexText(String glob) {
    StringBuilder regex = new StringBuilder();
    StringBuilder literal = new StringBuilder();
    // By code point: a character beyond U+FFFF quoted as two halves matched nothing, so an exclude
    // naming a block with an emoji key excluded nothing. A run of literal characters is quoted as
    // one, so the regex grows linearly with the glob.
    for (int i = 0; i < glob.length(); i += Character.charCount(glob.codePointAt(i))) {
      int c = glob.codePointAt(i);
      if (c == '*' || c == '?') {
        if (literal.length() > 0) {
          regex.append(Pattern.quote(literal.toString()));
          literal.setLength(0);
        }
        if (c == '?') {
          regex.append("[^/]");
        } else if (i + 1 < glob.length() && glob.charAt(i + 1) == '*') {
          regex.append(".*");
          i++;
        } else {
          regex.append("[^/]*");
        }
      } else {
        literal.appendCodePoint(c);
      }
    }
    if (literal.length() > 0) {
      regex.append(Pattern.quote(literal.toString()));
    }
    return regex.toString();
  }

  /**
   * Compiles a regex used with {@code matches()} only, inside a group: a pattern that is one long
   * literal would otherwise get Boyer-Moore tables for {@code find()}, which take time quadratic in
   * its length to build.
   */
  static Pattern compileWhole(String regex) {
    return Pattern.compile("(?:" + regex + ")");
  }
}
