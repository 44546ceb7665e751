package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.trainer.SurgeryListener;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Table-driven checks of the config binder: every bad input with its position and message. */
class SurgeryConfigTest {

  static final String FILE = "surgery.yaml";

  static {
    Algorithms.register(
        new AlgorithmSpec(
            "c_typed",
            List.of(
                HyperParameter.ofInt("min_channels", 16, 1, 4096, "channels"),
                HyperParameter.ofFloat("drop_rate", 0.2, 0.0, false, 1.0, "rate"),
                HyperParameter.ofBoolean("blur_first", true, "flag"),
                HyperParameter.ofChoice(
                    "stochastic_method", "block", List.of("block", "sample"), "method")),
            values -> new Recorded("c_typed", values)));
    Algorithms.register(
        new AlgorithmSpec("c_plain", List.of(), values -> new Recorded("c_plain", values)));
  }

  /** An algorithm that only remembers how it was configured. */
  record Recorded(String name, Map<String, Object> values)
      implements dev.surgery.core.algorithms.Algorithm {
    @Override
    public Map<String, Object> hyperparameters() {
      return values;
    }

    @Override
    public SurgeryChanges apply(dev.surgery.core.algorithms.SurgeryContext context) {
      throw new UnsupportedOperationException("config tests never apply");
    }
  }

  /** One bad input: the problem expected at a position, with a fragment of its message. */
  record Case(String name, String yaml, int line, int column, String fragment) {
    @Override
    public String toString() {
      return name;
    }
  }

  static final String ENTRY = "algorithms:\n  - name: c_typed\n    epoch: 1\n";

