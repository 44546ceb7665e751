package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * "Every problem is collected and reported at once" (configuration.md): an entry whose schedule
 * cannot run in the planned length is reported also when the same entry has another problem, so
 * that fixing the first problem does not reveal the second only at the next launch (an outside
 * probe of DJL's examples met it with a layer_freezing entry).
 */
class AllProblemsAtOnceConfigTest {

  private static List<String> problems(String yaml) {
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.parse(yaml, "x.yaml"));
    return e.getProblems().stream().map(ConfigProblem::toString).toList();
  }

  /**
   * An exception that names no problem would refuse a config without saying where (a reviewer of
   * the Javadoc: "not empty" was not checked).
   */
  @Test
  void anExceptionWithoutAProblemIsRefused() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> new SurgeryConfigException(List.of()));
    assertTrue(e.getMessage().contains("at least one problem"), e.getMessage());
  }

  @Test
  void anEpochAfterTheLastIsReportedBesideABadHyperparameterOfTheSameEntry() {
    List<String> problems =
        problems(
            "algorithms:\n  - name: layer_freezing\n    epoch: 5\n    freeze_start: 1.5\n"
                + "total_epochs: 2\n");
    // problems are listed in the order of their places in the file
    assertEquals(
        List.of(
            "x.yaml:3:12: epoch 5 is after the last epoch (total_epochs: 2); this entry would"
                + " never run",
            "x.yaml:4:19: layer_freezing: freeze_start must be in [0, 1], got 1.5 (freeze_start:"
                + " fraction of training after which layers freeze)"),
        problems);
  }

  @Test
  void aStepAfterTheLastIsReportedBesideAnUnknownKeyOfTheSameEntry() {
    List<String> problems =
        problems("algorithms:\n  - {name: blurpool, step: 50, min_chanels: 0}\ntotal_steps: 10\n");
    assertEquals(2, problems.size(), problems.toString());
    assertTrue(
        problems.contains(
            "x.yaml:2:28: step 50 is after the last step (total_steps: 10); this entry would never"
                + " run"),
        problems.toString());
  }

  @Test
  void aDurationWithoutPlannedLengthIsReportedBesideABadValueOfTheSameEntry() {
    List<String> problems =
        problems("algorithms:\n  - {name: blurpool, at: 0.5dur, min_channels: -1}\n");
    assertEquals(2, problems.size(), problems.toString());
    assertTrue(
        problems.contains(
            "x.yaml:2:26: '0.5dur' is a fraction of the planned training, whose length this file"
                + " does not give: set 'total_epochs: <n>' or 'total_steps: <n>' at the top level,"
                + " or use '<n>ep' or '<n>ba'"),
        problems.toString());
  }

  @Test
  void anEntryWithoutProblemsIsStillReportedOnce() {
    assertEquals(
        List.of(
            "x.yaml:3:12: epoch 5 is after the last epoch (total_epochs: 2); this entry would"
                + " never run"),
        problems("algorithms:\n  - name: layer_freezing\n    epoch: 5\ntotal_epochs: 2\n"));
  }
}
