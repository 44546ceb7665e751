package dev.surgery.trainer.config;

import static dev.surgery.trainer.config.ConfigYaml.PLAIN_YAML;
import static dev.surgery.trainer.config.ConfigYaml.tagName;

import dev.surgery.core.algorithms.HyperParameter;
import java.math.BigInteger;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import org.snakeyaml.engine.v2.api.LoadSettings;
import org.snakeyaml.engine.v2.common.ScalarStyle;
import org.snakeyaml.engine.v2.constructor.StandardConstructor;
import org.snakeyaml.engine.v2.exceptions.YamlEngineException;
import org.snakeyaml.engine.v2.nodes.MappingNode;
import org.snakeyaml.engine.v2.nodes.Node;
import org.snakeyaml.engine.v2.nodes.ScalarNode;
import org.snakeyaml.engine.v2.nodes.SequenceNode;
import org.snakeyaml.engine.v2.nodes.Tag;
import org.snakeyaml.engine.v2.resolver.CoreScalarResolver;

/**
 * Types the scalars of a config file as YAML 1.2's core schema does ({@code yes} is a string,
 * {@code 0x10} an integer), refuses text an explicit tag does not fit, reads whole numbers in a
 * range, and describes any node as a message shows it. A value it refuses is reported where it
 * stands and read as {@link #INVALID}, so that the caller reports nothing more about it.
 */
final class ScalarReader {

  /** Marker for a value whose problem has been reported already. */
  static final Object INVALID = new Object();

  private final LoadSettings settings;
  private final ConfigProblems problems;

  /**
   * Creates a reader.
   *
   * @param settings the settings the document was read with
   * @param problems where problems go
   */
  ScalarReader(LoadSettings settings, ConfigProblems problems) {
    this.settings = settings;
    this.problems = problems;
  }

  /** Reads a scalar node as the core schema types it; returns null for collections. */
  Object scalar(Node node) {
    if (!(node instanceof ScalarNode s)) {
      return null;
    }
    Tag tag = s.getTag();
    String value = s.getValue();
    // YAML 1.2's core schema reads '+.inf' as infinity; SnakeYAML Engine 2.10 fails on it with a
    // NumberFormatException. Read here, the value checks refuse it as they refuse '.inf'.
    if (Tag.FLOAT.equals(tag) && PLUS_INFINITY.matcher(value).matches()) {
      return Double.POSITIVE_INFINITY;
    }
    // An explicit tag on text not of its type ('!!bool yes', '!!int abc'): the constructor reads
    // such text as null, or fails with a Java exception's text.
    Pattern form = CORE_FORMS.get(tag);
    if (Tag.BINARY.equals(tag)) {
      // Not a core-schema type, yet SnakeYAML reads it (as bytes, which no key takes).
      problems.addAt(node, cannotRead(s));
      return INVALID;
    }
    if (form != null && !form.matcher(value).matches()) {
      problems.addAt(node, cannotRead(s));
      return INVALID;
    }
    try {
      return new StandardConstructor(settings).constructSingleDocument(Optional.of(node));
    } catch (YamlEngineException e) {
      problems.addAt(node, cannotRead(s));
      return INVALID;
    }
  }

  /** Reads a whole number in [min, max]. */
  Long whole(Node node, String key, long min, long max) {
    Object v = scalar(node);
    if (v == INVALID) {
      return null;
    }
    String expected = key + " must be a whole number in [" + min + ", " + max + "]";
    if (v instanceof Integer || v instanceof Long || v instanceof BigInteger) {
      BigInteger b = new BigInteger(v.toString());
      if (b.compareTo(BigInteger.valueOf(min)) < 0 || b.compareTo(BigInteger.valueOf(max)) > 0) {
        problems.addAt(node, expected + ", got " + b);
        return null;
      }
      return b.longValue();
    }
    problems.addAt(node, expected + ", got " + describe(node));
    return null;
  }

  /** Reads a non-negative integer that must be at least {@code min} and at most MAX_EPOCH. */
  Integer integer(Node node, String key, int min) {
    Object v = scalar(node);
    if (v == INVALID) {
      return null;
    }
    String expected =
        key
            + " must be a whole number in ["
            + min
            + ", "
            + String.format(Locale.ROOT, "%,d", SurgeryConfig.MAX_EPOCH)
            + "]";
    if (v instanceof Integer || v instanceof Long || v instanceof BigInteger) {
      BigInteger b = new BigInteger(v.toString());
      if (b.compareTo(BigInteger.valueOf(min)) < 0) {
        problems.addAt(
            node,
            key
                + " must not be "
                + (b.signum() < 0 ? "negative" : "less than " + min)
                + ", got "
                + b
                + " ("
                + expected
                + ")");
        return null;
      }
      if (b.compareTo(BigInteger.valueOf(SurgeryConfig.MAX_EPOCH)) > 0) {
        problems.addAt(node, expected + ", got " + b + " (too large)");
        return null;
      }
      return b.intValue();
    }
    problems.addAt(node, expected + ", got " + describe(node));
    return null;
  }

