package dev.surgery.trainer.config;

import java.util.ArrayDeque;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.snakeyaml.engine.v2.api.LoadSettings;
import org.snakeyaml.engine.v2.comments.CommentLine;
import org.snakeyaml.engine.v2.common.Anchor;
import org.snakeyaml.engine.v2.common.ScalarStyle;
import org.snakeyaml.engine.v2.composer.Composer;
import org.snakeyaml.engine.v2.events.Event;
import org.snakeyaml.engine.v2.events.ScalarEvent;
import org.snakeyaml.engine.v2.nodes.MappingNode;
import org.snakeyaml.engine.v2.nodes.Node;
import org.snakeyaml.engine.v2.nodes.ScalarNode;
import org.snakeyaml.engine.v2.nodes.SequenceNode;
import org.snakeyaml.engine.v2.nodes.Tag;
import org.snakeyaml.engine.v2.parser.Parser;
import org.snakeyaml.engine.v2.parser.ParserImpl;
import org.snakeyaml.engine.v2.scanner.StreamReader;

/**
 * SnakeYAML Engine's composer without YAML 1.1's merge key, and with each alias placed where it is
 * written.
 *
 * <p>The docs promise YAML 1.2, which has no {@code <<}; SnakeYAML Engine merges a {@code <<} key
 * (or one tagged {@code !!merge}) while it composes, so a merge passed silently (where the
 * published schema refuses the key) and a bad merge value was reported at the next key in the
 * composer's words. Here such a key stays a plain key of its mapping, remembered in {@link
 * #mergeKeys()}, which the parser refuses at its own place.
 *
 * <p>SnakeYAML Engine gives an alias the anchor's node itself, marks included, so a problem with
 * the node where the alias uses it was reported at the anchor: a repeated entry ({@code - *e}) at
 * the entry it repeats. Here an alias (a mapping's key or value, or a list's item) is a node of its
 * own at the alias: a scalar with the anchor's value, a list or mapping with the anchor's items.
 * The nodes inside a list or mapping stay the anchor's, at the text that says them, where a problem
 * with them is fixed.
 */
final class MergeFreeComposer extends Composer {

  private final Set<Node> mergeKeys = Collections.newSetFromMap(new IdentityHashMap<>());

  /** Plain {@code <<} scalars, read as strings (see {@link #composeScalarNode}). */
  private final Set<Node> plainMerges = Collections.newSetFromMap(new IdentityHashMap<>());

  /** Each list or mapping placed at an alias, and the anchor's node it repeats. */
  private final Map<Node, Node> aliasedCollections = new IdentityHashMap<>();

  private final LoadSettings settings;
  private final ListItemAliases events;

  MergeFreeComposer(LoadSettings settings, String text) {
    this(settings, new ListItemAliases(new ParserImpl(settings, new StreamReader(settings, text))));
  }

  private MergeFreeComposer(LoadSettings settings, ListItemAliases events) {
    super(settings, events);
    this.settings = settings;
    this.events = events;
  }

  @Override
  protected Node composeValueNode(MappingNode node) {
    Event alias = parser.checkEvent(Event.ID.Alias) ? parser.peekEvent() : null;
    return atAlias(super.composeValueNode(node), alias);
  }

  /**
   * A plain {@code <<} resolves to YAML 1.1's merge tag; in YAML 1.2 it is a string. As a value it
   * is read as one (refused or taken as the key expects, as its alias is); as a key, {@link
   * #composeKeyNode} still refuses it as a merge key.
   */
  @Override
  protected Node composeScalarNode(Optional<Anchor> anchor, List<CommentLine> comments) {
    Event event = parser.peekEvent();
    boolean untagged = event instanceof ScalarEvent scalar && scalar.getTag().isEmpty();
    Node node = super.composeScalarNode(anchor, comments);
    if (untagged && Tag.MERGE.equals(node.getTag())) {
      node.setTag(Tag.STR);
      plainMerges.add(node);
    }
    return node;
  }

