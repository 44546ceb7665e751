package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.LateAttachApp;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The agent attached to a running JVM ({@code Agent-Class}, {@code agentmain}): DJL's already
 * loaded {@code Trainer} is retransformed and trainers created afterwards get the listener; a bad
 * config is reported and the running program is left alone.
 */
class LateAttachIT {

  /** Runs {@link LateAttachApp} in {@code dir}, which holds the config, with these arguments. */
  private static ForkedJvm.Result attach(Path dir, String argument, String... appArgs)
      throws Exception {
    List<String> args = new java.util.ArrayList<>();
    args.add(ForkedJvm.agentJar().toString());
    args.add(argument);
    args.addAll(List.of(appArgs));
    return ForkedJvm.main(LateAttachApp.class.getName(), args.toArray(String[]::new))
        .jvmArg("-Djdk.attach.allowAttachSelf=true")
        .workDir(dir)
        .run();
  }

  @Test
  void retransformsTheLoadedTrainer() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("late-attach", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r = attach(dir, "config=surgery.yaml;debug=true", "--epochs", "2");
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(
        1,
        r.countErr("^surgery-agent: instrumented ai.djl.training.Trainer .*\\(retransformed\\)$"),
        r.toString());
    assertEquals(
        1, r.countErr("^surgery-agent: attached SurgeryListener to Trainer@"), r.toString());
    String after = r.findOut("CNNAPP: block tree after training: (.*)");
    assertTrue(after.contains("BlurConv2d") && after.contains("BlurMaxPool2d"), r.toString());
  }

  @Test
  void aTrainerCreatedBeforeTheAttachIsToldOfAndTrainsUnmodified() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig("late-attach-after-trainer", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r = attach(dir, "surgery.yaml", "--after-trainer", "--epochs", "2");
    assertEquals(0, r.exitCode(), r.toString());
    // Not silent: one warning for the trainer, which keeps the architecture it was built with.
    r.assertOnlyAgentLine(
        "surgery-agent: WARNING: Trainer@[0-9a-f]+ trains without surgery: the agent attached no"
            + " listener to it \\(it was created before the agent was attached: a late attach"
            + " reaches the trainers created after it\\)");
    String after = r.findOut("CNNAPP: block tree after training: (.*)");
    assertTrue(after.contains("Conv2d") && !after.contains("Blur"), r.toString());
  }

  /**
   * A reviewer: a late attach with a malformed argument gave back the claim of the agent installed
   * at start-up, so the retried attach installed a second weaving: every hook ran twice, and
   * training came out different. The failed attach now leaves the claim alone.
   */
  @Test
  void aMistypedAttachAndItsRetryDoNotWeaveTwice() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("late-attach-retry", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(
                LateAttachApp.class.getName(),
                ForkedJvm.agentJar().toString(),
                "config=surgery.yaml;bogus=1|surgery.yaml",
                "--epochs",
                "2")
            .agent("config=surgery.yaml;debug=true")
            .jvmArg("-Djdk.attach.allowAttachSelf=true")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(
        1, r.countErr("^surgery-agent: instrumented ai.djl.training.Trainer "), r.toString());
    assertEquals(
        1, r.countErr("^surgery-agent: attached SurgeryListener to Trainer@"), r.toString());
    assertEquals(1, r.countErr("the agent was given more than once"), r.toString());
    assertEquals(
        1,
        r.countErr(
            "^surgery-agent: this attach is ignored; the agent installed before keeps running$"),
        r.toString());
    String after = r.findOut("CNNAPP: block tree after training: (.*)");
    assertTrue(after.contains("BlurConv2d"), r.toString());
  }

  /**
   * A refused late attach gives back its claim: the user fixes the config and attaches again, and
   * the retry installs (an agent installed at start-up keeps its claim: the test above).
   */
  @Test
  void aRefusedLateAttachCanBeRetriedWithAFixedConfig() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("late-attach-fixed", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    writeBadConfig(dir);
    ForkedJvm.Result r = attach(dir, "bad.yaml|surgery.yaml", "--epochs", "2");
    assertRefusedBadConfig(r);
    r.assertTrainedWithBlur();
  }

  /**
   * The agent README: a late attach with {@code enabled=false} does not turn off the agent
   * installed at start-up (trainers already training keep their listeners), and says so.
   */
  @Test
  void aKillSwitchInALateAttachLeavesTheAgentOfStartUpOnAndSaysSo() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig("late-attach-kill-switch", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(
                LateAttachApp.class.getName(),
                ForkedJvm.agentJar().toString(),
                "enabled=false",
                "--epochs",
                "2")
            .agent("surgery.yaml")
            .jvmArg("-Djdk.attach.allowAttachSelf=true")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    r.assertOnlyAgentLine(
        "surgery-agent: enabled=false in a late attach does not turn off the agent installed at"
            + " start-up \\(trainers already training keep their surgery\\)");
    r.assertTrainedWithBlur();
  }

  @Test
  void badConfigIsReportedAndTheProgramGoesOn() throws Exception {
    Path dir = AgentConfigs.dir("late-attach-bad");
    writeBadConfig(dir);
    ForkedJvm.Result r = attach(dir, "bad.yaml", "--epochs", "1");
    assertRefusedBadConfig(r);
    assertTrue(r.stdout().contains("CNNAPP: done"), r.toString());
    DisabledAgentIT.assertUnchanged(r);
  }

  /** {@code bad.yaml}: an unknown algorithm on line 2. */
  private static void writeBadConfig(Path dir) throws Exception {
    AgentConfigs.write(dir, "bad.yaml", "algorithms:\n  - name: blurpol\n    epoch: 1\n");
  }

  /** The program ran on, and the agent's only lines were the problem and "not installed". */
  private static void assertRefusedBadConfig(ForkedJvm.Result r) {
    assertEquals(0, r.exitCode(), r.toString());
    List<String> agent = r.agentLines();
    assertEquals(2, agent.size(), r.toString());
    assertTrue(agent.get(0).matches("surgery-agent: bad\\.yaml:2:\\d+: .*blurpol.*"), r.toString());
    assertEquals("surgery-agent: not installed", agent.get(1), r.toString());
  }
}
