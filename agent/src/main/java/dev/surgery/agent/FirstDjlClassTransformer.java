package dev.surgery.agent;

import dev.surgery.agent.shared.AgentLog;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.security.ProtectionDomain;
import java.util.ArrayList;
import java.util.List;

/**
 * Installed by {@code premain} in place of the ByteBuddy transformation, which it builds when the
 * JVM loads its first DJL class ({@code ai/djl/...}) and then hands DJL's classes to. Until then it
 * only reads class names, so a JVM that never loads DJL (every JVM of a shell whose {@code
 * JAVA_TOOL_OPTIONS} names the agent: {@code javac}, Maven, other programs) never loads ByteBuddy.
 * DJL classes loaded before {@code premain} are retransformed through it once it is registered;
 * registered as able to retransform, it also weaves the advice again when another agent
 * retransforms a DJL class.
 *
 * <p>This class names no ByteBuddy type, so that loading it loads none.
 */
final class FirstDjlClassTransformer implements ClassFileTransformer {

  private static final String DJL = "ai/djl/";

  private volatile ClassFileTransformer weaving;

  private FirstDjlClassTransformer() {}

  /**
   * Registers the transformer, then retransforms the DJL classes loaded before it (by another
   * agent's {@code premain}, a custom system class loader): registered first, no class can load
   * between the look and the registration unwoven.
   *
   * @param instrumentation the JVM's instrumentation
   */
  static void register(Instrumentation instrumentation) {
    instrumentation.addTransformer(new FirstDjlClassTransformer(), true);
    List<Class<?>> loaded = new ArrayList<>();
    for (Class<?> type : instrumentation.getAllLoadedClasses()) {
      if (type.getName().startsWith("ai.djl.") && instrumentation.isModifiableClass(type)) {
        loaded.add(type);
      }
    }
    if (loaded.isEmpty()) {
      return;
    }
    try {
      instrumentation.retransformClasses(loaded.toArray(new Class<?>[0]));
    } catch (Throwable t) {
      AgentLog.warnOnce(
          "weaving",
          "could not instrument the DJL classes loaded before the agent; surgery disabled, the"
              + " program runs unmodified",
          t);
    }
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
