package dev.surgery.trainer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The listener's SLF4J logger, made when something is first logged rather than when a class of the
 * listener initializes: the agent builds the listener before the program's {@code main}, which may
 * still configure its logging (slf4j-simple reads its system properties when the first logger is
 * made, and a binding initialized then ignores what {@code main} sets later).
 */
final class ListenerLog {

  private ListenerLog() {}

  /** The logger named after {@link SurgeryListener}. */
  static Logger logger() {
    return Holder.LOGGER;
  }

  private static final class Holder {
    static final Logger LOGGER = LoggerFactory.getLogger(SurgeryListener.class);
  }
}
