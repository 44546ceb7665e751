package dev.surgery.agent.hookloader;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.slf4j.helpers.NOPLoggerFactory;

/** SLF4J's no-op factory means nobody sees the surgery's lines; a real binding means they do. */
class SurgeryLoggingTest {

  @Test
  void theNoOpFactoryIsNotShownAndTheTestsBindingIs() {
    assertFalse(SurgeryLogging.shown(new NOPLoggerFactory()));
    assertTrue(SurgeryLogging.shown(), "slf4j-simple is on the test class path");
  }
}
