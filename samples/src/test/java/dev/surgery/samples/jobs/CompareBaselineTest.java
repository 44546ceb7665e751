package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.samples.report.SurgeryReportWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code --compare-baseline}: the job trains once without surgery and draws both runs. */
class CompareBaselineTest {

  @TempDir Path dir;

  private static JsonObject json(Path file) throws Exception {
    return JsonParser.parseString(Files.readString(file)).getAsJsonObject();
  }

  /**
   * A run without surgery into an output directory an earlier run with surgery left its surgery log
   * in reports no surgery: the old log is not this run's.
   */
  @Test
  void aLeftoverSurgeryLogOfAnEarlierRunIsNotReported() throws Exception {
    String[] args = {
      "--epochs", "2", "--max-batches", "1", "--batch-size", "4", "--out", dir.toString()
    };
    new LibrarySurgeryJob(JobOptions.parse("library-surgery-job", args)).run();
    assertTrue(Files.isRegularFile(dir.resolve(JobOptions.SURGERY_LOG)));
    assertTrue(
        json(dir.resolve(SurgeryReportWriter.JSON)).getAsJsonArray("surgeries").size() > 0,
        "the earlier run did surgery");

    new ImageClassificationJob("resnet-job", JobOptions.parse("resnet-job", args)).run();

    JsonObject report = json(dir.resolve(SurgeryReportWriter.JSON));
    assertEquals(0, report.getAsJsonArray("surgeries").size(), report.toString());
  }

  @Test
  void libraryJobTrainsABaselineWithoutSurgeryAndDrawsBoth() throws Exception {
    List<String> args =
        List.of(
            "--epochs", "1", "--max-batches", "2", "--batch-size", "4", "--out", dir.toString());
    LibrarySurgeryJob job =
        new LibrarySurgeryJob(JobOptions.parse("library-surgery-job", args.toArray(new String[0])));
    job.setBaseline(ImageClassificationJob.trainBaseline(job, args));
    job.run();

    JsonObject baseline = json(dir.resolve("baseline").resolve(SurgeryReportWriter.JSON));
    assertEquals(0, baseline.getAsJsonArray("surgeries").size(), baseline.toString());
    assertEquals(1, baseline.getAsJsonArray("epochs").size());
    JsonObject report = json(dir.resolve(SurgeryReportWriter.JSON));
    // ghost_batchnorm @0 and blurpool @1 ran in the job, not in the baseline.
    assertEquals(2, report.getAsJsonArray("surgeries").size(), report.toString());
    JsonObject drawn = report.getAsJsonObject("baseline");
    assertEquals(baseline.getAsJsonArray("epochs"), drawn.getAsJsonArray("epochs"));
    JsonArray baseBatches = baseline.getAsJsonArray("batch_losses");
    assertEquals(2, baseBatches.size());
    assertEquals(baseBatches, drawn.getAsJsonArray("batch_losses"));
    // Same seed, same data: the first batch sees the same weights. Ghost batches of 8 in batches
    // of 4 normalize like the batch norm they replace, so only rounding may differ.
    double first = baseBatches.get(0).getAsJsonObject().get("loss").getAsDouble();
    double firstWithSurgery =
        report.getAsJsonArray("batch_losses").get(0).getAsJsonObject().get("loss").getAsDouble();
    assertEquals(first, firstWithSurgery, 1e-4 * Math.max(1, first));
    assertTrue(
        Files.readString(dir.resolve(SurgeryReportWriter.HTML)).contains("Epochs of baseline"));
  }

  @Test
  void baselineFlagsTakeTheBaselineDirectoryAndNoListenerReport() {
    assertEquals(
        List.of("--epochs", "2", "--seed", "3", "--out", "b"),
        ImageClassificationJob.withOut(
            List.of("--epochs", "2", "--out", "a", "--surgery-report=f.json", "--seed", "3"),
            Path.of("b")));
    assertEquals(
        List.of("--out", "b"),
        ImageClassificationJob.withOut(
            List.of("--out=a", "--surgery-report", "f.json", "--surgery-log", "g.json"),
            Path.of("b")));
    assertEquals(
        List.of("--seed", "3", "--out", "b"),
        ImageClassificationJob.withOut(
            List.of("--plan-log", "p.json", "--seed", "3", "--plan-log=q.json"), Path.of("b")));
  }
}
