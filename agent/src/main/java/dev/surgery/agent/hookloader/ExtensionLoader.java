package dev.surgery.agent.hookloader;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.Enumeration;
import java.util.List;

/**
 * The class loader of the plugin jars given with {@code extensions}, one per DJL class loader. Its
 * parent is the agent's {@code HookLoader}, so a plugin links against the agent's copy of the
 * surgery library (whose registry YAML reads) and the application's DJL. A plugin's own classes are
 * taken from its jar first, even when the application's class path has a copy: a copy defined by
 * the application's loader would implement the application's {@code AlgorithmProvider}, not the
 * agent's. What the host provides (the JDK, DJL, SLF4J, the surgery library) always comes from the
 * parent, never from a jar that bundles it.
 */
final class ExtensionLoader extends URLClassLoader {

  static {
    ClassLoader.registerAsParallelCapable();
  }

  private static final String SURGERY_SERVICES = "META-INF/services/dev.surgery.";

  private static final List<String> FROM_PARENT =
      List.of(
          "java.",
          "javax.",
          "jdk.",
          "sun.",
          "ai.djl.",
          "org.slf4j.",
          "dev.surgery.core.",
          "dev.surgery.trainer.",
          "dev.surgery.agent.",
          "dev.surgery.shaded.");

  ExtensionLoader(List<Path> jars, ClassLoader parent) {
    super("surgery-extensions", urls(jars), parent);
  }

  private static URL[] urls(List<Path> jars) {
    URL[] urls = new URL[jars.size()];
    for (int i = 0; i < urls.length; i++) {
      try {
        urls[i] = jars.get(i).toUri().toURL();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return urls;
  }

  /**
   * Service files of the surgery library come from the plugin jars only: the application's class
   * path is the application's business, and its providers would implement another copy of the
   * service interface.
   */
  @Override
  public Enumeration<URL> getResources(String name) throws IOException {
    if (name.startsWith(SURGERY_SERVICES)) {
      return findResources(name);
    }
    return super.getResources(name);
  }

  @Override
  protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
    for (String prefix : FROM_PARENT) {
      if (name.startsWith(prefix)) {
        return super.loadClass(name, resolve);
      }
    }
    synchronized (getClassLoadingLock(name)) {
      Class<?> c = findLoadedClass(name);
      if (c == null) {
        try {
          c = findClass(name);
        } catch (ClassNotFoundException e) {
          c = super.loadClass(name, false);
        }
      }
      if (resolve) {
        resolveClass(c);
      }
      return c;
    }
  }
}
