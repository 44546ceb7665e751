package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A {@code report} path that could never take the report is refused with the config, at the value's
 * position, instead of the report being lost (or the config overwritten) after training.
 */
class ReportPathTest {

  @TempDir Path dir;

  @BeforeAll
  static void register() throws Exception {
    Class.forName(SurgeryConfigTest.class.getName()); // registers c_plain
  }

  private static String config(String report) {
    return "algorithms:\n  - name: c_plain\n    epoch: 1\nreport: " + report + "\n";
  }

  /** The single problem of a config file, checked to sit at the report value (line 4, col 9). */
  private static ConfigProblem reportProblem(Path file) {
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.load(file));
    List<ConfigProblem> problems = e.getProblems();
    assertEquals(1, problems.size(), e.getMessage());
    ConfigProblem p = problems.get(0);
    assertEquals(file + ":4:9", p.file() + ":" + p.line() + ":" + p.column(), e.getMessage());
    return p;
  }

  @Test
  void refusesTheConfigFileItself() throws Exception {
    Path file = dir.resolve("surgery.yaml");
    Files.writeString(file, config(file.toString()));
    String before = Files.readString(file);
    ConfigProblem p = reportProblem(file);
    assertTrue(p.message().startsWith("report names the config file itself"), p.message());
    assertEquals(before, Files.readString(file));
  }

  @Test
  void refusesTheConfigFileThroughAnotherSpelling() throws Exception {
    Path sub = Files.createDirectories(dir.resolve("sub"));
    Path file = sub.resolve("surgery.yaml");
    Files.writeString(file, config(dir.resolve("sub/../sub/surgery.yaml").toString()));
    ConfigProblem p = reportProblem(file);
    assertTrue(p.message().startsWith("report names the config file itself"), p.message());
  }

  @Test
  void refusesADirectory() throws Exception {
    Path file = dir.resolve("surgery.yaml");
    Files.writeString(file, config(dir.toString()));
    ConfigProblem p = reportProblem(file);
    assertTrue(p.message().startsWith("report names the directory " + dir), p.message());
    assertTrue(p.message().contains(dir.resolve("surgery-log.json").toString()), p.message());
  }

  @Test
  void refusesAPathWhoseDirectoryCannotBeCreated() throws Exception {
    // A regular file where a directory should be: refused even for root, unlike permission bits.
    Path blocker = Files.writeString(dir.resolve("plain-file"), "x");
    Path file = dir.resolve("surgery.yaml");
    Files.writeString(file, config(blocker.resolve("reports/r.json").toString()));
    ConfigProblem p = reportProblem(file);
    assertTrue(p.message().contains(blocker + " is not a directory"), p.message());
  }

  @Test
  void acceptsAFileInADirectoryStillToBeCreated() throws Exception {
    Path report = dir.resolve("out/reports/r.json");
    Path file = dir.resolve("surgery.yaml");
    Files.writeString(file, config(report.toString()));
    assertEquals(report, SurgeryConfig.load(file).getReportPath().orElseThrow());
    assertFalse(Files.exists(dir.resolve("out")), "the check creates nothing");
    try (var left = Files.list(dir)) {
      assertEquals(List.of(file), left.toList(), "the check leaves no probe behind");
    }
  }

  @Test
  void refusesADirectoryInConfigTextWithoutAFile() {
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () -> SurgeryConfig.parse(config(dir.toString()), "text.yaml"));
    assertEquals(
        "text.yaml:4:9: report names the directory " + dir,
        e.getProblems().get(0).toString().replaceAll(";.*", ""));
  }
}
