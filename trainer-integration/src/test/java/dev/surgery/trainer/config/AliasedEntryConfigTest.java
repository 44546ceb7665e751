package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * An entry written as an alias ({@code - *e}) is an entry of its own at the alias: its source (in
 * messages, {@link ScheduledAlgorithm#describe()}, the surgery log) and a problem with it as a
 * whole name the alias's line and column, while a problem inside the mapping it repeats is reported
 * where the anchor writes it, once. Scalars an alias repeats were placed at the alias already
 * ({@link SurgeryConfigTest}).
 */
class AliasedEntryConfigTest {

  static final String FILE = "x.yaml";

  private static List<String> problems(String yaml) {
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.parse(yaml, FILE));
    return e.getProblems().stream().map(ConfigProblem::toString).toList();
  }

  /** The docs' promise: a repeat is refused at the later entry, naming both where they are. */
  @Test
  void aRepeatedEntryWrittenAsAnAliasIsRefusedAtTheAlias() {
    List<String> problems = problems("algorithms:\n  - &e {name: blurpool, epoch: 1}\n  - *e\n");
    assertEquals(1, problems.size(), problems.toString());
    assertTrue(
        problems
            .get(0)
            .startsWith(
                "x.yaml:3:5: algorithms entry 2 (blurpool at epoch 1 (x.yaml:3:5)) cannot follow"
                    + " entry 1 (blurpool at epoch 1 (x.yaml:2:5))"),
        problems.toString());
  }

  /** An explicit repeat after the alias is refused at its own place too, naming entry 1's. */
  @Test
  void anAliasFollowedByAnExplicitRepeatNamesEachEntryWhereItIsWritten() {
    List<String> problems =
        problems(
            "algorithms:\n  - &e {name: blurpool, epoch: 1}\n  - *e\n"
                + "  - {name: blurpool, epoch: 1}\n");
    assertEquals(2, problems.size(), problems.toString());
    assertTrue(
        problems
            .get(0)
            .startsWith("x.yaml:3:5: algorithms entry 2 (blurpool at epoch 1 (x.yaml:3:5))"),
        problems.toString());
    assertTrue(
        problems
            .get(1)
            .startsWith(
                "x.yaml:4:5: algorithms entry 3 (blurpool at epoch 1 (x.yaml:4:5)) cannot follow"
                    + " entry 1 (blurpool at epoch 1 (x.yaml:2:5))"),
        problems.toString());
  }

  /**
   * An accepted alias entry (repeating entries are not checked for composition) has the alias as
   * its source, in a block list with an explicit entry after it as well as in a flow one; the
   * anchor's entry and the explicit one keep theirs.
   */
  @Test
  void anEntryWrittenAsAnAliasHasTheAliasAsItsSource() {
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n  - &e\n    name: blurpool\n    every: 2ep\n  - *e\n"
                + "  - {name: ghost_batchnorm, epoch: 1}\n  - *e\n",
            FILE);
    List<ScheduledAlgorithm> entries = config.getAlgorithms();
    assertEquals(
        List.of("x.yaml:2:5", "x.yaml:5:5", "x.yaml:6:5", "x.yaml:7:5"),
        entries.stream().map(ScheduledAlgorithm::source).toList());
    assertEquals("blurpool every 2ep (x.yaml:5:5)", entries.get(1).describe());
    assertEquals(
        entries.get(0).algorithm().hyperparameters(), entries.get(3).algorithm().hyperparameters());

    SurgeryConfig flow =
        SurgeryConfig.parse("algorithms: [&e {name: blurpool, every: 2ep}, *e]\n", FILE);
    assertEquals(
        List.of("x.yaml:1:14", "x.yaml:1:47"),
        flow.getAlgorithms().stream().map(ScheduledAlgorithm::source).toList());
  }

  /**
   * A problem inside the mapping an alias repeats is fixed where the anchor writes it: reported
   * there, once, not once per use of the mapping.
   */
  @Test
  void aProblemInsideAnAliasedEntryIsReportedOnceWhereTheAnchorWritesIt() {
    List<String> value =
        problems("algorithms:\n  - &e {name: blurpool, epoch: 1, min_channels: -1}\n  - *e\n");
    assertEquals(1, value.size(), value.toString());
    assertTrue(
        value.get(0).startsWith("x.yaml:2:49: blurpool: min_channels must be >= 0"),
        value.toString());

    // The entry it repeats is also a repeat that would change nothing: a problem of the second
    // entry, at the alias, reported with the first at once (every problem is).
    List<String> never =
        problems("total_epochs: 2\nalgorithms:\n  - &e {name: blurpool, epoch: 5}\n  - *e\n");
    assertEquals(2, never.size(), never.toString());
    assertEquals(
        "x.yaml:3:32: epoch 5 is after the last epoch (total_epochs: 2); this entry would"
            + " never run",
        never.get(0));
    assertTrue(
        never
            .get(1)
            .startsWith(
                "x.yaml:4:5: algorithms entry 2 (blurpool at epoch 5 (x.yaml:4:5))"
                    + " cannot follow entry 1"),
        never.toString());
  }

  /** A problem with the entry as a whole names each entry at its own place. */
  @Test
  void aProblemWithAnAliasedEntryAsAWholeIsReportedAtTheAlias() {
    List<String> problems = problems("algorithms:\n  - &e {epoch: 1}\n  - *e\n");
    assertEquals(2, problems.size(), problems.toString());
    assertTrue(
        problems.get(0).startsWith("x.yaml:2:5: algorithms entry 1 has no 'name'"),
        problems.toString());
    assertTrue(
        problems.get(1).startsWith("x.yaml:3:5: algorithms entry 2 has no 'name'"),
        problems.toString());

    // A list an alias repeats as a value: its problem as a whole is at the alias too.
    List<String> empty =
        problems(
            "algorithms:\n  - name: blurpool\n    epoch: 1\n    include: &p []\n"
                + "  - name: ghost_batchnorm\n    epoch: 1\n    include: *p\n");
    assertEquals(2, empty.size(), empty.toString());
    assertTrue(
        empty.get(0).startsWith("x.yaml:4:14: blurpool: an empty include list"), empty.toString());
    assertTrue(
        empty.get(1).startsWith("x.yaml:7:14: ghost_batchnorm: an empty include list"),
        empty.toString());
  }

  /**
   * A merge key is still refused at the key, the mapping it merges unmerged; a tag on an aliased
   * mapping is reported once, where it is written.
   */
  @Test
  void mergesAndTagsOfAliasedEntriesAreReportedWhereTheyAreWritten() {
    List<String> merge =
        problems(
            "algorithms:\n  - &blur {name: blurpool, epoch: 1}\n  - <<: *blur\n"
                + "    min_channels: 4\n");
    assertEquals(2, merge.size(), merge.toString());
    assertTrue(
        merge.get(0).startsWith("x.yaml:3:5: '<<' is YAML 1.1's merge key"), merge.toString());
    assertTrue(
        merge.get(1).startsWith("x.yaml:3:5: algorithms entry 2 has no 'name'"), merge.toString());

    List<String> tag = problems("algorithms:\n  - &e !!omap {name: blurpool, epoch: 1}\n  - *e\n");
    assertEquals(2, tag.size(), tag.toString());
    assertTrue(tag.get(0).startsWith("x.yaml:2:5: the tag !!omap is not allowed"), tag.toString());
    // (and the repeat itself, at the alias: see aProblemInsideAnAliasedEntryIsReportedOnce...)
    assertTrue(tag.get(1).startsWith("x.yaml:3:5: algorithms entry 2"), tag.toString());
  }

  /**
   * A pattern given through an alias whose name is as long as the pattern's text: the bad character
   * was placed inside the alias's name (an outside fuzzer); now the alias is named, with the
   * character's place in the pattern.
   */
  @Test
  void aBadPatternGivenThroughAnAliasIsNamedAtTheAliasWithItsCharacter() {
    List<String> problems =
        problems(
            "total_epochs: 2\nx: &ab a{\nalgorithms:\n"
                + "  - {name: blurpool, epoch: 1, include: [*ab]}\n");
    assertTrue(
        problems.stream()
            .anyMatch(
                p ->
                    p.startsWith("x.yaml:4:42: blurpool: invalid block pattern 'a{' at character 2")
                        && p.endsWith("(character 2 of the pattern)")),
        problems.toString());
  }

  /** YAML 1.2 has no merge: a plain {@code <<} value is the string, read as the key expects. */
  @Test
  void aPlainMergeSignAsAValueIsAStringWhileAsAKeyItIsRefused() {
    assertEquals(
        List.of("x.yaml:1:11: on_error must be 'fail' or 'skip', got '<<'"),
        problems("on_error: <<\nalgorithms: []\n"));
    List<String> key = problems("algorithms:\n  - {name: blurpool, epoch: 1, <<: 2}\n");
    assertEquals(1, key.size(), key.toString());
    assertTrue(key.get(0).contains("'<<' is YAML 1.1's merge key"), key.toString());
    // An anchored << key aliased as a value reads as the same string written out does.
    List<String> aliased =
        problems("algorithms:\n  - {name: blurpool, epoch: 1, &m <<: 2, include: *m}\n");
    List<String> written =
        problems("algorithms:\n  - {name: blurpool, epoch: 1, <<: 2, include: <<}\n");
    assertEquals(written, aliased);
  }

  /** A pattern problem of an entry whose name cannot be read names the entry (it said "null:"). */
  @Test
  void aPatternProblemOfAnEntryWithoutAReadableNameNamesTheEntry() {
    List<String> problems = problems("algorithms:\n  - {name: 3, epoch: 1, include: ['x{']}\n");
    assertTrue(
        problems.stream().anyMatch(p -> p.contains(": algorithms entry 1: invalid block pattern")),
        problems.toString());
    assertTrue(problems.stream().noneMatch(p -> p.contains("null:")), problems.toString());
  }
}
