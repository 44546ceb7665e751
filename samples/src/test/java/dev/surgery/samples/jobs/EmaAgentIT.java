package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The EMA plugin jar (the {@code ema-plugin} classifier of this module) given to the agent with
 * {@code extensions=}, under a plain DJL program ({@link PlainEvalApp}) that validates after every
 * epoch with {@code EasyTrain.fit}: evaluation sees the averaged weights, training the raw ones.
 * Oracles: a run of the same program without the agent (same seed) gives the raw trajectory; the
 * raw weights under the agent must be bit-identical to it at every training batch and at the end,
 * and the weights at evaluation must be the exponential average of that trajectory, computed here.
 */
class EmaAgentIT {

  private static final float SMOOTHING = 0.5f;
  private static final int BATCHES_PER_EPOCH = 4;

  /**
   * The plugin jar the samples build packages: surgery-samples-*-ema-plugin.jar in the build folder
   * (target, or target/djl-VERSION under a DJL profile).
   */
  static Path emaJar() throws IOException {
    Path target =
        Path.of(
            System.getProperty(
                "samples.buildDir", SampleProcess.samplesDir().resolve("target").toString()));
    try (Stream<Path> files = Files.list(target)) {
      return files
          .filter(p -> p.getFileName().toString().endsWith("-ema-plugin.jar"))
          .findFirst()
          .orElseThrow(() -> new AssertionError("the ema-plugin jar is not built in " + target))
          .toAbsolutePath();
    }
  }

  private static SampleProcess.Result run(String name, List<String> jvmArgs) throws Exception {
    Path dir = SampleProcess.workDir(name);
    List<String> args = new ArrayList<>(jvmArgs);
    return SampleProcess.runWithTestClasses(dir, args, PlainEvalApp.class);
  }

  private static List<String[]> lines(SampleProcess.Result r, String prefix) {
    return r.output()
        .lines()
        .filter(l -> l.startsWith(prefix + " "))
        .map(l -> l.split(" "))
        .toList();
  }

  private static float[] floats(String bits) {
    String[] parts = bits.split(",");
    float[] out = new float[parts.length];
    for (int i = 0; i < parts.length; i++) {
      out[i] = Float.intBitsToFloat(Integer.parseUnsignedInt(parts[i], 16));
    }
    return out;
  }

  @Test
  void evaluationUsesTheAveragedWeightsAndTrainingTheRawOnes() throws Exception {
    Path agent = SampleProcess.agentJar().toAbsolutePath();
    assertTrue(Files.isRegularFile(agent), "build the agent first: " + agent);
    SampleProcess.Result plain = run("ema-agent-plain", List.of());
    assertEquals(0, plain.exitCode(), plain.tail());

    Path dir = SampleProcess.workDir("ema-agent-config");
    Path config =
        Files.writeString(
            dir.resolve("ema.yaml"),
            "algorithms:\n  - name: ema\n    smoothing: " + SMOOTHING + "\n");
    SampleProcess.Result ema =
        run(
            "ema-agent",
            List.of("-javaagent:" + agent + "=config=" + config + ";extensions=" + emaJar()));
    assertEquals(0, ema.exitCode(), ema.tail());

    // Training: the same raw weights at every batch and at the end, bit for bit.
    List<String[]> plainTrain = lines(plain, "TRAIN");
    List<String[]> emaTrain = lines(ema, "TRAIN");
    assertEquals(2 * BATCHES_PER_EPOCH, plainTrain.size(), plain.tail());
    assertEquals(plainTrain.size(), emaTrain.size(), ema.tail());
    for (int i = 0; i < plainTrain.size(); i++) {
      assertEquals(plainTrain.get(i)[3], emaTrain.get(i)[3], "training batch " + (i + 1));
    }
    assertEquals(
        plain.output().lines().filter(l -> l.startsWith("FINAL ")).toList(),
        ema.output().lines().filter(l -> l.startsWith("FINAL ")).toList());

    // The raw weights after each step, from the run without the agent: the weights batch k+1
    // trained with are those after step k; the last step of an epoch is what its validation saw.
    List<String[]> plainEval = lines(plain, "EVAL");
    List<String[]> emaEval = lines(ema, "EVAL");
    assertEquals(2, plainEval.size(), plain.tail());
    assertEquals(2, emaEval.size(), ema.tail());
    float[] average = null;
    for (int epoch = 0; epoch < 2; epoch++) {
      for (int b = 0; b < BATCHES_PER_EPOCH; b++) {
        int step = epoch * BATCHES_PER_EPOCH + b + 1;
        float[] raw =
            b == BATCHES_PER_EPOCH - 1
                ? floats(plainEval.get(epoch)[2])
                : floats(plainTrain.get(step)[2]);
        if (average == null) {
          average = raw.clone();
        } else {
          for (int i = 0; i < raw.length; i++) {
            average[i] = average[i] * SMOOTHING + raw[i] * (1 - SMOOTHING);
          }
        }
      }
      float[] seen = floats(emaEval.get(epoch)[2]);
      assertEquals(average.length, seen.length);
      for (int i = 0; i < seen.length; i++) {
        assertEquals(average[i], seen[i], 1e-6f, "epoch " + (epoch + 1) + " bias " + i);
      }
      assertNotEquals(
          plainEval.get(epoch)[3], emaEval.get(epoch)[3], "evaluation did not see the average");
    }
  }
}
