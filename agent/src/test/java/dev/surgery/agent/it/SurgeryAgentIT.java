package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.agent.testapp.ChildLoaderLauncher;
import dev.surgery.agent.testapp.CnnApp;
import dev.surgery.agent.testapp.SelfRegisteringApp;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The agent attached to unmodified programs: exactly one {@code SurgeryListener} per trainer, on a
 * flat class path and under a child class loader, with immutable listener lists and with programs
 * that register the listener themselves; and BlurPool actually applied at epoch 1.
 */
class SurgeryAgentIT {

  private static final Pattern ATTACHED =
      Pattern.compile("^surgery-agent: attached SurgeryListener to Trainer@([0-9a-f]+)$");

  private static ForkedJvm.Result twoTrainers;

  /** Two trainers built from one config, with debug lines on; shared by several tests. */
  private static synchronized ForkedJvm.Result twoTrainers() throws Exception {
    if (twoTrainers == null) {
      Path dir = AgentConfigs.dirWithConfig("two-trainers", AgentConfigs.BLURPOOL_AT_EPOCH_1);
      twoTrainers = cnnWithDebug(dir, "--trainers", "2").run();
    }
    return twoTrainers;
  }

  @Test
  void attachesExactlyOneListenerToEachTrainer() throws Exception {
    ForkedJvm.Result r = twoTrainers();
    assertEquals(0, r.exitCode(), r.toString());
    List<String> ids = attachedTrainers(r);
    assertEquals(2, ids.size(), "one attach line per trainer: " + r);
    assertNotEquals(ids.get(0), ids.get(1), r.toString());
    // The TrainingConfig's own list is never changed.
    assertEquals(
        2,
        r.stdout()
            .lines()
            .filter(l -> l.matches("CNNAPP: config listeners before=(\\d+) after=\\1"))
            .count(),
        r.toString());
  }

  @Test
  void callsOnInitializedAfterTrainerInitialize() throws Exception {
    ForkedJvm.Result r = twoTrainers();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(
        2,
        r.countErr(
            "^surgery-agent: Trainer.initialize returned: SurgeryListener.onInitialized for"
                + " Trainer@"),
        r.toString());
  }

  @Test
  void blurPoolAtEpochOneReplacesTheStridedConvAndTheMaxPool() throws Exception {
    ForkedJvm.Result r = twoTrainers();
    assertEquals(0, r.exitCode(), r.toString());
    String before = r.findOut("CNNAPP: block tree before training: (.*)");
    String after = r.findOut("CNNAPP: block tree after training: (.*)");
    assertFalse(before.contains("Blur"), r.toString());
    assertTrue(after.contains("BlurConv2d"), "no BlurConv2d after training: " + r);
    assertTrue(after.contains("BlurMaxPool2d"), "no BlurMaxPool2d after training: " + r);
    assertTrue(r.stdout().contains("CNNAPP: done"), r.toString());
  }

  @Test
  void worksWithAConfigThatReturnsAnImmutableListenerList() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("immutable-listeners", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r = cnnWithDebug(dir, "--immutable-listeners", "--epochs", "1").run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(1, attachedTrainers(r).size(), r.toString());
    assertTrue(r.stdout().contains("CNNAPP: done"), r.toString());
    // The agent's own warnings only: newer JDKs warn about DJL's native access on their own.
    assertEquals(0, r.countErr("^surgery-agent: WARNING"), r.toString());
  }

  @Test
  void doesNotAddASecondListenerWhenTheProgramRegisteredOne() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("self-registering", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(
                SelfRegisteringApp.class.getName(),
                "surgery.yaml",
                "--trainers",
                "2",
                "--epochs",
                "1")
            .classpath(ForkedJvm.appClasspath(true))
            .agent("config=surgery.yaml;debug=true")
            .workDir(dir)
            .run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(0, attachedTrainers(r).size(), r.toString());
    assertEquals(
        2,
        r.countErr("already has a SurgeryListener \\(registered by the program\\)"),
        r.toString());
    assertEquals(
        2,
        r.stdout()
            .lines()
            .filter(l -> l.equals("SELFREG: surgery listeners on trainer = 1"))
            .count(),
        r.toString());
  }

  @Test
  void givenTwiceStillAttachesOneListenerPerTrainer() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("agent-twice", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        cnnWithDebug(dir, "--trainers", "2", "--epochs", "1").agent("surgery.yaml").run();
    assertEquals(0, r.exitCode(), r.toString());
    assertEquals(2, attachedTrainers(r).size(), r.toString());
    assertEquals(1, r.countErr("the agent was given more than once"), r.toString());
  }

