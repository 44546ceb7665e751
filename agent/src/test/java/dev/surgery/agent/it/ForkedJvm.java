package dev.surgery.agent.it;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * Runs a program in a separate JVM, the way a user would: {@code java -javaagent:... -cp ... Main}.
 * Every JVM runs DJL offline ({@code DJL_OFFLINE}, {@code OPT_OUT_TRACKING}, {@code
 * -Dai.djl.offline=true}) and without inherited {@code SURGERY_*} variables.
 */
final class ForkedJvm {

  private static final AtomicInteger RUNS = new AtomicInteger();

  /**
   * The four lines JDK 24 and later print on standard error the first time ByteBuddy, in the agent,
   * calls a {@code sun.misc.Unsafe} memory-access method: the JDK's lines, not the agent's, so the
   * result leaves them out (JDK 17 prints none).
   */
  private static final Pattern JDK_UNSAFE_WARNING =
      Pattern.compile(
          "(?m)^WARNING: A terminally deprecated method in sun\\.misc\\.Unsafe has been called\\R"
              + "(?:WARNING: .*\\R){3}");

  /**
   * JIT flags of every forked JVM. A forked program lives seconds, most of it class loading and
   * first calls; on two cores C2's compiler threads cost it more than their code returns (the
   * agent's integration tests took about a third less time with C1 alone, a refused config half).
   * {@code -Dsurgery.it.forkFlags=} (empty) runs them with the JVM's defaults.
   */
  private static final List<String> FORK_FLAGS =
      Arrays.stream(
              System.getProperty("surgery.it.forkFlags", "-XX:TieredStopAtLevel=1").split(" "))
          .filter(f -> !f.isBlank())
          .toList();

  private final List<String> jvmArgs = new ArrayList<>();
  private final Map<String, String> env = new LinkedHashMap<>();
  private List<String> classpath = appClasspath(false);
  private Path workDir = workRoot();
  private String mainClass;
  private final List<String> args = new ArrayList<>();

  /** The result of a run. */
  record Result(int exitCode, String stdout, String stderr) {

    /** Lines of standard error printed by the agent. */
    List<String> agentLines() {
      return stderr.lines().filter(l -> l.startsWith("surgery-agent: ")).toList();
    }

    /** Asserts that the program ended normally with {@code CnnApp}'s network blurred. */
    void assertTrainedWithBlur() {
      org.junit.jupiter.api.Assertions.assertEquals(0, exitCode, this::toString);
      String after = findOut("CNNAPP: block tree after training: (.*)");
      org.junit.jupiter.api.Assertions.assertTrue(
          after != null && after.contains("BlurConv2d"), this::toString);
    }

    /** Asserts that the agent printed exactly one line, and that it matches a pattern. */
    void assertOnlyAgentLine(String regex) {
      List<String> agent = agentLines();
      org.junit.jupiter.api.Assertions.assertEquals(1, agent.size(), this::toString);
      org.junit.jupiter.api.Assertions.assertTrue(agent.get(0).matches(regex), this::toString);
    }

    /** Counts the lines of standard error matching a pattern. */
    long countErr(String regex) {
      Pattern p = Pattern.compile(regex);
      return stderr.lines().filter(l -> p.matcher(l).find()).count();
    }

    /** The first capture group of the first stdout line matching a pattern, or null. */
    String findOut(String regex) {
      Matcher m = Pattern.compile(regex).matcher(stdout);
      return m.find() ? m.group(1) : null;
    }

    @Override
    public String toString() {
      return "exit " + exitCode + "\n--- stdout\n" + stdout + "\n--- stderr\n" + stderr;
    }
  }

  static ForkedJvm main(String mainClass, String... args) {
    ForkedJvm jvm = new ForkedJvm();
    jvm.mainClass = mainClass;
    jvm.args.addAll(Arrays.asList(args));
    return jvm;
  }

  ForkedJvm agent(String argument) {
    jvmArgs.add("-javaagent:" + agentJar() + (argument == null ? "" : "=" + argument));
    return this;
  }

  ForkedJvm jvmArg(String arg) {
    jvmArgs.add(arg);
    return this;
  }

  ForkedJvm env(String name, String value) {
    env.put(name, value);
    return this;
  }

  ForkedJvm classpath(List<String> entries) {
    classpath = entries;
    return this;
  }

  ForkedJvm workDir(Path dir) {
    workDir = dir;
    return this;
  }

