package dev.surgery.trainer.config;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import org.snakeyaml.engine.v2.api.LoadSettings;
import org.snakeyaml.engine.v2.composer.Composer;
import org.snakeyaml.engine.v2.nodes.MappingNode;
import org.snakeyaml.engine.v2.nodes.Node;
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

  MergeFreeComposer(LoadSettings settings, String text) {
    super(settings, new ParserImpl(settings, new StreamReader(settings, text)));
  }

  @Override
  protected Node composeKeyNode(MappingNode node) {
    Node key = super.composeKeyNode(node);
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
