package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
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
  void withALogEveryOutcomeIsKept(@TempDir Path dir) throws Exception {
    SurgeryLogWriter writer =
        new SurgeryLogWriter(dir.resolve("log.json"), () -> null, new ListenerWarnings());
    int total = SurgeryLogWriter.KEPT_WITHOUT_LOG + 25;
    for (int trainer = 1; trainer <= total; trainer++) {
      writer.add(outcome(trainer));
      writer.addNotRun(trainer, ENTRY, "why");
    }
    assertEquals(total, writer.outcomes().size());
    // The file lists every entry that never ran too.
    writer.write();
    assertEquals(
        total,
        com.google.gson.JsonParser.parseString(
                java.nio.file.Files.readString(dir.resolve("log.json")))
            .getAsJsonObject()
            .getAsJsonArray("not_run")
            .size());
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

  /**
   * {@code loss_after} is the mean training loss of the batches seen after the surgery so far, and
   * {@code loss_after_batches} how many (README, surgery log fields); none yet reads as null.
   */
  @Test
  void theAfterLossIsTheMeanOfTheBatchesSeenSoFar() {
    PendingOutcome outcome = outcome(1);
    assertNull(outcome.snapshot().lossAfter());
    assertEquals(0, outcome.snapshot().lossAfterBatches());
    float[] losses = {0.5f, 1.25f, 3f, 0.125f};
    double sum = 0;
    for (int i = 0; i < losses.length; i++) {
      outcome.addLossAfter(losses[i]);
      sum += losses[i];
      assertEquals(i + 1, outcome.lossAfterBatches());
      assertEquals(i + 1, outcome.snapshot().lossAfterBatches());
      assertEquals(sum / (i + 1), outcome.snapshot().lossAfter());
    }
  }

  /**
   * An {@code every: 1ba} entry over a long run: each application rewrote the whole log, which grew
   * with every one (an outside probe: 2 ms per step after 2,000 steps, 12 ms after 12,000). Once
   * the log holds a hundred outcomes and a write takes a millisecond or more, the writes after
   * applications are spaced at 19 times that; a small log's are never skipped (a reviewer: a cold
   * JVM's slow first write held back the first application's), nor the writes that must be on disk
   * (training's end).
   */
  @Test
  void slowWritesOfALargeLogAreSpacedOthersAreNot(@TempDir Path dir) throws Exception {
    long[] now = {0};
    // The clock moves 2 ms at each reading: a write (two readings) takes 2 ms, a slow write.
    java.util.function.LongSupplier clock = () -> now[0] += 2_000_000;
    Path file = dir.resolve("log.json");
    SurgeryLogWriter writer = new SurgeryLogWriter(file, () -> null, new ListenerWarnings(), clock);
    // A small log (a cold JVM's first writes are slow too): written after every application.
    for (int i = 1; i <= 50; i++) {
      writer.add(outcome(i));
      writer.writeSoon();
    }
    assertEquals(50, writer.writes(), "a small log's write is never skipped");

    for (int i = 51; i < SurgeryLogWriter.THROTTLE_FROM_OUTCOMES; i++) {
      writer.add(outcome(i));
    }
    int before = writer.writes();
    for (int i = 0; i < 200; i++) {
      writer.add(outcome(SurgeryLogWriter.THROTTLE_FROM_OUTCOMES + i));
      writer.writeSoon();
    }
    int slow = writer.writes() - before;
    // A write is followed by 38 ms without one, and each call reads the clock once: one write in
    // about 20 calls.
    assertTrue(slow >= 8 && slow <= 12, slow + " writes for 200 applications");

    // No application follows: the skipped write is made at a batch end once it is due.
    int afterLast = writer.writes();
    for (int i = 0; i < 25 && writer.writes() == afterLast; i++) {
      writer.flushIfDue();
    }
    assertEquals(afterLast + 1, writer.writes(), "the pending write was made when due");
    writer.flushIfDue();
    assertEquals(afterLast + 1, writer.writes(), "nothing pending: nothing written");
    // An application just after that write is skipped; the epoch's or the fit's end writes it
    // at once (a reviewer: an entry at the last step stayed off the file while the trainer idled).
    writer.add(outcome(SurgeryLogWriter.THROTTLE_FROM_OUTCOMES + 200));
    writer.writeSoon();
    assertEquals(afterLast + 1, writer.writes(), "skipped: within the spacing");
    writer.flush();
    assertEquals(afterLast + 2, writer.writes(), "an epoch or fit end writes what is pending");
    writer.flush();
    assertEquals(afterLast + 2, writer.writes(), "nothing pending: nothing written");
    writer.write(); // training's end: always written
    assertEquals(afterLast + 3, writer.writes());
    assertEquals(
        SurgeryLogWriter.THROTTLE_FROM_OUTCOMES + 200,
        com.google.gson.JsonParser.parseString(java.nio.file.Files.readString(file))
            .getAsJsonObject()
            .getAsJsonArray("applications")
            .size(),
        "the last write carries every application");
  }
}
