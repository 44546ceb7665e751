package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the surgery log keeps: every outcome when it writes a file (the file lists every one), the
 * last {@link SurgeryLogWriter#KEPT_WITHOUT_LOG} without one, so that a listener serving a long
 * hyperparameter search (the agent's) does not grow for the life of the JVM.
 */
class SurgeryLogWriterTest {

  private static final ScheduledAlgorithm ENTRY =
      ScheduledAlgorithm.of(
          Algorithms.spec("blurpool").create(Map.of()), Trigger.atEpoch(1), 0, "test");

  private static PendingOutcome outcome(int trainer) {
    return new PendingOutcome(
        trainer, ENTRY, Map.of(), 1, 10, SurgeryOutcome.Status.FAILED, null, "x", 0, null, 0);
  }

  @Test
  void withoutALogTheOldestOutcomesGoFirst() {
    SurgeryLogWriter writer = new SurgeryLogWriter(null, () -> null, new ListenerWarnings());
    int total = SurgeryLogWriter.KEPT_WITHOUT_LOG + 25;
    for (int trainer = 1; trainer <= total; trainer++) {
      writer.add(outcome(trainer));
      writer.addNotRun(trainer, ENTRY, "why");
    }
    List<SurgeryOutcome> kept = writer.outcomes();
    assertEquals(SurgeryLogWriter.KEPT_WITHOUT_LOG, kept.size());
    assertEquals(26, kept.get(0).trainer(), "the first 25 were dropped");
    assertEquals(total, kept.get(kept.size() - 1).trainer());
  }

  @Test
  void withALogEveryOutcomeIsKept(@TempDir Path dir) {
    SurgeryLogWriter writer =
        new SurgeryLogWriter(dir.resolve("log.json"), () -> null, new ListenerWarnings());
    int total = SurgeryLogWriter.KEPT_WITHOUT_LOG + 25;
    for (int trainer = 1; trainer <= total; trainer++) {
      writer.add(outcome(trainer));
    }
    assertEquals(total, writer.outcomes().size());
  }
}
