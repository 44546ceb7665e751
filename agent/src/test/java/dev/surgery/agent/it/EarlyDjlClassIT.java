package dev.surgery.agent.it;

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
