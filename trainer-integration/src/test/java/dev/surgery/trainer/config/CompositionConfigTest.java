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

  static ConfigProblem refused(String yaml) {
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.parse(yaml, FILE));
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
}
