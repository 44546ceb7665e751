package dev.surgery.trainer.config;

import dev.surgery.core.Targets;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.snakeyaml.engine.v2.nodes.MappingNode;
import org.snakeyaml.engine.v2.nodes.Node;
import org.snakeyaml.engine.v2.nodes.SequenceNode;

/**
 * Reads a config file into a {@link SurgeryConfig}, collecting every problem with its position.
 *
 * <p>{@link ConfigYaml} reads the text into one YAML node tree; this class binds that tree: the
 * top-level keys (read by {@link MappingKeys}), each entry through {@link EntryBinder} (its
 * algorithm, schedule, hyperparameters and block patterns, scalars typed by {@link ScalarReader}),
 * and the checks across entries (a schedule that never runs in the planned length, entries the
 * schedule cannot compose). Every problem goes to one {@link ConfigProblems}, reported together in
 * file order.
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
  private final EntryBinder entryBinder;

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
    this.entryBinder = new EntryBinder(file, scalars, mappingKeys, problems);
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
              + EntryBinder.known());
    } else if (!(algorithms instanceof SequenceNode list)) {
      problems.addAt(
          algorithms,
          "'algorithms' must be a list of entries, found " + scalars.describe(algorithms));
    } else {
      for (Node entry : list.getValue()) {
        BoundEntry bound = entryBinder.bind(entry, entries.size());
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
}
