package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.UnrelatedIsolatedLoaderApp;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * DJL in a class loader that does not delegate to the system class loader cannot link the agent's
 * dispatcher: the agent leaves that {@code Trainer} alone with one warning instead of weaving
 * advice that would fail, and the program trains unmodified.
 */
class IsolatedClassLoaderIT {

  @Test
  void aLoaderThatDefinesNoDjlClassIsNotWarnedOf() throws Exception {
    // Another agent's or a plugin's loader: the class loader was asked about before the type, so
    // the warning named it as defining DJL's Trainer, and used up the one warning there is.
    Path dir =
        AgentConfigs.dirWithConfig("unrelated-isolated-loader", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(
                UnrelatedIsolatedLoaderApp.class.getName(),
                ForkedJvm.testClassesDir(),
                "--epochs",
                "2")
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertTrue(r.findOut("UNRELATED: loaded (.*)").contains("AppendingSystemLoader"), r.toString());
    assertEquals(List.of(), r.agentLines(), r.toString());
    String after = r.findOut("CNNAPP: block tree after training: (.*)");
    assertTrue(after.contains("BlurConv2d"), r.toString());
  }

  @Test
  void warnsOnceAndTrainsUnmodified() throws Exception {
    ForkedJvm.Result r = inIsolatedLoader("isolated-loader", ForkedJvm.appClasspath(false));
    DisabledAgentIT.assertUnchanged(r);
    r.assertOnlyAgentLine(
        "surgery-agent: WARNING: class loader .* defines ai.djl.training.Trainer but cannot see"
            + " the agent jar; its trainers run unmodified");
  }

  /**
   * A child-first loader that holds its own copy of the agent jar (exec:java with the agent as a
   * dependency): told it "cannot see the agent jar", a user would add the jar once more, which is
   * what broke it (an outside probe). The warning names the copy and says to remove it.
   */
  @Test
  void aLoaderWithItsOwnCopyOfTheAgentIsToldToRemoveIt() throws Exception {
    List<String> child = new java.util.ArrayList<>(ForkedJvm.appClasspath(false));
    child.add(ForkedJvm.agentJar().toString());
    ForkedJvm.Result r = inIsolatedLoader("own-agent-copy", child);
    DisabledAgentIT.assertUnchanged(r);
    r.assertOnlyAgentLine(
        "surgery-agent: WARNING: class loader .* defines ai.djl.training.Trainer and loads its own"
            + " copy of the agent's classes \\(from .*surgery-agent\\.jar\\) instead of the"
            + " agent's; its trainers run unmodified\\. Remove the agent jar from the"
            + " application's class path \\(the -javaagent jar is enough\\)");
  }

  /**
   * Runs the CNN app, BlurPool at epoch 1 under the agent, in a child loader that does not delegate
   * to the system class loader, with {@code childClasspath} as its class path.
   */
  private static ForkedJvm.Result inIsolatedLoader(String name, List<String> childClasspath)
      throws Exception {
    Path dir = AgentConfigs.dirWithConfig(name, AgentConfigs.BLURPOOL_AT_EPOCH_1);
    return SurgeryAgentIT.cnnInChildLoader(dir, childClasspath, "1")
        .jvmArg("-Dlauncher.isolated=true")
        .agent("surgery.yaml")
        .run();
  }
}
