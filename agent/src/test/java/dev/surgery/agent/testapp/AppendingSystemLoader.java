package dev.surgery.agent.testapp;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;

/**
 * A custom system class loader ({@code -Djava.system.class.loader}) as the JDK asks for one that
 * takes a Java agent: a child of the application class loader that appends the agent jar when the
 * JVM asks ({@code appendToClassPathForInstrumentation}).
 */
public final class AppendingSystemLoader extends URLClassLoader {

  static {
    ClassLoader.registerAsParallelCapable();
  }

  /**
   * Creates the loader; the JVM calls this with the application class loader.
   *
   * @param parent the application class loader
   */
  public AppendingSystemLoader(ClassLoader parent) {
    super(new URL[0], parent);
  }

  /**
   * Appends a jar, as the JVM asks for {@code -javaagent}.
   *
   * @param path the jar
   */
  void appendToClassPathForInstrumentation(String path) {
    try {
      addURL(Path.of(path).toUri().toURL());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