  static Stream<Case> badInputs() {
    return Stream.of(
        new Case(
            "bad indentation",
            "algorithms:\n  - name: c_plain\n   epoch: 1\n",
            3,
            4,
            "YAML syntax error: expected <block end>"),
        new Case("tab indentation", "algorithms:\n\t- name: c_plain\n", 2, 1, "TAB"),
        new Case("unclosed flow list", "algorithms: [\n", 2, 1, "YAML syntax error"),
        new Case("undefined alias", "algorithms: *missing\n", 1, 13, "undefined alias missing"),
        new Case(
            "duplicate top-level key",
            "algorithms: []\nalgorithms: []\n",
            2,
            1,
            "duplicate key 'algorithms' (first defined at line 1, column 1)"),
        new Case(
            "duplicate entry key",
            "algorithms:\n  - name: c_plain\n    epoch: 1\n    epoch: 2\n",
            4,
            5,
            "duplicate key 'epoch' (first defined at line 3, column 5)"),
        new Case(
            "misspelled top-level key",
            "algoritms:\n  - name: c_plain\n    epoch: 1\n",
            1,
            1,
            "unknown key 'algoritms' (did you mean 'algorithms'?); valid keys: algorithms,"
                + " on_error, report, total_epochs"),
        new Case(
            "misspelled algorithm",
            "algorithms:\n  - name: c_typd\n    epoch: 1\n",
            2,
            11,
            "unknown algorithm 'c_typd' (did you mean 'c_typed'?); known algorithms: "),
        new Case(
            "unknown algorithm lists the known ones",
            "algorithms:\n  - name: zz_nothing_like_it\n    epoch: 1\n",
            2,
            11,
            "unknown algorithm 'zz_nothing_like_it'; known algorithms: "),
        new Case(
            "misspelled hyperparameter",
            ENTRY + "    min_chanels: 8\n",
            4,
            5,
            "unknown key 'min_chanels' for algorithm 'c_typed' (did you mean 'min_channels'?)"),
        new Case(
            "unknown hyperparameter lists the valid keys",
            ENTRY + "    colour: red\n",
            4,
            5,
            "valid keys: name, epoch, min_channels, drop_rate, blur_first, stochastic_method"),
        new Case(
            "epoch is a word",
            "algorithms:\n  - name: c_plain\n    epoch: one\n",
            3,
            12,
            "epoch must be a whole number in [0, 1,000,000], got 'one'"),
        new Case(
            "negative epoch",
            "algorithms:\n  - name: c_plain\n    epoch: -1\n",
            3,
            12,
            "epoch must not be negative, got -1"),
        new Case(
            "fractional epoch",
            "algorithms:\n  - name: c_plain\n    epoch: 1.5\n",
            3,
            12,
            "got 1.5"),
        new Case(
            "huge epoch",
            "algorithms:\n  - name: c_plain\n    epoch: 99999999999999999999\n",
            3,
            12,
            "got 99999999999999999999 (too large)"),
        new Case(
            "quoted epoch",
            "algorithms:\n  - name: c_plain\n    epoch: \"1\"\n",
            3,
            12,
            "got '1'; '1' is quoted, so YAML reads a string: write it without the quotes"),
        new Case(
            "quoted integer hyperparameter",
            ENTRY + "    min_channels: '16'\n",
            4,
            19,
            "min_channels must be an integer in [1, 4096], got '16' (min_channels: channels); '16'"
                + " is quoted, so YAML reads a string: write it without the quotes"),
        new Case(
            "quoted boolean hyperparameter",
            ENTRY + "    blur_first: \"true\"\n",
            4,
            17,
            "blur_first must be true or false, got 'true' (blur_first: flag); 'true' is quoted, so"
                + " YAML reads a string: write it without the quotes"),
        new Case(
            "integer hyperparameter below its range",
            ENTRY + "    min_channels: 0\n",
            4,
            19,
            "c_typed: min_channels must be in [1, 4096], got 0"),
        new Case(
            "integer hyperparameter given as a real number",
            ENTRY + "    min_channels: 8.0\n",
            4,
            19,
            "min_channels must be an integer in [1, 4096], got 8.0"),
        new Case(
            "integer hyperparameter given a list",
            ENTRY + "    min_channels: [1, 2]\n",
            4,
            19,
            "min_channels must be an integer in [1, 4096], got a list"),
        new Case(
            "real hyperparameter above its range",
            ENTRY + "    drop_rate: 1.5\n",
            4,
            16,
            "drop_rate must be in [0, 1], got 1.5"),
        new Case(
            "boolean given yes (YAML 1.2: a string)",
            ENTRY + "    blur_first: yes\n",
            4,
            17,
            "blur_first must be true or false, got 'yes'"),
        new Case(
            "choice not among the choices",
            ENTRY + "    stochastic_method: blok\n",
            4,
            24,
            "stochastic_method must be one of [block, sample], got 'blok'"),
        new Case("algorithms missing", "on_error: skip\n", 1, 1, "missing key 'algorithms'"),
        new Case(
            "algorithms is a scalar",
            "algorithms: c_plain\n",
            1,
            13,
            "'algorithms' must be a list of entries, found 'c_plain'"),
        new Case(
            "algorithms is a mapping",
            "algorithms:\n  name: c_plain\n",
            2,
            3,
            "'algorithms' must be a list of entries, found a mapping"),
        new Case(
            "entry is a scalar",
            "algorithms:\n  - c_plain\n",
            2,
            5,
            "algorithms entry 1 must be a mapping with 'name' and 'epoch', found 'c_plain'"),
        new Case(
            "entry without name",
            "algorithms:\n  - epoch: 1\n",
            2,
            5,
            "algorithms entry 1 has no 'name'"),
        new Case(
            "entry without epoch",
            "algorithms:\n  - name: c_plain\n",
            2,
            5,
            "algorithms entry 1 ('c_plain') has no 'epoch'"),
        new Case(
            "second entry without epoch",
            "algorithms:\n  - name: c_plain\n    epoch: 0\n  - name: c_plain\n",
            4,
            5,
            "algorithms entry 2 ('c_plain') has no 'epoch'"),
        new Case("empty name", "algorithms:\n  - name:\n    epoch: 1\n", 2, 10, "got nothing"),
        new Case(
            "on_error not fail or skip",
            "algorithms: []\non_error: ignore\n",
            2,
            11,
            "on_error must be 'fail' or 'skip', got 'ignore'"),
        new Case(
            "on_error misspelled",
            "algorithms: []\non_error: skp\n",
            2,
            11,
            "got 'skp' (did you mean 'skip'?)"),
        new Case(
            "report is a number",
            "algorithms: []\nreport: 3\n",
            2,
            9,
            "report must be a file path such as surgery-log.json, got 3"),
        new Case(
            "epoch after total_epochs",
            "algorithms:\n  - name: c_plain\n    epoch: 5\ntotal_epochs: 3\n",
            3,
            12,
            "epoch 5 is after the last epoch (total_epochs: 3)"),
        new Case(
            "total_epochs zero",
            "algorithms: []\ntotal_epochs: 0\n",
            2,
            15,
            "total_epochs must not be less than 1"),
        new Case(
            "unknown tag",
            "algorithms:\n  - name: !!python/object c_plain\n    epoch: 1\n",
            2,
            11,
            "the tag !!python/object is not allowed"),
        new Case("non-string key", "algorithms: []\n1: x\n", 2, 1, "keys must be plain names"),
        new Case("empty file", "", 1, 1, "the file is empty"),
        new Case(
            "nesting bomb", "algorithms: " + "[".repeat(200_000) + "\n", 1, 1, "nests too deeply"),
        new Case(
            "alias bomb",
            "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nalgorithms: [" + "*b, ".repeat(60) + "*b]\n",
            3, // the 51st alias of a list: 3 on line 2, the 48th of line 3
            14 + 47 * 4,
            "Number of aliases for non-scalar nodes exceeds the specified max=50 (alias 51 of a"
                + " list or mapping)"),
        new Case(
            "alias bomb, aliases of scalars not counted",
            "s: &s x\nl: &l [x]\nalgorithms: [" + "*s, ".repeat(60) + "*l, ".repeat(50) + "*l]\n",
            3,
            14 + 110 * 4,
            "exceeds the specified max=50"),
        new Case(
            "recursive alias",
            "algorithms: &a [*a]\n",
            1,
            17, // the entry is the alias: the list itself, placed where the alias is
            "algorithms entry 1 must be a mapping"),
        new Case(
            "NUL in the report path",
            "algorithms: []\nreport: \"a\\u0000b\"\n",
            2,
            9,
            "report is not a valid path"),
        new Case("blank file", "  \n\n", 1, 1, "the file is empty"),
        new Case("only comments", "# nothing here\n", 1, 1, "no YAML content"),
        new Case(
            "top level is a list",
            "- name: c_plain\n  epoch: 1\n",
            1,
            1,
            "expected a mapping with an 'algorithms' list at the top level, found a list"),
        new Case(
            "binary garbage",
            "algorithms:\n  \u0000\u0001\u0002",
            2,
            3,
            "binary data: control character U+0000"),
        new Case(
            "a second YAML document",
            "algorithms: []\n---\nalgorithms: []\n",
            2,
            1,
            "only one YAML document is allowed"),
        // Files written on Windows (CRLF) or old Macs (CR): each break is one line, whether the
        // YAML reader or the engine's own count places the problem.
        new Case(
            "a second YAML document in a CRLF file",
            "# made on Windows\r\nalgorithms: []\r\n---\r\nalgorithms: []\r\n",
            3,
            1,
            "only one YAML document is allowed"),
        new Case(
            "a %YAML 1.1 directive after CR line breaks",
            "# one\r# two\r%YAML 1.1\r---\ralgorithms: []\r",
            3,
            1,
            "unsupported YAML version 1.1 in the %YAML directive: a surgery config is YAML 1.2,"
                + " whose rules read some values otherwise (in 1.1 '010' is 8 and 'yes' is true)"),
        new Case(
            "a character YAML refuses, after CRLF lines and a byte-order mark",
            "\uFEFF# x\r\nalgorithms: []\r\n  \u0080x: 1\r\n",
            3,
            3,
            "unreadable character"),
        new Case(
            "a character YAML refuses right after a byte-order mark, which is no column",
            "\uFEFF\u0080x: 1\n",
            1,
            1,
            "unreadable character"),
        new Case(
            "an entry error in a CRLF file",
            "algorithms:\r\n  - name: blurpool\r\n    epoch: -1\r\n",
            3,
            12,
            "epoch must not be negative"),
        new Case(
            "a %YAML directive after a comment that names it",
            "# needs %YAML 2.0 someday\n%YAML 2.0\n---\nalgorithms: []\n",
            2,
            1,
            "unsupported YAML version 2.0 in the %YAML directive: a surgery config is YAML 1.2;"
                + " write '%YAML 1.2' or leave the directive out"),
        new Case(
            "an emoji before a control character is one column",
            "algorithms:\n  - name: \uD83C\uDF89\u0000\n",
            2,
            12,
            "binary data: control character U+0000"),
        new Case(
            "a character YAML refuses, after an emoji on an earlier line (YAML counts characters)",
            "# \uD83C\uDF89\nalgorithms: []\n\u0080x: 1\n",
            3,
            1,
            "unreadable character"),
        new Case(
            "a %YAML 1.1 directive: its rules read '010' and 'yes' otherwise",
            "%YAML 1.1\n---\nalgorithms: []\n",
            1,
            1,
            "unsupported YAML version 1.1 in the %YAML directive"),
        new Case(
            "a !!binary value, which no key takes",
            "algorithms:\n  - name: !!binary Ymx1cnBvb2w=\n    epoch: 1\n",
            2,
            11,
            "the tag !!binary is not allowed"),
        new Case(
            "an include pattern longer than any block path",
            "algorithms:\n  - name: blurpool\n    epoch: 1\n    include: ['"
                + "a".repeat(5000)
                + "']\n",
            4,
            16,
            "a pattern is at most 4096 characters, this one 5000"),
        new Case(
            "an unquoted pattern that begins with '*' reads as an alias: the message says quote it",
            "algorithms:\n  - name: blurpool\n    epoch: 1\n    exclude: *Conv2d\n",
            4,
            14,
            "quote block patterns, as in include: ['**/01Conv2d']"),
        new Case(
            "a value an alias repeats is reported where the alias uses it, not at its anchor",
            "algorithms:\n  - name: blurpool\n    epoch: &e -1\n  - name: ghost_batchnorm\n"
                + "    epoch: *e\n",
            5,
            12,
            "epoch"),
        new Case(
            "a duplicate key written as an alias is reported at the alias",
            "algorithms:\n  - name: blurpool\n    &k epoch: 1\n    *k : 2\n",
            4,
            5,
            "duplicate key 'epoch' (first defined at line 3, column 5)"),
        new Case(
            "'**' in a type pattern is refused at its character: a type name takes '*'",
            "algorithms:\n  - name: blurpool\n    epoch: 1\n    include: ['type:Conv**']\n",
            4,
            25,
            "invalid block pattern 'type:Conv**' at character 10: '**' is for paths; use '*' in a"
                + " type name"),
        new Case(
            "a quoted '<<' is a key like any other, not a merge key",
            "algorithms:\n  - name: blurpool\n    epoch: 1\n    \"<<\": 3\n",
            4,
            5,
            "unknown key '<<' for algorithm 'blurpool'"));
  }

