package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.CheckpointApp;
import dev.surgery.agent.testapp.EventsApp;
import dev.surgery.core.events.Event;
import dev.surgery.testplugin.DuplicatePluginProvider;
import dev.surgery.testplugin.FailingInitPluginProvider;
import dev.surgery.testplugin.TestPluginProvider;
import dev.surgery.testplugin.ThrowingAlgorithm;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Training events under the agent, seen by a plugin from a separate jar ({@code extensions=}) in an
 * unmodified DJL program, for {@code EasyTrain.fit} and for a hand-written loop. The expected
 * sequences are built here from the event grammar documented in {@link Event} and the program's
 * known shape (4 batches per epoch), not from the agent's output.
 */
class EventsIT {

  private static final int BATCHES = 4;

  /** A config with the recording plugin alone. */
  private static final String RECORDING = "algorithms:\n  - name: recording\n";

  private static final String SERVICES =
      "META-INF/services/dev.surgery.core.algorithms.AlgorithmProvider";

  /**
   * A plugin jar of the test plugin classes whose services file names one provider. The jar holds
   * that provider and the algorithms, not the other provider, as two separate plugins would.
   */
  static Path pluginJar(Path dir, String name, Class<?> provider) throws IOException {
    Path classes = Path.of(ForkedJvm.testClassesDir());
    Path pkg = classes.resolve("dev/surgery/testplugin");
    Path jar = dir.resolve(name);
    try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar));
        Stream<Path> files = Files.list(pkg)) {
      for (Path f : files.sorted().toList()) {
        String file = f.getFileName().toString();
        if (file.endsWith("Provider.class") && !file.equals(provider.getSimpleName() + ".class")) {
          continue;
        }
        out.putNextEntry(
            new JarEntry(classes.relativize(f).toString().replace(File.separatorChar, '/')));
        Files.copy(f, out);
        out.closeEntry();
      }
      out.putNextEntry(new JarEntry(SERVICES));
      OutputStream o = out;
      o.write((provider.getName() + "\n").getBytes(StandardCharsets.UTF_8));
      out.closeEntry();
    }
    return jar;
  }

  private static List<String> expected(boolean fit, int epochs, boolean validation) {
    List<String> out = new ArrayList<>();
    out.add("INIT");
    if (fit) {
      out.add("FIT_START");
    }
    for (int e = 0; e < epochs; e++) {
      out.add("EPOCH_START");
      for (int b = 0; b < BATCHES; b++) {
        out.addAll(List.of("BATCH_START", "AFTER_FORWARD", "AFTER_BACKWARD", "BATCH_END"));
      }
      if (validation) {
        out.addAll(List.of("EVAL_START", "EVAL_END"));
      }
      out.add("EPOCH_END");
    }
    if (fit) {
      out.add("FIT_END");
    }
    return out;
  }

  private static ForkedJvm.Result run(Path dir, String yaml, String extensions, String... args)
      throws Exception {
    AgentConfigs.write(dir, "surgery.yaml", yaml);
    return ForkedJvm.main(EventsApp.class.getName(), args)
        .agent("config=surgery.yaml;extensions=" + extensions)
        .jvmArg("-Dsurgery.test.record=" + dir.resolve("events.txt"))
        .workDir(dir)
        .run();
  }

  private static List<String> recorded(Path dir) throws IOException {
    Path file = dir.resolve("events.txt");
    return Files.isRegularFile(file) ? Files.readAllLines(file) : List.of();
  }

  @ParameterizedTest
  @ValueSource(strings = {"fit", "loop"})
  void everyEventFiresOncePerOccurrenceInTheDocumentedOrder(String mode) throws Exception {
    Path dir = AgentConfigs.dir("events-order-" + mode);
    Path jar = pluginJar(dir, "recording.jar", TestPluginProvider.class);
    ForkedJvm.Result r = run(dir, RECORDING, jar.toString(), mode, "2", "validation");
    assertEquals(0, r.exitCode(), r.toString());
    List<String> lines = recorded(dir);
    List<String> events = lines.stream().map(l -> l.split(" ")[0]).toList();
    assertEquals(expected(mode.equals("fit"), 2, true), events, r.toString());
    // The k-th BATCH_END sees k optimizer steps; the n-th EPOCH_END n completed epochs.
    List<String> batchEnds = lines.stream().filter(l -> l.startsWith("BATCH_END ")).toList();
    for (int k = 1; k <= batchEnds.size(); k++) {
      assertTrue(batchEnds.get(k - 1).contains(" steps=" + k + " "), batchEnds.get(k - 1));
    }
    List<String> epochEnds = lines.stream().filter(l -> l.startsWith("EPOCH_END ")).toList();
    for (int n = 1; n <= epochEnds.size(); n++) {
      assertTrue(epochEnds.get(n - 1).contains(" epochs=" + n + " "), epochEnds.get(n - 1));
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"fit", "loop"})
  void stepSurgeryLandsAfterExactlyKStepsAndTheTrainerStaysExact(String mode) throws Exception {
    Path dir = AgentConfigs.dir("events-step-" + mode);
    Path jar = pluginJar(dir, "recording.jar", TestPluginProvider.class);
    String yaml =
        String.join(
            "\n", "algorithms:", "  - name: blurpool", "    step: 3", "  - name: recording", "");
    ForkedJvm.Result r = run(dir, yaml, jar.toString(), mode, "2");
    assertEquals(0, r.exitCode(), r.toString());
    List<String> batchEnds =
        recorded(dir).stream().filter(l -> l.startsWith("BATCH_END ")).toList();
    assertEquals(2 * BATCHES, batchEnds.size(), r.toString());
    for (String line : batchEnds) {
      int steps = Integer.parseInt(line.replaceAll(".* steps=(\\d+) .*", "$1"));
      // blurpool runs before recording (YAML order) at the BATCH_END of step 3, not before.
      assertEquals(steps >= 3, line.contains(" blur=true"), line);
      assertTrue(line.endsWith(" exact=ok"), line);
    }
    assertTrue(r.findOut("EVENTSAPP: structure (.*)").contains("BlurConv2d"), r.toString());
  }

  @ParameterizedTest
  @ValueSource(strings = {"match", "apply"})
  void aThrowingPluginStopsTrainingNamingItUnlessOnErrorSkip(String where) throws Exception {
    Path dir = AgentConfigs.dir("events-throw-" + where);
    Path jar = pluginJar(dir, "plugins.jar", TestPluginProvider.class);
    String entries = "algorithms:\n  - name: throwing\n  - name: recording\n";
    AgentConfigs.write(dir, "surgery.yaml", entries);
    ForkedJvm.Result failed =
        ForkedJvm.main(EventsApp.class.getName(), "fit", "1")
            .agent("config=surgery.yaml;extensions=" + jar)
            .jvmArg("-Dsurgery.test.throw=" + where)
            .workDir(dir)
            .run();
    assertNotEquals(0, failed.exitCode(), failed.toString());
    assertFalse(failed.stdout().contains("EVENTSAPP: done"), failed.toString());
    assertTrue(
        failed.stderr().contains(ThrowingAlgorithm.MESSAGE + " in " + where), failed.toString());
    assertTrue(failed.stderr().contains("throwing"), failed.toString());

    Path skipDir = AgentConfigs.dir("events-throw-skip-" + where);
    Path skipJar = pluginJar(skipDir, "plugins.jar", TestPluginProvider.class);
    AgentConfigs.write(skipDir, "surgery.yaml", "on_error: skip\n" + entries);
    ForkedJvm.Result skipped =
        ForkedJvm.main(EventsApp.class.getName(), "fit", "1")
            .agent("config=surgery.yaml;extensions=" + skipJar)
            .jvmArg("-Dsurgery.test.throw=" + where)
            .jvmArg("-Dsurgery.test.record=" + skipDir.resolve("events.txt"))
            .workDir(skipDir)
            .run();
    assertEquals(0, skipped.exitCode(), skipped.toString());
    assertTrue(skipped.stdout().contains("EVENTSAPP: done"), skipped.toString());
    assertEquals(
        BATCHES,
        recorded(skipDir).stream().filter(l -> l.startsWith("BATCH_END ")).count(),
        "training went on through every batch: " + skipped);
  }

  @Test
  void plainModelLoadReportsTheLoadEventsAfterTheReplay() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("events-load", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    String main = CheckpointApp.class.getName();
    CheckpointReplayIT.trainedAndSaved(dir);
    Path jar = pluginJar(dir, "recording.jar", TestPluginProvider.class);
    AgentConfigs.write(dir, "load.yaml", RECORDING);
    ForkedJvm.Result loaded =
        ForkedJvm.main(main, "load", "model")
            .agent("config=load.yaml;extensions=" + jar)
            .jvmArg("-Dsurgery.test.record=" + dir.resolve("events.txt"))
            .workDir(dir)
            .run();
    assertEquals(0, loaded.exitCode(), loaded.toString());
    // Model.load before any trainer: the model alone gets the events, after the replay (blur).
    assertEquals(
        List.of("BEFORE_LOAD steps=0 epochs=0 blur=true", "AFTER_LOAD steps=0 epochs=0 blur=true"),
        recorded(dir).stream().filter(l -> l.contains("_LOAD ")).toList(),
        loaded.toString());
  }

  @Test
  void twoJarsWithOneAlgorithmNameStopTheJvmNamingBothJars() throws Exception {
    Path dir = AgentConfigs.dir("events-duplicate");
    Path a = pluginJar(dir, "plugin-a.jar", TestPluginProvider.class);
    Path b = pluginJar(dir, "plugin-b.jar", DuplicatePluginProvider.class);
    ForkedJvm.Result r = run(dir, RECORDING, a + File.pathSeparator + b, "fit", "1");
    assertEquals(2, r.exitCode(), r.toString());
    assertFalse(r.stdout().contains(EventsApp.MARKER), "main never ran: " + r);
    List<String> lines = r.agentLines();
    assertTrue(
        lines.stream().anyMatch(l -> l.contains("plugin-a.jar") && l.contains("plugin-b.jar")),
        r.toString());
  }

  /**
   * An outside probe: the agent's one start-up line for a provider whose static initializer threw
   * ended in a bare {@code java.lang.ExceptionInInitializerError}, without what it threw.
   */
  @Test
  void aProviderThatCannotBeMadeStopsTheJvmNamingTheJarAndTheCause() throws Exception {
    Path dir = AgentConfigs.dir("events-failing-provider");
    Path jar = pluginJar(dir, "failing-init.jar", FailingInitPluginProvider.class);
    ForkedJvm.Result r = run(dir, "algorithms:\n  - name: blurpool\n", jar.toString(), "fit", "1");
    assertEquals(2, r.exitCode(), r.toString());
    assertFalse(r.stdout().contains(EventsApp.MARKER), "main never ran: " + r);
    assertTrue(
        r.agentLines().stream()
            .anyMatch(
                l ->
                    l.contains("failing-init.jar")
                        && l.contains(FailingInitPluginProvider.class.getName())
                        && l.contains(FailingInitPluginProvider.MESSAGE)),
        r.toString());
  }

  @Test
  void aMissingPluginJarStopsTheJvmBeforeMain() throws Exception {
    Path dir = AgentConfigs.dir("events-missing-jar");
    ForkedJvm.Result r = run(dir, RECORDING, "missing.jar", "fit", "1");
    assertEquals(2, r.exitCode(), r.toString());
    assertFalse(r.stdout().contains(EventsApp.MARKER), "main never ran: " + r);
    assertEquals(
        1,
        r.countErr("^surgery-agent: missing.jar:0:0: extensions: plugin jar not found"),
        r.toString());
  }
}
