package dev.surgery.trainer.config;

import static dev.surgery.trainer.config.ConfigProblems.clean;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.snakeyaml.engine.v2.api.LoadSettings;
import org.snakeyaml.engine.v2.api.lowlevel.Parse;
import org.snakeyaml.engine.v2.common.Anchor;
import org.snakeyaml.engine.v2.common.SpecVersion;
import org.snakeyaml.engine.v2.events.AliasEvent;
import org.snakeyaml.engine.v2.events.CollectionStartEvent;
import org.snakeyaml.engine.v2.events.DocumentStartEvent;
import org.snakeyaml.engine.v2.events.Event;
import org.snakeyaml.engine.v2.events.NodeEvent;
import org.snakeyaml.engine.v2.exceptions.Mark;
import org.snakeyaml.engine.v2.exceptions.MarkedYamlEngineException;
import org.snakeyaml.engine.v2.exceptions.ReaderException;
import org.snakeyaml.engine.v2.exceptions.YamlEngineException;
import org.snakeyaml.engine.v2.exceptions.YamlVersionException;
import org.snakeyaml.engine.v2.nodes.MappingNode;
import org.snakeyaml.engine.v2.nodes.Node;
import org.snakeyaml.engine.v2.nodes.NodeTuple;
import org.snakeyaml.engine.v2.nodes.ScalarNode;
import org.snakeyaml.engine.v2.nodes.SequenceNode;
import org.snakeyaml.engine.v2.nodes.Tag;
import org.snakeyaml.engine.v2.schema.CoreSchema;

/**
 * Reads a config file's text into one YAML node tree, as YAML 1.2's core schema reads it, and
 * refuses what is not plain YAML of that kind: binary data, an empty file, a syntax error, a second
 * document, another YAML version, too many aliases of lists and mappings, tags on lists and
 * mappings, and YAML 1.1's merge keys. Each refusal is a {@link ConfigProblem} at its line and
 * column; the text's own problems stop the read at once, a tag's let the binding go on.
 *
 * <p>SnakeYAML Engine composes the document into nodes (which keep their marks) with duplicate keys
 * allowed, so that the binding finds duplicates with both positions rather than as the parser's
 * first error. An alias is a node of its own at the alias, its inner nodes the anchor's ({@link
 * MergeFreeComposer}).
 */
final class ConfigYaml {

  private final LoadSettings settings;
  private final ConfigProblems problems;

  /** The keys the composer found to be merge keys (see {@link MergeFreeComposer}). */
  private Set<Node> mergeKeys = Set.of();

  /** The composer, which knows the anchor's node of a list or mapping placed at an alias. */
  private MergeFreeComposer composer;

  /**
   * Creates a reader for one file.
   *
   * @param file the file name for messages
   * @param problems where problems go
   */
  ConfigYaml(String file, ConfigProblems problems) {
    this.problems = problems;
    this.settings =
        LoadSettings.builder()
            .setLabel(file)
            .setAllowDuplicateKeys(true)
            .setSchema(new CoreSchema())
            .setMaxAliasesForCollections(50)
            .setCodePointLimit(SurgeryConfig.MAX_FILE_BYTES)
            // SnakeYAML Engine 2.10 reads past its buffer where a read of 1,024 characters ends
            // on the first half of a surrogate pair (an emoji): one buffer for the whole file.
            .setBufferSize(SurgeryConfig.MAX_FILE_BYTES + 1)
            // The file is read by YAML 1.2's rules: one that declares 1.1 means other values by
            // the same text ('010' is 8 there, 'yes' true), so it is refused, not read otherwise.
            .setVersionFunction(
                version -> {
                  if (version.getMajor() != 1 || version.getMinor() != 2) {
                    throw new YamlVersionException(version);
                  }
                  return version;
                })
            .build();
  }

  /** The settings the document was read with: the binding reads scalars with the same. */
  LoadSettings settings() {
    return settings;
  }

  /**
   * Reads the text's one document.
   *
   * @param text the file's text, a byte-order mark included
   * @return the document's root node
   * @throws SurgeryConfigException for a text that is not one YAML 1.2 document
   */
  Node readRoot(String text) {
    if (!text.isEmpty() && text.charAt(0) == '\uFEFF') {
      text = text.substring(1);
    }
    checkText(text);
    Node root = compose(text);
    checkCollectionTags(root, Collections.newSetFromMap(new IdentityHashMap<>()));
    return root;
  }

