package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.surgery.samples.report.SurgeryReportWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;

/**
 * README command 1 in small: the main job, which knows nothing of surgery, under the agent with
 * {@code samples/configs/blurpool.yaml}; and the same job without the agent.
 */
class ResNetJobIT {

  private static final String[] SMALL = {
    "--epochs", "1", "--max-batches", "2", "--batch-size", "4"
  };

  static void assertReportFiles(Path out) throws Exception {
    for (String f :
        List.of(
            SurgeryReportWriter.HTML,
            SurgeryReportWriter.JSON,
            SurgeryReportWriter.LOSS_PNG,
            SurgeryReportWriter.ACCURACY_PNG,
            SurgeryReportWriter.BATCH_LOSS_PNG)) {
      assertTrue(Files.size(out.resolve(f)) > 0, f);
    }
    assertTrue(ImageIO.read(out.resolve(SurgeryReportWriter.LOSS_PNG).toFile()).getWidth() > 0);
  }

  @Test
  void compareBaselineTrainsWithoutTheAgentInAChildJvm() throws Exception {
    SampleProcess.Result r =
        SampleProcess.run(
            SampleProcess.workDir("resnet-compare"),
            blurPoolAgent(),
            ResNetJob.class,
            "--epochs",
            "2",
            "--max-batches",
            "2",
            "--batch-size",
            "4",
            "--compare-baseline");
    assertEquals(0, r.exitCode(), r.tail());
    // The child JVM had no agent: its report shows no surgery; the job's does and draws both.
    JsonObject baseline = r.json("out/resnet-job/baseline/" + SurgeryReportWriter.JSON);
    assertEquals(0, baseline.getAsJsonArray("surgeries").size(), baseline.toString());
    JsonObject report = r.json("out/resnet-job/" + SurgeryReportWriter.JSON);
    assertEquals(1, report.getAsJsonArray("surgeries").size(), report.toString());
    assertEquals(
        baseline.getAsJsonArray("batch_losses"),
        report.getAsJsonObject("baseline").getAsJsonArray("batch_losses"));
    assertEquals(4, baseline.getAsJsonArray("batch_losses").size());
  }

  @Test
  void blurPoolUnderTheAgent() throws Exception {
    SampleProcess.Result r =
        SampleProcess.run(
            SampleProcess.workDir("resnet-agent"), blurPoolAgent(), ResNetJob.class, SMALL);
    assertEquals(0, r.exitCode(), r.tail());
    assertTrue(r.output().contains("Surgery: blurpool at epoch 1 replaced 4 blocks"), r.tail());
    String tree = r.blockTree();
    // ResNet-20 has 4 strided convolutions with 16 or more input channels.
    assertEquals(4, count(tree, "\tBlurConv2d("), tree);
    Path out = r.workDir().resolve("out/resnet-job");
    assertReportFiles(out);
    JsonObject report = r.json("out/resnet-job/" + SurgeryReportWriter.JSON);
    assertEquals(1, report.getAsJsonArray("epochs").size());
    JsonArray surgeries = report.getAsJsonArray("surgeries");
    assertEquals(1, surgeries.size());
    JsonObject s = surgeries.get(0).getAsJsonObject();
    assertEquals("blurpool", s.get("algorithm").getAsString());
    assertEquals(1, s.get("epoch").getAsInt());
    assertEquals(4, s.get("blocks_replaced").getAsInt());
    String html = Files.readString(out.resolve(SurgeryReportWriter.HTML));
    assertTrue(html.contains("blurpool after epoch 1: 4 block(s) replaced"), html);
  }

