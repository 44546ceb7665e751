package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CnnApp;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@code enabled=false} installs nothing: the program runs as without the agent, even when the
 * config named next to it does not exist, or another {@code -javaagent}, before or after it, names
 * a valid one.
 */
class DisabledAgentIT {

  @Test
  void disabledByAgentArgumentLeavesTheProgramUnchanged() throws Exception {
    Path dir = AgentConfigs.dir("disabled-argument");
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName())
            .agent("config=no-such-config.yaml;enabled=false;debug=true")
            .workDir(dir)
            .run();
    assertUnchanged(r);
    assertTrue(
        r.stderr().contains("surgery-agent: disabled; nothing installed"),
        "debug line expected: " + r);
    assertEquals(2, r.agentLines().size(), "only the settings and disabled lines: " + r);
  }

  @Test
  void aDisabledFirstAgentIsNotUndoneByASecondOne() throws Exception {
    ForkedJvm.Result r =
        cnn("disabled-then-enabled", "1", true).agent("enabled=false").agent("surgery.yaml").run();
    assertUnchanged(r);
    assertEquals(
        List.of(
            "surgery-agent: the agent was given more than once; only the first is used, which has"
                + " enabled=false and installed nothing (ignoring 'surgery.yaml')"),
        r.agentLines(),
        r.toString());
  }

  /**
   * An outside probe: a kill switch given after an agent with a config (on the command line after
   * one in {@code JAVA_TOOL_OPTIONS}, which the JVM reads first) was ignored without a word, and
   * the job trained the changed model. The kill switch now wins wherever it stands.
   */
  @Test
  void aKillSwitchAfterAnEnabledAgentTurnsItOff() throws Exception {
    ForkedJvm.Result r =
        cnn("enabled-then-disabled", "2", true).agent("surgery.yaml").agent("enabled=false").run();
    assertTurnedOff(r, " (config 'surgery.yaml' not used)");
  }

  @Test
  void aKillSwitchOnTheCommandLineTurnsOffTheAgentOfJavaToolOptions() throws Exception {
    ForkedJvm.Result r =
        cnn("tool-options-then-disabled", "2", true)
            .env("JAVA_TOOL_OPTIONS", "-javaagent:" + ForkedJvm.agentJar() + "=surgery.yaml")
            .agent("enabled=false")
            .run();
    assertUnchanged(r);
    assertTrue(r.stderr().contains("Picked up JAVA_TOOL_OPTIONS"), r.toString());
    assertEquals(1, r.countErr("the agent is off, no trainer gets surgery"), r.toString());
  }

  /**
   * A reviewer: the first agent checked its config in its own premain and stopped the JVM on a
   * missing file before the kill switch after it ran. It now looks ahead for one first.
   */
  @Test
  void aKillSwitchAfterAnAgentWithAMissingConfigTurnsItOffInsteadOfStoppingTheJvm()
      throws Exception {
    ForkedJvm.Result r =
        cnn("missing-config-then-disabled", "1", false)
            .env("JAVA_TOOL_OPTIONS", "-javaagent:" + ForkedJvm.agentJar() + "=no-such.yaml")
            .agent("enabled=false")
            .run();
    assertTurnedOff(r, " (config 'no-such.yaml' not used)");
  }

  /**
   * A reviewer: a malformed first argument stopped the JVM despite the kill switch after it, and a
   * kill switch in another copy of the agent jar was not seen.
   */
  @Test
  void aKillSwitchInACopyOfTheJarTurnsOffAnAgentWithAMalformedArgument() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig(
            "malformed-then-copy-disabled", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    Path copy = Files.createDirectories(dir.resolve("copy")).resolve("surgery-agent.jar");
    Files.copy(ForkedJvm.agentJar(), copy, StandardCopyOption.REPLACE_EXISTING);
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--epochs", "2")
            .env(
                "JAVA_TOOL_OPTIONS",
                "-javaagent:" + ForkedJvm.agentJar() + "=config=surgery.yaml;bogus=1")
            .jvmArg("-javaagent:" + copy + "=enabled=false")
            .workDir(dir)
            .run();
    assertTurnedOff(r, "");
  }

  /** A reviewer: a mistyped later -javaagent stopped the JVM although the first one had decided. */
  @Test
  void aMalformedLaterAgentIsIgnoredAfterTheKillSwitch() throws Exception {
    ForkedJvm.Result r =
        cnn("disabled-then-malformed", "1", false)
            .agent("enabled=false")
            .agent("config=surgery.yaml;bogus=1")
            .run();
    assertUnchanged(r);
    r.assertOnlyAgentLine(
        "surgery-agent: the agent was given more than once; only the first is used \\(ignoring"
            + " 'config=surgery.yaml;bogus=1': .*bogus.*\\)");
  }

  /**
   * A reviewer: a kill switch with a typo beside it was ignored, and the job trained with surgery;
   * an outside tester: spelled with the {@code surgery.} prefix, it stopped the JVM instead.
   */
  @Test
  void aKillSwitchWithAMalformedSettingBesideItIsStillAKillSwitch() throws Exception {
    ForkedJvm.Result r =
        cnn("enabled-then-malformed-disabled", "2", true)
            .agent("surgery.yaml")
            .agent("Surgery.Enabled=false;bogus=1")
            .run();
    assertUnchanged(r);
    assertEquals(1, r.countErr("the agent is off, no trainer gets surgery"), r.toString());
    assertEquals(
        1,
        r.countErr("^surgery-agent: enabled=false taken from a malformed agent argument"),
        r.toString());
  }

  @Test
  void systemPropertyBeatsEnvironment() throws Exception {
    ForkedJvm.Result r =
        cnn("disabled-property", "1", false)
            .agent(null)
            .jvmArg("-Dsurgery.enabled=false")
            .env("SURGERY_ENABLED", "true")
            .env("SURGERY_CONFIG", "no-such-config.yaml")
            .run();
    assertUnchanged(r);
    assertTrue(r.agentLines().isEmpty(), r.toString());
  }

  @Test
  void disabledByEnvironment() throws Exception {
    ForkedJvm.Result r =
        cnn("disabled-env", "1", false)
            .agent("no-such-config.yaml")
            .env("SURGERY_ENABLED", "false")
            .run();
    assertUnchanged(r);
    assertTrue(r.agentLines().isEmpty(), r.toString());
  }

  /** {@code CnnApp} for some epochs in a fresh folder, with the BlurPool config there if asked. */
  private static ForkedJvm cnn(String folder, String epochs, boolean config) throws Exception {
    Path dir = AgentConfigs.dir(folder);
    if (config) {
      AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    }
    return ForkedJvm.main(CnnApp.class.getName(), "--epochs", epochs).workDir(dir);
  }

  /** The program ran unchanged, and the agent's one line said a kill switch turned it off. */
  private static void assertTurnedOff(ForkedJvm.Result r, String configClause) {
    assertUnchanged(r);
    assertEquals(
        List.of(
            "surgery-agent: the agent was given more than once and a -javaagent has"
                + " enabled=false: the agent is off, no trainer gets surgery"
                + configClause),
        r.agentLines(),
        r.toString());
  }

  static void assertUnchanged(ForkedJvm.Result r) {
    assertEquals(0, r.exitCode(), r.toString());
    assertTrue(r.stdout().contains(CnnApp.MARKER), r.toString());
    assertTrue(r.stdout().contains("CNNAPP: done"), r.toString());
    String after = r.findOut("CNNAPP: structure after training: (.*)");
    String before = r.findOut("CNNAPP: structure before training: (.*)");
    assertEquals(before, after, "the block structure changed: " + r);
    assertTrue(after.contains("Conv2d"), r.toString());
    assertFalse(
        r.findOut("CNNAPP: block tree after training: (.*)").contains("Blur"), r.toString());
  }
}
