package dev.surgery.agent;

import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.lang.instrument.UnmodifiableClassException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A stand-in for the JVM's {@link Instrumentation} that reports the loaded classes it is given and
 * records what the agent asks of it, so that the agent's registration code can be tested in process
 * (the JVM's own instrumentation exists only under {@code -javaagent}, in the ITs' forked JVMs).
 */
final class RecordingInstrumentation {

  /** The transformers added, each with whether it was registered as able to retransform. */
  final Map<ClassFileTransformer, Boolean> transformers = new LinkedHashMap<>();

  /** The classes passed to {@code retransformClasses}, in order, including ones that failed. */
  final List<Class<?>> retransformed = new ArrayList<>();

  private final Class<?>[] loaded;
  private final Set<Class<?>> unmodifiable;
  private final Set<Class<?>> failing;

  /**
   * @param loaded what {@code getAllLoadedClasses} answers
   * @param unmodifiable the classes {@code isModifiableClass} says no to
   * @param failing the classes whose retransformation throws, as a JVM's does for a bad class file
   */
  RecordingInstrumentation(
      List<Class<?>> loaded, Set<Class<?>> unmodifiable, Set<Class<?>> failing) {
    this.loaded = loaded.toArray(Class<?>[]::new);
    this.unmodifiable = unmodifiable;
    this.failing = failing;
  }

  RecordingInstrumentation(List<Class<?>> loaded) {
    this(loaded, Set.of(), Set.of());
  }

  /** The instrumentation; any method the agent should not call throws. */
  Instrumentation instrumentation() {
    return (Instrumentation)
        Proxy.newProxyInstance(
            Instrumentation.class.getClassLoader(),
            new Class<?>[] {Instrumentation.class},
            (proxy, method, args) ->
                switch (method.getName()) {
                  case "addTransformer" -> {
                    transformers.put(
                        (ClassFileTransformer) args[0], args.length > 1 && (Boolean) args[1]);
                    yield null;
                  }
                  case "getAllLoadedClasses" -> loaded.clone();
                  case "isModifiableClass" -> !unmodifiable.contains((Class<?>) args[0]);
                  case "isRetransformClassesSupported" -> true;
                  case "retransformClasses" -> {
                    for (Class<?> type : (Class<?>[]) args[0]) {
                      retransformed.add(type);
                      if (failing.contains(type)) {
                        throw new UnmodifiableClassException(type.getName());
                      }
                    }
                    yield null;
                  }
                  case "hashCode" -> System.identityHashCode(proxy);
                  case "equals" -> proxy == args[0];
                  case "toString" -> "RecordingInstrumentation";
                  default -> throw new UnsupportedOperationException(method.getName());
                });
  }
}
