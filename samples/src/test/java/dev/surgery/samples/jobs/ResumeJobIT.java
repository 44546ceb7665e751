package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The resume sample: surgery, save, SurgeryCheckpoint.load in a new JVM, identical outputs. */
class ResumeJobIT {

  @Test
  void resumesInANewProcessWithIdenticalOutputs() throws Exception {
    SampleProcess.Result r =
        SampleProcess.run(
            SampleProcess.workDir("resume"),
            List.of(),
            ResumeJob.class,
            "--epochs",
            "1",
            "--max-batches",
            "2",
            "--batch-size",
            "4");
    assertEquals(0, r.exitCode(), r.tail());
    String out = r.output();
    assertTrue(out.contains("Surgery: blurpool at epoch 1"), r.tail());
    assertTrue(out.contains("Surgery: squeeze_excite at epoch 1"), r.tail());
    assertTrue(out.contains("starting phase 2 in a new JVM"), r.tail());
    assertTrue(
        out.contains("identical to the saved model's: true"), "outputs differ:\n" + r.tail());
    // Phase 2 printed the loaded model's tree last: the replayed surgery is in it.
    String tree = r.blockTree();
    assertEquals(4, ResNetJobIT.count(tree, "\tBlurConv2d("), tree);
    assertTrue(tree.contains("SqueezeExciteConv2d("), tree);
    assertTrue(
        Files.exists(r.workDir().resolve("out/resume-job/checkpoint/resume-job-0000.params")));
    ResNetJobIT.assertReportFiles(r.workDir().resolve("out/resume-job"));
    ResNetJobIT.assertReportFiles(r.workDir().resolve("out/resume-job/resumed"));
  }
}
