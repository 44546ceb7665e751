package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CnnApp;
import dev.surgery.agent.testapp.SelfRegisteringApp;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The warning that the program runs its own copy of the library beside the agent's: given once when
 * the program uses a copy (from its class path, or from the agent jar through its own class
 * loader), never for a copy that only sits on the class path (README's main job has one there).
 */
class ProgramCopyIT {

  private static final String WARNING =
      "^surgery-agent: WARNING: the program has its own copy of DJL Surgery \\((.*)\\) beside the"
          + " agent's";

  @Test
  void aCopyOnTheClassPathThatTheProgramNeverUsesIsNotWarnedAbout() throws Exception {
    Path dir = AgentConfigs.dir("program-copy-unused");
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--epochs", "2")
            .classpath(ForkedJvm.appClasspath(true))
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    r.assertTrainedWithBlur();
    assertEquals(0, r.countErr("own copy of DJL Surgery"), r.toString());
    assertEquals(0, r.agentLines().size(), r.toString());
  }

  @Test
  void aProgramThatUsesTheCopyOnItsClassPathIsWarnedOnceNamingIt() throws Exception {
    Path dir = AgentConfigs.dir("program-copy-used");
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(SelfRegisteringApp.class.getName(), "surgery.yaml", "--epochs", "2")
            .classpath(ForkedJvm.appClasspath(true))
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, r.countErr(WARNING), r.toString());
    String where = r.stderr().lines().filter(l -> l.matches(WARNING + ".*")).findFirst().get();
    // The program's listener and its trainer classes come from the trainer module's build.
    assertTrue(
        where.contains("surgery-trainer") || where.contains("trainer-integration"), r.toString());
  }

  /**
   * A program written against the library but run without it fails as it does without the agent:
   * the agent jar, which {@code -javaagent} puts on the system class path, keeps the library's
   * classes where no other loader finds them, so it lends the program no second copy.
   */
  @Test
  void aProgramRunWithoutTheLibraryItNeedsFailsAsWithoutTheAgent() throws Exception {
    Path dir = AgentConfigs.dir("program-copy-missing");
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    for (boolean agent : new boolean[] {false, true}) {
      ForkedJvm jvm =
          ForkedJvm.main(SelfRegisteringApp.class.getName(), "surgery.yaml", "--epochs", "2")
              .workDir(dir);
      ForkedJvm.Result r = (agent ? jvm.agent("surgery.yaml") : jvm).run();
      String what = (agent ? "under the agent: " : "without it: ") + r;
      assertTrue(r.exitCode() != 0, what);
      assertTrue(
          r.stderr().contains("NoClassDefFoundError: dev/surgery/trainer/SurgeryListener"), what);
      assertEquals(0, r.countErr(WARNING), what);
    }
  }
}
