package dev.surgery.samples.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * What {@code scripts/gpu-check.sh} relies on, checked on the build machine: the surgery check's
 * own logic (with the trainer on the CPU, so no device copies), and that without a GPU no check
 * passes.
 */
class GpuCheckTest {

  private static String run(int expectedStatus, String... args) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    int status;
    try (PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
      status = GpuCheck.run(args, out);
    }
    String text = bytes.toString(StandardCharsets.UTF_8);
    assertEquals(expectedStatus, status, text);
    return text;
  }

  @Test
  void surgeryCheckPassesWithTheTrainerOnTheCpu() {
    String report = run(GpuCheck.PASSED, "surgery", "--cpu");
    assertTrue(
        report.contains("blurpool: {Conv2d->BlurConv2d=1, maxPool2d->BlurMaxPool2d=1}"), report);
    assertTrue(report.contains("BlurConv2d->SqueezeExciteConv2d=1"), report);
    assertTrue(report.contains("6 of 6 new parameters moved"), report);
    assertTrue(report.contains("PASSED: surgery on [cpu()]"), report);
  }

  @Test
  void withoutAGpuNoCheckPasses() {
    int gpus = Engine.getInstance().getGpuCount();
    // On a CUDA build machine the checks run for real; here DJL's own count is the oracle.
    int expected = gpus > 0 ? GpuCheck.PASSED : GpuCheck.NO_GPU;
    String probe = run(expected, "probe");
    assertTrue(probe.contains("GPUs DJL sees: " + gpus), probe);
    if (gpus == 0) {
      assertTrue(probe.contains("NO GPU"), probe);
      run(GpuCheck.NO_GPU, "surgery");
      run(GpuCheck.NO_GPU, "surgery", "--devices", "0");
    }
  }

  @Test
  void unknownCheckFails() {
    assertTrue(run(GpuCheck.FAILED, "bogus").contains("unknown check: bogus"));
    run(GpuCheck.FAILED);
  }
}
