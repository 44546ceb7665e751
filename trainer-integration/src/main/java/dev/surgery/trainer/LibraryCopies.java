package dev.surgery.trainer;

import ai.djl.nn.Block;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;

/**
 * The other copies of this library in the JVM, asked what surgery a block carries. Under the Java
 * agent a program that has the library on its own class path runs two copies: the agent's, defined
 * beside DJL by the agent's class loader, and the program's. Each knows only the records it
 * replayed or applied itself, so without asking the other a model the program's copy changed (its
 * listener, {@code SurgeryCheckpoint.replay} in a {@code BlockFactory}) and then loaded with a
 * plain {@code Model.load} (which the agent's copy replays) would be taken for the original
 * architecture, and the other way round.
 *
 * <p>The agent's copy finds the program's through its loader's parent (DJL's loader); the program's
 * finds the agent's through {@code SurgeryDispatcher.libraryLoaders()}, the agent's one class that
 * every loader shares. Only {@link CarriedRecords#carriedBy} is asked: the records, which decide
 * what a load replays.
 */
final class LibraryCopies {

  /** The agent's class that lists the loaders of its copies of this library. */
  private static final String DISPATCHER = "dev.surgery.agent.shared.SurgeryDispatcher";

  private LibraryCopies() {}

  /**
   * The records another copy of this library holds for a root block, as JSON; null when no other
   * copy holds any (or there is none).
   */
  static String carriedBy(Block root) {
    if (root == null) {
      return null;
    }
    for (Method carriedBy : otherCopies()) {
      try {
        Object json = carriedBy.invoke(null, root);
        if (json instanceof String s && !s.isBlank()) {
          return s;
        }
      } catch (IllegalAccessException | InvocationTargetException | RuntimeException e) {
        ListenerLog.logger()
            .debug("Surgery: another copy of the library could not be asked for records", e);
      }
    }
    return null;
  }

  /** {@code CarriedRecords.carriedBy} of every other copy that takes this JVM's DJL blocks. */
  private static List<Method> otherCopies() {
    List<ClassLoader> loaders = new ArrayList<>();
    ClassLoader own = CarriedRecords.class.getClassLoader();
    if (own != null && own.getParent() != null) {
      loaders.add(own.getParent());
    }
    loaders.addAll(agentLoaders());
    List<Method> methods = new ArrayList<>();
    for (ClassLoader loader : loaders) {
      Method m = carriedByOf(loader);
      if (m != null
          && methods.stream().noneMatch(k -> k.getDeclaringClass() == m.getDeclaringClass())) {
        methods.add(m);
      }
    }
    return methods;
  }

  private static Method carriedByOf(ClassLoader loader) {
    try {
      Class<?> copy = Class.forName(CarriedRecords.class.getName(), false, loader);
      if (copy == CarriedRecords.class) {
        return null;
      }
      // Its parameter is this copy's Block: a copy beside another DJL has no such method.
      Method m = copy.getDeclaredMethod("carriedBy", Block.class);
      m.setAccessible(true);
      return m;
    } catch (ClassNotFoundException | NoSuchMethodException | LinkageError e) {
      return null;
    } catch (RuntimeException e) { // InaccessibleObjectException: a copy in a named module
      ListenerLog.logger().debug("Surgery: another copy of the library is not readable", e);
      return null;
    }
  }

  @SuppressWarnings("unchecked")
  private static List<ClassLoader> agentLoaders() {
    try {
      Class<?> dispatcher = Class.forName(DISPATCHER, false, ClassLoader.getSystemClassLoader());
      Object loaders = dispatcher.getMethod("libraryLoaders").invoke(null);
      return loaders instanceof List<?> list ? (List<ClassLoader>) list : List.of();
    } catch (ClassNotFoundException | LinkageError e) {
      return List.of(); // no agent
    } catch (ReflectiveOperationException | RuntimeException e) {
      ListenerLog.logger().debug("Surgery: the agent's copies of the library are not listed", e);
      return List.of();
    }
  }
}
