package dev.surgery.trainer.config;

import dev.surgery.core.Targets;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmPluginException;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.events.Time;
import java.math.BigInteger;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.snakeyaml.engine.v2.api.LoadSettings;
import org.snakeyaml.engine.v2.api.lowlevel.Parse;
import org.snakeyaml.engine.v2.common.Anchor;
import org.snakeyaml.engine.v2.common.ScalarStyle;
import org.snakeyaml.engine.v2.common.SpecVersion;
import org.snakeyaml.engine.v2.constructor.StandardConstructor;
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
import org.snakeyaml.engine.v2.resolver.CoreScalarResolver;
import org.snakeyaml.engine.v2.schema.CoreSchema;

/**
 * Binds a YAML node tree to a {@link SurgeryConfig}, collecting every problem with its position.
 *
 * <p>SnakeYAML Engine composes the document into nodes (which keep their marks) with duplicate keys
 * allowed, so that duplicates are found here with both positions rather than as the parser's first
 * error. Values are read with the YAML 1.2 core schema: {@code yes} is a string, {@code 0x10} an
 * integer.
 */
final class ConfigParser {

  static final String ALGORITHMS = "algorithms";
  static final String ON_ERROR = "on_error";
  static final String REPORT = "report";
  static final String TOTAL_EPOCHS = "total_epochs";
  static final String TOTAL_STEPS = "total_steps";
  static final String NAME = "name";
  static final String EPOCH = "epoch";
  static final String STEP = "step";
  static final String AT = "at";
  static final String EVERY = "every";
  static final String INCLUDE = Targets.INCLUDE;
  static final String EXCLUDE = Targets.EXCLUDE;
  static final List<String> SCHEDULE_KEYS = List.of(EPOCH, STEP, AT, EVERY);
  static final List<String> ENTRY_KEYS = List.of(NAME, EPOCH, STEP, AT, EVERY, INCLUDE, EXCLUDE);
  static final List<String> TOP_LEVEL_KEYS =
      List.of(ALGORITHMS, ON_ERROR, REPORT, TOTAL_EPOCHS, TOTAL_STEPS);

  /** The largest step an entry may name; larger values are taken for typos. */
  static final long MAX_STEP = SurgeryConfig.MAX_STEP;

  private final String file;
  private final Path source;
  private final LoadSettings settings;
  private final List<ConfigProblem> problems = new ArrayList<>();

  /** The keys the composer found to be merge keys (see {@link MergeFreeComposer}). */
  private Set<Node> mergeKeys = Set.of();

  /** The node that decides the events of the last entry read: its schedule key, or the entry. */
  private Node triggerNode;

  ConfigParser(String file) {
    this(file, null);
  }

