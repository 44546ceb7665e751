package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CheckpointApp;
import dev.surgery.agent.testapp.LibraryLoadsApp;
import dev.surgery.agent.testapp.LibraryUseApp;
import dev.surgery.agent.testapp.SelfRegisteringApp;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * An outside probe of the two-copies warning and of the records the copies share (agent README,
 * "Consequences"; docs/reliability.md, "Known gaps"). Oracles: the same program with the library on
 * its class path (where the copies share records), and the documented promises.
 */
class ProgramCopyOutsideProbeIT {

  private static final String WARNING =
      "^surgery-agent: WARNING: the program has its own copy of DJL Surgery \\((.*)\\) beside the"
          + " agent's";

  /** Compile-time constants are copied into the program's class: no class of the library loads. */
  @Test
  void compileTimeConstantsOfTheLibraryAreNotACopyInUse() throws Exception {
    Path dir = AgentConfigs.dir("probe-copy-constants");
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(LibraryUseApp.class.getName(), "constants", "--epochs", "2")
            .classpath(ForkedJvm.appClasspath(true))
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    r.assertTrainedWithBlur();
    assertEquals("blurpool <root>", r.findOut("LIBUSE: constants (.*)"), r.toString());
    assertEquals(0, r.agentLines().size(), r.toString());
  }

  /** Only {@code dev.surgery.core}, and only after training: warned once, naming the core. */
  @Test
  void aCoreClassUsedOnlyAfterTrainingIsWarnedOnce() throws Exception {
    Path dir = AgentConfigs.dir("probe-copy-core-after");
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(LibraryUseApp.class.getName(), "core-after", "--epochs", "2")
            .classpath(ForkedJvm.appClasspath(true))
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    r.assertTrainedWithBlur();
    assertEquals(1, r.countErr(WARNING), r.toString());
    String where = r.stderr().lines().filter(l -> l.matches(WARNING + ".*")).findFirst().get();
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
    Path dir = AgentConfigs.dir("probe-copy-kill-switch");
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(SelfRegisteringApp.class.getName(), "surgery.yaml", "--epochs", "2")
            .classpath(ForkedJvm.appClasspath(true))
            .agent("surgery.yaml")
            .agent("enabled=false")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, r.countErr("the agent is off, no trainer gets surgery"), r.toString());
    assertEquals(0, r.countErr(WARNING), r.toString());
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
    assertEquals(0, r.countErr(WARNING), r.toString());
  }

  /**
   * A program written against the library, run without it: its classes come from the agent jar
   * (which -javaagent appends to the class path). The agent warns of its own copy and says the two
   * share what records a model carries; so the program's replay, then a plain {@code Model.load},
   * must give the saved model, as with the library on the class path.
   */
  @Test
  void aCopyFromTheAgentJarSharesRecordsOnLoad() throws Exception {
    Path dir = AgentConfigs.dir("probe-copy-agent-jar-load");
    ForkedJvm.Result trained = trainedUnderTheAgent(dir);
    String structure = trained.findOut("CKPT: structure (.*)");
    String output = trained.findOut("CKPT: output (.*)");
    for (boolean withLibrary : new boolean[] {true, false}) {
      ForkedJvm.Result loaded =
          ForkedJvm.main(LibraryLoadsApp.class.getName(), "replay-then-load", "model")
              .classpath(ForkedJvm.appClasspath(withLibrary))
              .agent("none.yaml")
              .workDir(dir)
              .run();
      String what = (withLibrary ? "library on the class path: " : "from the agent jar: ") + loaded;
      assertEquals(1, loaded.countErr(WARNING), what);
      assertEquals(0, loaded.exitCode(), what);
      assertEquals(structure, loaded.findOut("CKPT: structure (.*)"), what);
      assertEquals(output, loaded.findOut("CKPT: output (.*)"), what);
    }
  }

  /**
   * The same copy from the agent jar: the agent's copy loads (replays), the program's listener adds
   * weight standardization, and a plain {@code Model.save} must write both (README: "a save writes
   * the record both know"), as it does with the library on the class path.
   */
  @Test
  void aCopyFromTheAgentJarSharesRecordsOnSave() throws Exception {
    Path dir = AgentConfigs.dir("probe-copy-agent-jar-save");
    trainedUnderTheAgent(dir);
    for (boolean withLibrary : new boolean[] {true, false}) {
      ForkedJvm.Result saved =
          ForkedJvm.main(LibraryLoadsApp.class.getName(), "load-train-save", "model")
              .classpath(ForkedJvm.appClasspath(withLibrary))
              .agent("none.yaml")
              .workDir(dir)
              .run();
      String what = (withLibrary ? "library on the class path: " : "from the agent jar: ") + saved;
      assertEquals(0, saved.exitCode(), what);
      assertEquals(
          List.of("blurpool@1", "weight_standardization@1"),
          saved
              .stdout()
              .lines()
              .filter(l -> l.startsWith("LOADS: saved record "))
              .map(l -> l.substring("LOADS: saved record ".length()))
              .toList(),
          what);
    }
  }

  private static ForkedJvm.Result trainedUnderTheAgent(Path dir) throws Exception {
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    AgentConfigs.write(dir, "none.yaml", "algorithms: []\n");
    ForkedJvm.Result trained =
        ForkedJvm.main(CheckpointApp.class.getName(), "train", "model")
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(0, trained.exitCode(), trained.toString());
    return trained;
  }
}
