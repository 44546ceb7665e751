package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CnnApp;
import dev.surgery.agent.testapp.DjlInternalsProbe;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A DJL whose internals differ from the ones DJL Surgery was built for: here {@code
 * ai.djl.nn.norm.Dropout} lacks its {@code rate} field (a stand-in compiled into a directory put
 * ahead of the real DJL on the class path). The library names the class and field; the agent warns
 * once and the program runs unmodified.
 */
class MissingDjlFieldIT {

  private static final String FIELD = "ai.djl.nn.norm.Dropout.rate";

  /** A Dropout from "another DJL version": the rate lives under another name. */
  private static final String DROPOUT =
      String.join(
          "\n",
          "package ai.djl.nn.norm;",
          "public class Dropout {",
          "  private float probability;",
          "  public float probability() { return probability; }",
          "}");

  private static Path stub;

  @BeforeAll
  static void compileStub() throws Exception {
    Path dir = AgentConfigs.dir("missing-djl-field-stub");
    Path src = dir.resolve("src/ai/djl/nn/norm");
    Path classes = dir.resolve("classes");
    Files.createDirectories(src);
    Files.createDirectories(classes);
    Path file = Files.writeString(src.resolve("Dropout.java"), DROPOUT);
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    assertEquals(0, javac.run(null, null, null, "-d", classes.toString(), file.toString()));
    stub = classes;
  }

  @Test
  void verifyNamesTheMissingField() throws Exception {
    ForkedJvm.Result r =
        ForkedJvm.main(DjlInternalsProbe.class.getName())
            .classpath(stubFirst(ForkedJvm.appClasspath(true)))
            .workDir(AgentConfigs.dir("missing-djl-field-library"))
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    String outcome = r.findOut("PROBE: (.*)");
    assertTrue(outcome != null && outcome.contains(FIELD), r.toString());
  }

  /** Control for the above: without the stand-in, the same probe verifies. */
  @Test
  void verifySucceedsOnTheRealDjl() throws Exception {
    ForkedJvm.Result r =
        ForkedJvm.main(DjlInternalsProbe.class.getName())
            .classpath(ForkedJvm.appClasspath(true))
            .workDir(AgentConfigs.dir("missing-djl-field-control"))
            .run();
    assertEquals("verified", r.findOut("PROBE: (.*)"), r.toString());
  }

  @Test
  void agentWarnsOnceAndLeavesTheProgramUnmodified() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig("missing-djl-field-agent", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--epochs", "2")
            .classpath(stubFirst(ForkedJvm.appClasspath(false)))
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    DisabledAgentIT.assertUnchanged(r);
    List<String> agent = r.agentLines();
    assertEquals(1, agent.size(), "exactly one agent line: " + r);
    assertTrue(agent.get(0).startsWith("surgery-agent: WARNING: "), r.toString());
    assertTrue(agent.get(0).contains(FIELD), r.toString());
    assertTrue(agent.get(0).contains("the program runs unmodified"), r.toString());
  }

  private static List<String> stubFirst(List<String> classpath) {
    List<String> cp = new ArrayList<>();
    cp.add(stub.toString());
    cp.addAll(classpath);
    return cp;
  }
}
