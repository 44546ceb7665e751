package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.ChildLoaderLauncher;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;

/**
 * A {@code ai.djl.training.Trainer} that is not the one the agent was built for (another DJL
 * version): one warning, and the program runs unmodified.
 */
class UnexpectedTrainerShapeIT {

  private static final String TRAINER =
      String.join(
          "\n",
          "package ai.djl.training;",
          "public class Trainer {",
          "  private final String name;",
          "  public Trainer(String name) { this.name = name; }",
          "  public String train() { return \"trained \" + name; }",
          "}");

  private static final String APP =
      String.join(
          "\n",
          "package fake;",
          "public class FakeDjlApp {",
          "  public static void main(String[] args) {",
          "    System.out.println(\"FAKE: main started\");",
          "    for (int i = 0; i < 3; i++) {",
          "      System.out.println(\"FAKE: \" + new ai.djl.training.Trainer(\"t\" + i).train());",
          "    }",
          "  }",
          "}");

  /**
   * DJL on the system class path: the {@code Trainer} the config check loads before {@code main} is
   * checked as it loads (before the agent builds a listener that would not link against this DJL).
   */
  @Test
  void warnsOnceAndRunsUnmodified() throws Exception {
    Path dir = AgentConfigs.dir("unexpected-shape");
    Path classes = compileFakeDjl(dir);
    ForkedJvm.Result r =
        ForkedJvm.main("fake.FakeDjlApp")
            .classpath(List.of(classes.toString()))
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertRanUnmodifiedWithOneWarning(
        r,
        "ai.djl.training.Trainer does not have the shape DJL Surgery was built for (DJL 0.36.0),"
            + " missing field List listeners");
  }

  /**
   * DJL in a child class loader: nothing is linked before the {@code Trainer} class loads, so the
   * shape check on the class itself is what refuses it.
   */
  @Test
  void checksTheTrainerShapeBeforeWeaving() throws Exception {
    Path dir = AgentConfigs.dir("unexpected-shape-child");
    Path classes = compileFakeDjl(dir);
    Path launcher = SurgeryAgentIT.launcherOnly(dir);
    ForkedJvm.Result r =
        ForkedJvm.main(ChildLoaderLauncher.class.getName(), classes.toString(), "fake.FakeDjlApp")
            .classpath(List.of(launcher.toString()))
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertRanUnmodifiedWithOneWarning(
        r,
        "ai.djl.training.Trainer does not have the shape DJL Surgery was built for (DJL 0.36.0),"
            + " missing field List listeners, constructor (Model, TrainingConfig), method"
            + " initialize(Shape...)");
  }

  private static void assertRanUnmodifiedWithOneWarning(ForkedJvm.Result r, String warning) {
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(
        3, r.stdout().lines().filter(l -> l.startsWith("FAKE: trained t")).count(), r.toString());
    List<String> agent = r.agentLines();
    assertEquals(1, agent.size(), "exactly one agent line: " + r);
    assertTrue(agent.get(0).startsWith("surgery-agent: WARNING: "), r.toString());
    assertTrue(agent.get(0).contains(warning), r.toString());
    assertTrue(agent.get(0).contains("the program runs unmodified"), r.toString());
  }

  private static Path compileFakeDjl(Path dir) throws Exception {
    Path src = dir.resolve("src");
    Path classes = dir.resolve("classes");
    Files.createDirectories(src.resolve("ai/djl/training"));
    Files.createDirectories(src.resolve("fake"));
    Files.createDirectories(classes);
    Path trainer = Files.writeString(src.resolve("ai/djl/training/Trainer.java"), TRAINER);
    Path app = Files.writeString(src.resolve("fake/FakeDjlApp.java"), APP);
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    int rc =
        javac.run(null, null, null, "-d", classes.toString(), trainer.toString(), app.toString());
    assertEquals(0, rc, "fake DJL did not compile");
    AgentConfigs.write(dir, "surgery.yaml", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    return classes;
  }
}
