package dev.surgery.trainer;

import com.google.gson.JsonObject;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * Collects the outcomes and the entries that never ran, over all trainers of one {@link
 * SurgeryListener}, and rewrites the surgery log (the JSON file named by {@code report:} in the
 * config) from them. The file is rewritten whole each time, so that a run that dies midway still
 * leaves a valid file; once the log holds a hundred outcomes and a write takes a millisecond or
 * more, the writes after applications are spaced so that they take about 5 % of the time (the file
 * then lags by up to 19 times one write, made good at the next batch end once due, and at once at a
 * fit's end and at the last planned epoch's end). While a trainer's training runs, the file says
 * {@code "cut_short": true} and lists that trainer's entries not reached yet: a job killed outright
 * (SIGKILL, the OOM killer), which runs no shutdown hook, must not leave a log that reads as
 * complete. The write when the last training ends drops both; one whose program ended before
 * training did stays cut short ({@link SurgeryListener#onProgramEnd()}).
 */
final class SurgeryLogWriter {

  // The listener's logger, so that users who configure logging for the listener see these lines.

  private final Path logPath;
  private final RecentItems<PendingOutcome> outcomes;

  /** Entries that never ran, each with its text as the log prints it (printed once). */
  private final RecentItems<NotRunItem> notRun;

  private final Supplier<List<JsonObject>> notReachedYet;
  private final ListenerWarnings warnings;
  private volatile boolean writeFailed;

  /** Set when the program ended before a trainer's training did: the log says it is cut short. */
  private volatile boolean cutShort;

  /**
   * A write of a log of at least {@link #THROTTLE_FROM_OUTCOMES} outcomes (an {@code every: 1ba}
   * entry over a long run) that takes at least this long is followed by {@link #DUTY}{@code - 1}
   * times as long without the writes that {@link #writeSoon} asks for: rewriting the whole file
   * after every application grew with the file, quadratic over the run. A smaller log, the usual,
   * is written after every application (a slow first write of a cold JVM must not hold the first
   * application back).
   */
  static final long THROTTLE_FROM_NANOS = 1_000_000;

  /** How many outcomes a log holds before its writes may be spaced. */
  static final int THROTTLE_FROM_OUTCOMES = 100;

  /** One write's time in this many: at most about 5 % of training goes to rewriting the log. */
  static final int DUTY = 20;

  private final LongSupplier clock;

  /** Until when {@link #writeSoon} writes nothing (clock nanos). Guarded by this. */
  private long quietUntil = Long.MIN_VALUE;

  /** How many times the file was written: for tests. Guarded by this. */
  private int writes;

  /** A write {@link #writeSoon} skipped, which {@link #flushIfDue} makes once it is due. */
  private volatile boolean pending;

  /**
   * Creates a writer.
   *
   * @param logPath the surgery log file, or null to only collect
   * @param notReachedYet asked at each write: the open entries of the trainers still training, as
   *     {@code not_run} items, or null when no training runs
   */
  SurgeryLogWriter(
      Path logPath, Supplier<List<JsonObject>> notReachedYet, ListenerWarnings warnings) {
    this(logPath, notReachedYet, warnings, System::nanoTime);
  }

  /** As above, with the clock that times writes (a test's). */
  SurgeryLogWriter(
      Path logPath,
      Supplier<List<JsonObject>> notReachedYet,
      ListenerWarnings warnings,
      LongSupplier clock) {
    this.clock = clock;
    this.logPath = logPath;
    this.notReachedYet = notReachedYet;
    this.warnings = warnings;
    this.outcomes = logPath == null ? RecentItems.last(KEPT_WITHOUT_LOG) : RecentItems.all();
    this.notRun = logPath == null ? RecentItems.last(KEPT_WITHOUT_LOG) : RecentItems.all();
  }

  /**
   * How many outcomes and entries that never ran are kept without a surgery log, the oldest dropped
   * first: a listener that serves a long hyperparameter search (the agent's) must not grow for the
   * life of the JVM. With a log every one is kept, since the file lists every one.
   */
  static final int KEPT_WITHOUT_LOG = 10_000;

  void add(PendingOutcome outcome) {
    outcomes.add(outcome);
  }

  void addNotRun(int trainer, ScheduledAlgorithm entry, String reason) {
    notRun.add(NotRunItem.of(notRunItem(trainer, entry, reason)));
  }

  /** An entry of the log's {@code not_run} list. */
  static JsonObject notRunItem(int trainer, ScheduledAlgorithm entry, String reason) {
    JsonObject o = new JsonObject();
    o.addProperty("trainer", trainer);
    o.addProperty("algorithm", entry.algorithm().name());
    if (entry.byEpoch()) {
      o.addProperty("epoch", entry.epoch()); // none for a step, a duration or a repeat
    }
    o.addProperty("when", entry.trigger().describe());
    o.addProperty("source", entry.source());
    o.addProperty("reason", reason);
    return o;
  }

  /**
   * Forgets the entries listed as not run for one trainer with a reason that starts with {@code
   * reason}: they may run after all (the model was given another block).
   */
  void forgetNotRun(int trainer, String reason) {
    notRun.removeIf(
        item ->
            item.json().get("trainer").getAsInt() == trainer
                && item.json().get("reason").getAsString().startsWith(reason));
  }

  /**
   * Marks the log as cut short ({@code "cut_short": true}) from the next {@link #write()} on: the
   * program ended before the training of some trainer did.
   */
  void markCutShort() {
    cutShort = true;
  }

  /**
   * Returns a snapshot of every outcome so far (the last {@link #KEPT_WITHOUT_LOG} without a log).
   */
  List<SurgeryOutcome> outcomes() {
    return outcomes.snapshot(PendingOutcome::snapshot);
  }

  /**
   * Rewrites the surgery log after an application or a filled loss window, unless the last write
   * was slow and recent (see {@link #THROTTLE_FROM_NANOS}): then the next write, asked for or due,
   * carries it. Training's begin and end, failures and the program's end call {@link #write}.
   */
  void writeSoon() {
    if (logPath == null) {
      return;
    }
    synchronized (this) {
      if (clock.getAsLong() < quietUntil) {
        pending = true;
        return;
      }
    }
    write();
  }

  /**
   * Makes the write that {@link #writeSoon} skipped, once it is due: called at each batch end, so
   * that the file lags by the spacing at most, also when no application follows (a volatile read
   * when nothing is pending).
   */
  void flushIfDue() {
    if (pending) {
      writeSoon();
    }
  }

  /**
   * Makes the write that {@link #writeSoon} skipped now: at the end of a fit and of the last
   * planned epoch, after which no batch end may come for a while (an evaluation, a save, a program
   * that keeps its trainer open). Not at every epoch end: epochs of a batch or two would undo the
   * spacing.
   */
  void flush() {
    if (pending) {
      write();
    }
  }

  /** How many times the file was written. */
  synchronized int writes() {
    return writes;
  }

  /** Rewrites the surgery log, if one is configured; a failure is logged once and never thrown. */
  void write() {
    if (logPath == null) {
      return;
    }
    // Trainers on several threads may write at once: build and write under one lock, so an older
    // snapshot can never overwrite a newer one.
    synchronized (this) {
      pending = false;
      long start = clock.getAsLong();
      String json;
      List<JsonObject> running;
      try {
        running = notReachedYet.get();
      } catch (RuntimeException e) {
        // Read while other threads train: a torn read costs the list, never the training. Only
        // the running trainers' states can throw, so the log stays marked cut short.
        ListenerLog.logger().debug("Surgery: the entries not reached yet could not be listed", e);
        running = List.of();
      }
      // Both lists under both locks: the file shows them as they were at one moment.
      synchronized (outcomes) {
        synchronized (notRun) {
          // Each item as printed before: only new items and changed after-losses are printed.
          List<String> notRunNow = notRun.snapshot(NotRunItem::text);
          if (running != null && !running.isEmpty()) {
            notRunNow = new ArrayList<>(notRunNow);
            for (JsonObject item : running) {
              notRunNow.add(SurgeryJson.item(item));
            }
          }
          json =
              SurgeryJson.logOfItems(
                  outcomes.snapshot(PendingOutcome::logItem),
                  notRunNow,
                  cutShort || running != null);
        }
      }
      try {
        SurgeryJson.write(logPath, json);
        writeFailed = false;
        writes++;
        long end = clock.getAsLong();
        long took = end - start;
        quietUntil =
            took < THROTTLE_FROM_NANOS || outcomes.size() < THROTTLE_FROM_OUTCOMES
                ? Long.MIN_VALUE
                : end + (DUTY - 1) * took;
      } catch (IOException | RuntimeException e) {
        // A surgery log is not worth stopping a training run for; say so once.
        if (!writeFailed) {
          warnings.warn(
              "Surgery: cannot write the surgery log " + logPath.toAbsolutePath() + ": " + e);
        }
        writeFailed = true;
      }
    }
  }

  /**
   * Writes a dry run's plans instead of a log, when one is configured; a failure to write is warned
   * of, never thrown.
   *
   * @return the file written, if a report is configured and it was written
   */
  Optional<Path> writePlans(List<EntryPlan> plans) {
    if (logPath == null) {
      return Optional.empty();
    }
    try {
      SurgeryJson.write(logPath, SurgeryJson.plans(plans));
    } catch (IOException | RuntimeException e) {
      warnings.warn(
          "Surgery: cannot write the dry run's plan to " + logPath.toAbsolutePath() + ": " + e);
      return Optional.empty();
    }
    return Optional.of(logPath);
  }

  /** A {@code not_run} item and its text in the log. */
  private record NotRunItem(JsonObject json, String text) {
    static NotRunItem of(JsonObject json) {
      return new NotRunItem(json, SurgeryJson.item(json));
    }
  }
}
