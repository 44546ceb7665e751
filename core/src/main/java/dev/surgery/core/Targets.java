package dev.surgery.core;

import ai.djl.nn.Block;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Where an algorithm may apply: {@code include} and {@code exclude} lists of block patterns.
 *
 * <p>A pattern is either a <b>path glob</b> over the stable paths of {@link BlockPaths} (for
 * example {@code 05ParallelBlock/**}{@code /01Conv2d}) or a <b>type</b> pattern {@code type:NAME}.
 * In a path glob, {@code *} matches within one segment, {@code ?} one character of a segment, and a
 * {@code **} segment zero or more whole segments ({@code a/**}{@code /b} matches {@code a/b} and
 * {@code a/x/y/b}; a trailing {@code /**} matches everything strictly below).
 *
 * <p>A type pattern's NAME must match the whole of one of three names of a block, letter case as
 * written: {@link BlockPaths#typeName} (a {@code LambdaBlock}'s own name such as {@code maxPool2d},
 * else the class's simple name), the class's simple name ({@code LambdaBlock} for every lambda) or
 * its full name ({@code ai.djl.nn.convolutional.Conv2d}). It names classes, not a class and its
 * subclasses: {@code type:Conv2d} does not match a {@code BlurConv2d}. In NAME, {@code *} matches
 * any run of characters, none included (the dots of a full name too), and {@code ?} one character;
 * {@code **} is refused. So {@code type:*Conv2d} matches {@code Conv2d}, {@code BlurConv2d} and
 * {@code WeightStandardizedConv2d}, and {@code type:ai.djl.nn.*} every block whose class is in that
 * package or one below it.
 *
 * <p>A pattern that matches a block selects its whole subtree. A block held at several places (by
 * two parents) has a path at each, and is one block: an include that selects it at any place
 * selects it, an exclude at any place excludes it. A block is a target when it is selected by an
 * include (or there are no includes) and by no exclude: exclusions win. The algorithm's own rule
 * still decides, among the targets, what to change.
 */
public final class Targets {

  /** The config key of the include list. */
  public static final String INCLUDE = "include";

  /** The config key of the exclude list. */
  public static final String EXCLUDE = "exclude";

  /** Every block: no include, no exclude. */
  public static final Targets ALL = new Targets(List.of(), List.of());

  private static final String TYPE_PREFIX = "type:";

  private final List<Pattern> includes;
  private final List<Pattern> excludes;
  private final List<String> includeTexts;
  private final List<String> excludeTexts;

  private Targets(List<String> includes, List<String> excludes) {
    this.includeTexts = List.copyOf(includes);
    this.excludeTexts = List.copyOf(excludes);
    this.includes = includeTexts.stream().map(Targets::compile).toList();
    this.excludes = excludeTexts.stream().map(Targets::compile).toList();
  }

  /**
   * Creates targets from pattern lists.
   *
   * @param includes the include patterns; empty means every block
   * @param excludes the exclude patterns
   * @return the targets
   * @throws InvalidPatternException naming the first bad pattern and the offending character
   */
  public static Targets of(List<String> includes, List<String> excludes) {
    List<String> in =
        includes == null ? List.of() : patterns("include", includes.toArray(String[]::new));
    List<String> ex =
        excludes == null ? List.of() : patterns("exclude", excludes.toArray(String[]::new));
    if (in.isEmpty() && ex.isEmpty()) {
      return ALL;
    }
    return new Targets(in, ex);
  }

  /**
   * Targets only the blocks the patterns select.
   *
   * @param patterns include patterns
   * @return the targets
   * @throws InvalidPatternException naming the first bad pattern
   */
  public static Targets include(String... patterns) {
    return of(patterns("include", patterns), List.of());
  }

  /**
   * Returns targets that also exclude the blocks the patterns select.
   *
   * @param patterns exclude patterns
   * @return new targets
   * @throws InvalidPatternException naming the first bad pattern
   */
  public Targets exclude(String... patterns) {
    List<String> ex = new ArrayList<>(excludeTexts);
    ex.addAll(patterns("exclude", patterns));
    return of(includeTexts, ex);
  }

  /** The patterns as a list, a null array or pattern refused by name (not a bare NPE). */
  private static List<String> patterns(String which, String... patterns) {
    if (patterns == null) {
      throw new NullPointerException(which + " patterns must not be null");
    }
    for (String p : patterns) {
      if (p == null) {
        throw new NullPointerException(which + " patterns must not hold null");
      }
    }
    return List.of(patterns);
  }

  /**
   * Returns the include patterns as given.
   *
   * @return the include patterns; empty when every block is included
   */
  public List<String> includes() {
    return includeTexts;
  }

  /**
   * Returns the exclude patterns as given.
   *
   * @return the exclude patterns
   */
  public List<String> excludes() {
    return excludeTexts;
  }

  /**
   * Tells whether these targets select every block.
   *
   * @return true without includes and excludes
   */
  public boolean isAll() {
    return includeTexts.isEmpty() && excludeTexts.isEmpty();
  }

  /**
   * Adds the non-empty lists to a settings map under {@link #INCLUDE} and {@link #EXCLUDE}.
   *
   * @param settings the map to add to
   */
  public void putInto(Map<String, Object> settings) {
    if (!includeTexts.isEmpty()) {
      settings.put(INCLUDE, includeTexts);
    }
    if (!excludeTexts.isEmpty()) {
      settings.put(EXCLUDE, excludeTexts);
    }
  }

  /**
   * Checks one pattern.
   *
   * @param pattern the pattern text
   * @throws InvalidPatternException when it is not a valid pattern
   */
  public static void validate(String pattern) {
    compile(pattern);
  }

  /**
   * Resolves the targets on a model.
   *
   * @param root the model's root block
   * @return the selected blocks and the include patterns that matched nothing
   */
  public Selection select(Block root) {
    // A block held at several places (shared by two parents) is one block: what an algorithm does
    // to it, it does at every place. So every place is looked at: a pattern that names it at any
    // of its paths selects it (and that place's subtree), and an exclusion at any place wins.
    Set<Block> in = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Block> out = Collections.newSetFromMap(new IdentityHashMap<>());
    boolean[] includeUsed = new boolean[includes.size()];
    Set<Block> onPath = Collections.newSetFromMap(new IdentityHashMap<>());
    onPath.add(root);
    walk(root, "", includes.isEmpty(), false, includeUsed, in, out, onPath);
    in.removeAll(out);
    List<String> unmatched = new ArrayList<>();
    for (int i = 0; i < includeUsed.length; i++) {
      if (!includeUsed[i]) {
        unmatched.add(includeTexts.get(i));
      }
    }
    return new Selection(in, unmatched);
  }

  private void walk(
      Block block,
      String path,
      boolean included,
      boolean excluded,
      boolean[] includeUsed,
      Set<Block> in,
      Set<Block> out,
      Set<Block> onPath) {
    for (Pair<String, Block> child : BlockPaths.children(block)) {
      Block b = child.getValue();
      if (!onPath.add(b)) {
        continue; // a block that holds itself: its places below its own are no new places
      }
      String p = BlockPaths.join(path, child.getKey());
      boolean selected = included;
      for (int i = 0; i < includes.size(); i++) {
        if (matches(includes.get(i), includeTexts.get(i), b, p)) {
          includeUsed[i] = true;
          selected = true;
        }
      }
      boolean left = excluded;
      for (int i = 0; !left && i < excludes.size(); i++) {
        left = matches(excludes.get(i), excludeTexts.get(i), b, p);
      }
      if (selected) {
        in.add(b);
      }
      if (left) {
        out.add(b);
      }
      walk(b, p, selected, left, includeUsed, in, out, onPath);
      onPath.remove(b);
    }
  }

  /**
   * Finds a pattern that selects no block of the tree as written but would with case ignored (a
   * misspelt name such as {@code type:Conv2D} for {@code Conv2d}): block types and paths are
   * case-sensitive, and such a pattern is a typo, which can be told before training rather than
   * when the entry runs. A pattern that selects nothing either way may name blocks an earlier
   * surgery creates, and is not judged.
   *
   * @param root the model's root block, before training
   * @return the problem, naming the pattern and a name it differs from only in case; null if none
   */
  public String caseMismatch(Block root) {
    // Every place of a block held by two parents: a pattern may name it at either (see select).
    List<Map.Entry<Block, String>> places = new ArrayList<>();
    Set<Block> onPath = Collections.newSetFromMap(new IdentityHashMap<>());
    onPath.add(root);
    places(root, "", places, onPath);
    for (int kind = 0; kind < 2; kind++) {
      List<Pattern> patterns = kind == 0 ? includes : excludes;
      List<String> texts = kind == 0 ? includeTexts : excludeTexts;
      for (int i = 0; i < patterns.size(); i++) {
        Pattern exact = patterns.get(i);
        String text = texts.get(i);
        Pattern anyCase = Pattern.compile(exact.pattern(), Pattern.CASE_INSENSITIVE);
        String near = null;
        boolean selects = false;
        for (Map.Entry<Block, String> e : places) {
          if (matches(exact, text, e.getKey(), e.getValue())) {
            selects = true;
            break;
          }
          if (near == null && matches(anyCase, text, e.getKey(), e.getValue())) {
            near =
                text.startsWith(TYPE_PREFIX)
                    ? TYPE_PREFIX + nameMatched(anyCase, e.getKey())
                    : e.getValue();
          }
        }
        if (!selects && near != null) {
          return (kind == 0 ? INCLUDE : EXCLUDE)
              + " pattern '"
              + text
              + "' selects no block of the model, but '"
              + near
              + "' differs from it only in case (block types and paths are case-sensitive)";
        }
      }
    }
    return null;
  }

  /** Adds every place below {@code block} (the root is never selected by a pattern), pre-order. */
  private static void places(
      Block block, String path, List<Map.Entry<Block, String>> out, Set<Block> onPath) {
    for (Pair<String, Block> child : BlockPaths.children(block)) {
      Block b = child.getValue();
      if (!onPath.add(b)) {
        continue;
      }
      String p = BlockPaths.join(path, child.getKey());
      out.add(Map.entry(b, p));
      places(b, p, out, onPath);
      onPath.remove(b);
    }
  }

  /** Which of a block's type names a type pattern matched: the one to suggest. */
  private static String nameMatched(Pattern pattern, Block block) {
    String type = BlockPaths.typeName(block);
    if (pattern.matcher(type).matches()) {
      return type;
    }
    String simple = block.getClass().getSimpleName();
    return pattern.matcher(simple).matches() ? simple : block.getClass().getName();
  }

  private static boolean matches(Pattern pattern, String text, Block block, String path) {
    if (text.startsWith(TYPE_PREFIX)) {
      return pattern.matcher(BlockPaths.typeName(block)).matches()
          || pattern.matcher(block.getClass().getSimpleName()).matches()
          || pattern.matcher(block.getClass().getName()).matches();
    }
    return pattern.matcher(path).matches();
  }

  /**
   * Shows the targets as in a config, for example {@code include: [**}{@code /01Conv2d], exclude:
   * [01Conv2d]}.
   *
   * @return the description
   */
  @Override
  public String toString() {
    Map<String, Object> map = new LinkedHashMap<>();
    putInto(map);
    StringBuilder sb = new StringBuilder();
    for (Map.Entry<String, Object> e : map.entrySet()) {
      sb.append(sb.length() == 0 ? "" : ", ").append(e.getKey()).append(": ").append(e.getValue());
    }
    return sb.length() == 0 ? "all blocks" : sb.toString();
  }

  /** {@inheritDoc} */
  @Override
  public boolean equals(Object o) {
    return o instanceof Targets t
        && t.includeTexts.equals(includeTexts)
        && t.excludeTexts.equals(excludeTexts);
  }

  /** {@inheritDoc} */
  @Override
  public int hashCode() {
    return includeTexts.hashCode() * 31 + excludeTexts.hashCode();
  }

  // ------------------------------------------------------------------ pattern syntax

  /**
   * The longest pattern taken: far beyond a block path of a deep model, and short enough that a
   * config that repeats one pattern through aliases cannot keep the check busy.
   */
  static final int MAX_PATTERN_LENGTH = 4096;

  private static Pattern compile(String text) {
    if (text == null || text.isEmpty()) {
      throw new InvalidPatternException(text, 0, "a pattern must not be empty");
    }
    int characters = text.codePointCount(0, text.length());
    if (characters > MAX_PATTERN_LENGTH) {
      // Shown cut: the message would otherwise carry the whole text.
      throw new InvalidPatternException(
          text.substring(0, text.offsetByCodePoints(0, 40)) + "...",
          0,
          "a pattern is at most "
              + MAX_PATTERN_LENGTH
              + " characters, this one "
              + characters
              + ": use '**' and '*' for the parts between");
    }
    for (int i = 0; i < text.length(); i += Character.charCount(text.codePointAt(i))) {
      int c = text.codePointAt(i); // by code point: a format character may lie beyond U+FFFF
      // isSpaceChar adds the no-break spaces (U+00A0, U+2007, U+202F) isWhitespace leaves out;
      // format characters (a zero-width space, a byte-order mark) are invisible in a message.
      if (Character.isWhitespace(c)
          || Character.isSpaceChar(c)
          || Character.isISOControl(c)
          || Character.getType(c) == Character.FORMAT) {
        throw new InvalidPatternException(
            text,
            i,
            String.format(
                Locale.ROOT,
                "block paths contain no whitespace, control or invisible characters (U+%04X)",
                c));
      }
      if ("[]{}\\".indexOf(c) >= 0) {
        throw new InvalidPatternException(
            text, i, "'" + (char) c + "' is not supported: use *, ** and ? (or several patterns)");
      }
    }
    if (text.startsWith(TYPE_PREFIX)) {
      String name = text.substring(TYPE_PREFIX.length());
      if (name.isEmpty()) {
        throw new InvalidPatternException(
            text, TYPE_PREFIX.length(), "'type:' needs a class or lambda name, e.g. type:Conv2d");
      }
      int slash = name.indexOf('/');
      if (slash >= 0) {
        throw new InvalidPatternException(
            text, TYPE_PREFIX.length() + slash, "a type pattern is one name, without '/'");
      }
      int stars = name.indexOf("**");
      if (stars >= 0) {
        throw new InvalidPatternException(
            text, TYPE_PREFIX.length() + stars, "'**' is for paths; use '*' in a type name");
      }
      return BlockPaths.globToRegex(name);
    }
    if (text.charAt(0) == '/') {
      throw new InvalidPatternException(
          text, 0, "paths are relative to the model's root and do not start with '/'");
    }
    if (text.endsWith("/")) {
      throw new InvalidPatternException(text, text.length() - 1, "a path does not end with '/'");
    }
    StringBuilder regex = new StringBuilder();
    String[] segments = text.split("/", -1);
    int offset = 0;
    for (int s = 0; s < segments.length; s++) {
      String seg = segments[s];
      if (seg.isEmpty()) {
        throw new InvalidPatternException(text, offset, "empty path segment ('//')");
      }
      boolean last = s == segments.length - 1;
      if (seg.equals("**")) {
        // zero or more whole segments; trailing: one or more (strictly below)
        regex.append(last ? (s == 0 ? ".*" : ".+") : "(?:[^/]+/)*");
      } else {
        int stars = seg.indexOf("**");
        if (stars >= 0) {
          throw new InvalidPatternException(
              text,
              offset + stars,
              "'**' must be a whole path segment (as in a/**/b); use '*' within a segment");
        }
        if (seg.startsWith(TYPE_PREFIX)) {
          // Read literally it would select nothing (DJL's child keys begin with their index),
          // silently.
          throw new InvalidPatternException(
              text,
              offset,
              "'type:' begins a whole pattern ('"
                  + TYPE_PREFIX
                  + seg.substring(TYPE_PREFIX.length())
                  + "' selects those blocks wherever they are), not a path segment; a path"
                  + " segment is a child key such as '01"
                  + seg.substring(TYPE_PREFIX.length())
                  + "'");
        }
        regex.append(BlockPaths.globToRegexText(seg));
        if (!last) {
          regex.append('/');
        }
      }
      offset += seg.length() + 1;
    }
    return BlockPaths.compileWhole(regex.toString());
  }

  /** The blocks that targets select in one model. */
  public static final class Selection {

    private final Set<Block> selected;
    private final List<String> unmatchedIncludes;

    Selection(Set<Block> selected, List<String> unmatchedIncludes) {
      this.selected = selected;
      this.unmatchedIncludes = List.copyOf(unmatchedIncludes);
    }

    /**
     * Tells whether a block is a target.
     *
     * @param block a block of the model
     * @return true when it is selected
     */
    public boolean contains(Block block) {
      return selected.contains(block);
    }

    /**
     * Returns the number of target blocks.
     *
     * @return the count
     */
    public int size() {
      return selected.size();
    }

    /**
     * Returns the include patterns that matched no block of the model.
     *
     * @return the patterns, in declaration order
     */
    public List<String> unmatchedIncludes() {
      return unmatchedIncludes;
    }

    /**
     * Narrows a matcher to the targets.
     *
     * @param rule the algorithm's own rule
     * @return a matcher that selects what the rule selects among the targets
     */
    public BlockMatcher narrow(BlockMatcher rule) {
      return (block, path) -> selected.contains(block) && rule.matches(block, path);
    }
  }

  /** A pattern that is not a valid block pattern. */
  public static final class InvalidPatternException extends IllegalArgumentException {

    private static final long serialVersionUID = 1L;

    /** The pattern text. */
    private final String pattern;

    /** The 0-based index of the offending character. */
    private final int index;

    InvalidPatternException(String pattern, int index, String reason) {
      // Characters counted as a reader counts them: an emoji is one.
      super(
          "invalid block pattern '"
              + pattern
              + "' at character "
              + (pattern == null ? index + 1 : pattern.codePointCount(0, index) + 1)
              + ": "
              + reason);
      this.pattern = pattern;
      this.index = index;
    }

    /**
     * Returns the pattern text.
     *
     * @return the pattern
     */
    public String getPattern() {
      return pattern;
    }

    /**
     * Returns the 0-based index of the offending character in the pattern.
     *
     * @return the index
     */
    public int getIndex() {
      return index;
    }
  }
}