  Result run() throws IOException, InterruptedException {
    Files.createDirectories(workDir);
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-Dai.djl.offline=true");
    command.add("-Xmx1g");
    command.addAll(FORK_FLAGS);
    command.add("-Dorg.slf4j.simpleLogger.defaultLogLevel=info");
    command.addAll(jvmArgs);
    command.add("-cp");
    command.add(String.join(File.pathSeparator, classpath));
    command.add(mainClass);
    command.addAll(args);
    int n = RUNS.incrementAndGet();
    Path out = workDir.resolve("run-" + n + ".out");
    Path err = workDir.resolve("run-" + n + ".err");
    ProcessBuilder pb =
        new ProcessBuilder(command)
            .directory(workDir.toFile())
            .redirectOutput(out.toFile())
            .redirectError(err.toFile());
    Map<String, String> environment = pb.environment();
    environment.keySet().removeIf(k -> k.startsWith("SURGERY_"));
    environment.put("DJL_OFFLINE", "true");
    environment.put("OPT_OUT_TRACKING", "true");
    environment.put("DJL_DISABLE_PROGRESS_BAR", "true");
    environment.putAll(env);
    Process process = pb.start();
    if (!process.waitFor(240, TimeUnit.SECONDS)) {
      process.destroyForcibly().waitFor();
      throw new AssertionError("forked JVM timed out: " + String.join(" ", command));
    }
    return new Result(
        process.exitValue(),
        Files.readString(out, StandardCharsets.UTF_8),
        JDK_UNSAFE_WARNING.matcher(Files.readString(err, StandardCharsets.UTF_8)).replaceAll(""));
  }

  static Path agentJar() {
    Path jar = Path.of(System.getProperty("surgery.agent.jar", "target/surgery-agent.jar"));
    if (!Files.isRegularFile(jar)) {
      throw new AssertionError("agent jar not built: " + jar.toAbsolutePath());
    }
    return jar.toAbsolutePath();
  }

  static Path workRoot() {
    return Path.of(System.getProperty("surgery.it.workDir", "target/it-work")).toAbsolutePath();
  }

  /** The test class path as Maven resolved it. */
  static List<String> testClasspath() {
    String cp = System.getProperty("surefire.test.class.path");
    if (cp == null || cp.isBlank()) {
      cp = System.getProperty("java.class.path");
    }
    return Arrays.stream(cp.split(File.pathSeparator)).filter(s -> !s.isBlank()).toList();
  }

  /**
   * The class path of the program under test: the test class path without the agent's own classes
   * and the libraries it bundles, so the program sees DJL exactly as a user's would.
   *
   * @param withSurgeryLibrary keep DJL Surgery's core and trainer modules (a program that uses the
   *     library itself)
   */
  static List<String> appClasspath(boolean withSurgeryLibrary) {
    String agentClasses =
        Path.of(System.getProperty("surgery.it.classes", "target/classes"))
            .toAbsolutePath()
            .toString();
    return testClasspath().stream()
        .filter(e -> !Path.of(e).toAbsolutePath().toString().equals(agentClasses))
        .filter(e -> !isAgentJar(e))
        .filter(e -> !name(e).startsWith("byte-buddy"))
        .filter(e -> !isTestTooling(e))
        .filter(e -> withSurgeryLibrary || !isSurgeryLibrary(e))
        .collect(Collectors.toList());
  }

  /** The entries of {@link #appClasspath} that hold DJL and its dependencies, nothing else. */
  static List<String> withoutTestClasses(List<String> cp) {
    String testClasses =
        Path.of(System.getProperty("surgery.it.testClasses", "target/test-classes"))
            .toAbsolutePath()
            .toString();
    return cp.stream()
        .filter(e -> !Path.of(e).toAbsolutePath().toString().equals(testClasses))
        .collect(Collectors.toList());
  }

  static String testClassesDir() {
    return Path.of(System.getProperty("surgery.it.testClasses", "target/test-classes"))
        .toAbsolutePath()
        .toString();
  }

  private static String name(String entry) {
    return Path.of(entry).getFileName().toString();
  }

  private static boolean isAgentJar(String entry) {
    String n = name(entry);
    return n.equals("surgery-agent.jar")
        || n.startsWith("surgery-agent-")
        || n.startsWith("original-surgery-agent");
  }

  private static boolean isSurgeryLibrary(String entry) {
    String p = entry.replace('\\', '/');
    String n = name(entry);
    return n.startsWith("surgery-core")
        || n.startsWith("surgery-trainer")
        || n.startsWith("snakeyaml-engine")
        || p.contains("/core/target/")
        || p.contains("/trainer-integration/target/");
  }

  private static boolean isTestTooling(String entry) {
    String n = name(entry);
    return n.startsWith("junit-")
        || n.startsWith("opentest4j")
        || n.startsWith("apiguardian")
        || n.startsWith("surefire")
        || n.startsWith("common-java5")
        || n.startsWith("common-junit");
  }
}
