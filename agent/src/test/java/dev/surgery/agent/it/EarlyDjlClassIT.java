package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.surgery.agent.testapp.CheckpointApp;
import dev.surgery.agent.testapp.CnnApp;
import dev.surgery.agent.testapp.EarlyDjlAgent;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import org.junit.jupiter.api.Test;

/**
 * A reviewer: with the weaving built at the first DJL class, a DJL class another agent loaded
 * before DJL Surgery's {@code premain} was never woven, and the job trained without surgery,
 * silently. Such classes are now woven by retransformation, as at a late attach.
 */
class EarlyDjlClassIT {

  @Test
  void aTrainerLoadedByAnEarlierAgentIsWovenAndTrainsWithSurgery() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("early-djl-class", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    Path early = earlyAgentJar(dir);
    ForkedJvm.Result r =
        ForkedJvm.main(CnnApp.class.getName(), "--epochs", "2")
            .jvmArg("-javaagent:" + early + "=ai.djl.training.Trainer")
            .agent("surgery.yaml")
            .workDir(dir)
            .run();
    r.assertTrainedWithBlur();
  }

  /**
   * {@code BaseModel} is abstract: loaded before premain, it was left out of the retransformation
   * with the interfaces, and a checkpoint saved with surgery no longer loaded (the load advice
   * replays the recorded surgery first).
   */
  @Test
  void aBaseModelLoadedByAnEarlierAgentIsWovenAndReplaysACheckpoint() throws Exception {
    Path dir = AgentConfigs.dirWithConfig("early-base-model", AgentConfigs.BLURPOOL_AT_EPOCH_1);
    ForkedJvm.Result trained = CheckpointReplayIT.trainedAndSaved(dir);
    ForkedJvm.Result loaded =
        ForkedJvm.main(CheckpointApp.class.getName(), "load", "model")
            .jvmArg("-javaagent:" + earlyAgentJar(dir) + "=ai.djl.BaseModel")
            .agent("config=surgery.yaml;debug=true")
            .workDir(dir)
            .run();
    assertEquals(0, loaded.exitCode(), loaded.toString());
    assertEquals(
        1,
        loaded.countErr("^surgery-agent: replayed \\d+ surgery record\\(s\\) from "),
        loaded.toString());
    for (String line : new String[] {"CKPT: structure (.*)", "CKPT: output (.*)"}) {
      assertEquals(trained.findOut(line), loaded.findOut(line), loaded.toString());
    }
  }

  /** A jar holding {@link EarlyDjlAgent} as its {@code Premain-Class}. */
  private static Path earlyAgentJar(Path dir) throws Exception {
    Manifest manifest = new Manifest();
    manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
    manifest.getMainAttributes().putValue("Premain-Class", EarlyDjlAgent.class.getName());
    Path jar = dir.resolve("early-agent.jar");
    String entry = EarlyDjlAgent.class.getName().replace('.', '/') + ".class";
    try (OutputStream out = Files.newOutputStream(jar);
        JarOutputStream jarOut = new JarOutputStream(out, manifest)) {
      jarOut.putNextEntry(new JarEntry(entry));
      jarOut.write(Files.readAllBytes(Path.of(ForkedJvm.testClassesDir(), entry)));
      jarOut.closeEntry();
    }
    return jar;
  }
}
