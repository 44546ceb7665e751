package dev.surgery.agent;

import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.ProgramCopy;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.net.URL;
import java.security.CodeSource;
import java.security.ProtectionDomain;

/**
 * Watches for the program defining classes of the surgery library ({@code dev.surgery.core}, {@code
 * dev.surgery.trainer}) outside the agent's loaders, and tells {@link ProgramCopy} each loader that
 * does. It only reads names and never changes a class.
 */
final class ProgramCopyWatch implements ClassFileTransformer {

  private ProgramCopyWatch() {}

  /**
   * Registers the watch, after looking at the classes loaded before it (a late attach, or a class
   * another agent's {@code premain} loaded).
   *
   * @param instrumentation the JVM's instrumentation
   */
  static void register(Instrumentation instrumentation) {
    ProgramCopyWatch watch = new ProgramCopyWatch();
    instrumentation.addTransformer(watch, false);
    for (Class<?> type : instrumentation.getAllLoadedClasses()) {
      if (ProgramCopy.isLibraryClass(type.getName())) {
        look(type.getName(), type.getClassLoader(), type.getProtectionDomain());
      }
    }
  }

  /** {@inheritDoc} */
  @Override
  public byte[] transform(
      ClassLoader loader,
      String className,
      Class<?> classBeingRedefined,
      ProtectionDomain protectionDomain,
      byte[] classfileBuffer) {
    // Every class the JVM loads passes here: the prefix test first, the rest only for the library.
    if (className != null
        && className.startsWith("dev/surgery/")
        && ProgramCopy.isLibraryClass(className)) {
      look(className.replace('/', '.'), loader, protectionDomain);
    }
    return null; // never changes a class
  }

  private static void look(String className, ClassLoader loader, ProtectionDomain domain) {
    if (ProgramCopy.isAgents(loader) || (loader != null && ProgramCopy.known(loader))) {
      return;
    }
    CodeSource source = domain == null ? null : domain.getCodeSource();
    URL location = source == null ? null : source.getLocation();
    AgentLog.debug("the program's own copy of the library: " + className + " defined by " + loader);
    ProgramCopy.seen(loader, location);
  }
}
