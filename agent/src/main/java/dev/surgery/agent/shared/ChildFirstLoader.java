package dev.surgery.agent.shared;

import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.Enumeration;

/**
 * A class loader that defines the classes of its own URLs before asking its parent, for the classes
 * its subclass does not send elsewhere ({@link #delegate}). Both of the agent's loaders work this
 * way: the hook loader (the agent's classes next to each DJL) and the plugin loader of {@code
 * extensions}. Service files of the surgery library come from its own URLs only: a provider on the
 * application's class path implements the application's copy of the service interface.
 */
public abstract class ChildFirstLoader extends URLClassLoader {

  static {
    ClassLoader.registerAsParallelCapable();
  }

  /**
   * The prefix of the service files of the surgery library ({@code
   * META-INF/services/dev.surgery.core.algorithms.AlgorithmProvider}).
   */
  public static final String SURGERY_SERVICES = "META-INF/services/dev.surgery.";

  /**
   * Creates the loader.
   *
   * @param name the loader's name
   * @param urls its own class path
   * @param parent the loader asked for everything else
   */
  protected ChildFirstLoader(String name, URL[] urls, ClassLoader parent) {
    super(name, urls, parent);
  }

  /**
   * Loads a class that must not come from this loader's URLs first, or returns null to load it
   * child-first.
   *
   * @param name the binary class name
   * @param resolve whether to link it
   * @return the class, or null for child-first loading
   * @throws ClassNotFoundException if the delegate has no such class
   */
  protected abstract Class<?> delegate(String name, boolean resolve) throws ClassNotFoundException;

  /**
   * Loads a class the usual way, parent first.
   *
   * @param name the binary class name
   * @param resolve whether to link it
   * @return the class
   * @throws ClassNotFoundException if neither the parent nor this loader has it
   */
  protected final Class<?> parentFirst(String name, boolean resolve) throws ClassNotFoundException {
    return super.loadClass(name, resolve);
  }

  @Override
  public Enumeration<URL> getResources(String name) throws IOException {
    if (name.startsWith(SURGERY_SERVICES)) {
      return findResources(name);
    }
    return super.getResources(name);
  }

  @Override
  protected final Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
    Class<?> delegated = delegate(name, resolve);
    if (delegated != null) {
      return delegated;
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