  /** A hyperparameter value: scalars as parsed; lists and mappings as a description to refuse. */
  Object valueForHyperParameter(Node node) {
    if (node instanceof ScalarNode) {
      return scalar(node);
    }
    return new Described(describe(node));
  }

  /** A non-scalar value shown in a message through {@link HyperParameter#problemWith}. */
  private record Described(String text) {
    @Override
    public String toString() {
      return text;
    }
  }

  private static final Pattern PLUS_INFINITY = Pattern.compile("\\+\\.(?:inf|Inf|INF)");

  /** The text each core type takes (an empty value is null too). */
  private static final Map<Tag, Pattern> CORE_FORMS =
      Map.of(
          Tag.INT, CoreScalarResolver.INT,
          Tag.FLOAT, CoreScalarResolver.FLOAT,
          Tag.BOOL, CoreScalarResolver.BOOL,
          Tag.NULL, Pattern.compile(CoreScalarResolver.NULL.pattern() + "|^$"));

  private static String cannotRead(ScalarNode s) {
    Tag tag = s.getTag();
    String type =
        Tag.INT.equals(tag)
            ? "a whole number"
            : Tag.FLOAT.equals(tag)
                ? "a number"
                : Tag.BOOL.equals(tag) ? "true or false" : Tag.NULL.equals(tag) ? "nothing" : "";
    if (type.isEmpty()) { // a tag of another schema: nothing reads it
      return "the tag " + tagName(tag) + " is not allowed: " + PLAIN_YAML;
    }
    return "cannot read "
        + ConfigText.shown(s.getValue())
        + " as "
        + type
        + " ("
        + tagName(tag)
        + ")";
  }

  /** Whether a scalar's tag was written in the file rather than read from its text. */
  private boolean explicitlyTagged(ScalarNode s) {
    Tag implicit =
        settings
            .getSchema()
            .getScalarResolver()
            .resolve(s.getValue(), s.getScalarStyle() == ScalarStyle.PLAIN);
    return !implicit.equals(s.getTag());
  }

  /**
   * A note for a quoted scalar that YAML would read as a number or a boolean without its quotes
   * ({@code '16'}, {@code "true"}): "got '16'" alone does not say why 16 was refused. Empty for
   * anything else, a plain {@code 1_000} included (YAML reads that as a string, quotes or not).
   */
  String quotedNote(Node node) {
    if (!(node instanceof ScalarNode s)
        || s.getScalarStyle() == ScalarStyle.PLAIN
        || !s.getTag().equals(Tag.STR)) {
      return "";
    }
    Tag unquoted = settings.getSchema().getScalarResolver().resolve(s.getValue(), true);
    return unquoted.equals(Tag.INT) || unquoted.equals(Tag.FLOAT) || unquoted.equals(Tag.BOOL)
        ? "; "
            + ConfigText.shown(s.getValue())
            + " is quoted, so YAML reads a string: write it without"
            + " the quotes"
        : "";
  }

  String describe(Node node) {
    if (node instanceof SequenceNode) {
      return "a list";
    }
    if (node instanceof MappingNode) {
      return "a mapping";
    }
    if (node instanceof ScalarNode s) {
      Object v;
      try {
        v = new StandardConstructor(settings).constructSingleDocument(Optional.of(node));
      } catch (YamlEngineException e) {
        return ConfigText.shown(s.getValue());
      }
      if (v == null) {
        return "nothing (an empty value)";
      }
      if (v instanceof String str) {
        return ConfigText.shown(str) + quotedNote(s);
      }
      if (v instanceof Boolean) {
        return "the boolean " + v;
      }
      if (v instanceof byte[]) {
        return tagName(s.getTag()) + " " + ConfigText.shown(s.getValue());
      }
      // '!!float 1' is the float 1.0: the text alone would contradict "must be a whole number".
      return explicitlyTagged(s)
          ? v + " (" + tagName(s.getTag()) + " " + s.getValue() + ")"
          : s.getValue();
    }
    return "a " + node.getNodeType();
  }
}