  /** Refuses control characters, which mean binary data, before YAML reports something obscure. */
  private void checkText(String text) {
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      boolean control = c < 0x20 && c != '\t' && c != '\n' && c != '\r';
      if (control || c == 0x7F || c == '\uFFFE' || c == '\uFFFF') {
        int[] at = lineAndColumn(text, i);
        problems.add(
            at[0],
            at[1],
            String.format(
                Locale.ROOT,
                "binary data: control character U+%04X; a surgery config is a UTF-8 YAML text"
                    + " file",
                (int) c));
        throw problems.exception();
      }
    }
    if (text.isBlank()) {
      problems.add(1, 1, "the file is empty; expected a mapping with an 'algorithms' list");
      throw problems.exception();
    }
  }

  /**
   * Where the second document starts: its {@code ---} when it has one. The composed document's own
   * mark is its first node, after any comments, or the end of the file for a document of comments.
   */
  private int[] secondDocumentStart(String text) {
    int starts = 0;
    for (Event event : new Parse(settings).parseString(text)) {
      if (event instanceof DocumentStartEvent && ++starts == 2) {
        Mark m = event.getStartMark().orElse(null);
        return m == null ? null : new int[] {m.getLine() + 1, m.getColumn() + 1};
      }
    }
    return null;
  }

  private Node compose(String text) {
    List<Node> documents = new ArrayList<>();
    try {
      MergeFreeComposer it = new MergeFreeComposer(settings, text);
      composer = it;
      mergeKeys = it.mergeKeys();
      while (it.hasNext()) {
        Node doc = it.next();
        documents.add(doc);
        if (documents.size() == 2) {
          int[] at = secondDocumentStart(text);
          String message = "only one YAML document is allowed; found a second one here";
          if (at == null) {
            problems.addAt(doc, message);
          } else {
            problems.add(at[0], at[1], message);
          }
          throw problems.exception();
        }
      }
    } catch (MarkedYamlEngineException e) {
      Optional<Mark> mark = e.getProblemMark().or(e::getContextMark);
      int line = mark.map(m -> m.getLine() + 1).orElse(1);
      int column = mark.map(m -> m.getColumn() + 1).orElse(1);
      String problem = clean(e.getProblem());
      String context = clean(e.getContext());
      // An unquoted block pattern ('**/01Conv2d', '*Conv2d') begins with YAML's alias mark.
      boolean alias = context.contains("scanning an alias") || problem.contains("undefined alias");
      problems.add(
          line,
          column,
          "YAML syntax error: "
              + problem
              + (context.isEmpty() ? "" : " (" + context + ")")
              + (alias
                  ? "; a value that begins with '*' is read as an alias: quote block patterns, as"
                      + " in include: ['**/01Conv2d']"
                  : ""));
      throw problems.exception();
    } catch (ReaderException e) {
      int[] at = lineAndColumnOfCodePoint(text, e.getPosition());
      problems.add(at[0], at[1], "unreadable character: " + clean(e.getMessage()));
      throw problems.exception();
    } catch (YamlVersionException e) {
      SpecVersion version = e.getSpecVersion();
      // The directive starts a line; the same text in a comment before it is not it.
      Matcher directive = YAML_DIRECTIVE.matcher(text);
      int[] at = lineAndColumn(text, directive.find() ? directive.start() : 0);
      problems.add(
          at[0],
          at[1],
          "unsupported YAML version "
              + version.getRepresentation()
              + " in the %YAML directive: a surgery config is YAML 1.2"
              + (version.getMajor() == 1 && version.getMinor() < 2
                  ? ", whose rules read some values otherwise (in 1.1 '010' is 8 and 'yes' is true)"
                  : "")
              + "; write '%YAML 1.2' or leave the directive out");
      throw problems.exception();
    } catch (YamlEngineException e) {
      // The composer's unmarked errors (too many aliases of lists and mappings) point nowhere;
      // the events still tell where the alias over the limit is.
      String problem = String.valueOf(e.getMessage());
      int[] at = problem.contains("aliases") ? aliasOverLimit(text) : null;
      problems.add(
          at == null ? 1 : at[0],
          at == null ? 1 : at[1],
          "YAML error: "
              + clean(e.getMessage())
              + (at == null
                  ? ""
                  : " (alias "
                      + (settings.getMaxAliasesForCollections() + 1)
                      + " of a list or mapping)"));
      throw problems.exception();
    } catch (IndexOutOfBoundsException | IllegalStateException e) {
      // A fault inside the YAML library itself (not the file's): still a typed config problem.
      problems.add(1, 1, "YAML error: the YAML reader failed on this file (" + e + ")");
      throw problems.exception();
    } catch (StackOverflowError e) {
      // The parser recurses per nesting level; thousands of '[' are an attack or garbage, and
      // must be a config problem rather than an Error that kills the program (or the agent).
      problems.add(1, 1, "the YAML nests too deeply to be a surgery config");
      throw problems.exception();
    }
    if (documents.isEmpty()) {
      problems.add(
          1, 1, "the file has no YAML content; expected a mapping with an 'algorithms' list");
      throw problems.exception();
    }
    return documents.get(0);
  }

  /**
   * Finds the alias of a list or mapping that goes over {@link
   * LoadSettings#getMaxAliasesForCollections()}, counted as SnakeYAML Engine's composer counts
   * (aliases of collections, per document; an anchor names the latest node that defines it).
   *
   * @param text the YAML text
   * @return {line, column} of that alias, 1-based, or null when the events show none
   */
  private int[] aliasOverLimit(String text) {
    Map<Anchor, Boolean> collections = new HashMap<>();
    int count = 0;
    try {
      for (Event event : new Parse(settings).parseString(text)) {
        if (event instanceof DocumentStartEvent) {
          collections.clear();
          count = 0;
        } else if (event instanceof AliasEvent alias) {
          if (Boolean.TRUE.equals(collections.get(alias.getAlias()))
              && ++count > settings.getMaxAliasesForCollections()) {
            Mark m = event.getStartMark().orElse(null);
            return m == null ? null : new int[] {m.getLine() + 1, m.getColumn() + 1};
          }
        } else if (event instanceof NodeEvent node && node.getAnchor().isPresent()) {
          collections.put(node.getAnchor().get(), event instanceof CollectionStartEvent);
        }
      }
    } catch (YamlEngineException e) {
      return null; // a syntax error before any alias over the limit: no place to name
    }
    return null;
  }

  /**
   * Refuses a tag on a mapping or a list ({@code !!python/object}, {@code !!omap}, {@code !mine}):
   * the core schema knows only plain mappings and lists. A scalar's tag is checked when its value
   * is built, and an unknown one refused there.
   */
  private void checkCollectionTags(Node node, Set<Node> seen) {
    // A list or mapping an alias repeats is checked once, at the anchor, where its tag is written.
    node = composer.anchored(node);
    if (!seen.add(node)) {
      return; // an alias of a node already checked
    }
    if (node instanceof MappingNode mapping) {
      if (!mapping.getTag().equals(Tag.MAP)) {
        problems.addAt(
            node, "the tag " + tagName(node.getTag()) + " is not allowed: " + PLAIN_YAML);
      }
      for (NodeTuple t : mapping.getValue()) {
        if (isMergeKey(t.getKeyNode())) {
          problems.addAt(t.getKeyNode(), mergeKeyProblem(t.getKeyNode()));
        }
        checkCollectionTags(t.getKeyNode(), seen);
        checkCollectionTags(t.getValueNode(), seen);
      }
    } else if (node instanceof SequenceNode list) {
      if (!list.getTag().equals(Tag.SEQ)) {
        problems.addAt(
            node, "the tag " + tagName(node.getTag()) + " is not allowed: " + PLAIN_YAML);
      }
      for (Node item : list.getValue()) {
        checkCollectionTags(item, seen);
      }
    }
  }

  /**
   * Whether a key was a merge key, a plain {@code <<} or any key tagged {@code !!merge} (reported
   * once, with the tags); a quoted {@code "<<"} is a key like any other, even in YAML 1.1.
   */
  boolean isMergeKey(Node key) {
    return mergeKeys.contains(key);
  }

  private static String mergeKeyProblem(Node key) {
    String what;
    if (key instanceof ScalarNode k) {
      what = k.getValue().equals("<<") ? "'<<' is" : ConfigText.shown(k.getValue()) + " is tagged";
    } else {
      what = "a key tagged";
    }
    what = what.endsWith("tagged") ? what + " !!merge," : what;
    return what
        + " YAML 1.1's merge key, which a surgery config (YAML 1.2) does not have: write the keys"
        + " out in each entry (an alias can repeat a single value)";
  }

  static final String PLAIN_YAML =
      "a surgery config is plain YAML (the core schema's mappings, lists and scalars); remove it";

  /** {@code tag:yaml.org,2002:python/object} as written: {@code !!python/object}. */
  static String tagName(Tag tag) {
    String value = tag.getValue();
    return value.startsWith(Tag.PREFIX) ? "!!" + value.substring(Tag.PREFIX.length()) : value;
  }

  private static final Pattern YAML_DIRECTIVE = Pattern.compile("(?m)^%YAML\\b");

  /**
   * Converts a character offset to a 1-based line and column.
   *
   * @param text the text
   * @param offset the offset, at most {@code text.length()}
   * @return {line, column}
   */
  static int[] lineAndColumn(String text, int offset) {
    int line = 1;
    int column = 1;
    for (int i = 0; i < offset && i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == '\n' || (c == '\r' && (i + 1 >= text.length() || text.charAt(i + 1) != '\n'))) {
        line++;
        column = 1;
      } else if (c != '\r'
          && !(i == 0 && c == '\uFEFF') // a byte-order mark is no column
          && !(Character.isLowSurrogate(c)
              && i > 0
              && Character.isHighSurrogate(text.charAt(i - 1)))) {
        column++; // one per character: an emoji (two UTF-16 units) is one column
      }
    }
    return new int[] {line, column};
  }

  /**
   * {@link #lineAndColumn} of a position counted in characters (code points), as YAML's reader
   * counts.
   */
  static int[] lineAndColumnOfCodePoint(String text, int codePoints) {
    int count = text.codePointCount(0, text.length());
    return lineAndColumn(
        text, text.offsetByCodePoints(0, Math.max(0, Math.min(codePoints, count))));
  }
}