  @Test
  void attachesWhenDjlIsLoadedByAChildClassLoader() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("child-loader", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    // The launcher alone on the system class path; DJL and the program in a URLClassLoader.
    List<String> child = new ArrayList<>(ForkedJvm.appClasspath(false));
    ForkedJvm.Result r =
        cnnInChildLoader(dir, child, "2").agent("config=surgery.yaml;debug=true").run();
    assertEquals(0, r.exitCode(), r.toString());
    assertTrue(r.stdout().contains("LAUNCHER: DJL on the system class path: false"), r.toString());
    assertTrue(r.stdout().contains("CNNAPP: loaded by java.net.URLClassLoader"), r.toString());
    assertEquals(1, attachedTrainers(r).size(), r.toString());
    String after = r.findOut("CNNAPP: block tree after training: (.*)");
    assertTrue(after.contains("BlurConv2d") && after.contains("BlurMaxPool2d"), r.toString());
  }

  @Test
  void theProgramsOwnExceptionsPassThroughUntouched() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("own-exception", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--epochs", "1", "--fail-at-end")
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    assertEquals(1, r.exitCode(), r.toString());
    assertTrue(
        r.stderr().contains("java.lang.IllegalStateException: CNNAPP-OWN-FAILURE"), r.toString());
    assertTrue(r.agentLines().isEmpty(), "the agent is silent without debug: " + r);
  }

  /**
   * A surgery that fails under {@code on_error: fail} stops training, also when it is the agent
   * that calls the listener (here {@code onInitialized}, from the {@code Trainer.initialize} hook):
   * the program gets the listener's exception, as if it had registered the listener itself.
   */
  @Test
  void aDeliberateSurgeryFailureStopsTraining() throws Exception {
    Path dir =
        AgentConfigs.dirWithConfig(
            "surgery-fails", "algorithms:\n  - name: blurpool\n    epoch: 0\non_error: fail\n");
    ForkedJvm.Result r = cnnWithDebug(dir, "--opaque-strided-conv", "--epochs", "1").run();
    assertEquals(1, r.exitCode(), r.toString());
    assertTrue(
        r.stderr()
            .contains("Exception in thread \"main\" dev.surgery.trainer.SurgeryFailedException"),
        r.toString());
    assertTrue(r.stderr().contains("at ai.djl.training.Trainer.initialize("), r.toString());
    assertFalse(r.stdout().contains("CNNAPP: trainer 1 trained"), "training ran: " + r);
    assertEquals(0, r.countErr("^surgery-agent: WARNING"), r.toString());
  }

  /** {@code CnnApp} in {@code dir} under the agent with its config there and debug lines on. */
  private static ForkedJvm cnnWithDebug(Path dir, String... args) {
    return ForkedJvm.main(CnnApp.class.getName(), args)
        .agent("config=surgery.yaml;debug=true")
        .workDir(dir);
  }

  /**
   * {@code CnnApp} for some epochs in {@code dir}, started by {@link ChildLoaderLauncher} (alone on
   * the system class path) in a child class loader over {@code childClasspath}.
   */
  static ForkedJvm cnnInChildLoader(Path dir, List<String> childClasspath, String epochs)
      throws java.io.IOException {
    Path launcherClasses = launcherOnly(dir);
    return ForkedJvm.main(
            ChildLoaderLauncher.class.getName(),
            String.join(File.pathSeparator, childClasspath),
            CnnApp.class.getName(),
            "--epochs",
            epochs)
        .classpath(List.of(launcherClasses.toString()))
        .workDir(dir);
  }

  /**
   * Copies {@link ChildLoaderLauncher} alone into a class folder, to be the only thing on the
   * system class path.
   */
  static Path launcherOnly(Path dir) throws java.io.IOException {
    Path launcherClasses = dir.resolve("launcher");
    String launcherFile = ChildLoaderLauncher.class.getName().replace('.', '/') + ".class";
    Path target = launcherClasses.resolve(launcherFile);
    Files.createDirectories(target.getParent());
    Files.copy(
        Path.of(ForkedJvm.testClassesDir(), launcherFile),
        target,
        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    return launcherClasses;
  }

  private static List<String> attachedTrainers(ForkedJvm.Result r) {
    List<String> ids = new ArrayList<>();
    for (String line : r.stderr().lines().toList()) {
      Matcher m = ATTACHED.matcher(line);
      if (m.matches()) {
        ids.add(m.group(1));
      }
    }
    return ids;
  }
}