  /**
   * Creates a parser for the text of a config file.
   *
   * @param file the file name for messages
   * @param source the file itself, which {@code report} must not name; null for text without one
   */
  ConfigParser(String file, Path source) {
    this.file = file;
    this.source = source;
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

  SurgeryConfig parse(String text) {
    if (!text.isEmpty() && text.charAt(0) == '\uFEFF') {
      text = text.substring(1);
    }
    checkText(text);
    Node root = compose(text);
    checkCollectionTags(root, Collections.newSetFromMap(new IdentityHashMap<>()));
    SurgeryConfig config = bind(root);
    if (!problems.isEmpty()) {
      throw exception();
    }
    return config;
  }

  // ------------------------------------------------------------------ text and syntax

  /** Refuses control characters, which mean binary data, before YAML reports something obscure. */
  private void checkText(String text) {
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      boolean control = c < 0x20 && c != '\t' && c != '\n' && c != '\r';
      if (control || c == 0x7F || c == '\uFFFE' || c == '\uFFFF') {
        int[] at = lineAndColumn(text, i);
        add(
            at[0],
            at[1],
            String.format(
                Locale.ROOT,
                "binary data: control character U+%04X; a surgery config is a UTF-8 YAML text"
                    + " file",
                (int) c));
        throw exception();
      }
    }
    if (text.isBlank()) {
      add(1, 1, "the file is empty; expected a mapping with an 'algorithms' list");
      throw exception();
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
      mergeKeys = it.mergeKeys();
      while (it.hasNext()) {
        Node doc = it.next();
        documents.add(doc);
        if (documents.size() == 2) {
          int[] at = secondDocumentStart(text);
          String message = "only one YAML document is allowed; found a second one here";
          if (at == null) {
            addAt(doc, message);
          } else {
            add(at[0], at[1], message);
          }
          throw exception();
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
      add(
          line,
          column,
          "YAML syntax error: "
              + problem
              + (context.isEmpty() ? "" : " (" + context + ")")
              + (alias
                  ? "; a value that begins with '*' is read as an alias: quote block patterns, as"
                      + " in include: ['**/01Conv2d']"
                  : ""));
      throw exception();
    } catch (ReaderException e) {
      int[] at = lineAndColumnOfCodePoint(text, e.getPosition());
      add(at[0], at[1], "unreadable character: " + clean(e.getMessage()));
      throw exception();
    } catch (YamlVersionException e) {
      SpecVersion version = e.getSpecVersion();
      // The directive starts a line; the same text in a comment before it is not it.
      Matcher directive = YAML_DIRECTIVE.matcher(text);
      int[] at = lineAndColumn(text, directive.find() ? directive.start() : 0);
      add(
          at[0],
          at[1],
          "unsupported YAML version "
              + version.getRepresentation()
              + " in the %YAML directive: a surgery config is YAML 1.2"
              + (version.getMajor() == 1 && version.getMinor() < 2
                  ? ", whose rules read some values otherwise (in 1.1 '010' is 8 and 'yes' is true)"
                  : "")
              + "; write '%YAML 1.2' or leave the directive out");
      throw exception();
    } catch (YamlEngineException e) {
      // The composer's unmarked errors (too many aliases of lists and mappings) point nowhere;
      // the events still tell where the alias over the limit is.
      String problem = String.valueOf(e.getMessage());
      int[] at = problem.contains("aliases") ? aliasOverLimit(text) : null;
      add(
          at == null ? 1 : at[0],
          at == null ? 1 : at[1],
          "YAML error: "
              + clean(e.getMessage())
              + (at == null
                  ? ""
                  : " (alias "
                      + (settings.getMaxAliasesForCollections() + 1)
                      + " of a list or mapping)"));
      throw exception();
    } catch (IndexOutOfBoundsException | IllegalStateException e) {
      // A fault inside the YAML library itself (not the file's): still a typed config problem.
      add(1, 1, "YAML error: the YAML reader failed on this file (" + e + ")");
      throw exception();
    } catch (StackOverflowError e) {
      // The parser recurses per nesting level; thousands of '[' are an attack or garbage, and
      // must be a config problem rather than an Error that kills the program (or the agent).
      add(1, 1, "the YAML nests too deeply to be a surgery config");
      throw exception();
    }
    if (documents.isEmpty()) {
      add(1, 1, "the file has no YAML content; expected a mapping with an 'algorithms' list");
      throw exception();
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
    if (!seen.add(node)) {
      return; // an alias of a node already checked
    }
    if (node instanceof MappingNode mapping) {
      if (!mapping.getTag().equals(Tag.MAP)) {
        addAt(node, "the tag " + tagName(node.getTag()) + " is not allowed: " + PLAIN_YAML);
      }
      for (NodeTuple t : mapping.getValue()) {
        if (isMergeKey(t.getKeyNode())) {
          addAt(t.getKeyNode(), mergeKeyProblem(t.getKeyNode()));
        }
        checkCollectionTags(t.getKeyNode(), seen);
        checkCollectionTags(t.getValueNode(), seen);
      }
    } else if (node instanceof SequenceNode list) {
      if (!list.getTag().equals(Tag.SEQ)) {
        addAt(node, "the tag " + tagName(node.getTag()) + " is not allowed: " + PLAIN_YAML);
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
  private boolean isMergeKey(Node key) {
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

  private static final String PLAIN_YAML =
      "a surgery config is plain YAML (the core schema's mappings, lists and scalars); remove it";

  /** {@code tag:yaml.org,2002:python/object} as written: {@code !!python/object}. */
  private static String tagName(Tag tag) {
    String value = tag.getValue();
    return value.startsWith(Tag.PREFIX) ? "!!" + value.substring(Tag.PREFIX.length()) : value;
  }

  // ------------------------------------------------------------------ binding

  private SurgeryConfig bind(Node root) {
    if (!(root instanceof MappingNode mapping)) {
      addAt(
          root,
          "expected a mapping with an 'algorithms' list at the top level, found " + describe(root));
      return null;
    }
    Map<String, Node> keys = keys(mapping, TOP_LEVEL_KEYS, "key", "");

    List<ScheduledAlgorithm> entries = new ArrayList<>();
    List<int[]> positions = new ArrayList<>();
    List<Node> triggerNodes = new ArrayList<>();
    Node algorithms = keys.get(ALGORITHMS);
    if (algorithms == null) {
      addAt(
          root,
          "missing key 'algorithms': a list of entries, each with 'name' and a schedule (epoch,"
              + " step, at or every; none for an event-driven plugin); known"
              + " algorithms: "
              + known());
    } else if (!(algorithms instanceof SequenceNode list)) {
      addAt(algorithms, "'algorithms' must be a list of entries, found " + describe(algorithms));
    } else {
      for (Node entry : list.getValue()) {
        triggerNode = entry;
        ScheduledAlgorithm s = entry(entry, entries.size());
        positions.add(at(triggerNode));
        triggerNodes.add(triggerNode);
        if (s != null) {
          entries.add(s);
        } else {
          // keep indices stable for the entries that follow a bad one
          entries.add(null);
        }
      }
    }

    OnError onError = OnError.FAIL;
    Node onErrorNode = keys.get(ON_ERROR);
    if (onErrorNode != null) {
      Object v = scalar(onErrorNode);
      if (v instanceof String s && (s.equals("fail") || s.equals("skip"))) {
        onError = s.equals("fail") ? OnError.FAIL : OnError.SKIP;
      } else if (v != INVALID) {
        String hint = v instanceof String s ? didYouMean(s, List.of("fail", "skip")) : "";
        addAt(
            onErrorNode, "on_error must be 'fail' or 'skip', got " + describe(onErrorNode) + hint);
      }
    }

    Path report = null;
    Node reportNode = keys.get(REPORT);
    if (reportNode != null) {
      Object v = scalar(reportNode);
      if (v instanceof String s && !ConfigText.blank(s)) {
        try {
          report = Path.of(s);
        } catch (InvalidPathException e) {
          addAt(reportNode, "report is not a valid path: " + e.getReason());
        }
        if (report != null) {
          String unusable = ReportPath.problem(s, report, source);
          if (unusable != null) {
            addAt(reportNode, unusable);
          }
        }
      } else if (v != INVALID) {
        addAt(
            reportNode,
            "report must be a file path such as surgery-log.json, got " + describe(reportNode));
      }
    }

    int totalEpochs = 0;
    Node totalNode = keys.get(TOTAL_EPOCHS);
    if (totalNode != null) {
      Integer t = integer(totalNode, "total_epochs", 1);
      if (t != null) {
        totalEpochs = t;
        for (int i = 0; i < entries.size(); i++) {
          ScheduledAlgorithm s = entries.get(i);
          String never = s == null ? null : s.neverRunsIn(t, 0);
          if (never != null) {
            Node entry = ((SequenceNode) algorithms).getValue().get(i);
            Node epochNode = s.byEpoch() ? valueOf((MappingNode) entry, EPOCH) : null;
            // The value that says when: 'epoch: 5', or the trigger ('at: 5ep', 'every: 3ep').
            addAt(epochNode != null ? epochNode : triggerNodes.get(i), never);
          }
        }
      }
    }
    long totalSteps = 0;
    Node totalStepsNode = keys.get(TOTAL_STEPS);
    if (totalStepsNode != null) {
      Long t = whole(totalStepsNode, TOTAL_STEPS, 1, MAX_STEP);
      if (t != null) {
        totalSteps = t;
        for (int i = 0; i < entries.size(); i++) {
          ScheduledAlgorithm s = entries.get(i);
          String never = s == null ? null : s.neverRunsIn(0, t);
          if (never != null) {
            addAt(triggerNodes.get(i), never);
          }
        }
      }
    }
    for (int i = 0; i < entries.size(); i++) {
      ScheduledAlgorithm s = entries.get(i);
      if (s != null && s.trigger().needsLength() && totalEpochs == 0 && totalSteps == 0) {
        addAt(
            triggerNodes.get(i),
            "'"
                + s.trigger().describe().substring(3)
                + "' is a fraction of the planned training, whose length this file does not give:"
                + " set 'total_epochs: <n>' or 'total_steps: <n>' at the top level, or use '<n>ep'"
                + " or '<n>ba'");
      }
    }
    if (problems.isEmpty()) {
      checkComposition(entries, (SequenceNode) algorithms);
    }
    if (!problems.isEmpty()) {
      return null;
    }
    return new SurgeryConfig(file, entries, onError, report, totalEpochs, totalSteps, positions);
  }

  /**
   * Refuses entries the schedule cannot hold ({@link ScheduleComposition}), each at its own entry,
   * naming the other with its position: such an entry would otherwise change nothing, or less than
   * it says, when it runs.
   */
  private void checkComposition(List<ScheduledAlgorithm> entries, SequenceNode list) {
    for (ScheduleComposition.Refusal r : ScheduleComposition.check(entries)) {
      addAt(
          list.getValue().get(r.entry().index()),
          "algorithms " + r.message(e -> "entry " + (e.index() + 1) + " (" + e.describe() + ")"));
    }
  }

  private ScheduledAlgorithm entry(Node node, int index) {
    String where = "algorithms entry " + (index + 1);
    int problemsBefore = problems.size();
    if (!(node instanceof MappingNode mapping)) {
      addAt(node, where + " must be a mapping with 'name' and 'epoch', found " + describe(node));
      return null;
    }
    Node nameNode = valueOf(mapping, NAME);
    AlgorithmSpec spec = null;
    String name = null;
    if (nameNode == null) {
      addAt(node, where + " has no 'name'; known algorithms: " + known());
      misspeltName(mapping, where);
    } else {
      Object v = scalar(nameNode);
      if (v instanceof String s && !ConfigText.blank(s)) {
        name = s;
        spec = Algorithms.find(s).orElse(null);
        if (spec == null) {
          addAt(
              nameNode,
              "unknown algorithm "
                  + ConfigText.shown(s)
                  + didYouMean(s, Algorithms.names())
                  + "; known algorithms: "
                  + known());
        }
      } else if (v != INVALID) {
        addAt(
            nameNode,
            where
                + ": name must be an algorithm name such as one of "
                + known()
                + ", got "
                + describe(nameNode));
      }
    }

    List<String> validKeys = new ArrayList<>(List.of(NAME, EPOCH));
    if (spec != null) {
      validKeys.addAll(spec.names());
    }
    validKeys.addAll(List.of(STEP, AT, EVERY));
    validKeys.add(INCLUDE);
    validKeys.add(EXCLUDE);
    // Without a known algorithm there is no list of valid keys: report only the name problem.
    Map<String, Node> keys =
        keys(mapping, spec == null ? null : validKeys, "key", " for algorithm '" + name + "'");

    Trigger trigger = null;
    boolean scheduleOk = true;
    List<String> scheduleKeys = new ArrayList<>();
    for (String k : SCHEDULE_KEYS) {
      if (keys.containsKey(k)) {
        scheduleKeys.add(k);
      }
    }
    if (scheduleKeys.size() > 1) {
      addAt(
          keys.get(scheduleKeys.get(1)),
          where
              + " has both '"
              + scheduleKeys.get(0)
              + "' and '"
              + scheduleKeys.get(1)
              + "': give one schedule (epoch, step, at or every)");
      scheduleOk = false;
    } else if (scheduleKeys.isEmpty()) {
      // Whether an entry may go without a schedule depends on its algorithm's events: without a
      // known algorithm there is nothing to judge, and the name problem is the one to fix (a typo
      // in an event-driven plugin's name would otherwise also be told it needs an epoch).
      scheduleOk = spec != null;
      if (spec != null) {
        trigger = Trigger.onEvents(); // checked against the algorithm's events once it is built
      }
    } else {
      String key = scheduleKeys.get(0);
      Node scheduleNode = keys.get(key);
      triggerNode = scheduleNode;
      trigger = trigger(key, scheduleNode);
      scheduleOk = trigger != null;
    }
    Map<String, Object> values = new LinkedHashMap<>();
    boolean valuesOk = true;
    if (spec != null) {
      for (Map.Entry<String, Node> e : keys.entrySet()) {
        if (ENTRY_KEYS.contains(e.getKey())) {
          continue;
        }
        HyperParameter<?> h = spec.hyperParameter(e.getKey());
        Object raw = valueForHyperParameter(e.getValue());
        if (raw == INVALID) {
          valuesOk = false;
          continue;
        }
        Object value = h.normalize(raw);
        String problem = h.problemWith(value);
        if (problem != null) {
          addAt(e.getValue(), name + ": " + problem + quotedNote(e.getValue()));
          valuesOk = false;
        } else {
          values.put(h.name(), value);
        }
      }
    }
    List<String> include = patterns(keys.get(INCLUDE), name);
    List<String> exclude = patterns(keys.get(EXCLUDE), name);
    if (keys.get(INCLUDE) instanceof SequenceNode list && list.getValue().isEmpty()) {
      // Without patterns an entry targets every block: an empty list would say the opposite.
      addAt(
          keys.get(INCLUDE),
          name
              + ": an empty include list selects no block; leave 'include' out to select every"
              + " block");
    }
    for (String pattern : exclude) {
      if (include.contains(pattern)) {
        addAt(
            keys.get(EXCLUDE),
            name + ": '" + pattern + "' is both included and excluded, so it selects no block");
      }
    }
    if (spec == null || !scheduleOk || !valuesOk || problems.size() > problemsBefore) {
      return null;
    }
    Algorithm algorithm;
    try {
      algorithm = spec.create(values);
    } catch (IllegalArgumentException | AlgorithmPluginException e) {
      // cross-parameter constraints only the factory knows, or a factory breaking its contract
      addAt(node, name + ": " + e.getMessage());
      return null;
    } catch (RuntimeException | LinkageError | AssertionError e) {
      // A plugin's own failure: named at the entry, with the plugin, not thrown raw.
      addAt(node, pluginFailure(name, "while building it", e));
      return null;
    }
    Targets targets = Targets.of(include, exclude);
    if (!targets.isAll()) {
      try {
        algorithm = algorithm.withTargets(targets);
      } catch (UnsupportedOperationException e) {
        addAt(keys.containsKey(INCLUDE) ? keys.get(INCLUDE) : keys.get(EXCLUDE), e.getMessage());
        return null;
      }
    }
    Set<dev.surgery.core.events.Event> events;
    try {
      events = algorithm.events();
    } catch (RuntimeException | LinkageError | AssertionError e) {
      addAt(node, pluginFailure(name, "in events()", e));
      return null;
    }
    if (events == null) {
      addAt(node, pluginFailure(name, "in events()", new NullPointerException("it returned null")));
      return null;
    }
    if (trigger.kind() == Trigger.Kind.EVENTS && events.isEmpty()) {
      addAt(node, noSchedule(where, name));
      return null;
    }
    Mark mark = node.getStartMark().orElse(null);
    String source =
        file
            + ":"
            + (mark == null ? 1 : mark.getLine() + 1)
            + ":"
            + (mark == null ? 1 : mark.getColumn() + 1);
    return ScheduledAlgorithm.of(algorithm, trigger, index, source);
  }

  /** Names a plugin algorithm's failure while the config is read: algorithm, class and jar. */
  private static String pluginFailure(String name, String when, Throwable e) {
    String origin = Algorithms.origin(name);
    return name
        + " failed "
        + when
        + (origin == null || origin.equals("built-in") ? "" : " (algorithm from " + origin + ")")
        + ": "
        + e;
  }

  /**
   * Reports the keys of an entry without 'name' that stand for it ({@code Name}, {@code nmae}), at
   * the key: the algorithm, and so its hyperparameters, are unknown, so only a key closer to 'name'
   * than to any entry key or any registered algorithm's hyperparameter is taken for a misspelt one.
   */
  private void misspeltName(MappingNode mapping, String where) {
    List<String> candidates = new ArrayList<>(ENTRY_KEYS);
    for (String algorithm : Algorithms.names()) {
      AlgorithmSpec spec = Algorithms.find(algorithm).orElse(null);
      if (spec != null) {
        candidates.addAll(spec.names());
      }
    }
    for (NodeTuple t : mapping.getValue()) {
      if (t.getKeyNode() instanceof ScalarNode k
          && !candidates.contains(k.getValue())
          && NAME.equals(EditDistance.suggest(k.getValue(), candidates))) {
        addAt(
            k,
            "unknown key "
                + ConfigText.shown(k.getValue())
                + " in "
                + where
                + didYouMean(k.getValue(), candidates)
                + "; valid keys: name, a schedule (epoch, step, at or every), include, exclude"
                + " and the algorithm's hyperparameters");
      }
    }
  }

  private static String noSchedule(String where, String name) {
    return where
        + (name == null ? "" : " ('" + name + "')")
        + " has no 'epoch': the number of completed training epochs after which it runs"
        + " (0: before the first batch); or give 'step: K' (after K optimizer steps), 'at:"
        + " \"0.5dur\"' or 'every: 2ep'. Only an algorithm that reacts to events by itself may"
        + " have no schedule";
  }

  /** Reads one schedule key: epoch, step, at or every. */
  private Trigger trigger(String key, Node node) {
    switch (key) {
      case EPOCH:
        {
          Integer epoch = integer(node, EPOCH, 0);
          return epoch == null ? null : Trigger.atEpoch(epoch);
        }
      case STEP:
        {
          Long step = whole(node, STEP, 1, MAX_STEP);
          return step == null ? null : Trigger.atStep(step);
        }
      default:
        Object v = scalar(node);
        if (v == INVALID) {
          return null;
        }
        if (!(v instanceof String text)) {
          addAt(
              node,
              key
                  + " takes a time string such as '2ep' (epochs), '100ba' (batches)"
                  + (key.equals(AT) ? " or '0.5dur' (a fraction of the planned training)" : "")
                  + ", got "
                  + describe(node));
          return null;
        }
        try {
          Time time = Time.parse(text);
          if (key.equals(EVERY) && time.unit() != Time.Unit.DURATION && time.count() == 0) {
            addAt(node, "every must be at least 1ep or 1ba, got '" + text + "'");
            return null;
          }
          if (time.unit() == Time.Unit.BATCH && (time.count() < 1 || time.count() > MAX_STEP)) {
            addAt(node, key + ": a step must be in [1, " + MAX_STEP + "], got '" + text + "'");
            return null;
          }
          if (time.unit() == Time.Unit.EPOCH && time.count() > SurgeryConfig.MAX_EPOCH) {
            addAt(
                node,
                key
                    + ": an epoch must be at most "
                    + SurgeryConfig.MAX_EPOCH
                    + ", got '"
                    + text
                    + "'");
            return null;
          }
          return key.equals(AT) ? Trigger.at(time) : Trigger.every(time);
        } catch (IllegalArgumentException e) {
          addAt(node, key + ": " + e.getMessage());
          return null;
        }
    }
  }

  /** Reads a whole number in [min, max]. */
  private Long whole(Node node, String key, long min, long max) {
    Object v = scalar(node);
    if (v == INVALID) {
      return null;
    }
    String expected = key + " must be a whole number in [" + min + ", " + max + "]";
    if (v instanceof Integer || v instanceof Long || v instanceof BigInteger) {
      BigInteger b = new BigInteger(v.toString());
      if (b.compareTo(BigInteger.valueOf(min)) < 0 || b.compareTo(BigInteger.valueOf(max)) > 0) {
        addAt(node, expected + ", got " + b);
        return null;
      }
      return b.longValue();
    }
    addAt(node, expected + ", got " + describe(node));
    return null;
  }

  /**
   * Reads the keys of a mapping: reports non-string keys, duplicates and (when {@code valid} is
   * given) unknown keys; returns the first value of each valid key, in file order.
   */
  private Map<String, Node> keys(
      MappingNode mapping, List<String> valid, String what, String suffix) {
    Map<String, Node> values = new LinkedHashMap<>();
    Map<String, Node> firstKey = new HashMap<>();
    for (NodeTuple t : mapping.getValue()) {
      Node keyNode = t.getKeyNode();
      Object k = keyNode instanceof ScalarNode ? scalar(keyNode) : null;
      if (!(k instanceof String key)) {
        if (k != INVALID) {
          addAt(keyNode, "keys must be plain names, found " + describe(keyNode));
        }
        continue;
      }
      Node first = firstKey.putIfAbsent(key, keyNode);
      if (first != null) {
        addAt(keyNode, "duplicate key '" + key + "' (first defined at " + position(first) + ")");
        continue;
      }
      if (isMergeKey(keyNode)) {
        continue; // reported with the tags
      }
      if (valid != null && !valid.contains(key)) {
        addAt(
            keyNode,
            "unknown "
                + what
                + " "
                + ConfigText.shown(key)
                + suffix
                + didYouMean(key, valid)
                + "; valid keys: "
                + String.join(", ", valid));
        continue;
      }
      values.put(key, t.getValueNode());
    }
    return values;
  }

  private static Node valueOf(MappingNode mapping, String key) {
    for (NodeTuple t : mapping.getValue()) {
      if (t.getKeyNode() instanceof ScalarNode s && s.getValue().equals(key)) {
        return t.getValueNode();
      }
    }
    return null;
  }

  /** Reads a non-negative integer that must be at least {@code min} and at most MAX_EPOCH. */
  private Integer integer(Node node, String key, int min) {
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
        addAt(
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
        addAt(node, expected + ", got " + b + " (too large)");
        return null;
      }
      return b.intValue();
    }
    addAt(node, expected + ", got " + describe(node));
    return null;
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
      addAt(node, name + ": include and exclude take a list of block patterns, found a mapping");
      return List.of();
    }
    List<String> out = new ArrayList<>();
    for (Node item : items) {
      Object v = scalar(item);
      if (v == INVALID) {
        continue;
      }
      if (!(v instanceof String pattern)) {
        addAt(
            item,
            name
                + ": a block pattern must be a string such as '05ParallelBlock/**/01Conv2d' or"
                + " 'type:Conv2d', found "
                + describe(item));
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
        add(m == null ? 1 : m.getLine() + 1, column, name + ": " + e.getMessage() + where);
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
    int length = value.codePointCount(0, value.length());
    if (end.getIndex() - start.getIndex() != length + 2 * quotes) {
      return -1; // an escape or a doubled quote: source and value differ in length
    }
    return quotes + value.codePointCount(0, Math.min(index, value.length()));
  }

  /** A hyperparameter value: scalars as parsed; lists and mappings as a description to refuse. */
  private Object valueForHyperParameter(Node node) {
    if (node instanceof ScalarNode) {
      return scalar(node);
    }
    return new Described(describe(node));
  }

  /** Marker for a value whose problem has been reported already. */
  private static final Object INVALID = new Object();

  /** A non-scalar value shown in a message through {@link HyperParameter#problemWith}. */
  private record Described(String text) {
    @Override
    public String toString() {
      return text;
    }
  }

  /** Reads a scalar node as the core schema types it; returns null for collections. */
  private Object scalar(Node node) {
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
      addAt(node, cannotRead(s));
      return INVALID;
    }
    if (form != null && !form.matcher(value).matches()) {
      addAt(node, cannotRead(s));
      return INVALID;
    }
    try {
      return new StandardConstructor(settings).constructSingleDocument(Optional.of(node));
    } catch (YamlEngineException e) {
      addAt(node, cannotRead(s));
      return INVALID;
    }
  }

  private static final Pattern YAML_DIRECTIVE = Pattern.compile("(?m)^%YAML\\b");

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
  private String quotedNote(Node node) {
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

  private String describe(Node node) {
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

  // ------------------------------------------------------------------ problems

  private String didYouMean(String input, java.util.Collection<String> valid) {
    String s = EditDistance.suggest(input, valid);
    return s == null || s.equals(input) ? "" : " (did you mean '" + s + "'?)";
  }

  private static String known() {
    TreeSet<String> names = new TreeSet<>(Algorithms.names());
    return names.isEmpty() ? "(none registered)" : String.join(", ", names);
  }

  private String position(Node node) {
    Mark m = node.getStartMark().orElse(null);
    return m == null ? "?" : "line " + (m.getLine() + 1) + ", column " + (m.getColumn() + 1);
  }

  private static int[] at(Node node) {
    Mark m = node.getStartMark().orElse(null);
    return new int[] {m == null ? 1 : m.getLine() + 1, m == null ? 1 : m.getColumn() + 1};
  }

  private void addAt(Node node, String message) {
    Mark m = node.getStartMark().orElse(null);
    add(m == null ? 1 : m.getLine() + 1, m == null ? 1 : m.getColumn() + 1, message);
  }

  private void add(int line, int column, String message) {
    problems.add(new ConfigProblem(file, line, column, message));
  }

  private SurgeryConfigException exception() {
    List<ConfigProblem> sorted = new ArrayList<>(problems);
    sorted.sort(
        Comparator.comparingInt(ConfigProblem::line).thenComparingInt(ConfigProblem::column));
    return new SurgeryConfigException(sorted);
  }

  private static String clean(String s) {
    if (s == null) {
      return "";
    }
    return s.replaceAll("\\s+", " ").trim();
  }

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
