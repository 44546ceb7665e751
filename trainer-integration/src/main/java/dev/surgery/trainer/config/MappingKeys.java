package dev.surgery.trainer.config;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.snakeyaml.engine.v2.nodes.MappingNode;
import org.snakeyaml.engine.v2.nodes.Node;
import org.snakeyaml.engine.v2.nodes.NodeTuple;
import org.snakeyaml.engine.v2.nodes.ScalarNode;

/**
 * Reads the keys of a config file's mappings, the top level's and each entry's alike: keys that are
 * no plain name, duplicates (naming the first) and keys that are not valid there are reported at
 * the key; the value of each valid key is handed on in file order.
 */
final class MappingKeys {

  private final ConfigYaml yaml;
  private final ScalarReader scalars;
  private final ConfigProblems problems;

  /**
   * Creates a reader of mapping keys.
   *
   * @param yaml the document's reader, which knows its merge keys
   * @param scalars types the keys
   * @param problems where problems go
   */
  MappingKeys(ConfigYaml yaml, ScalarReader scalars, ConfigProblems problems) {
    this.yaml = yaml;
    this.scalars = scalars;
    this.problems = problems;
  }

  /**
   * Reads the keys of a mapping: reports non-string keys, duplicates and (when {@code valid} is
   * given) unknown keys; returns the first value of each valid key, in file order.
   */
  Map<String, Node> read(MappingNode mapping, List<String> valid, String what, String suffix) {
    Map<String, Node> values = new LinkedHashMap<>();
    Map<String, Node> firstKey = new HashMap<>();
    for (NodeTuple t : mapping.getValue()) {
      Node keyNode = t.getKeyNode();
      Object k = keyNode instanceof ScalarNode ? scalars.scalar(keyNode) : null;
      if (!(k instanceof String key)) {
        if (k != ScalarReader.INVALID) {
          problems.addAt(keyNode, "keys must be plain names, found " + scalars.describe(keyNode));
        }
        continue;
      }
      Node first = firstKey.putIfAbsent(key, keyNode);
      if (first != null) {
        problems.addAt(
            keyNode,
            "duplicate key '"
                + key
                + "' (first defined at "
                + ConfigProblems.position(first)
                + ")");
        continue;
      }
      if (yaml.isMergeKey(keyNode)) {
        continue; // reported with the tags
      }
      if (valid != null && !valid.contains(key)) {
        problems.addAt(
            keyNode,
            "unknown "
                + what
                + " "
                + ConfigText.shown(key)
                + suffix
                + ConfigProblems.didYouMean(key, valid)
                + "; valid keys: "
                + String.join(", ", valid));
        continue;
      }
      values.put(key, t.getValueNode());
    }
    return values;
  }

  /** The value of a key in a mapping, the first where it repeats; null when it is absent. */
  static Node valueOf(MappingNode mapping, String key) {
    for (NodeTuple t : mapping.getValue()) {
      if (t.getKeyNode() instanceof ScalarNode s && s.getValue().equals(key)) {
        return t.getValueNode();
      }
    }
    return null;
  }
}
