package dev.surgery.samples.jobs;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.training.Trainer;
import dev.surgery.samples.report.SurgeryReportWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An {@code --out} the report cannot be written to is refused before training, not after it. */
class OutputDirectoryTest {

  @TempDir Path dir;

  /** A job that notes whether training got as far as the trainer. */
  private static final class Probe extends ImageClassificationJob {
    boolean trained;

    Probe(Path out) {
      super(
          "probe",
          JobOptions.parse(
              "probe",
              new String[] {
                "--epochs", "1", "--max-batches", "1", "--batch-size", "4", "--out", out.toString()
              }));
    }

    @Override
    protected void afterInitialize(Trainer trainer) {
      trained = true;
    }
  }

  @Test
  void anOutUnderARegularFileIsRefusedBeforeTraining() throws Exception {
    Path file = Files.writeString(dir.resolve("afile"), "x");
    Probe job = new Probe(file.resolve("sub"));
    ImageClassificationJob.OutputDirectoryException e =
        assertThrows(ImageClassificationJob.OutputDirectoryException.class, job::run);
    assertFalse(job.trained, "refused only after training");
    assertTrue(
        e.getMessage().startsWith("--out " + file.resolve("sub") + ": cannot create the directory"),
        e.getMessage());
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
  }

  @Test
  void aDirectoryInPlaceOfTheHtmlReportIsRefusedBeforeTraining() throws Exception {
    Path out = dir.resolve("out");
    Files.createDirectories(out.resolve(SurgeryReportWriter.HTML));
    Probe job = new Probe(out);
    ImageClassificationJob.OutputDirectoryException e =
        assertThrows(ImageClassificationJob.OutputDirectoryException.class, job::run);
    assertFalse(job.trained, "refused only after training");
    assertTrue(
        e.getMessage().contains("surgery-report.html exists and is not a file"), e.getMessage());
    assertFalse(Files.exists(out.resolve(SurgeryReportWriter.LOSS_PNG)));
  }
}
