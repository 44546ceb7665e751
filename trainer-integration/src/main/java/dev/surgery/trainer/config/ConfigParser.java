package dev.surgery.trainer.config;

import dev.surgery.core.Targets;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmPluginException;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.snakeyaml.engine.v2.exceptions.Mark;
import org.snakeyaml.engine.v2.nodes.MappingNode;
import org.snakeyaml.engine.v2.nodes.Node;
import org.snakeyaml.engine.v2.nodes.NodeTuple;
import org.snakeyaml.engine.v2.nodes.ScalarNode;
import org.snakeyaml.engine.v2.nodes.SequenceNode;

/**
 * Reads a config file into a {@link SurgeryConfig}, collecting every problem with its position.
 *
 * <p>{@link ConfigYaml} reads the text into one YAML node tree; this class binds that tree: the
 * top-level keys, each entry's algorithm, schedule, hyperparameters and block patterns (scalars
 * typed by {@link ScalarReader}), and the checks across entries (a schedule that never runs in the
 * planned length, entries the schedule cannot compose). Every problem goes to one {@link
 * ConfigProblems}, reported together in file order.
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
  private final ConfigProblems problems;
  private final ConfigYaml yaml;
  private final ScalarReader scalars;
  private final MappingKeys mappingKeys;
  private final TargetPatterns targetPatterns;
  private final ScheduleReader scheduleReader;

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
    this.problems = new ConfigProblems(file);
    this.yaml = new ConfigYaml(file, problems);
    this.scalars = new ScalarReader(yaml.settings(), problems);
    this.mappingKeys = new MappingKeys(yaml, scalars, problems);
    this.targetPatterns = new TargetPatterns(scalars, problems);
    this.scheduleReader = new ScheduleReader(scalars, problems);
  }

  SurgeryConfig parse(String text) {
    Node root = yaml.readRoot(text);
    SurgeryConfig config = bind(root);
    if (!problems.isEmpty()) {
      throw problems.exception();
    }
    return config;
  }

  // ------------------------------------------------------------------ binding

  private SurgeryConfig bind(Node root) {
    if (!(root instanceof MappingNode mapping)) {
      problems.addAt(
          root,
          "expected a mapping with an 'algorithms' list at the top level, found "
              + scalars.describe(root));
      return null;
    }
    Map<String, Node> keys = mappingKeys.read(mapping, TOP_LEVEL_KEYS, "key", "");

    List<ScheduledAlgorithm> entries = new ArrayList<>();
    List<int[]> positions = new ArrayList<>();
    List<Node> triggerNodes = new ArrayList<>();
    List<Trigger> triggers = new ArrayList<>();
    Node algorithms = keys.get(ALGORITHMS);
    if (algorithms == null) {
      problems.addAt(
          root,
          "missing key 'algorithms': a list of entries, each with 'name' and a schedule (epoch,"
              + " step, at or every; none for an event-driven plugin); known"
              + " algorithms: "
              + known());
    } else if (!(algorithms instanceof SequenceNode list)) {
      problems.addAt(
          algorithms,
          "'algorithms' must be a list of entries, found " + scalars.describe(algorithms));
    } else {
      for (Node entry : list.getValue()) {
        BoundEntry bound = entry(entry, entries.size());
        ScheduledAlgorithm s = bound.algorithm();
        positions.add(ConfigProblems.at(bound.triggerNode()));
        triggerNodes.add(bound.triggerNode());
        triggers.add(bound.trigger());
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
      Object v = scalars.scalar(onErrorNode);
      if (v instanceof String s && (s.equals("fail") || s.equals("skip"))) {
        onError = s.equals("fail") ? OnError.FAIL : OnError.SKIP;
      } else if (v != ScalarReader.INVALID) {
        String hint =
            v instanceof String s ? ConfigProblems.didYouMean(s, List.of("fail", "skip")) : "";
        problems.addAt(
            onErrorNode,
            "on_error must be 'fail' or 'skip', got " + scalars.describe(onErrorNode) + hint);
      }
    }

    Path report = null;
    Node reportNode = keys.get(REPORT);
    if (reportNode != null) {
      Object v = scalars.scalar(reportNode);
      if (v instanceof String s && !ConfigText.blank(s)) {
        try {
          report = Path.of(s);
        } catch (InvalidPathException e) {
          problems.addAt(reportNode, "report is not a valid path: " + e.getReason());
        }
        if (report != null) {
          String unusable = ReportPath.problem(s, report, source);
          if (unusable != null) {
            problems.addAt(reportNode, unusable);
          }
        }
      } else if (v != ScalarReader.INVALID) {
        problems.addAt(
            reportNode,
            "report must be a file path such as surgery-log.json, got "
                + scalars.describe(reportNode));
      }
    }

    int totalEpochs = 0;
    Node totalNode = keys.get(TOTAL_EPOCHS);
    if (totalNode != null) {
      Integer t = scalars.integer(totalNode, "total_epochs", 1);
      if (t != null) {
        totalEpochs = t;
        for (int i = 0; i < entries.size(); i++) {
          Trigger tr = triggers.get(i);
          String never = tr == null ? null : ScheduledAlgorithm.neverRunsIn(tr, t, 0);
          if (never != null) {
            Node entry = ((SequenceNode) algorithms).getValue().get(i);
            Node epochNode =
                tr.kind() == Trigger.Kind.EPOCH
                    ? MappingKeys.valueOf((MappingNode) entry, EPOCH)
                    : null;
            // The value that says when: 'epoch: 5', or the trigger ('at: 5ep', 'every: 3ep').
            problems.addAt(epochNode != null ? epochNode : triggerNodes.get(i), never);
          }
        }
      }
    }
    long totalSteps = 0;
    Node totalStepsNode = keys.get(TOTAL_STEPS);
    if (totalStepsNode != null) {
      Long t = scalars.whole(totalStepsNode, TOTAL_STEPS, 1, MAX_STEP);
      if (t != null) {
        totalSteps = t;
        for (int i = 0; i < entries.size(); i++) {
          Trigger tr = triggers.get(i);
          String never = tr == null ? null : ScheduledAlgorithm.neverRunsIn(tr, 0, t);
          if (never != null) {
            problems.addAt(triggerNodes.get(i), never);
          }
        }
      }
    }
    for (int i = 0; i < entries.size(); i++) {
      Trigger tr = triggers.get(i);
      if (tr != null && tr.needsLength() && totalEpochs == 0 && totalSteps == 0) {
        problems.addAt(
            triggerNodes.get(i),
            "'"
                + tr.describe().substring(3)
                + "' is a fraction of the planned training, whose length this file does not give:"
                + " set 'total_epochs: <n>' or 'total_steps: <n>' at the top level, or use '<n>ep'"
                + " or '<n>ba'");
      }
    }
    // Also beside other problems ("every problem at once"): an entry refused for its own is
    // taken to run anywhere between the others, so only refusals that hold whatever it is are made.
    if (algorithms instanceof SequenceNode list) {
      checkComposition(entries, list);
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
      problems.addAt(
          list.getValue().get(r.entry().index()),
          "algorithms " + r.message(e -> "entry " + (e.index() + 1) + " (" + e.describe() + ")"));
    }
  }

  /**
   * Binds one entry of the algorithms list: its algorithm, schedule, hyperparameters and block
   * patterns, each read and checked with every problem reported, then the algorithm built.
   */
  private BoundEntry entry(Node node, int index) {
    String where = "algorithms entry " + (index + 1);
    int problemsBefore = problems.size();
    if (!(node instanceof MappingNode mapping)) {
      problems.addAt(
          node,
          where + " must be a mapping with 'name' and 'epoch', found " + scalars.describe(node));
      return new BoundEntry(null, node);
    }
    Named named = named(mapping, where);
    AlgorithmSpec spec = named.spec();
    String name = named.name();
    List<String> validKeys = new ArrayList<>(List.of(NAME, EPOCH));
    if (spec != null) {
      validKeys.addAll(spec.names());
    }
    validKeys.addAll(List.of(STEP, AT, EVERY));
    validKeys.add(INCLUDE);
    validKeys.add(EXCLUDE);
    // Without a known algorithm there is no list of valid keys: report only the name problem.
    Map<String, Node> keys =
        mappingKeys.read(
            mapping, spec == null ? null : validKeys, "key", " for algorithm '" + name + "'");
    ScheduleReader.ScheduleRead schedule = scheduleReader.read(keys, spec, where, node);
    Map<String, Object> values = spec == null ? Map.of() : hyperParameters(spec, keys, name);
    // Problems of the patterns name the algorithm, or the entry where its name is unreadable.
    TargetPatterns.Patterns patterns = targetPatterns.read(keys, name != null ? name : where, name);
    if (spec == null || !schedule.ok() || values == null || problems.size() > problemsBefore) {
      return schedule.unbound();
    }
    return built(spec, name, values, patterns, schedule, keys, node, index, where);
  }

  /** An entry's algorithm name as read (null when absent or unreadable) and its spec if known. */
  private record Named(String name, AlgorithmSpec spec) {}

  private Named named(MappingNode mapping, String where) {
    Node nameNode = MappingKeys.valueOf(mapping, NAME);
    if (nameNode == null) {
      problems.addAt(mapping, where + " has no 'name'; known algorithms: " + known());
      misspeltName(mapping, where);
      return new Named(null, null);
    }
    Object v = scalars.scalar(nameNode);
    if (v instanceof String s && !ConfigText.blank(s)) {
      AlgorithmSpec spec = Algorithms.find(s).orElse(null);
      if (spec == null) {
        problems.addAt(
            nameNode,
            "unknown algorithm "
                + ConfigText.shown(s)
                + ConfigProblems.didYouMean(s, Algorithms.names())
                + "; known algorithms: "
                + known()
                + " (a plugin's algorithm needs its jar: on the class path beside the library,"
                + " or under the agent in its extensions= setting)");
      }
      return new Named(s, spec);
    }
    if (v != ScalarReader.INVALID) {
      problems.addAt(
          nameNode,
          where
              + ": name must be an algorithm name such as one of "
              + known()
              + ", got "
              + scalars.describe(nameNode));
    }
    return new Named(null, null);
  }

  /** An entry's hyperparameters, normalized and checked; null when any has a problem. */
  private Map<String, Object> hyperParameters(
      AlgorithmSpec spec, Map<String, Node> keys, String name) {
    Map<String, Object> values = new LinkedHashMap<>();
    boolean valuesOk = true;
    for (Map.Entry<String, Node> e : keys.entrySet()) {
      if (ENTRY_KEYS.contains(e.getKey())) {
        continue;
      }
      HyperParameter<?> h = spec.hyperParameter(e.getKey());
      Object raw = scalars.valueForHyperParameter(e.getValue());
      if (raw == ScalarReader.INVALID) {
        valuesOk = false;
        continue;
      }
      Object value = h.normalize(raw);
      String problem = h.problemWith(value);
      if (problem != null) {
        problems.addAt(e.getValue(), name + ": " + problem + scalars.quotedNote(e.getValue()));
        valuesOk = false;
      } else {
        values.put(h.name(), value);
      }
    }
    return valuesOk ? values : null;
  }

  /**
   * Builds an entry whose parts read without a problem: the algorithm from its spec, limited to its
   * targets, its events checked against its schedule; a failure of any of them (a plugin's
   * included) is a problem at the entry.
   */
  private BoundEntry built(
      AlgorithmSpec spec,
      String name,
      Map<String, Object> values,
      TargetPatterns.Patterns patterns,
      ScheduleReader.ScheduleRead schedule,
      Map<String, Node> keys,
      Node node,
      int index,
      String where) {
    Algorithm algorithm;
    try {
      algorithm = spec.create(values);
    } catch (IllegalArgumentException | AlgorithmPluginException e) {
      // cross-parameter constraints only the factory knows, or a factory breaking its contract
      problems.addAt(node, name + ": " + e.getMessage());
      return schedule.unbound();
    } catch (RuntimeException | LinkageError | AssertionError e) {
      // A plugin's own failure: named at the entry, with the plugin, not thrown raw.
      problems.addAt(node, pluginFailure(name, "while building it", e));
      return schedule.unbound();
    }
    Targets targets = Targets.of(patterns.include(), patterns.exclude());
    if (!targets.isAll()) {
      try {
        algorithm = algorithm.withTargets(targets);
      } catch (UnsupportedOperationException e) {
        problems.addAt(
            keys.containsKey(INCLUDE) ? keys.get(INCLUDE) : keys.get(EXCLUDE), e.getMessage());
        return schedule.unbound();
      }
    }
    Set<dev.surgery.core.events.Event> events;
    try {
      events = algorithm.events();
    } catch (RuntimeException | LinkageError | AssertionError e) {
      problems.addAt(node, pluginFailure(name, "in events()", e));
      return schedule.unbound();
    }
    if (events == null) {
      problems.addAt(
          node, pluginFailure(name, "in events()", new NullPointerException("it returned null")));
      return schedule.unbound();
    }
    if (schedule.trigger().kind() == Trigger.Kind.EVENTS && events.isEmpty()) {
      problems.addAt(node, noSchedule(where, name));
      return schedule.unbound();
    }
    Mark mark = node.getStartMark().orElse(null);
    String source =
        file
            + ":"
            + (mark == null ? 1 : mark.getLine() + 1)
            + ":"
            + (mark == null ? 1 : mark.getColumn() + 1);
    return new BoundEntry(
        ScheduledAlgorithm.of(algorithm, schedule.trigger(), index, source),
        schedule.triggerNode());
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
        problems.addAt(
            k,
            "unknown key "
                + ConfigText.shown(k.getValue())
                + " in "
                + where
                + ConfigProblems.didYouMean(k.getValue(), candidates)
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

  private static String known() {
    TreeSet<String> names = new TreeSet<>(Algorithms.names());
    return names.isEmpty() ? "(none registered)" : String.join(", ", names);
  }
}
