package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.AppendingSystemLoader;
import dev.surgery.agent.testapp.CnnApp;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A program started with a custom system class loader ({@code -Djava.system.class.loader}): the JVM
 * appends the agent jar to that loader, a child of the application loader that defines DJL.
 * ByteBuddy's default took the application loader for the extension loader and left it out, so
 * every trainer ran without surgery under a warning that named the platform loader. Now the warning
 * names the application loader and says what to do, and with the agent jar on {@code -cp} the
 * trainers get their surgery.
 */
class CustomSystemClassLoaderIT {

  private static ForkedJvm.Result run(String name, boolean agentJarOnClassPath) throws Exception {
    Path dir = AgentConfigs.dirWithConfig(name, AgentConfigs.BLURPOOL_AT_EPOCH_1);
    List<String> cp = new ArrayList<>();
    if (agentJarOnClassPath) {
      cp.add(ForkedJvm.agentJar().toString());
    }
    cp.addAll(ForkedJvm.appClasspath(false));
    return ForkedJvm.main(CnnApp.class.getName(), "--epochs", "2")
        .classpath(cp)
        .jvmArg("-Djava.system.class.loader=" + AppendingSystemLoader.class.getName())
        .jvmArg("-Xshare:off")
        .agent("surgery.yaml")
        .workDir(dir)
        .run();
  }

  @Test
  void withTheAgentJarOnTheClassPathTheTrainersGetTheirSurgery() throws Exception {
    ForkedJvm.Result r = run("custom-system-loader", true);
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(List.of(), r.agentLines(), r.toString());
    String after = r.findOut("CNNAPP: block tree after training: (.*)");
    assertTrue(after.contains("BlurConv2d") && after.contains("BlurMaxPool2d"), r.toString());
  }

  @Test
  void withoutItTheWarningNamesTheLoaderThatDefinesDjlAndWhatToDo() throws Exception {
    ForkedJvm.Result r = run("custom-system-loader-no-cp", false);
    assertEquals(0, r.exitCode(), r.toString());
    r.assertOnlyAgentLine(
        "surgery-agent: WARNING: class loader jdk\\.internal\\.loader\\.ClassLoaders\\$AppClassLoader@"
            + "[0-9a-f]+ defines ai\\.djl\\.training\\.Trainer but cannot see the agent jar;"
            + " its trainers run unmodified \\(with -Djava\\.system\\.class\\.loader, put"
            + " the agent jar on -cp too\\)");
    String after = r.findOut("CNNAPP: block tree after training: (.*)");
    assertTrue(!after.contains("Blur"), r.toString());
  }
}
