package dev.surgery.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A benchmark's command line is checked before any work: an unknown flag, a missing or malformed
 * value, a count out of range or a misspelled choice is refused naming it, instead of running
 * something else than was asked (until now the whole default benchmark).
 */
class BenchFlagsTest {

  private static final BenchFlags FLAGS =
      BenchFlags.of("Bx", "a test command")
          .count("runs", 5, 1, "runs")
          .count("later", null, 1, "a count whose default the caller decides")
          .choice("part", "all", "which part", "all", "leaks", "scale")
          .choices("only", null, "algorithms", "blurpool", "factorize")
          .number("momentum", 0.9, 0, 1, "a momentum")
          .text("out", "target/x", "a path")
          .toggle("events", "a switch");

  private static String refusal(String... args) {
    return assertThrows(IllegalArgumentException.class, () -> FLAGS.parse(args)).getMessage();
  }

  @Test
  void givenValuesAndDefaults() {
    BenchFlags.Values v =
        FLAGS.parse(new String[] {"--runs", "3", "--part=scale", "--only", "factorize,blurpool"});
    assertEquals(3, v.count("runs"));
    assertEquals(7, v.count("later", 7));
    assertEquals("scale", v.text("part"));
    assertEquals(List.of("factorize", "blurpool"), v.list("only"));
    assertEquals(0.9, v.number("momentum"));
    assertEquals("target/x", v.text("out"));
    assertFalse(v.has("events"));
    assertTrue(FLAGS.parse(new String[] {"--events"}).has("events"));
    assertEquals(List.of(), FLAGS.parse(new String[0]).list("only"));
  }

  @Test
  void theLastValueOfARepeatedFlagWins() {
    assertEquals(2, FLAGS.parse(new String[] {"--runs", "9", "--runs", "2"}).count("runs"));
    assertEquals(
        "leaks", FLAGS.parse(new String[] {"--part=scale", "--part", "leaks"}).text("part"));
  }

  @Test
  void aBadCommandLineIsRefusedNamingTheFlag() {
    assertTrue(refusal("--runz", "3").startsWith("unknown flag --runz; the flags are --runs"));
    assertTrue(refusal("--runs").contains("--runs needs a value"));
    assertTrue(refusal("--runs", "--part", "all").contains("--runs needs a value"));
    assertEquals("--runs must be at least 1, got 0", refusal("--runs", "0"));
    assertEquals("--runs must be at least 1, got -1", refusal("--runs", "-1"));
    assertEquals("--runs must be a whole number, got 'x'", refusal("--runs", "x"));
    assertEquals(
        "--runs must be at most 2147483647, got 99999999999", refusal("--runs", "99999999999"));
    assertEquals("--part must be one of all, leaks, scale, got agnet", refusal("--part", "agnet"));
    assertTrue(refusal("--only", "blurpoool").contains("unknown name 'blurpoool'"));
    assertTrue(refusal("--momentum", "1.5").startsWith("--momentum must be in [0.0, 1.0]"));
    assertTrue(refusal("--events=yes").contains("--events takes no value"));
    assertTrue(refusal("stray").contains("unexpected argument 'stray'"));
  }

  @Test
  void helpPrintsTheUsageAndExitsWithZeroARefusalOneLineAndTwo() {
    BenchFlags.HelpRequested help =
        assertThrows(BenchFlags.HelpRequested.class, () -> FLAGS.parse(new String[] {"--help"}));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    assertEquals(0, FLAGS.report(help, print(out), print(err)));
    String usage = out.toString(StandardCharsets.UTF_8);
    assertTrue(usage.startsWith("Usage: Bx [flags]"), usage);
    assertTrue(usage.contains("--runs N  runs (default 5), at least 1"), usage);
    assertEquals(0, err.size());

    out.reset();
    IllegalArgumentException bad =
        assertThrows(
            IllegalArgumentException.class, () -> FLAGS.parse(new String[] {"--runs", "0"}));
    assertEquals(2, FLAGS.report(bad, print(out), print(err)));
    assertEquals("Bx: --runs must be at least 1, got 0\n", err.toString(StandardCharsets.UTF_8));
    assertEquals(0, out.size());
  }

  private static PrintStream print(ByteArrayOutputStream bytes) {
    return new PrintStream(bytes, true, StandardCharsets.UTF_8);
  }

