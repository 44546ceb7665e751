package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The library-mode sample (SurgeryListener registered in code), one epoch. */
class LibrarySurgeryJobIT {

  @Test
  void appliesTheEpochZeroAndEpochOneAlgorithms() throws Exception {
    Path dir = SampleProcess.workDir("library");
    // A dry run's surgery log (as the agent writes it) naming one of the convolutions blurpool
    // blurs at epoch 1: --plan-log puts it next to what was applied.
    Files.createDirectories(dir);
    Files.writeString(
        dir.resolve("plan.json"),
        "{\"dry_run\":true,\"applications\":[],\"not_run\":[],\"plans\":[{\"algorithm\":"
            + "\"blurpool\",\"epoch\":1,\"source\":\"dry run\",\"steps\":[{\"path\":"
            + "\"05ParallelBlock/01SequentialBlock/01Conv2d\",\"from\":\"Conv2d\",\"to\":"
            + "\"BlurConv2d\",\"removed\":[],\"added\":[],\"kept\":[{\"name\":\"weight\","
            + "\"shape\":\"(32, 16, 3, 3)\",\"state\":\"moved\",\"born_exact\":false}],"
            + "\"macs_before\":1,\"macs_after\":2}]}]}");
    SampleProcess.Result r =
        SampleProcess.run(
            dir,
            List.of(),
            LibrarySurgeryJob.class,
            "--epochs",
            "1",
            "--max-batches",
            "2",
            "--batch-size",
            "4",
            "--plan-log",
            "plan.json");
    assertEquals(0, r.exitCode(), r.tail());
    String tree = r.blockTree();
    // ghost_batchnorm before the first batch: every BatchNorm of ResNet-20 (21).
    assertEquals(21, ResNetJobIT.count(tree, "\tGhostBatchNormBlock("), tree);
    assertEquals(0, ResNetJobIT.count(tree, "\tBatchNorm("), tree);
    // blurpool after epoch 1.
    assertEquals(4, ResNetJobIT.count(tree, "\tBlurConv2d("), tree);
    // squeeze_excite and stochastic_depth are due at epoch 2, which a 1-epoch run never reaches:
    // left out, as the listener refuses an entry after the planned last epoch.
    assertEquals(0, ResNetJobIT.count(tree, "SqueezeExciteConv2d("), tree);
    assertTrue(
        r.output().contains("squeeze_excite and stochastic_depth (epoch 2) are left out"),
        r.tail());
    ResNetJobIT.assertReportFiles(r.workDir().resolve("out/library-surgery-job"));
    JsonArray surgeries =
        r.json("out/library-surgery-job/surgery-report.json").getAsJsonArray("surgeries");
    assertEquals(2, surgeries.size());
    assertEquals(
        "ghost_batchnorm", surgeries.get(0).getAsJsonObject().get("algorithm").getAsString());
    assertEquals(0, surgeries.get(0).getAsJsonObject().get("epoch").getAsInt());
    assertEquals("blurpool", surgeries.get(1).getAsJsonObject().get("algorithm").getAsString());
    assertEquals(1, surgeries.get(1).getAsJsonObject().get("epoch").getAsInt());
    String page =
        Files.readString(r.workDir().resolve("out/library-surgery-job/surgery-report.html"));
    assertTrue(
        page.contains(
            "<td><code>05ParallelBlock/01SequentialBlock/01Conv2d</code></td><td>Conv2d</td>"
                + "<td>BlurConv2d</td><td>Conv2d &rarr; BlurConv2d, MACs 1 &rarr; 2, optimizer"
                + " state: =weight moved</td>"),
        page);
  }
}
