package dev.surgery.trainer.config;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import org.snakeyaml.engine.v2.api.LoadSettings;
import org.snakeyaml.engine.v2.common.ScalarStyle;
import org.snakeyaml.engine.v2.composer.Composer;
import org.snakeyaml.engine.v2.events.Event;
import org.snakeyaml.engine.v2.nodes.MappingNode;
import org.snakeyaml.engine.v2.nodes.Node;
import org.snakeyaml.engine.v2.nodes.ScalarNode;
import org.snakeyaml.engine.v2.nodes.Tag;
import org.snakeyaml.engine.v2.parser.ParserImpl;
import org.snakeyaml.engine.v2.scanner.StreamReader;

/**
 * SnakeYAML Engine's composer without YAML 1.1's merge key. The docs promise YAML 1.2, which has no
 * {@code <<}; SnakeYAML Engine merges a {@code <<} key (or one tagged {@code !!merge}) while it
 * composes, so a merge passed silently (where the published schema refuses the key) and a bad merge
 * value was reported at the next key in the composer's words. Here such a key stays a plain key of
 * its mapping, remembered in {@link #mergeKeys()}, which the parser refuses at its own place.
 */
final class MergeFreeComposer extends Composer {

  private final Set<Node> mergeKeys = Collections.newSetFromMap(new IdentityHashMap<>());

  private final LoadSettings settings;

  MergeFreeComposer(LoadSettings settings, String text) {
    super(settings, new ParserImpl(settings, new StreamReader(settings, text)));
    this.settings = settings;
  }

  @Override
  protected Node composeValueNode(MappingNode node) {
    Event alias = parser.checkEvent(Event.ID.Alias) ? parser.peekEvent() : null;
    return atAlias(super.composeValueNode(node), alias);
  }

  /**
   * A scalar that an alias repeats, as a node of its own placed at the alias: SnakeYAML gives the
   * anchor's node itself, so a problem with the value where the alias uses it (a duplicate key, a
   * value out of range) was reported at the anchor, twice at the same place.
   */
  private Node atAlias(Node node, Event alias) {
    if (alias == null || !(node instanceof ScalarNode s)) {
      return node;
    }
    Tag implicit =
        settings
            .getSchema()
            .getScalarResolver()
            .resolve(s.getValue(), s.getScalarStyle() == ScalarStyle.PLAIN);
    return new ScalarNode(
        s.getTag(),
        implicit.equals(s.getTag()),
        s.getValue(),
        s.getScalarStyle(),
        alias.getStartMark(),
        alias.getEndMark());
  }

  @Override
  protected Node composeKeyNode(MappingNode node) {
    Event alias = parser.checkEvent(Event.ID.Alias) ? parser.peekEvent() : null;
    Node key = atAlias(super.composeKeyNode(node), alias);
    if (Tag.MERGE.equals(key.getTag())) {
      key.setTag(Tag.STR);
      mergeKeys.add(key);
    }
    return key;
  }

  /**
   * The keys that were merge keys: a plain {@code <<}, or any key tagged {@code !!merge} (a quoted
   * {@code "<<"} is an ordinary key, even in YAML 1.1).
   *
   * @return the keys, by identity
   */
  Set<Node> mergeKeys() {
    return mergeKeys;
  }
}
