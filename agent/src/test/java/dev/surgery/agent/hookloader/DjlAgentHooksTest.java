package dev.surgery.agent.hookloader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent's hooks before any trainer: the config check that {@code premain} (or the first
 * trainer) refuses a bad config with, and the notice for a program whose SLF4J shows nothing.
 */
class DjlAgentHooksTest {

  @TempDir Path dir;

  private Path config(String yaml) throws IOException {
    return Files.writeString(dir.resolve("surgery.yaml"), yaml);
  }

  @Test
  void aValidConfigHasNoProblems() throws IOException {
    DjlAgentHooks hooks =
        new DjlAgentHooks(config("algorithms:\n  - name: blurpool\n    epoch: 1\n"), List.of());
    assertEquals(List.of(), hooks.prepare());
  }

  /** Each problem as {@code file:line:column: message}, checked once and then answered as is. */
  @Test
  void aBadConfigsProblemsNameTheFileAndLineOnceForAll() throws IOException {
    Path file = config("algorithms:\n  - name: blurpol\n    epoch: 1\n");
    DjlAgentHooks hooks = new DjlAgentHooks(file, List.of());
    List<String> problems = hooks.prepare();
    assertEquals(1, problems.size(), problems.toString());
    assertTrue(problems.get(0).startsWith(file + ":2:"), problems.get(0));
    assertTrue(problems.get(0).contains("blurpol"), problems.get(0));
    assertSame(problems, hooks.prepare(), "checked once: the same answer, not a second check");
  }

  @Test
  void anUnreadableExtensionJarIsAnExtensionsProblem() throws IOException {
    Path missing = dir.resolve("missing-plugin.jar");
    DjlAgentHooks hooks =
        new DjlAgentHooks(
            config("algorithms:\n  - name: blurpool\n    epoch: 1\n"), List.of(missing));
    List<String> problems = hooks.prepare();
    assertEquals(1, problems.size(), problems.toString());
    assertTrue(problems.get(0).startsWith("extensions: cannot read "), problems.get(0));
    assertTrue(problems.get(0).contains("missing-plugin.jar"), problems.get(0));
  }

  /**
   * The notice says why nothing shows, what fixes it (replacing slf4j-nop, or adding a binding),
   * and where the surgery log is, or how to ask for one.
   */
  @Test
  void theSilenceNoticeNamesTheFixAndTheSurgeryLog() {
    Path cfg = Path.of("conf", "surgery.yaml");
    String nop = "the program's SLF4J binding is slf4j-nop (it discards every line)";
    String none = "the program's SLF4J has no binding (it logs nowhere)";
    String withoutReport = DjlAgentHooks.silenceNotice(nop, cfg, null);
    assertTrue(withoutReport.startsWith(nop + ", so the surgery's own lines"), withoutReport);
    assertTrue(withoutReport.contains("Replace slf4j-nop by a binding that prints"), withoutReport);
    assertTrue(
        withoutReport.endsWith("set 'report: <file>' in " + cfg + " for the surgery log"),
        withoutReport);
    String withReport = DjlAgentHooks.silenceNotice(none, cfg, Path.of("log.yaml"));
    assertTrue(withReport.startsWith(none), withReport);
    assertTrue(withReport.contains("Add a binding (slf4j-simple, logback)"), withReport);
    assertFalse(withReport.contains("Replace slf4j-nop"), withReport);
    assertTrue(withReport.endsWith("; the surgery log is written to log.yaml"), withReport);
  }
}
