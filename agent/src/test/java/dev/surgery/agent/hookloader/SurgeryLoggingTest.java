package dev.surgery.agent.hookloader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;
import org.slf4j.helpers.NOPLoggerFactory;

/**
 * SLF4J's no-op factory means nobody sees the surgery's lines; a real binding means they do. The
 * notice tells no binding from a chosen slf4j-nop, and does not ask for a surgery log the config
 * already names (an outside probe found both said wrong).
 */
class SurgeryLoggingTest {

  @Test
  void theNoOpFactoryIsNotShownAndTheTestsBindingIs() {
    assertFalse(SurgeryLogging.shown(new NOPLoggerFactory()));
    assertTrue(SurgeryLogging.shown(), "slf4j-simple is on the test class path");
    assertNull(SurgeryLogging.silence());
  }

  @Test
  void noBindingAndAChosenNopAreToldApart() {
    NOPLoggerFactory nop = new NOPLoggerFactory();
    assertEquals(
        "the program's SLF4J has no binding (it logs nowhere)",
        SurgeryLogging.silence(nop, name -> false));
    String api2 = "org.slf4j.spi.SLF4JServiceProvider";
    String binder17 = "org.slf4j.impl.StaticLoggerBinder";
    assertEquals(
        "the program's SLF4J has no binding (it logs nowhere)",
        SurgeryLogging.silence(nop, api2::equals));
    assertEquals(
        "the program's SLF4J binding is slf4j-nop (it discards every line)",
        SurgeryLogging.silence(
            nop, name -> name.equals(api2) || name.equals("org.slf4j.nop.NOPServiceProvider")));
    // SLF4J 1.7 with a binding that prints nothing: slf4j-nop 1.7.
    assertEquals(
        "the program's SLF4J binding is slf4j-nop (it discards every line)",
        SurgeryLogging.silence(nop, binder17::equals));
    // SLF4J 2 ignores a binding for 1.7 (slf4j-simple 1.7 beside slf4j-api 2).
    assertEquals(
        "the program's SLF4J 2 ignores its binding for SLF4J 1.7 (it logs nowhere)",
        SurgeryLogging.silence(nop, name -> name.equals(api2) || name.equals(binder17)));
    assertNull(SurgeryLogging.silence(LoggerFactory.getILoggerFactory(), name -> true));
  }

  @Test
  void theNoticeAsksForASurgeryLogOnlyWhenNoneIsConfigured() {
    Path config = Path.of("surgery.yaml");
    String none =
        DjlAgentHooks.silenceNotice(
            "the program's SLF4J has no binding (it logs nowhere)", config, null);
    assertTrue(
        none.endsWith(
            "Add a binding (slf4j-simple, logback) to the class path, or set"
                + " 'report: <file>' in surgery.yaml for the surgery log"),
        none);
    String nopWithReport =
        DjlAgentHooks.silenceNotice(
            "the program's SLF4J binding is slf4j-nop (it discards every line)",
            config,
            Path.of("out/report.json"));
    assertTrue(
        nopWithReport.endsWith(
            "Replace slf4j-nop by a binding that prints (slf4j-simple, logback) to the class path;"
                + " the surgery log is written to out/report.json"),
        nopWithReport);
    assertFalse(nopWithReport.contains("set 'report"), nopWithReport);
  }
}
