package dev.surgery.agent.hookloader;

import org.slf4j.ILoggerFactory;
import org.slf4j.LoggerFactory;

/**
 * Tells whether the surgery library's log lines reach anyone. The library logs through the
 * program's SLF4J; without a binding SLF4J falls back to its no-op logger, and a program under the
 * agent would then learn nothing of what the surgery did unless its config names a report file.
 * Asked only once a trainer exists: by then DJL has started SLF4J the way the program set it up.
 */
final class SurgeryLogging {

  private SurgeryLogging() {}

  /**
   * Whether SLF4J has a binding that prints (anything but its no-op logger factory).
   *
   * @return false when SLF4J discards every line
   */
  static boolean shown() {
    return shown(LoggerFactory.getILoggerFactory());
  }

  /** The same for a given factory (SLF4J 1.7 and 2.x name their no-op one alike). */
  static boolean shown(ILoggerFactory factory) {
    return !factory.getClass().getName().endsWith(".NOPLoggerFactory");
  }
}