  /** Each benchmark's own flags: what the defects were found with. */
  @Test
  void theBenchmarksRefuseWhatTheyDoNotTake() {
    assertThrows(
        IllegalArgumentException.class, () -> B1LiveSurgery.FLAGS.parse(new String[] {"--run"}));
    assertThrows(
        BenchFlags.HelpRequested.class, () -> B4ScaleAndLeaks.FLAGS.parse(new String[] {"--help"}));
    assertThrows(
        IllegalArgumentException.class,
        () -> B4ScaleAndLeaks.FLAGS.parse(new String[] {"--part", "scales"}));
    // B4a needs a round of each order (engine first, floor first); the leak soak alone does not.
    IllegalArgumentException runs =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                B4ScaleAndLeaks.options(
                    B4ScaleAndLeaks.FLAGS.parse(new String[] {"--part", "scale", "--runs", "1"})));
    assertTrue(runs.getMessage().contains("--runs"), runs.getMessage());
    assertEquals(
        1,
        B4ScaleAndLeaks.options(
                B4ScaleAndLeaks.FLAGS.parse(new String[] {"--part", "leaks", "--runs", "1"}))
            .runs());
    String only =
        assertThrows(
                IllegalArgumentException.class,
                () -> B5AlgorithmAccuracy.FLAGS.parse(new String[] {"--only", "blurpoool"}))
            .getMessage();
    assertTrue(only.contains("'blurpoool'") && only.contains("layer_freezing"), only);
    // layer_freezing freezes at epoch ends before the last: with one epoch it ran nowhere,
    // silently.
    String freezing =
        assertThrows(
                IllegalArgumentException.class,
                () ->
                    B5AlgorithmAccuracy.options(
                        B5AlgorithmAccuracy.FLAGS.parse(
                            new String[] {"--epochs", "1", "--only", "layer_freezing"})))
            .getMessage();
    assertTrue(freezing.contains("--epochs 2 or more"), freezing);
    assertThrows(
        IllegalArgumentException.class,
        () -> B6TimeToAccuracy.FLAGS.parse(new String[] {"--datasets", "mnist,cifar"}));
    String recipe =
        assertThrows(
                IllegalArgumentException.class,
                () ->
                    B6TimeToAccuracy.variants(
                        B6TimeToAccuracy.FLAGS.parse(new String[] {"--recipe", "blurpool"})))
            .getMessage();
    assertTrue(recipe.startsWith("--recipe: "), recipe);
    assertThrows(
        IllegalArgumentException.class,
        () -> SvdComparison.options(SvdComparison.FLAGS.parse(new String[] {"--shapes", "64x"})));
    assertTrue(
        SvdComparison.options(SvdComparison.FLAGS.parse(new String[] {"--core-only"})).coreOnly());
  }

  /**
   * A real main, as a user starts it: {@code --runs 0} stops it with one line and status 2 before
   * any model is built, {@code --help} prints the usage with status 0.
   */
  @Test
  void aMainExitsWithTwoOnABadFlagAndZeroOnHelp() throws Exception {
    Result bad = runMain(B1LiveSurgery.class, "--runs", "0");
    assertEquals(2, bad.status(), bad.output());
    assertEquals("B1LiveSurgery: --runs must be at least 1, got 0", bad.output().strip());
    Result help = runMain(B1LiveSurgery.class, "--help");
    assertEquals(0, help.status(), help.output());
    assertTrue(help.output().startsWith("Usage: B1LiveSurgery"), help.output());
  }

  /**
   * B6 and B2 refuse before any run, with one line and status 2, what would fail or mean nothing
   * later (they printed stack traces, accepted a recipe entry that never runs, or skipped with 0).
   */
  @Test
  void b6AndB2RefuseBadInputBeforeAnyRunWithOneLine(@TempDir Path tmp) throws Exception {
    String out = tmp.resolve("out").toString();
    List<List<String>> bad =
        List.of(
            List.of("--datasets", "mnist", "--mnist-dir", tmp.resolve("none").toString()),
            List.of("--datasets", "synthetic", "--out", "/proc/x"),
            List.of("--datasets", "synthetic", "--out", out, "--recipe", "blurpool@x"),
            List.of("--datasets", "synthetic", "--out", out, "--recipe", "blurpool@5"));
    List<String> expected =
        List.of("fetch-mnist.sh", "--out /proc/x", "epoch 'x'", "would never run");
    for (int i = 0; i < bad.size(); i++) {
      Result r = runMain(B6TimeToAccuracy.class, bad.get(i).toArray(new String[0]));
      assertEquals(2, r.status(), r.output());
      assertEquals(1, r.output().strip().lines().count(), r.output());
      assertTrue(r.output().contains(expected.get(i)), r.output());
    }
    Result agent =
        runMain(
            B2IdleOverhead.class, "--part", "agent", "--agent", tmp.resolve("no.jar").toString());
    assertEquals(2, agent.status(), agent.output());
    assertEquals(1, agent.output().strip().lines().count(), agent.output());
  }

  private record Result(int status, String output) {}

  private static Result runMain(Class<?> main, String... args)
      throws IOException, InterruptedException {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(main.getName());
    command.addAll(List.of(args));
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the main did not end");
    return new Result(p.exitValue(), output);
  }
}
