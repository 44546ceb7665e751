package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/** Starts a sample's main class in a new JVM, as a user would, and captures what it prints. */
final class SampleProcess {

  /**
   * JIT flags of every forked job: C1 alone, since a job of seconds spends most of them loading
   * classes and C2's compiler threads cost more than they return on two cores. {@code
   * -Dsurgery.it.forkFlags=} (empty) runs the jobs with the JVM's defaults.
   */
  private static final List<String> FORK_FLAGS =
      Arrays.stream(
              System.getProperty("surgery.it.forkFlags", "-XX:TieredStopAtLevel=1").split(" "))
          .filter(f -> !f.isBlank())
          .toList();

  private SampleProcess() {}

  /**
   * What the process did.
   *
   * @param exitCode its exit status
   * @param output stdout and stderr, interleaved
   * @param workDir its working directory
   */
  record Result(int exitCode, String output, Path workDir) {

    JsonObject json(String relative) throws IOException {
      return JsonParser.parseString(Files.readString(workDir.resolve(relative))).getAsJsonObject();
    }

    /** The last block tree printed (from its first line to the line that closes it). */
    String blockTree() {
      // The root is the only block printed at the start of a line.
      int start = output.lastIndexOf("\nSequentialBlock(") + 1;
      assertTrue(start > 0, "no block tree printed:\n" + tail());
      int end = output.indexOf("\n} -> ", start);
      return output.substring(start, end < 0 ? output.length() : end);
    }

    String tail() {
      return output.length() > 6000 ? output.substring(output.length() - 6000) : output;
    }
  }

  static Path agentJar() {
    return Path.of(System.getProperty("surgery.agent.jar", "../agent/target/surgery-agent.jar"));
  }

  static Path samplesDir() {
    return Path.of(System.getProperty("samples.basedir", "."));
  }

  /** A fresh, empty working directory under target/it. */
  static Path workDir(String name) throws IOException {
    Path dir = Path.of(System.getProperty("samples.workdir", "target/it")).resolve(name);
    if (Files.exists(dir)) {
      try (Stream<Path> files = Files.walk(dir)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
    return Files.createDirectories(dir);
  }

  static String classpath() throws IOException {
    String classes = System.getProperty("samples.classes", "target/classes");
    Path file =
        Path.of(System.getProperty("samples.classpath.file", "target/samples-runtime.classpath"));
    return classes + File.pathSeparator + Files.readString(file, StandardCharsets.UTF_8).trim();
  }

  static Result run(Path workDir, List<String> jvmArgs, Class<?> main, String... args)
      throws IOException, InterruptedException {
    return run(workDir, jvmArgs, classpath(), main, args);
  }

  /** Runs a main class of the test sources: the samples' class path plus the test classes. */
  static Result runWithTestClasses(
      Path workDir, List<String> jvmArgs, Class<?> main, String... args)
      throws IOException, InterruptedException {
    String testClasses =
        Path.of(main.getProtectionDomain().getCodeSource().getLocation().getPath()).toString();
    return run(workDir, jvmArgs, classpath() + File.pathSeparator + testClasses, main, args);
  }

  private static Result run(
      Path workDir, List<String> jvmArgs, String classpath, Class<?> main, String... args)
      throws IOException, InterruptedException {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-Dai.djl.offline=true");
    command.add("-Xmx1g");
    command.addAll(FORK_FLAGS);
    command.addAll(jvmArgs);
    command.add("-cp");
    command.add(classpath);
    command.add(main.getName());
    command.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(command).directory(workDir.toFile());
    pb.environment().put("DJL_OFFLINE", "true");
    pb.environment().put("OPT_OUT_TRACKING", "true");
    pb.redirectErrorStream(true);
    Path log = workDir.resolve("process.log");
    pb.redirectOutput(log.toFile());
    Process process = pb.start();
    if (!process.waitFor(8, TimeUnit.MINUTES)) {
      process.destroyForcibly();
      throw new AssertionError("timed out: " + command);
    }
    return new Result(process.exitValue(), Files.readString(log, StandardCharsets.UTF_8), workDir);
  }
}
