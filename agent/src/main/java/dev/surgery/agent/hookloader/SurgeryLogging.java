package dev.surgery.agent.hookloader;

import java.util.function.Predicate;
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

  /**
   * Says why the program's SLF4J shows nothing, or null when it shows the lines: it has no binding,
   * or the program chose slf4j-nop, which discards every line on purpose.
   *
   * @return the reason, in words, or null
   */
  static String silence() {
    ClassLoader loader = LoggerFactory.class.getClassLoader();
    return silence(LoggerFactory.getILoggerFactory(), name -> present(name, loader));
  }

  /** The same for a given factory, and a test of which classes the program's SLF4J sees. */
  static String silence(ILoggerFactory factory, Predicate<String> classPresent) {
    if (shown(factory)) {
      return null;
    }
    String nop = "the program's SLF4J binding is slf4j-nop (it discards every line)";
    String none = "the program's SLF4J has no binding (it logs nowhere)";
    boolean binding17 = classPresent.test("org.slf4j.impl.StaticLoggerBinder");
    if (!classPresent.test("org.slf4j.spi.SLF4JServiceProvider")) {
      return binding17 ? nop : none; // SLF4J 1.7: a binding that prints nothing is slf4j-nop's
    }
    if (classPresent.test("org.slf4j.nop.NOPServiceProvider")) {
      return nop;
    }
    return binding17
        ? "the program's SLF4J 2 ignores its binding for SLF4J 1.7 (it logs nowhere)"
        : none;
  }

  private static boolean present(String name, ClassLoader loader) {
    try {
      Class.forName(name, false, loader);
      return true;
    } catch (ClassNotFoundException | LinkageError e) {
      return false;
    }
  }
}