  @Test
  void withoutTheAgentNothingChanges() throws Exception {
    Path dir = SampleProcess.workDir("resnet-plain");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("plan.json"), "{\"dry_run\":true,\"plans\":[]}");
    List<String> flags = new java.util.ArrayList<>(List.of(SMALL));
    flags.addAll(List.of("--plan-log", "plan.json"));
    SampleProcess.Result r =
        SampleProcess.run(dir, List.of(), ResNetJob.class, flags.toArray(new String[0]));
    assertEquals(0, r.exitCode(), r.tail());
    // A plan with no surgery log of the run to stand beside is said, not dropped silently.
    assertTrue(
        r.output().contains("--plan-log plan.json has no surgery log of this run"), r.tail());
    String tree = r.blockTree();
    assertFalse(tree.contains("BlurConv2d"), tree);
    // ResNet-20: the stem, 18 in the residual branches, 3 in the first unit of each stage's
    // shortcut.
    assertEquals(22, count(tree, "\tConv2d("), tree);
    assertReportFiles(r.workDir().resolve("out/resnet-job"));
    JsonObject report = r.json("out/resnet-job/" + SurgeryReportWriter.JSON);
    assertEquals(0, report.getAsJsonArray("surgeries").size());
  }

  @Test
  void aMissingDatasetFailsWithAClearMessage() throws Exception {
    SampleProcess.Result r =
        SampleProcess.run(
            SampleProcess.workDir("resnet-no-data"),
            List.of(),
            ResNetJob.class,
            "--dataset",
            "cifar10",
            "--data-dir",
            "does-not-exist");
    assertEquals(1, r.exitCode(), r.tail());
    assertTrue(r.output().contains("--data-dir does-not-exist is not a directory"), r.tail());
    SampleProcess.Result bad =
        SampleProcess.run(
            SampleProcess.workDir("resnet-bad-flag"), List.of(), ResNetJob.class, "--epochz", "1");
    assertEquals(2, bad.exitCode(), bad.tail());
    assertTrue(bad.output().contains("Unknown options: '--epochz', '1'"), bad.tail());
    // A flag picocli refused comes with the usage, the flag the job takes out first included.
    assertTrue(bad.output().contains(ImageClassificationJob.COMPARE_BASELINE), bad.tail());
  }

  /**
   * An --out that cannot be created (under a regular file) or written (a directory where the HTML
   * report goes) stops the job before training, with one line and status 2, writing nothing.
   */
  @Test
  void anUnwritableOutIsRefusedBeforeTraining() throws Exception {
    Path work = SampleProcess.workDir("resnet-bad-out");
    Files.writeString(work.resolve("afile"), "x");
    SampleProcess.Result r =
        SampleProcess.run(work, List.of(), ResNetJob.class, "--out", "afile/sub");
    assertEquals(2, r.exitCode(), r.tail());
    assertTrue(
        r.output().contains("resnet-job: --out afile/sub: cannot create the directory"), r.tail());
    assertFalse(r.output().contains("Training:") || r.output().contains("Exception"), r.tail());
    // One line: no usage text after a value refused once parsed.
    assertFalse(r.output().contains(ImageClassificationJob.COMPARE_BASELINE), r.tail());

    Files.createDirectories(work.resolve("hx").resolve(SurgeryReportWriter.HTML));
    SampleProcess.Result blocked =
        SampleProcess.run(work, List.of(), ResNetJob.class, "--out", "hx");
    assertEquals(2, blocked.exitCode(), blocked.tail());
    assertTrue(
        blocked.output().contains("surgery-report.html exists and is not a file"), blocked.tail());
    try (var files = Files.list(work.resolve("hx"))) {
      assertEquals(1, files.count(), "only the directory that was there");
    }
  }

  /**
   * The JVM argument of README command 1: the agent with {@code configs/blurpool.yaml}; asserts
   * that the agent jar is built.
   */
  private static List<String> blurPoolAgent() {
    Path agent = SampleProcess.agentJar().toAbsolutePath();
    assertTrue(Files.isRegularFile(agent), "build the agent first: " + agent);
    Path config = SampleProcess.samplesDir().resolve("configs/blurpool.yaml").toAbsolutePath();
    return List.of("-javaagent:" + agent + "=" + config);
  }

  static int count(String text, String needle) {
    int n = 0;
    for (int i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + 1)) {
      n++;
    }
    return n;
  }
}
