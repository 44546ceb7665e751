package dev.surgery.agent;

import dev.surgery.agent.shared.AgentLog;
import dev.surgery.agent.shared.SurgeryDispatcher;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.lang.reflect.Modifier;
import java.security.ProtectionDomain;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Installed by {@code premain} in place of the ByteBuddy transformation, which it builds when the
 * JVM loads its first DJL class ({@code ai/djl/...}) and then hands DJL's classes to. Until then it
 * only reads class names, so a JVM that never loads DJL (every JVM of a shell whose {@code
 * JAVA_TOOL_OPTIONS} names the agent: {@code javac}, Maven, other programs) never loads ByteBuddy.
 * The classes the weaving changes that loaded before it was registered are retransformed through
 * it; registered as able to retransform, it also weaves the advice again when another agent
 * retransforms a DJL class.
 *
 * <p>This class names no ByteBuddy type, so that loading it loads none.
 */
final class FirstDjlClassTransformer implements ClassFileTransformer {

  private static final String DJL = "ai/djl/";

  private volatile ClassFileTransformer weaving;

  /**
   * The classes the weaving changes that this transformer was shown during start-up, as name@loader
   * identity (two live loaders with one identity hash are not told apart: one class could be
   * retransformed needlessly, which weaves nothing twice). Not filled after start-up.
   */
  private final Set<String> seen = ConcurrentHashMap.newKeySet();

  private volatile boolean startingUp = true;

  private FirstDjlClassTransformer() {}

  /**
   * Registers the transformer, then retransforms the classes it weaves that loaded before it (by
   * another agent's {@code premain}, a custom system class loader).
   *
   * @param instrumentation the JVM's instrumentation
   * @return the transformer, for {@link #retransformUnseen}
   */
  static FirstDjlClassTransformer register(Instrumentation instrumentation) {
    FirstDjlClassTransformer transformer = new FirstDjlClassTransformer();
    instrumentation.addTransformer(transformer, true);
    transformer.retransformUnseen(instrumentation);
    return transformer;
  }

  /**
   * Retransforms, one by one, the loaded classes the weaving changes ({@code Trainer}, {@code
   * BaseModel}, {@code EasyTrain}, the engines' gradient collectors) that this transformer never
   * saw load: those loaded before it was registered, or defined by another thread while it was
   * being registered. A retransformation starts from the class's original bytes, so a class is
   * never woven twice; one that fails is named and leaves the others woven.
   *
   * @param instrumentation the JVM's instrumentation
   */
  void retransformUnseen(Instrumentation instrumentation) {
    for (Class<?> type : instrumentation.getAllLoadedClasses()) {
      String name = type.getName();
      if (!isWoven(type)
          || seen.contains(key(name, type.getClassLoader()))
          || !instrumentation.isModifiableClass(type)) {
        continue;
      }
      try {
        instrumentation.retransformClasses(type);
      } catch (Throwable t) {
        AgentLog.warnOnce(
            TrainerInstrumentation.notInstrumentedKey(name),
            TrainerInstrumentation.notInstrumented(name),
            t);
      }
    }
  }

  /** Start-up is over: classes loading from now on are woven as they load, not looked for. */
  void startedUp() {
    startingUp = false;
    seen.clear();
  }

  /** Whether the weaving changes a class of this name (every one of them is DJL's). */
  private static boolean isWoven(String name) {
    return name.equals(SurgeryDispatcher.TRAINER)
        || name.equals(SurgeryDispatcher.MODEL)
        || name.equals(SurgeryDispatcher.EASY_TRAIN)
        || (name.startsWith("ai.djl.") && name.endsWith("GradientCollector"));
  }

  /**
   * Whether the weaving changes this loaded class: as {@link #isWoven(String)}, a gradient
   * collector only where it is concrete (the weaving leaves interfaces and abstract collectors
   * alone; {@code BaseModel}, abstract, is woven).
   */
  private static boolean isWoven(Class<?> type) {
    String name = type.getName();
    return isWoven(name)
        && (!name.endsWith("GradientCollector")
            || (!type.isInterface() && !Modifier.isAbstract(type.getModifiers())));
  }

  private static String key(String name, ClassLoader loader) {
    return name + "@" + System.identityHashCode(loader);
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
    if (startingUp) {
      String name = className.replace('/', '.');
      if (isWoven(name)) {
        seen.add(key(name, loader));
      }
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
