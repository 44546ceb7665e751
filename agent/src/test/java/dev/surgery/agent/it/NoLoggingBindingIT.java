package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CnnApp;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A program without an SLF4J binding: the surgery library's lines go nowhere, so the agent says so
 * once on standard error, naming the two ways to see them; the surgery itself still runs.
 */
class NoLoggingBindingIT {

  @Test
  void withoutABindingTheAgentSaysTheSurgeryLogIsNotShown() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("no-logging-binding", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    List<String> withoutBinding =
        ForkedJvm.appClasspath(false).stream()
            .filter(e -> !Path.of(e).getFileName().toString().startsWith("slf4j-simple"))
            .toList();
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--epochs", "2")
            .agent("surgery.yaml")
            .classpath(withoutBinding)
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertTrue(
        r.findOut("CNNAPP: block tree after training: (.*)").contains("BlurConv2d"), r.toString());
    assertEquals(
        1,
        r.countErr(
            "^surgery-agent: the program's SLF4J has no binding \\(it logs nowhere\\), so the"
                + " surgery's own lines are not shown: .* set 'report: <file>' in surgery.yaml for"
                + " the surgery log$"),
        r.toString());
  }
}