  /**
   * A type pattern may use wildcards ({@code type:*Conv2d} follows a convolution an earlier entry
   * replaced); unquoted it is no alias, since it begins with {@code type:}.
   */
  @Test
  void aTypePatternWithWildcardsIsTakenAsWritten() {
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n  - name: blurpool\n    epoch: 1\n    include: [type:*Conv2d, type:Conv?d]\n"
                + "    exclude: type:ai.djl.nn.*\n",
            FILE);
    Algorithm algorithm = config.getAlgorithms().get(0).algorithm();
    assertEquals(List.of("type:*Conv2d", "type:Conv?d"), algorithm.targets().includes());
    assertEquals(List.of("type:ai.djl.nn.*"), algorithm.targets().excludes());
  }

  /**
   * A type pattern inside a path glob ({@code **}{@code /type:LSTM}) would select nothing, silently
   * (an outside probe wrote it to exclude LSTM layers): refused at the segment's line and column.
   */
  @Test
  void aTypePatternInsideAPathGlobIsRefusedAtItsSegment() {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () ->
                SurgeryConfig.parse(
                    "algorithms:\n  - name: factorize\n    epoch: 1\n"
                        + "    exclude: ['**/type:LSTM']\n",
                    FILE));
    List<String> problems = e.getProblems().stream().map(ConfigProblem::toString).toList();
    assertEquals(1, problems.size(), problems.toString());
    assertTrue(
        problems.get(0).startsWith(FILE + ":4:19: ")
            && problems.get(0).contains("'type:' begins a whole pattern ('type:LSTM'"),
        problems.toString());
  }

  /**
   * An unknown name is the one problem of an entry without a schedule: whether it may go without
   * one depends on the algorithm, and a typo in an event-driven plugin's name must not read as a
   * missing epoch.
   */
  @Test
  void anUnknownAlgorithmWithoutScheduleIsOnlyUnknown() {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () -> SurgeryConfig.parse("algorithms:\n  - name: c_plian\n", FILE));
    assertEquals(1, e.getProblems().size(), e.getMessage());
    ConfigProblem p = e.getProblems().get(0);
    assertEquals(List.of(2, 11), List.of(p.line(), p.column()));
    assertTrue(p.message().startsWith("unknown algorithm 'c_plian' (did you mean 'c_plain'?)"));
  }

  /**
   * A key that stands for 'name' in an entry without one is reported at the key, with the hint that
   * top-level keys and hyperparameters get; the other keys of such an entry, whose algorithm is
   * unknown, are not judged.
   */
  @Test
  void aMisspeltNameKeyIsReportedAtTheKey() {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () ->
                SurgeryConfig.parse(
                    "algorithms:\n  - {epoch: 1, Name: c_plain, min_channels: 4}\n", FILE));
    List<String> problems = e.getProblems().stream().map(ConfigProblem::toString).toList();
    assertEquals(2, problems.size(), e.getMessage());
    assertTrue(
        problems.get(0).startsWith(FILE + ":2:5: algorithms entry 1 has no 'name'"),
        e.getMessage());
    assertTrue(
        problems
            .get(1)
            .startsWith(
                FILE + ":2:16: unknown key 'Name' in algorithms entry 1 (did you mean 'name'?)"),
        e.getMessage());
    // A key that is no misspelt name (a hyperparameter of some algorithm) stays unjudged.
    SurgeryConfigException plain =
        assertThrows(
            SurgeryConfigException.class,
            () -> SurgeryConfig.parse("algorithms:\n  - {epoch: 1, min_channels: 4}\n", FILE));
    assertEquals(1, plain.getProblems().size(), plain.getMessage());
  }

  /**
   * SnakeYAML Engine 2.10 read past its buffer where a read of 1,024 characters ended on the first
   * half of an emoji: a valid file threw a bare IndexOutOfBoundsException (a reviewer's case).
   */
  @Test
  void anEmojiAtAReadBoundaryParses() {
    for (int pad : new int[] {1022, 2046, 1021}) {
      String text = "# " + "a".repeat(pad) + "\uD83D\uDE00\n" + "algorithms: []\n";
      assertTrue(SurgeryConfig.parse(text, FILE).getAlgorithms().isEmpty(), "pad " + pad);
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("badInputs")
  void badInputIsReportedAtItsPosition(Case c) {
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.parse(c.yaml(), FILE));
    List<ConfigProblem> problems = e.getProblems();
    assertFalse(problems.isEmpty());
    boolean found =
        problems.stream()
            .anyMatch(
                p ->
                    p.file().equals(FILE)
                        && p.line() == c.line()
                        && p.column() == c.column()
                        && p.message().contains(c.fragment()));
    assertTrue(
        found,
        () ->
            "expected "
                + FILE
                + ":"
                + c.line()
                + ":"
                + c.column()
                + ": ..."
                + c.fragment()
                + "... in\n"
                + e.getMessage());
    // the exception message lists every problem as file:line:column: message
    for (ConfigProblem p : problems) {
      assertTrue(e.getMessage().contains(p.toString()));
      assertTrue(p.toString().startsWith(FILE + ":" + p.line() + ":" + p.column() + ": "));
    }
  }

  @Test
  void unknownAlgorithmsListEveryRegisteredName() {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () -> SurgeryConfig.parse("algorithms:\n  - name: nope\n    epoch: 1\n", FILE));
    String message = e.getProblems().get(0).message();
    for (String name : Algorithms.names()) {
      assertTrue(message.contains(name), message);
    }
    assertFalse(message.contains("did you mean"), message);
  }

  @Test
  void everyProblemIsCollectedInFileOrder() {
    String yaml =
        "algorithms:\n"
            + "  - name: c_typd\n" // 2:11 unknown algorithm
            + "    epoch: -2\n" // 3:12 negative
            + "  - name: c_typed\n"
            + "    epoch: 1\n"
            + "    min_channels: 0\n" // 6:19 range
            + "    blur_first: 3\n" // 7:17 type
            + "on_error: maybe\n" // 8:11
            + "extra: 1\n"; // 9:1 unknown key
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.parse(yaml, FILE));
    assertEquals(
        List.of("2:11", "3:12", "6:19", "7:17", "8:11", "9:1"),
        e.getProblems().stream().map(p -> p.line() + ":" + p.column()).toList(),
        e.getMessage());
    assertTrue(e.getMessage().startsWith("invalid surgery config (6 problems)"), e.getMessage());
  }

  @Test
  void aValidConfigKeepsEntriesInFileOrderWithTheirPositions() {
    String yaml =
        "# surgery for the quick-start job\n"
            + "algorithms:\n"
            + "  - name: c_typed\n"
            + "    epoch: 1\n"
            + "    min_channels: 0x10\n"
            + "    drop_rate: 1\n"
            + "    blur_first: false\n"
            + "  - name: c_plain\n"
            + "    epoch: 0\n"
            + "  - name: c_typed\n"
            + "    epoch: 1\n"
            + "on_error: skip\n"
            + "report: out/surgery-report.json\n"
            + "total_epochs: 4\n";
    SurgeryConfig config = SurgeryConfig.parse(yaml, FILE);
    List<ScheduledAlgorithm> entries = config.getAlgorithms();
    assertEquals(3, entries.size());
    assertEquals(List.of(1, 0, 1), entries.stream().map(ScheduledAlgorithm::epoch).toList());
    assertEquals(List.of(0, 1, 2), entries.stream().map(ScheduledAlgorithm::index).toList());
    assertEquals("surgery.yaml:3:5", entries.get(0).source());
    assertEquals("surgery.yaml:8:5", entries.get(1).source());
    assertEquals("c_typed at epoch 1 (surgery.yaml:3:5)", entries.get(0).describe());
    Map<String, Object> hp = entries.get(0).algorithm().hyperparameters();
    assertEquals(16, hp.get("min_channels"));
    assertEquals(1.0, hp.get("drop_rate"), "a whole number for a real parameter becomes a Double");
    assertEquals(false, hp.get("blur_first"));
    assertEquals("block", hp.get("stochastic_method"), "defaults are filled in");
    assertEquals(OnError.SKIP, config.getOnError());
    assertEquals(Path.of("out/surgery-report.json"), config.getReportPath().orElseThrow());
    assertEquals(4, config.getTotalEpochs());

    SurgeryListener listener = SurgeryListener.fromConfig(config);
    assertEquals(entries, listener.getSchedule());
    assertEquals(OnError.SKIP, listener.getOnError());
  }

  @Test
  void defaultsAndAnEmptySchedule() {
    SurgeryConfig config = SurgeryConfig.parse("\uFEFFalgorithms: []\n", FILE);
    assertTrue(config.getAlgorithms().isEmpty());
    assertEquals(OnError.FAIL, config.getOnError());
    assertTrue(config.getReportPath().isEmpty());
    assertEquals(0, config.getTotalEpochs());
  }

  @Test
  void suggestionsAreOnlyOfferedForLikelyTypos() {
    assertEquals("blurpool", EditDistance.suggest("blurpol", List.of("blurpool", "factorize")));
    assertEquals("blurpool", EditDistance.suggest("BlurPool", List.of("blurpool")));
    assertEquals("min_channels", EditDistance.suggest("min-channels", List.of("min_channels")));
    assertEquals("epoch", EditDistance.suggest("epcoh", List.of("name", "epoch")));
    assertEquals(null, EditDistance.suggest("foo", List.of("blurpool", "squeeze_excite")));
  }

  /**
   * Only a value the config quoted, and that YAML would read as a number or a boolean without the
   * quotes, is called quoted: a reviewer found the first version saying so of a plain {@code 1_000}
   * and of {@code 'tRuE'}, which YAML reads as strings either way.
   */
  @Test
  void onlyAQuotedNumberOrBooleanIsCalledQuoted() {
    for (String value : List.of("1_000", "'1_000'", "'tRuE'", "!!str 16", "yes")) {
      SurgeryConfigException e =
          assertThrows(
              SurgeryConfigException.class,
              () -> SurgeryConfig.parse(ENTRY + "    min_channels: " + value + "\n", "q.yaml"));
      assertFalse(e.getMessage().contains("quoted"), value + ": " + e.getMessage());
    }
    for (String value : List.of("'16'", "\"0x10\"", "'1e3'", "'.inf'")) {
      SurgeryConfigException e =
          assertThrows(
              SurgeryConfigException.class,
              () -> SurgeryConfig.parse(ENTRY + "    blur_first: " + value + "\n", "q.yaml"));
      assertTrue(e.getMessage().contains("is quoted, so YAML reads a string"), value + ": " + e);
    }
  }

  /** Another ending of the same word is a likely mistake too (a newcomer wrote the first). */
  @Test
  void anotherEndingOfANameIsSuggested() {
    List<String> names = List.of("blurpool", "squeeze_excite", "layer_freezing", "factorize");
    assertEquals("squeeze_excite", EditDistance.suggest("squeeze_excitation", names));
    assertEquals("layer_freezing", EditDistance.suggest("layer_freeze", names));
    assertEquals("factorize", EditDistance.suggest("factorization", names));
    assertEquals("squeeze_excite", EditDistance.suggest("squeeze", names));
    assertEquals(null, EditDistance.suggest("blur", names), "fewer than six letters in common");
    assertEquals(null, EditDistance.suggest("layer_norm", names));
    assertEquals(
        null,
        EditDistance.suggest("latent", List.of("latent_channels", "latent_features")),
        "two names share the stem: no guess");
  }
}
