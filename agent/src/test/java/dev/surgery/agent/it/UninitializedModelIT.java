package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CnnApp;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Shape-dependent epoch-0 surgery on a program that never calls {@code trainer.initialize}: DJL
 * would initialize the model inside the first training forward, after the point where the surgery
 * is due. The agent initializes the model just before that forward exactly as the forward would
 * (its input shapes, the trainer's manager), so the surgery runs before the first step instead of
 * never.
 */
class UninitializedModelIT {

  private static final String SQUEEZE_EXCITE_AT_EPOCH_0 =
      String.join(
          "\n",
          "algorithms:",
          "  - name: squeeze_excite",
          "    epoch: 0",
          "    min_channels: 8",
          "report: report.json",
          "");

  @Test
  void handWrittenLoopWithoutInitializeGetsTheSurgeryBeforeItsFirstStep() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("uninitialized-own-loop", SQUEEZE_EXCITE_AT_EPOCH_0);
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--no-initialize", "--own-loop", "--epochs", "1")
            .agent("config=surgery.yaml;debug=true")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    String before = r.findOut("CNNAPP: structure before training: (.*)");
    String afterFirstStep = r.findOut("CNNAPP: structure after the first step: (.*)");
    assertNotNull(afterFirstStep, r.toString());
    assertFalse(before.contains("SqueezeExcite"), r.toString());
    assertTrue(afterFirstStep.contains("SqueezeExcite"), "no squeeze-excite at step 1: " + r);
    assertEquals(
        1,
        r.countErr(
            "^surgery-agent: the program never called trainer.initialize: the model initialized for"
                + " \\[\\(8, 3, 16, 16\\)\\] \\(the first forward's input shapes\\) on the"
                + " trainer's manager"),
        r.toString());
    // As DJL's own first forward: the arrays belong to the trainer, and close with it.
    assertEquals("trainer", r.findOut("CNNAPP: parameter arrays on manager: (.*)"), r.toString());
    // The surgery followed the trainer, which registered the parameters: nothing to recreate.
    assertEquals(0, r.countErr("without a trainer"), r.toString());
    assertEquals(0, r.countErr("never ran"), r.toString());
    assertTrue(r.stdout().contains("CNNAPP: done"), r.toString());
  }

  /**
   * The oracle for "as DJL would": a program that never calls {@code trainer.initialize} trains the
   * same bits as the same program that calls it (DJL alone, no agent), and under the agent, with
   * the epoch-0 surgery, the same bits as the program that initializes itself; all finite.
   */
  @Test
  void initializingAtTheFirstForwardTrainsTheSameBitsAsTheProgramsOwnInitialize() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("uninitialized-bits", SQUEEZE_EXCITE_AT_EPOCH_0);
    String[] lazy = {"--no-initialize", "--own-loop", "--epochs", "2"};
    String[] own = {"--own-loop", "--epochs", "2"};
    String plainLazy = bits(ForkedJvm.main(CnnApp.class.getName(), lazy).workDir(dir).run());
    String plainOwn = bits(ForkedJvm.main(CnnApp.class.getName(), own).workDir(dir).run());
    assertEquals(plainOwn, plainLazy, "DJL's lazy initialization against trainer.initialize");
    String agentLazy =
        bits(ForkedJvm.main(CnnApp.class.getName(), lazy).agent("surgery.yaml").workDir(dir).run());
    String agentOwn =
        bits(ForkedJvm.main(CnnApp.class.getName(), own).agent("surgery.yaml").workDir(dir).run());
    assertEquals(agentOwn, agentLazy, "the agent's initialization against the program's own");
    assertTrue(agentLazy.endsWith(" finite"), agentLazy);
    assertFalse(agentLazy.equals(plainLazy), "the surgery changed the model");
  }

  private static String bits(ForkedJvm.Result r) {
    assertEquals(0, r.exitCode(), r.toString());
    String bits = r.findOut("CNNAPP: parameter bits after training: (.*)");
    assertNotNull(bits, r.toString());
    return bits;
  }

  @Test
  void easyTrainFitWithoutInitializeGetsTheSurgeryInsteadOfFailing() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("uninitialized-fit", SQUEEZE_EXCITE_AT_EPOCH_0);
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--no-initialize", "--epochs", "1")
            .agent("config=surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    String after = r.findOut("CNNAPP: structure after training: (.*)");
    assertTrue(after.contains("SqueezeExcite"), "no squeeze-excite after training: " + r);
    assertFalse(r.stderr().contains("IllegalStateException"), r.toString());
    assertEquals(0, r.countErr("never ran"), r.toString());
  }

  @Test
  void stopsBeforeTheFirstForwardWhereItCannotInitializeAsDjlWould() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("uninitialized-float64", SQUEEZE_EXCITE_AT_EPOCH_0);
    ForkedJvm.Result r =
        ForkedJvm.main(
                CnnApp.class.getName(),
                "--no-initialize",
                "--own-loop",
                "--float64-model",
                "--epochs",
                "1")
            .agent("config=surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(1, r.exitCode(), r.toString());
    assertTrue(
        r.stderr()
            .contains(
                "SurgeryFailedException: Surgery: squeeze_excite at epoch 0 (surgery.yaml:2:5)"
                    + " needs an initialized model, but the program never called"
                    + " trainer.initialize(shapes)"),
        r.toString());
    assertTrue(
        r.stderr().contains("call trainer.initialize(shapes) before training"), r.toString());
    assertNull(r.findOut("CNNAPP: structure after the first step: (.*)"), r.toString());
  }

  @Test
  void aFailingEntryAtTheFirstForwardReachesTheProgramAsTheLibrarysOwnException() throws Exception {
    // on_error: fail at the surgery the agent runs before the first forward: the program gets the
    // library's SurgeryFailedException, as from its own trainer.initialize, not the agent's
    // wrapper.
    Path dir =
        AgentConfigs.dirWithConfig(
            "uninitialized-fails",
            String.join(
                "\n",
                "algorithms:",
                "  - name: squeeze_excite",
                "    epoch: 0",
                "    min_channels: 8",
                "    include: 'type:BatchNorm'",
                ""));
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--no-initialize", "--own-loop", "--epochs", "1")
            .agent("config=surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(1, r.exitCode(), r.toString());
    assertTrue(
        r.stderr().contains("dev.surgery.trainer.SurgeryFailedException: Surgery: squeeze_excite"),
        r.toString());
    assertFalse(r.stderr().contains("SurgeryFailure"), r.toString());
    assertNull(r.findOut("CNNAPP: structure after the first step: (.*)"), r.toString());
  }
}
