package dev.surgery.trainer;

import java.util.List;

/**
 * A listener's warnings: logged at WARN under {@link SurgeryListener}'s logger and kept for {@link
 * SurgeryListener#getWarnings()}, the last {@link SurgeryLogWriter#KEPT_WITHOUT_LOG} at most (a
 * listener serving a long hyperparameter search does not grow for the life of the JVM).
 */
final class ListenerWarnings {

  private final RecentItems<String> kept = RecentItems.last(SurgeryLogWriter.KEPT_WITHOUT_LOG);

  /** Logs a warning and keeps it. */
  void warn(String message) {
    kept.add(message);
    ListenerLog.logger().warn(message);
  }

  /** Keeps a message the caller logs itself (at another level). */
  void keep(String message) {
    kept.add(message);
  }

  /** The kept warnings, oldest first. */
  List<String> list() {
    return List.copyOf(kept.snapshot(w -> w));
  }
}
