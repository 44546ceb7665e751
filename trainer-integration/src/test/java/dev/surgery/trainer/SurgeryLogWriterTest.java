package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

  /**
   * An outcome is printed for the log once, and again only when its after-loss changed: a long
   * search's log is written several times per trial, and printing every outcome at each write made
   * each trial slower than the one before (an outside probe: 55 to 504 ms per trial over 300).
   */
  @Test
  void anOutcomeIsPrintedOnceUntilItsAfterLossChanges(@TempDir Path dir) throws Exception {
    PendingOutcome outcome = outcome(1);
    String first = outcome.logItem();
    assertSame(first, outcome.logItem(), "printed again though nothing changed");
    outcome.addLossAfter(0.5f);
    String second = outcome.logItem();
    assertNotSame(first, second);
    assertTrue(second.contains("\"loss_after\""), second);
    assertSame(second, outcome.logItem());
    // What the writer puts in the file is the whole log, parsed back to the same outcome.
    Path file = dir.resolve("log.json");
    SurgeryLogWriter writer = new SurgeryLogWriter(file, () -> null, new ListenerWarnings());
    writer.add(outcome);
    writer.addNotRun(1, ENTRY, "why");
    writer.write();
    com.google.gson.JsonObject log =
        com.google.gson.JsonParser.parseString(java.nio.file.Files.readString(file))
            .getAsJsonObject();
    // (Printed, a null member is left out, as in the file.)
    assertEquals(
        com.google.gson.JsonParser.parseString(
            new com.google.gson.Gson().toJson(SurgeryJson.outcome(outcome.snapshot()))),
        log.getAsJsonArray("applications").get(0));
    assertEquals(
        "why", log.getAsJsonArray("not_run").get(0).getAsJsonObject().get("reason").getAsString());
  }
}
