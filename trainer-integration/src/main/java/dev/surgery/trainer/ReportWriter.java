package dev.surgery.trainer;

import com.google.gson.JsonObject;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Collects the applications and the entries that never ran, over all trainers of one {@link
 * SurgeryListener}, and rewrites the JSON report from them. The report is rewritten whole each
 * time, so that a run that dies midway still leaves a complete, valid file.
 */
final class ReportWriter {

  // The listener's logger, so that users who configure logging for the listener see these lines.
  private static final Logger logger = LoggerFactory.getLogger(SurgeryListener.class);

  private final Path reportPath;
  private final List<Applied> applications = Collections.synchronizedList(new ArrayList<>());
  private final List<JsonObject> notRun = Collections.synchronizedList(new ArrayList<>());
  private volatile boolean reportWriteFailed;

  /**
   * Creates a writer.
   *
   * @param reportPath the report file, or null to only collect
   */
  ReportWriter(Path reportPath) {
    this.reportPath = reportPath;
  }

  void add(Applied applied) {
    applications.add(applied);
  }

  void addNotRun(int trainer, ScheduledAlgorithm entry, String reason) {
    JsonObject o = new JsonObject();
    o.addProperty("trainer", trainer);
    o.addProperty("algorithm", entry.algorithm().name());
    o.addProperty("epoch", entry.epoch());
    o.addProperty("source", entry.source());
    o.addProperty("reason", reason);
    notRun.add(o);
  }

  /** Returns a snapshot of every application so far, in order. */
  List<SurgeryApplication> applications() {
    synchronized (applications) {
      return applications.stream().map(Applied::snapshot).collect(Collectors.toList());
    }
  }

  /** Rewrites the report, if one is configured; a failure is logged once and never thrown. */
  void write() {
    if (reportPath == null) {
      return;
    }
    String json;
    synchronized (applications) {
      List<SurgeryApplication> snapshot =
          applications.stream().map(Applied::snapshot).collect(Collectors.toList());
      List<JsonObject> pending;
      synchronized (notRun) {
        pending = new ArrayList<>(notRun);
      }
      json = SurgeryJson.report(snapshot, pending);
    }
    // Trainers on several threads may write at once: one file write at a time.
    synchronized (this) {
      try {
        SurgeryJson.write(reportPath, json);
        reportWriteFailed = false;
      } catch (IOException | RuntimeException e) {
        // A report is not worth stopping a training run for; say so once.
        if (!reportWriteFailed) {
          logger.warn(
              "Surgery: cannot write the report {}: {}", reportPath.toAbsolutePath(), e.toString());
        }
        reportWriteFailed = true;
      }
    }
  }
}
