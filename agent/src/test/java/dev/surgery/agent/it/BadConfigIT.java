package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.ChildLoaderLauncher;
import dev.surgery.agent.testapp.CnnApp;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A bad config stops the JVM with status 2 before the program's {@code main} runs, with one {@code
 * surgery-agent: file:line:column: message} line per problem and no stack trace.
 */
class BadConfigIT {

  /** Content marker: the rest of the string is raw bytes (ISO-8859-1), not text. */
  private static final String BINARY = "binary:";

  /** Content marker: the config is a symbolic link to a link back to itself. */
  private static final String SYMLINK_LOOP = "symlink-loop";

  static Stream<Arguments> badConfigs() {
    return Stream.of(
        // name, file content (null: no file), agent argument, expected problem line (regex)
        Arguments.of(
            "syntax error",
            "algorithms:\n  - name: blurpool\n     epoch: 1\n",
            "bad-syntax.yaml",
            "(.*/)?bad-syntax\\.yaml:3:\\d+: .+"),
        Arguments.of(
            "unknown algorithm",
            "algorithms:\n  - name: blurpol\n    epoch: 1\n",
            "unknown-algorithm.yaml",
            "(.*/)?unknown-algorithm\\.yaml:2:\\d+: .*blurpol.*"),
        Arguments.of(
            "negative epoch",
            "algorithms:\n  - name: blurpool\n    epoch: -1\n",
            "negative-epoch.yaml",
            "(.*/)?negative-epoch\\.yaml:3:\\d+: .*(?i:epoch).*"),
        Arguments.of("empty file", "", "empty.yaml", "(.*/)?empty\\.yaml:1:1: .*empty.*"),
        Arguments.of(
            "binary garbage",
            BINARY + "\u0000\u008c\u00ff\u00fe\u0001\u0002",
            "garbage.yaml",
            "(.*/)?garbage\\.yaml:\\d+:\\d+: .*(UTF-8|binary).*"),
        Arguments.of(
            "duplicate key",
            "algorithms:\n  - name: blurpool\n    epoch: 1\n    epoch: 2\n",
            "duplicate-key.yaml",
            "(.*/)?duplicate-key\\.yaml:4:5: .*duplicate.*'epoch'.*"),
        Arguments.of(
            "huge epoch",
            "algorithms:\n  - name: blurpool\n    epoch: 99999999999\n",
            "huge-epoch.yaml",
            "(.*/)?huge-epoch\\.yaml:3:\\d+: .*99999999999.*"),
        Arguments.of(
            "wrong type",
            "algorithms: 5\n",
            "wrong-type.yaml",
            "(.*/)?wrong-type\\.yaml:1:\\d+: .*algorithms.*"),
        Arguments.of(
            "unknown hyperparameter",
            "algorithms:\n  - name: blurpool\n    epoch: 1\n    bogus: 1\n",
            "unknown-key.yaml",
            "(.*/)?unknown-key\\.yaml:4:5: .*bogus.*"),
        Arguments.of(
            "symbolic link loop", SYMLINK_LOOP, "loop.yaml", "loop\\.yaml:0:0: .*symbolic link.*"),
        Arguments.of(
            "missing file",
            null,
            "no-such-config.yaml",
            "no-such-config\\.yaml:0:0: .*not found.*"),
        Arguments.of(
            "missing file, key=value form",
            null,
            "config=no-such-config.yaml;debug=false",
            "no-such-config\\.yaml:0:0: .*not found.*"),
        Arguments.of("a directory", null, ".", "\\.:0:0: .*directory.*"),
        Arguments.of(
            "unknown agent argument key",
            null,
            "conf=x.yaml",
            "unknown agent argument key 'conf' \\(valid keys: config, enabled, debug, dry_run, extensions\\)"),
        Arguments.of(
            "malformed boolean", null, "config=x.yaml;debug=yes", "debug must be true or false.*"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("badConfigs")
  void refusesBeforeMain(String name, String yaml, String argument, String expectedLine)
      throws Exception {
    Path dir = AgentConfigs.dir("bad-config-" + name.replaceAll("\\W+", "-"));
    if (SYMLINK_LOOP.equals(yaml)) {
      Files.createSymbolicLink(dir.resolve(argument), dir.resolve("other.yaml"));
      Files.createSymbolicLink(dir.resolve("other.yaml"), dir.resolve(argument));
    } else if (yaml != null && yaml.startsWith(BINARY)) {
      Files.write(
          dir.resolve(argument),
          yaml.substring(BINARY.length()).getBytes(StandardCharsets.ISO_8859_1));
    } else if (yaml != null) {
      AgentConfigs.write(dir, argument, yaml);
    }
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--epochs", "1")
            .classpath(ForkedJvm.appClasspath(false))
            .agent(argument)
            .workDir(dir)
            .run();
    assertEquals(2, r.exitCode(), r.toString());
    assertFalse(r.stdout().contains(CnnApp.MARKER), "main ran: " + r);
    Pattern expected = Pattern.compile("surgery-agent: " + expectedLine);
    List<String> lines = r.agentLines();
    assertTrue(
        lines.stream().anyMatch(l -> expected.matcher(l).matches()),
        "expected a line matching " + expected + "\n" + r);
    assertEquals(
        r.stderr().lines().filter(l -> !l.isBlank()).count(),
        lines.size(),
        "every line on stderr comes from the agent (no stack trace): " + r);
  }

  /**
   * DJL in a child class loader cannot be reached before {@code main}: the config is checked when
   * the first {@code Trainer} is created, and refused there, before any training step.
   */
  @Test
  void childLoaderProgramIsStoppedAtItsFirstTrainer() throws Exception {
    Path dir = AgentConfigs.dir("bad-config-child-loader");
    AgentConfigs.write(
        dir, "unknown-algorithm.yaml", "algorithms:\n  - name: blurpol\n    epoch: 1\n");
    Path launcher = SurgeryAgentIT.launcherOnly(dir);
    ForkedJvm.Result r =
        ForkedJvm.main(
                ChildLoaderLauncher.class.getName(),
                String.join(File.pathSeparator, ForkedJvm.appClasspath(false)),
                CnnApp.class.getName(),
                "--epochs",
                "1")
            .classpath(List.of(launcher.toString()))
            .agent("unknown-algorithm.yaml")
            .workDir(dir)
            .run();
    assertEquals(2, r.exitCode(), r.toString());
    assertTrue(r.stdout().contains(CnnApp.MARKER), r.toString());
    assertFalse(r.stdout().contains("CNNAPP: trainer 1 trained"), "training ran: " + r);
    Pattern expected =
        Pattern.compile("surgery-agent: (.*/)?unknown-algorithm\\.yaml:2:\\d+: .*blurpol.*");
    assertTrue(
        r.agentLines().stream().anyMatch(l -> expected.matcher(l).matches()),
        "expected a line matching " + expected + "\n" + r);
  }

  @ParameterizedTest(name = "no config from {0}")
  @MethodSource("noConfigSources")
  void refusesWithoutAConfig(String source, String argument) throws Exception {
    Path dir = AgentConfigs.dir("no-config");
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--epochs", "1").agent(argument).workDir(dir).run();
    assertEquals(2, r.exitCode(), r.toString());
    assertFalse(r.stdout().contains(CnnApp.MARKER), "main ran: " + r);
    assertTrue(r.stderr().startsWith("surgery-agent: no surgery config given"), r.toString());
    assertTrue(Files.isDirectory(dir));
  }

  static Stream<Arguments> noConfigSources() {
    return Stream.of(Arguments.of("nothing", null), Arguments.of("debug only", "debug=false"));
  }
}