  @Override
  protected Node composeKeyNode(MappingNode node) {
    Event alias = parser.checkEvent(Event.ID.Alias) ? parser.peekEvent() : null;
    Node composed = super.composeKeyNode(node);
    boolean plainMerge = plainMerges.contains(composed);
    Node key = atAlias(composed, alias);
    if (Tag.MERGE.equals(key.getTag()) || plainMerge) {
      key.setTag(Tag.STR);
      mergeKeys.add(key);
    }
    return key;
  }

  @Override
  protected SequenceNode composeSequenceNode(Optional<Anchor> anchor) {
    SequenceNode list = super.composeSequenceNode(anchor);
    // The composer resolves a list's items in a loop of its own, with no hook per item: the events
    // it read tell which items were aliases, and where.
    List<Node> items = list.getValue();
    events.closedListAliases().forEach((i, alias) -> items.set(i, atAlias(items.get(i), alias)));
    return list;
  }

  /**
   * The node an alias repeats, as a node of its own placed at the alias (the node itself where
   * {@code alias} is null).
   */
  private Node atAlias(Node node, Event alias) {
    if (alias == null) {
      return node;
    }
    if (node instanceof ScalarNode s) {
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
    Node copy;
    if (node instanceof MappingNode m) {
      copy =
          new MappingNode(
              m.getTag(),
              Tag.MAP.equals(m.getTag()),
              m.getValue(),
              m.getFlowStyle(),
              alias.getStartMark(),
              alias.getEndMark());
    } else if (node instanceof SequenceNode l) {
      copy =
          new SequenceNode(
              l.getTag(),
              Tag.SEQ.equals(l.getTag()),
              l.getValue(),
              l.getFlowStyle(),
              alias.getStartMark(),
              alias.getEndMark());
    } else {
      return node;
    }
    // Shares the items (a copy costs no more than the alias, however large the anchor's node).
    copy.setRecursive(node.isRecursive());
    aliasedCollections.put(copy, aliasedCollections.getOrDefault(node, node));
    return copy;
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

  /**
   * The node a list or mapping placed at an alias repeats, as the anchor wrote it: a check of what
   * the anchor says (its tag) looks there, once.
   *
   * @param node a node of the document
   * @return the anchor's node for a list or mapping placed at an alias, else {@code node}
   */
  Node anchored(Node node) {
    return aliasedCollections.getOrDefault(node, node);
  }

  /**
   * The parser's events as the composer reads them, noting which items of each list are aliases.
   * After the composer has read a list's end, {@link #closedListAliases} tells that list's.
   */
  private static final class ListItemAliases implements Parser {

    private final Parser parser;

    /** The lists and mappings open around the next event, innermost first. */
    private final Deque<Open> open = new ArrayDeque<>();

    private Open closed;

    ListItemAliases(Parser parser) {
      this.parser = parser;
    }

    /** A list or mapping being read: a list counts its items and keeps its aliases. */
    private static final class Open {
      final boolean list;
      int items;
      final Map<Integer, Event> aliases = new LinkedHashMap<>();

      Open(boolean list) {
        this.list = list;
      }
    }

    @Override
    public boolean checkEvent(Event.ID id) {
      return parser.checkEvent(id);
    }

    @Override
    public Event peekEvent() {
      return parser.peekEvent();
    }

    @Override
    public boolean hasNext() {
      return parser.hasNext();
    }

    @Override
    public Event next() {
      Event event = parser.next();
      Event.ID id = event.getEventId();
      boolean node =
          id == Event.ID.Alias
              || id == Event.ID.Scalar
              || id == Event.ID.SequenceStart
              || id == Event.ID.MappingStart;
      Open around = open.peek();
      if (node && around != null && around.list) {
        if (id == Event.ID.Alias) {
          around.aliases.put(around.items, event);
        }
        around.items++;
      }
      if (id == Event.ID.SequenceStart || id == Event.ID.MappingStart) {
        open.push(new Open(id == Event.ID.SequenceStart));
      } else if (id == Event.ID.SequenceEnd || id == Event.ID.MappingEnd) {
        closed = open.pop();
      }
      return event;
    }

    /** The aliases among the items of the list whose end was read last, by index. */
    Map<Integer, Event> closedListAliases() {
      return closed == null || !closed.list ? Map.of() : closed.aliases;
    }
  }
}
