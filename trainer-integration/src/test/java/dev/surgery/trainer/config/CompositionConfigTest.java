package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * A schedule whose entries cannot compose is refused when the file is read, at the later entry,
 * naming both entries with their positions; schedules that compose are read as written.
 */
class CompositionConfigTest {

  static final String FILE = "recipe.yaml";

  /** The refusal of a config with any number of problems. */
  static SurgeryConfigException refusedWholly(String yaml) {
    return assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.parse(yaml, FILE));
  }

  static ConfigProblem refused(String yaml) {
    SurgeryConfigException e = refusedWholly(yaml);
    assertEquals(1, e.getProblems().size(), e.getMessage());
    return e.getProblems().get(0);
  }

  @Test
  void weightStandardizationThenBlurPoolIsAccepted() {
    // The reported recipe: both now apply (BlurPool blurs the standardized convolutions).
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n"
                + "  - name: weight_standardization\n"
                + "    epoch: 0\n"
                + "  - name: blurpool\n"
                + "    epoch: 1\n",
            FILE);
    assertEquals(2, config.getAlgorithms().size());
  }

  @Test
  void aRepeatThatWouldChangeNothingNamesBothEntries() {
    ConfigProblem p =
        refused(
            "algorithms:\n"
                + "  - name: blurpool\n"
                + "    epoch: 0\n"
                + "  - name: weight_standardization\n"
                + "    epoch: 0\n"
                + "  - name: blurpool\n"
                + "    epoch: 2\n");
    assertEquals(6, p.line());
    assertEquals(5, p.column());
    assertTrue(p.message().contains("blurpool at epoch 2 (recipe.yaml:6:5)"), p.message());
    assertTrue(p.message().contains("blurpool at epoch 0 (recipe.yaml:2:5)"), p.message());
    assertTrue(p.message().contains("would change nothing"), p.message());
  }

  @Test
  void aRepeatWithTheSameIncludeRightAfterIsRefusedAndOneWithAnotherIsNot() {
    ConfigProblem p =
        refused(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 0, min_channels: 0, include: '01*'}\n"
                + "  - {name: blurpool, epoch: 1, min_channels: 0, include: '01*'}\n");
    assertEquals(3, p.line());
    assertTrue(p.message().contains("recipe.yaml:2:5"), p.message());
    assertTrue(p.message().contains("would change nothing"), p.message());
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 0, min_channels: 0, include: '01*'}\n"
                + "  - {name: blurpool, epoch: 1, min_channels: 0, include: '02*'}\n"
                + "  - {name: weight_standardization, epoch: 1}\n"
                + "  - {name: blurpool, epoch: 2, min_channels: 0, include: '02*'}\n",
            FILE);
    assertEquals(4, config.getAlgorithms().size());
  }

  @Test
  void aRepeatThatCanDoMoreIsAccepted() {
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 0, min_channels: 32}\n"
                + "  - {name: blurpool, epoch: 1, min_channels: 16}\n"
                + "  - {name: layer_freezing, epoch: 1}\n"
                + "  - {name: layer_freezing, epoch: 2}\n"
                + "  - {name: factorize, epoch: 0}\n"
                + "  - {name: squeeze_excite, epoch: 1}\n"
                + "  - {name: factorize, epoch: 2}\n",
            FILE);
    assertEquals(7, config.getAlgorithms().size());
  }

  @Test
  void layerFreezingTwiceAtTheSameEpochIsRefused() {
    ConfigProblem p =
        refused(
            "algorithms:\n"
                + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.1}\n"
                + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.2}\n");
    assertEquals(3, p.line());
    assertTrue(p.message().contains("recipe.yaml:2:5"), p.message());
    // An entry between them that adds layers (factorize, squeeze_excite) lets the same fraction
    // reach further; one that keeps the count does not.
    refused(
        "algorithms:\n"
            + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.1}\n"
            + "  - {name: weight_standardization, epoch: 2}\n"
            + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.2}\n");
    SurgeryConfig accepted =
        SurgeryConfig.parse(
            "algorithms:\n"
                + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.1}\n"
                + "  - {name: factorize, epoch: 2}\n"
                + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.2}\n",
            FILE);
    assertEquals(3, accepted.getAlgorithms().size());
    // An entry with a problem of its own declared after both cannot run between them (entries of
    // one epoch run in declaration order): refused beside it, all at once.
    SurgeryConfigException both =
        refusedWholly(
            "algorithms:\n"
                + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.1}\n"
                + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.2}\n"
                + "  - {name: blurpool, epoch: -1}\n");
    assertEquals(2, both.getProblems().size(), both.getMessage());
    assertEquals(3, both.getProblems().get(0).line(), both.getMessage());
    // Declared between them, it may turn out to be a factorize at that epoch: only its problem.
    SurgeryConfigException between =
        refusedWholly(
            "algorithms:\n"
                + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.1}\n"
                + "  - {name: factorize, epoch: -1}\n"
                + "  - {name: layer_freezing, epoch: 2, freeze_start: 0.2}\n");
    assertEquals(1, between.getProblems().size(), between.getMessage());
    assertEquals(3, between.getProblems().get(0).line(), between.getMessage());
  }

  @Test
  void aRepeatIsRefusedAtTheEntryThatRunsSecond() {
    // Declared first, but applied second: the problem sits at its own entry.
    ConfigProblem p =
        refused(
            "algorithms:\n"
                + "  - name: ghost_batchnorm\n"
                + "    epoch: 2\n"
                + "  - name: ghost_batchnorm\n"
                + "    epoch: 1\n");
    assertEquals(2, p.line());
    assertEquals(5, p.column());
    assertTrue(
        p.message()
            .startsWith(
                "algorithms entry 1 (ghost_batchnorm at epoch 2 (recipe.yaml:2:5)) cannot follow"
                    + " entry 2 (ghost_batchnorm at epoch 1 (recipe.yaml:4:5))"),
        p.message());
    assertTrue(p.message().contains("change nothing"), p.message());
  }

  @Test
  void stochasticDepthComposesWithTheAlgorithmsThatChangeItsUnits() {
    SurgeryConfig config =
        SurgeryConfig.parse(
            "algorithms:\n"
                + "  - {name: ghost_batchnorm, epoch: 0}\n"
                + "  - {name: squeeze_excite, epoch: 0}\n"
                + "  - {name: factorize, epoch: 1}\n"
                + "  - {name: stochastic_depth, epoch: 2}\n",
            FILE);
    assertEquals(4, config.getAlgorithms().size());
  }

  /**
   * Two step entries with the same include meet in an order known only during training: alone they
   * are refused in either order; with another entry in the schedule (which may run between them and
   * move blocks into the patterns' reach) they are not. An entry refused for a problem of its own
   * may be any entry once fixed, so it counts as one that may run between: a pair that conflicts
   * whatever runs between (no include) is still refused beside its problem, all at once.
   */
  @Test
  void stepEntriesWithTheSameIncludeAreRefusedUnlessAnotherEntryMayRunBetween() {
    String pair =
        "algorithms:\n"
            + "  - {name: ghost_batchnorm, step: 10, include: ['**/01BatchNorm']}\n"
            + "  - {name: ghost_batchnorm, step: 20, include: ['**/01BatchNorm']}\n";
    ConfigProblem p = refused(pair);
    assertEquals(3, p.line());
    assertTrue(p.message().contains("whichever runs first"), p.message());
    assertTrue(p.message().contains("(recipe.yaml:2:5)"), p.message());
    assertEquals(
        3,
        SurgeryConfig.parse(pair + "  - {name: stochastic_depth, epoch: 1}\n", FILE)
            .getAlgorithms()
            .size());
    String bad = "  - {name: stochastic_depth, epoch: -1}\n";
    ConfigProblem own = refused(pair + bad);
    assertTrue(own.message().startsWith("epoch must not be negative"), own.message());
    SurgeryConfigException both =
        refusedWholly(
            "algorithms:\n"
                + "  - {name: ghost_batchnorm, step: 10}\n"
                + bad
                + "  - {name: ghost_batchnorm, step: 20}\n");
    assertEquals(2, both.getProblems().size(), both.getMessage());
    assertEquals(3, both.getProblems().get(0).line(), both.getMessage());
    assertEquals(4, both.getProblems().get(1).line(), both.getMessage());
    assertTrue(both.getProblems().get(1).message().contains("whichever runs first"));
  }

  /**
   * Epoch entries too: a repeat of blurpool with nothing new to blur is refused beside another
   * entry's problem, wherever that entry would run once fixed; a repeat with the same include is
   * refused only without an entry that may run between.
   */
  @Test
  void anEpochRepeatIsRefusedBesideAnotherEntrysProblemWhenItHoldsWhateverThatEntryIs() {
    SurgeryConfigException e =
        refusedWholly(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 0}\n"
                + "  - {name: squeeze_excite, epoch: 1, min_channels: -3}\n"
                + "  - {name: blurpool, epoch: 2}\n");
    assertEquals(2, e.getProblems().size(), e.getMessage());
    assertEquals(3, e.getProblems().get(0).line(), e.getMessage());
    assertTrue(
        e.getProblems().get(1).message().contains("would change nothing")
            && e.getProblems().get(1).line() == 4,
        e.getMessage());
    ConfigProblem own =
        refused(
            "algorithms:\n"
                + "  - {name: blurpool, epoch: 0, include: ['01Conv2d']}\n"
                + "  - {name: squeeze_excite, epoch: 1, min_channels: -3}\n"
                + "  - {name: blurpool, epoch: 2, include: ['01Conv2d']}\n");
    assertEquals(3, own.line(), own.message());
    // A weight_standardization repeat is refused unless a factorize entry runs between: beside an
    // entry with a problem (which may be a factorize entry once fixed), it is not.
    String repeat =
        "algorithms:\n"
            + "  - {name: weight_standardization, epoch: 0}\n"
            + "  - {name: %s, epoch: 1%s}\n"
            + "  - {name: weight_standardization, epoch: 2}\n";
    assertTrue(
        refused(String.format(repeat, "blurpool", "")).message().contains("would change nothing"));
    ConfigProblem onlyItsOwn = refused(String.format(repeat, "factorize", ", min_channels: 0"));
    assertEquals(3, onlyItsOwn.line(), onlyItsOwn.message());
  }
}
