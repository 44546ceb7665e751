package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.ChildFirstLauncher;
import dev.surgery.agent.testapp.ChildLoaderLauncher;
import dev.surgery.agent.testapp.LibraryLoadsApp;
import dev.surgery.agent.testapp.LibraryUseApp;
import dev.surgery.agent.testapp.SelfRegisteringApp;
import java.io.File;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The two-copies warning at its edges, and the records the copies share wherever the program's copy
 * lives (agent README, "Consequences"; docs/reliability.md, "Known gaps"); written first by an
 * outside probe. Oracles: the model as trained and saved, and the documented promises.
 */
class ProgramCopyEdgesIT {

  /** Compile-time constants are copied into the program's class: no class of the library loads. */
  @Test
  void compileTimeConstantsOfTheLibraryAreNotACopyInUse() throws Exception {
    ForkedJvm.Result r =
        ProgramCopyIT.withTheLibraryUnderBlurPool(
                "probe-copy-constants", LibraryUseApp.class.getName(), "constants", "--epochs", "2")
            .run();
    r.assertTrainedWithBlur();
    assertEquals("blurpool <root>", r.findOut("LIBUSE: constants (.*)"), r.toString());
    assertEquals(0, r.agentLines().size(), r.toString());
  }

  /** Only {@code dev.surgery.core}, and only after training: warned once, naming the core. */
  @Test
  void aCoreClassUsedOnlyAfterTrainingIsWarnedOnce() throws Exception {
    ForkedJvm.Result r =
        ProgramCopyIT.withTheLibraryUnderBlurPool(
                "probe-copy-core-after",
                LibraryUseApp.class.getName(),
                "core-after",
                "--epochs",
                "2")
            .run();
    r.assertTrainedWithBlur();
    assertEquals(1, r.countErr(ProgramCopyIT.WARNING), r.toString());
    String where = ProgramCopyIT.warningLine(r);
    assertTrue(where.contains("core"), r.toString());
  }

  /**
   * A later {@code -javaagent} with {@code enabled=false} turns the agent off (README: the kill
   * switch wins wherever it stands; "the agent is off, no trainer gets surgery"). A program that
   * then uses the library itself runs what the warning recommends (the library without the agent),
   * so it must not be told it runs two copies "beside the agent's".
   */
  @Test
  void noTwoCopiesWarningWhenALaterKillSwitchTurnedTheAgentOff() throws Exception {
    ForkedJvm.Result r =
        ProgramCopyIT.withTheLibraryUnderBlurPool(
                "probe-copy-kill-switch",
                SelfRegisteringApp.class.getName(),
                "surgery.yaml",
                "--epochs",
                "2")
            .agent("enabled=false")
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, r.countErr("the agent is off, no trainer gets surgery"), r.toString());
    assertEquals(0, r.countErr(ProgramCopyIT.WARNING), r.toString());
  }

  /**
   * A late attach whose config is refused ("not installed"; the running program goes on without
   * surgery): a program that then uses its library is not running two copies "beside the agent's".
   */
  @Test
  void noTwoCopiesWarningAfterALateAttachWasRefused() throws Exception {
    Path dir = AgentConfigs.dir("probe-copy-late-refused");
    AgentConfigs.write(dir, "bad.yaml", "algorithms:\n  - name: blurpol\n    epoch: 1\n");
    ForkedJvm.Result r =
        ForkedJvm.main(
                LibraryUseApp.class.getName(),
                "attach-then-core",
                ForkedJvm.agentJar().toString(),
                "bad.yaml",
                "--epochs",
                "2")
            .classpath(ForkedJvm.appClasspath(true))
            .jvmArg("-Djdk.attach.allowAttachSelf=true")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, r.countErr("^surgery-agent: not installed"), r.toString());
    assertEquals(0, r.countErr(ProgramCopyIT.WARNING), r.toString());
  }

  /**
   * The program's copy on its flat class path, in a child-first loader of its own (DJL on the
   * system class path), and in a parent-first launcher's loader that holds DJL and the library (as
   * fat-jar launchers do; the agent jar on the system class path once lent that loader its classes,
   * which cannot see DJL): the program's replay, then a plain {@code Model.load} (which the agent's
   * copy replays), gives the saved model, and the warning is given once.
   */
  @Test
  void theCopiesShareRecordsOnLoadWhereverTheProgramsCopyLives() throws Exception {
    Path dir = AgentConfigs.dir("program-copy-share-load");
    ForkedJvm.Result trained = CheckpointReplayIT.trainedUnderTheAgent(dir);
    String structure = trained.findOut("CKPT: structure (.*)");
    String output = trained.findOut("CKPT: output (.*)");
    String withLibrary = String.join(File.pathSeparator, ForkedJvm.appClasspath(true));
    List<String> djlOnly = ForkedJvm.appClasspath(false);
    String program = LibraryLoadsApp.class.getName();
    Map<String, ForkedJvm> styles = new LinkedHashMap<>();
    styles.put(
        "flat class path",
        ForkedJvm.main(program, "replay-then-load", "model")
            .classpath(ForkedJvm.appClasspath(true)));
    styles.put(
        "child-first loader",
        ForkedJvm.main(
                ChildFirstLauncher.class.getName(),
                withLibrary,
                program,
                "replay-then-load",
                "model")
            .classpath(djlOnly));
    styles.put(
        "parent-first launcher",
        ForkedJvm.main(
                ChildLoaderLauncher.class.getName(),
                withLibrary,
                program,
                "replay-then-load",
                "model")
            .classpath(List.of(SurgeryAgentIT.launcherOnly(dir).toString())));
    for (Map.Entry<String, ForkedJvm> style : styles.entrySet()) {
      ForkedJvm.Result loaded = style.getValue().agent("none.yaml").workDir(dir).run();
      String what = style.getKey() + ": " + loaded;
      assertEquals(0, loaded.exitCode(), what);
      assertEquals(1, loaded.countErr(ProgramCopyIT.WARNING), what);
      assertEquals(structure, loaded.findOut("CKPT: structure (.*)"), what);
      assertEquals(output, loaded.findOut("CKPT: output (.*)"), what);
    }
  }
}
