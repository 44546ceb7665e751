package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The report path is checked as the file system will resolve it when the report is written: a
 * symbolic link before '..' is followed first. Read as text, such a path once passed the check and
 * the report overwrote the config file itself.
 */
class ReportPathTest {

  @TempDir Path dir;

  private SurgeryConfigException refused(Path config, String report) throws Exception {
    Files.writeString(
        config, "report: '" + report + "'\nalgorithms:\n  - name: blurpool\n    epoch: 1\n");
    return assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.load(config));
  }

  private static String message(SurgeryConfigException e) {
    List<ConfigProblem> problems = e.getProblems();
    assertEquals(1, problems.size(), problems.toString());
    assertEquals(1, problems.get(0).line());
    return problems.get(0).message();
  }

  @Test
  void aLinkBeforeDotDotThatLeadsToTheConfigIsRefused() throws Exception {
    Path deep = Files.createDirectories(dir.resolve("deep/inner"));
    Path sub = Files.createDirectories(dir.resolve("sub"));
    Files.createSymbolicLink(sub.resolve("link"), deep);
    Path config = dir.resolve("deep/self.yaml");
    // As text sub/link/../self.yaml is sub/self.yaml; the file system reads deep/self.yaml.
    String m = message(refused(config, sub.resolve("link/../self.yaml").toString()));
    assertTrue(m.startsWith("report names the config file itself"), m);
  }

  @Test
  void dotDotAfterAMissingDirectoryIsRefused() throws Exception {
    String m =
        message(refused(dir.resolve("c.yaml"), dir.resolve("missing/../log.json").toString()));
    assertTrue(m.endsWith("it goes up ('..') from a directory that does not exist"), m);
  }

  @Test
  void aPathEndingWithASlashNamesADirectory() throws Exception {
    String m = message(refused(dir.resolve("c.yaml"), dir.resolve("newdir") + "/"));
    assertTrue(m.startsWith("report names a directory ("), m);
    assertTrue(m.endsWith("newdir/surgery-log.json"), m);
  }

  @Test
  void aLinkThatLeadsElsewhereIsAccepted() throws Exception {
    Path deep = Files.createDirectories(dir.resolve("deep/inner"));
    Path sub = Files.createDirectories(dir.resolve("sub"));
    Files.createSymbolicLink(sub.resolve("link"), deep);
    Path config = dir.resolve("c.yaml");
    Files.writeString(
        config,
        "report: '"
            + sub.resolve("link/../log.json")
            + "'\nalgorithms:\n  - name: blurpool\n    epoch: 1\n");
    SurgeryConfig loaded = SurgeryConfig.load(config);
    assertTrue(loaded.getReportPath().isPresent());
  }

  /**
   * The writer renames its temporary file over the path as written: a link there is replaced, not
   * written through. A link named as the report that points at the config leaves the config as it
   * is, so it is accepted; the check once followed it and refused it as the config.
   */
  @Test
  void aLinkNamedAsTheReportIsReplacedNotFollowed() throws Exception {
    Path config = dir.resolve("c.yaml");
    Files.createSymbolicLink(dir.resolve("r.json"), config);
    Files.writeString(
        config,
        "report: '" + dir.resolve("r.json") + "'\nalgorithms:\n  - name: blurpool\n    epoch: 1\n");
    assertTrue(SurgeryConfig.load(config).getReportPath().isPresent());
  }

  @Test
  void aPathThroughAFileOrALinkToNothingOrEndingInADotIsRefused() throws Exception {
    Path config = dir.resolve("c.yaml");
    String throughFile = message(refused(config, dir.resolve("c.yaml/../x.json").toString()));
    assertTrue(throughFile.endsWith("c.yaml is not a directory"), throughFile);
    Files.createSymbolicLink(dir.resolve("dl"), dir.resolve("nowhere"));
    String dangling = message(refused(config, dir.resolve("dl/log.json").toString()));
    assertTrue(dangling.endsWith("dl is a link to nothing"), dangling);
    String dot = message(refused(config, dir.resolve("newdir") + "/."));
    assertTrue(dot.startsWith("report names a directory ("), dot);
  }

  /**
   * The listener's builder took any report path, where the config file refuses one the log could
   * not be written to: the log was lost after the whole run, with a warning (an outside probe).
   */
  @Test
  void theListenersBuilderChecksTheReportPathAsTheFileDoes() throws Exception {
    var builder = dev.surgery.trainer.SurgeryListener.builder();
    IllegalArgumentException directory =
        assertThrows(IllegalArgumentException.class, () -> builder.optReportPath(dir));
    assertTrue(
        directory.getMessage().startsWith("report names the directory"), directory.getMessage());
    Path longName = dir.resolve("x".repeat(300) + ".json");
    IllegalArgumentException tooLong =
        assertThrows(IllegalArgumentException.class, () -> builder.optReportPath(longName));
    assertTrue(tooLong.getMessage().contains("over the 255"), tooLong.getMessage());
    Path file = Files.writeString(dir.resolve("a-file"), "");
    IllegalArgumentException underAFile =
        assertThrows(
            IllegalArgumentException.class, () -> builder.optReportPath(file.resolve("log.json")));
    assertTrue(underAFile.getMessage().contains("is not a directory"), underAFile.getMessage());
    builder.optReportPath(dir.resolve("new/log.json")); // a directory the writer creates: fine
    IllegalArgumentException epochs =
        assertThrows(IllegalArgumentException.class, () -> builder.optTotalEpochs(2_000_000));
    assertTrue(epochs.getMessage().contains("[0, 1000000]"), epochs.getMessage());
    assertThrows(IllegalArgumentException.class, () -> builder.optTotalSteps(1_000_000_000_001L));
  }
}
