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

  /** The two-copies warning; its group is where the program's copy comes from. */
  static final String WARNING =
      "^surgery-agent: WARNING: the program has its own copy of DJL Surgery \\((.*)\\) beside the"
          + " agent's";

  @Test
  void aCopyOnTheClassPathThatTheProgramNeverUsesIsNotWarnedAbout() throws Exception {
    ForkedJvm.Result r =
        withTheLibraryUnderBlurPool("program-copy-unused", CnnApp.class.getName(), "--epochs", "2")
            .run();
    r.assertTrainedWithBlur();
    assertEquals(0, r.countErr("own copy of DJL Surgery"), r.toString());
    assertEquals(0, r.agentLines().size(), r.toString());
  }

  @Test
  void aProgramThatUsesTheCopyOnItsClassPathIsWarnedOnceNamingIt() throws Exception {
    ForkedJvm.Result r =
        withTheLibraryUnderBlurPool(
                "program-copy-used",
                SelfRegisteringApp.class.getName(),
                "surgery.yaml",
                "--epochs",
                "2")
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, r.countErr(WARNING), r.toString());
    String where = warningLine(r);
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
    Path dir = AgentConfigs.dirWithConfig("program-copy-missing", AgentConfigs.BLURPOOL_AT_EPOCH_1);
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

  /**
   * A program with the library on its own class path, in a fresh folder, under the agent with
   * BlurPool at epoch 1 ({@code surgery.yaml}); more agents may be added before it runs.
   */
  static ForkedJvm withTheLibraryUnderBlurPool(String folder, String mainClass, String... args)
      throws Exception {
    Path dir = AgentConfigs.dirWithConfig(folder, AgentConfigs.BLURPOOL_AT_EPOCH_1);
    return ForkedJvm.main(mainClass, args)
        .classpath(ForkedJvm.appClasspath(true))
        .agent("surgery.yaml")
        .workDir(dir);
  }

  /** The first line of standard error that is the two-copies warning. */
  static String warningLine(ForkedJvm.Result r) {
    return r.stderr().lines().filter(l -> l.matches(WARNING + ".*")).findFirst().get();
  }
}
