package dev.surgery.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.SurgeryConfigException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent checks its config path in {@code premain} with code of its own (it must not load the
 * library's classes there), and the library's reader checks it again: the two must tell a user the
 * same facts about one bad path, whichever reads it, so that their words cannot drift apart.
 */
class ConfigPathWordsTest {

  @TempDir Path dir;

  /** The agent's one problem line for a path, without its {@code path:0:0: } prefix. */
  private static String agentSays(Path path) {
    List<String> problems = SurgeryAgent.checkFile(path.toString());
    assertEquals(1, problems.size(), problems.toString());
    String line = problems.get(0);
    assertTrue(line.startsWith(path + ":0:0: "), line);
    return line.substring((path + ":0:0: ").length());
  }

  /** The library reader's message for the same path. */
  private static String librarySays(Path path) {
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.load(path));
    assertEquals(1, e.getProblems().size(), e.getMessage());
    return e.getMessage();
  }

  private static void bothSay(Path path, String... facts) {
    String agent = agentSays(path);
    String library = librarySays(path);
    for (String fact : facts) {
      assertTrue(agent.toLowerCase(Locale.ROOT).contains(fact), "agent: " + agent);
      assertTrue(library.toLowerCase(Locale.ROOT).contains(fact), "library: " + library);
    }
  }

  @Test
  void aMissingFile() {
    bothSay(dir.resolve("absent.yaml"), "not found");
  }

  @Test
  void aDirectory() {
    bothSay(dir, "is a directory");
  }

  @Test
  void aChainOfLinksEndingAtAMissingFileNamesThatFile() throws Exception {
    Path sub = Files.createDirectories(dir.resolve("sub"));
    Path last = Files.createSymbolicLink(sub.resolve("last.yaml"), Path.of("gone.yaml"));
    Path first = Files.createSymbolicLink(dir.resolve("first.yaml"), dir.relativize(last));
    String gone = sub.resolve("gone.yaml").toAbsolutePath().normalize().toString();
    bothSay(first, "symbolic link to a missing file", gone.toLowerCase(Locale.ROOT));
  }

  /**
   * Linux follows at most 40 symbolic links in a path (path_resolution(7)) and answers ELOOP past
   * them: a chain of 40 links to a missing file names that file, and one of 41 is a loop to the
   * system, so both readers call it one.
   */
  @Test
  void aChainLongerThanTheSystemFollowsIsALoop() throws Exception {
    Path gone = dir.resolve("gone.yaml");
    Path first = chainOfLinks(dir.resolve("forty"), 40, gone);
    bothSay(first, "symbolic link to a missing file", gone.toString().toLowerCase(Locale.ROOT));
    bothSay(chainOfLinks(dir.resolve("forty-one"), 41, gone), "symbolic link", "loop");
  }

  /** {@code count} links in a new folder, each to the next, the last to {@code end}; the first. */
  private static Path chainOfLinks(Path folder, int count, Path end) throws Exception {
    Files.createDirectories(folder);
    Path next = end;
    for (int i = count; i >= 1; i--) {
      next = Files.createSymbolicLink(folder.resolve("link" + i + ".yaml"), next);
    }
    return next;
  }

  @Test
  void aLoopOfLinks() throws Exception {
    Path a = dir.resolve("a.yaml");
    Path b = dir.resolve("b.yaml");
    Files.createSymbolicLink(a, b);
    Files.createSymbolicLink(b, a);
    bothSay(a, "symbolic link", "loop");
  }
}
