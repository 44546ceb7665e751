package dev.surgery.trainer.config;

import static dev.surgery.trainer.config.ConfigParser.AT;
import static dev.surgery.trainer.config.ConfigParser.ENTRY_KEYS;
import static dev.surgery.trainer.config.ConfigParser.EPOCH;
import static dev.surgery.trainer.config.ConfigParser.EVERY;
import static dev.surgery.trainer.config.ConfigParser.EXCLUDE;
import static dev.surgery.trainer.config.ConfigParser.INCLUDE;
import static dev.surgery.trainer.config.ConfigParser.NAME;
import static dev.surgery.trainer.config.ConfigParser.STEP;

import dev.surgery.core.Targets;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmPluginException;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
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

/**
 * Binds one entry of a config file's {@code algorithms} list: its algorithm's name looked up in the
 * registry (a misspelt {@code name} key guessed), its schedule ({@link ScheduleReader}), its
 * hyperparameters checked against their declarations, its block patterns ({@link TargetPatterns}),
 * then the algorithm built, limited to its targets, and its events checked against its schedule.
 * Every problem is reported at its node; {@link ConfigParser} binds the file around the entries and
 * checks them against each other.
 */
final class EntryBinder {

  private final String file;
  private final ConfigProblems problems;
  private final ScalarReader scalars;
  private final MappingKeys mappingKeys;
  private final TargetPatterns targetPatterns;
  private final ScheduleReader scheduleReader;

  /**
   * Creates a binder of entries.
   *
   * @param file the file name that each entry's source position names
   * @param scalars types the entry's values
   * @param mappingKeys reads the entry's keys
   * @param problems where problems go
   */
  EntryBinder(String file, ScalarReader scalars, MappingKeys mappingKeys, ConfigProblems problems) {
    this.file = file;
    this.problems = problems;
    this.scalars = scalars;
    this.mappingKeys = mappingKeys;
    this.targetPatterns = new TargetPatterns(scalars, problems);
    this.scheduleReader = new ScheduleReader(scalars, problems);
  }

  /**
   * Binds one entry of the algorithms list: its algorithm, schedule, hyperparameters and block
   * patterns, each read and checked with every problem reported, then the algorithm built.
   */
  BoundEntry bind(Node node, int index) {
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

  /** The registered algorithms' names, sorted, as messages list them. */
  static String known() {
    TreeSet<String> names = new TreeSet<>(Algorithms.names());
    return names.isEmpty() ? "(none registered)" : String.join(", ", names);
  }
}
