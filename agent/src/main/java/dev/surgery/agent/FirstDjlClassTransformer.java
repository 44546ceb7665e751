package dev.surgery.agent;

import dev.surgery.agent.shared.AgentLog;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.security.ProtectionDomain;

/**
 * Installed by {@code premain} in place of the ByteBuddy transformation, which it builds when the
 * JVM loads its first DJL class ({@code ai/djl/...}) and then hands DJL's classes to. Until then it
 * only reads class names, so a JVM that never loads DJL (every JVM of a shell whose {@code
 * JAVA_TOOL_OPTIONS} names the agent: {@code javac}, Maven, other programs) never loads ByteBuddy.
 * Registered only when no DJL class is loaded yet (else {@code premain} retransforms as a late
 * attach does); registered as able to retransform, it weaves the advice again when another agent
 * retransforms a DJL class.
 *
 * <p>This class names no ByteBuddy type, so that loading it loads none.
 */
final class FirstDjlClassTransformer implements ClassFileTransformer {

  private static final String DJL = "ai/djl/";

  private volatile ClassFileTransformer weaving;

  private FirstDjlClassTransformer() {}

  /**
   * Registers the transformer.
   *
   * @param instrumentation the JVM's instrumentation
   */
  static void register(Instrumentation instrumentation) {
    instrumentation.addTransformer(new FirstDjlClassTransformer(), true);
  }

  /** {@inheritDoc} */
  @Override
  public byte[] transform(
      Module module,
      ClassLoader loader,
      String className,
      Class<?> classBeingRedefined,
      ProtectionDomain protectionDomain,
      byte[] classfileBuffer) {
    // Every type the weaving matches is DJL's: the others are not even shown to it.
    if (className == null || !className.startsWith(DJL)) {
      return null;
    }
    ClassFileTransformer w = weaving;
    if (w == null) {
      w = weaving();
    }
    try {
      return w.transform(
          module, loader, className, classBeingRedefined, protectionDomain, classfileBuffer);
    } catch (Throwable t) {
      // ByteBuddy reports its own failures to the weaving's listener; never throw into the JVM.
      return null;
    }
  }

  private synchronized ClassFileTransformer weaving() {
    if (weaving == null) {
      try {
        weaving = TrainerInstrumentation.weaving();
      } catch (Throwable t) {
        AgentLog.warnOnce(
            "weaving",
            "could not build the instrumentation of DJL's classes; surgery disabled, the program"
                + " runs unmodified",
            t);
        weaving = new ClassFileTransformer() {};
      }
    }
    return weaving;
  }
}
