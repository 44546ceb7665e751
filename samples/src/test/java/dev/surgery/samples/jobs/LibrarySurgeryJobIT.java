package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The library-mode sample (SurgeryListener registered in code), one epoch. */
class LibrarySurgeryJobIT {

  @Test
  void appliesTheEpochZeroAndEpochOneAlgorithms() throws Exception {
    SampleProcess.Result r =
        SampleProcess.run(
            SampleProcess.workDir("library"),
            List.of(),
            LibrarySurgeryJob.class,
            "--epochs",
            "1",
            "--max-batches",
            "2",
            "--batch-size",
            "4");
    assertEquals(0, r.exitCode(), r.tail());
    String tree = r.blockTree();
    // ghost_batchnorm before the first batch: every BatchNorm of ResNet-20 (21).
    assertEquals(21, ResNetJobIT.count(tree, "\tGhostBatchNormBlock("), tree);
    assertEquals(0, ResNetJobIT.count(tree, "\tBatchNorm("), tree);
    // blurpool after epoch 1.
    assertEquals(4, ResNetJobIT.count(tree, "\tBlurConv2d("), tree);
    // squeeze_excite and stochastic_depth are due at epoch 2, which a 1-epoch run never reaches.
    assertEquals(0, ResNetJobIT.count(tree, "SqueezeExciteConv2d("), tree);
    assertTrue(r.output().contains("never ran"), r.tail());
    ResNetJobIT.assertReportFiles(r.workDir().resolve("out/library-surgery-job"));
    JsonArray surgeries =
        r.json("out/library-surgery-job/surgery-report.json").getAsJsonArray("surgeries");
    assertEquals(2, surgeries.size());
    assertEquals(
        "ghost_batchnorm", surgeries.get(0).getAsJsonObject().get("algorithm").getAsString());
    assertEquals(0, surgeries.get(0).getAsJsonObject().get("epoch").getAsInt());
    assertEquals("blurpool", surgeries.get(1).getAsJsonObject().get("algorithm").getAsString());
    assertEquals(1, surgeries.get(1).getAsJsonObject().get("epoch").getAsInt());
  }
}
