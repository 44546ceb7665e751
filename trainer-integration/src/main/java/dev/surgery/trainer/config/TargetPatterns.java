package dev.surgery.trainer.config;

import static dev.surgery.trainer.config.ConfigParser.EXCLUDE;
import static dev.surgery.trainer.config.ConfigParser.INCLUDE;

import dev.surgery.core.Targets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.snakeyaml.engine.v2.common.ScalarStyle;
import org.snakeyaml.engine.v2.exceptions.Mark;
import org.snakeyaml.engine.v2.nodes.Node;
import org.snakeyaml.engine.v2.nodes.ScalarNode;
import org.snakeyaml.engine.v2.nodes.SequenceNode;

/**
 * Reads an entry's {@code include} and {@code exclude} block patterns: each pattern checked by
 * {@link Targets#validate}, a bad one reported at its offending character where the source spells
 * the value as it reads, and the lists checked against each other (an empty include, a pattern both
 * included and excluded).
 */
final class TargetPatterns {

  private final ScalarReader scalars;
  private final ConfigProblems problems;

  /**
   * Creates a reader of block patterns.
   *
   * @param scalars types the patterns
   * @param problems where problems go
   */
  TargetPatterns(ScalarReader scalars, ConfigProblems problems) {
    this.scalars = scalars;
    this.problems = problems;
  }

  /** An entry's {@code include} and {@code exclude} patterns as read. */
  record Patterns(List<String> include, List<String> exclude) {}

  /**
   * Reads an entry's patterns: those of {@code include} and {@code exclude} (problems named by
   * {@code patternsOf}), then the two lists against each other (named by {@code name}).
   */
  Patterns read(Map<String, Node> keys, String patternsOf, String name) {
    List<String> include = patterns(keys.get(INCLUDE), patternsOf);
    List<String> exclude = patterns(keys.get(EXCLUDE), patternsOf);
    if (keys.get(INCLUDE) instanceof SequenceNode list && list.getValue().isEmpty()) {
      // Without patterns an entry targets every block: an empty list would say the opposite.
      problems.addAt(
          keys.get(INCLUDE),
          name
              + ": an empty include list selects no block; leave 'include' out to select every"
              + " block");
    }
    for (String pattern : exclude) {
      if (include.contains(pattern)) {
        problems.addAt(
            keys.get(EXCLUDE),
            name + ": '" + pattern + "' is both included and excluded, so it selects no block");
      }
    }
    return new Patterns(include, exclude);
  }

  /**
   * Reads an {@code include} or {@code exclude} value: a list of block patterns (or one pattern),
   * each checked; a bad pattern is reported at its offending character.
   */
  private List<String> patterns(Node node, String name) {
    if (node == null) {
      return List.of();
    }
    List<Node> items;
    if (node instanceof SequenceNode list) {
      items = list.getValue();
    } else if (node instanceof ScalarNode) {
      items = List.of(node);
    } else {
      problems.addAt(
          node, name + ": include and exclude take a list of block patterns, found a mapping");
      return List.of();
    }
    List<String> out = new ArrayList<>();
    for (Node item : items) {
      Object v = scalars.scalar(item);
      if (v == ScalarReader.INVALID) {
        continue;
      }
      if (!(v instanceof String pattern)) {
        problems.addAt(
            item,
            name
                + ": a block pattern must be a string such as '05ParallelBlock/**/01Conv2d' or"
                + " 'type:Conv2d', found "
                + scalars.describe(item));
        continue;
      }
      try {
        Targets.validate(pattern);
        out.add(pattern);
      } catch (Targets.InvalidPatternException e) {
        Mark m = item.getStartMark().orElse(null);
        int offset = offsetInSource((ScalarNode) item, pattern, e.getIndex());
        int column = m == null ? 1 : m.getColumn() + 1 + Math.max(offset, 0);
        String where =
            offset < 0
                ? " (character "
                    + (pattern.codePointCount(0, e.getIndex()) + 1)
                    + " of the pattern)"
                : "";
        problems.add(m == null ? 1 : m.getLine() + 1, column, name + ": " + e.getMessage() + where);
      }
    }
    return out;
  }

  /**
   * Where character {@code index} of a scalar's value is in the source, in columns (code points)
   * from the scalar's start, or -1 when the source spells the value differently (escapes, a doubled
   * quote, a block or multi-line scalar): then only the scalar's start can be named exactly.
   */
  private static int offsetInSource(ScalarNode scalar, String value, int index) {
    ScalarStyle style = scalar.getScalarStyle();
    int quotes = style == ScalarStyle.PLAIN ? 0 : 1;
    boolean inline =
        style == ScalarStyle.PLAIN
            || style == ScalarStyle.SINGLE_QUOTED
            || style == ScalarStyle.DOUBLE_QUOTED;
    Mark start = scalar.getStartMark().orElse(null);
    Mark end = scalar.getEndMark().orElse(null);
    if (!inline || start == null || end == null || start.getLine() != end.getLine()) {
      return -1;
    }
    if (isAlias(start)) {
      return -1; // the value is the anchor's, spelled elsewhere: the alias is named, with the index
    }
    int length = value.codePointCount(0, value.length());
    if (end.getIndex() - start.getIndex() != length + 2 * quotes) {
      return -1; // an escape or a doubled quote: source and value differ in length
    }
    return quotes + value.codePointCount(0, Math.min(index, value.length()));
  }

  /**
   * Whether the text at a mark is an alias ({@code *name}), which repeats a value written
   * elsewhere.
   */
  private static boolean isAlias(Mark mark) {
    int[] buffer = mark.getBuffer();
    int pointer = mark.getPointer();
    return buffer != null && pointer >= 0 && pointer < buffer.length && buffer[pointer] == '*';
  }
}
