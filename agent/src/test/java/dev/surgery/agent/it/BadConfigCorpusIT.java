package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CnnApp;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Runs every file of the bad-input corpus ({@code
 * trainer-integration/src/test/resources/bad-configs}, with the positions and message fragments of
 * its {@code expectations.tsv}) through the agent, each in its own JVM: status 2, one {@code
 * surgery-agent: <file>:<line>:<column>: <message>} line per problem, the program's {@code main}
 * never ran, and nothing but agent lines on stderr (no stack trace). The JVM stops in {@code
 * premain} before DJL starts, so each run is short; two run at a time.
 *
 * <p>File-level problems that cannot live in git are made here: a dangling symbolic link, a file
 * over the size limit and a device ({@link BadConfigIT} has the directory, the symbolic-link loop
 * and the missing file). An unreadable file is checked in {@code SurgeryAgentTest}: the build runs
 * as root, which reads mode-000 files, so only a seam can make one.
 */
class BadConfigCorpusIT {

  private static final int MIN_CORPUS_SIZE = 30;

  private static ExecutorService pool;

  /** One expected problem. */
  record Expected(int line, int column, String fragment) {}

  @BeforeAll
  static void startPool() {
    pool = Executors.newFixedThreadPool(2);
  }

  @AfterAll
  static void stopPool() {
    pool.shutdownNow();
  }

  static Path corpusDir() {
    // failsafe runs in the module directory; the corpus lives next door in trainer-integration.
    Path dir =
        Path.of(
                System.getProperty(
                    "surgery.it.badConfigs",
                    "../trainer-integration/src/test/resources/bad-configs"))
            .toAbsolutePath()
            .normalize();
    if (!Files.isRegularFile(dir.resolve("expectations.tsv"))) {
      throw new AssertionError("bad-input corpus not found at " + dir);
    }
    return dir;
  }

  static Map<String, List<Expected>> expectations() throws IOException {
    Map<String, List<Expected>> byFile = new LinkedHashMap<>();
    for (String line :
        Files.readAllLines(corpusDir().resolve("expectations.tsv"), StandardCharsets.UTF_8)) {
      if (line.isBlank() || line.startsWith("#")) {
        continue;
      }
      String[] cols = line.split("\t", -1);
      byFile
          .computeIfAbsent(cols[0], k -> new ArrayList<>())
          .add(new Expected(Integer.parseInt(cols[1]), Integer.parseInt(cols[2]), cols[3]));
    }
    return byFile;
  }

  @TestFactory
  Stream<DynamicTest> everyCorpusFileStopsTheJvmBeforeMain() throws Exception {
    Map<String, List<Expected>> expectations = expectations();
    assertTrue(expectations.size() >= MIN_CORPUS_SIZE, "corpus has " + expectations.size());
    Path dir = AgentConfigs.dir("bad-config-corpus");
    Map<String, Future<ForkedJvm.Result>> runs = new LinkedHashMap<>();
    for (String name : expectations.keySet()) {
      Files.copy(corpusDir().resolve(name), dir.resolve(name), StandardCopyOption.REPLACE_EXISTING);
      runs.put(name, pool.submit(() -> runAgent(dir, name)));
    }
    return runs.entrySet().stream()
        .map(
            run ->
                DynamicTest.dynamicTest(
                    run.getKey(),
                    () -> {
                      ForkedJvm.Result r = run.getValue().get();
                      assertRefused(r);
                      for (Expected x : expectations.get(run.getKey())) {
                        String prefix =
                            "surgery-agent: "
                                + run.getKey()
                                + ":"
                                + x.line()
                                + ":"
                                + x.column()
                                + ": ";
                        assertTrue(
                            r.agentLines().stream()
                                .anyMatch(l -> l.startsWith(prefix) && l.contains(x.fragment())),
                            "expected " + prefix + "..." + x.fragment() + "...\n" + r);
                      }
                    }));
  }

  @Test
  void danglingSymbolicLink() throws Exception {
    Path dir = AgentConfigs.dir("bad-config-dangling-link");
    Files.createSymbolicLink(dir.resolve("link.yaml"), dir.resolve("gone.yaml"));
    ForkedJvm.Result r = runAgent(dir, "link.yaml");
    assertRefused(r);
    assertEquals(
        List.of(
            "surgery-agent: link.yaml:0:0: the config file is a symbolic link to a missing file: "
                + dir.resolve("gone.yaml").toAbsolutePath().normalize()
                + " does not exist"),
        r.agentLines(),
        r.toString());
  }

  @Test
  void fileOverTheSizeLimit() throws Exception {
    Path dir = AgentConfigs.dir("bad-config-too-large");
    // A valid config padded with a comment past 1 MiB: refused by size, not parsed.
    String yaml = AgentConfigs.BLURPOOL_AT_EPOCH_1 + "#" + "x".repeat(1 << 20) + "\n";
    AgentConfigs.write(dir, "huge.yaml", yaml);
    ForkedJvm.Result r = runAgent(dir, "huge.yaml");
    assertRefused(r);
    assertEquals(1, r.agentLines().size(), r.toString());
    assertTrue(
        r.agentLines().get(0).startsWith("surgery-agent: huge.yaml:0:0: is 1,048,"), r.toString());
    assertTrue(r.agentLines().get(0).contains("at most 1,048,576 bytes"), r.toString());
  }

  @Test
  void aDeviceInsteadOfAFile() throws Exception {
    Path device = Path.of("/dev/null");
    assertTrue(Files.exists(device), "needs /dev/null");
    ForkedJvm.Result r = runAgent(AgentConfigs.dir("bad-config-device"), device.toString());
    assertRefused(r);
    assertEquals(
        List.of("surgery-agent: /dev/null:0:0: is not a regular file"),
        r.agentLines(),
        r.toString());
  }

  private static ForkedJvm.Result runAgent(Path dir, String config)
      throws IOException, InterruptedException {
    return ForkedJvm.main(CnnApp.class.getName(), "--epochs", "1")
        .classpath(ForkedJvm.appClasspath(false))
        .agent(config)
        .workDir(dir)
        .run();
  }

  /** Status 2, main never ran, at least one agent line, and only agent lines on stderr. */
  private static void assertRefused(ForkedJvm.Result r) {
    assertEquals(2, r.exitCode(), r.toString());
    assertFalse(r.stdout().contains(CnnApp.MARKER), "main ran: " + r);
    assertFalse(r.agentLines().isEmpty(), r.toString());
    assertFalse(r.stderr().contains("\tat "), "stack trace on stderr: " + r);
    assertFalse(r.stderr().contains("Exception in thread"), "uncaught exception: " + r);
    for (String line : r.stderr().lines().filter(l -> !l.isBlank()).toList()) {
      assertTrue(line.startsWith("surgery-agent: "), "not an agent line: " + line + "\n" + r);
    }
  }
}
