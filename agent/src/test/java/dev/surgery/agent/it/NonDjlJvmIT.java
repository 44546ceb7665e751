package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;

/**
 * A JVM that never loads DJL, as every JVM of a shell whose {@code JAVA_TOOL_OPTIONS} names the
 * agent ({@code javac}, Maven, other programs): an outside probe measured 0.95 s of CPU and 50 MB
 * more for a hello-world, spent installing ByteBuddy. The agent now loads ByteBuddy only at the
 * first DJL class.
 */
class NonDjlJvmIT {

  @Test
  void aJvmThatNeverLoadsDjlNeverLoadsByteBuddy() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("non-djl-jvm", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    Path src = Files.createDirectories(dir.resolve("src"));
    Path classes = Files.createDirectories(dir.resolve("classes"));
    Path hello =
        Files.writeString(
            src.resolve("Hello.java"),
            "public class Hello { public static void main(String[] a) {"
                + " System.out.println(\"HELLO\"); } }");
    assertEquals(
        0,
        ToolProvider.getSystemJavaCompiler()
            .run(null, null, null, "-d", classes.toString(), hello.toString()));
    ForkedJvm.Result r =
        ForkedJvm.main("Hello")
            .classpath(List.of(classes.toString()))
            .agent("surgery.yaml")
            .jvmArg("-verbose:class")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertTrue(r.stdout().contains("HELLO"), r.toString());
    assertTrue(r.agentLines().isEmpty(), r.toString());
    List<String> byteBuddy =
        r.stdout().lines().filter(l -> l.contains("dev.surgery.shaded.bytebuddy")).toList();
    assertEquals(List.of(), byteBuddy);
    // The agent did start: its plain transformer is loaded.
    assertTrue(r.stdout().contains("dev.surgery.agent.FirstDjlClassTransformer"), r.toString());
  }
}
