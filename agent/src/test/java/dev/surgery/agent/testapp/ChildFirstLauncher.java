package dev.surgery.agent.testapp;

import java.io.File;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.Arrays;

/**
 * Starts a program in a child-first class loader that holds the program and its copy of the surgery
 * library, with DJL on the system class path (as some plugin hosts do): the library's classes and
 * the program's are defined by the child even where the parent could give them. Arguments: the
 * child class path ({@link File#pathSeparator}-separated), the main class, then the program's
 * arguments.
 */
public final class ChildFirstLauncher {

  private ChildFirstLauncher() {}

  /** Child first for the library and the test programs, parent first for the rest. */
  private static final class ChildFirst extends URLClassLoader {
    static {
      ClassLoader.registerAsParallelCapable();
    }

    ChildFirst(URL[] urls, ClassLoader parent) {
      super("program-child-first", urls, parent);
    }

    @Override
    protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
      if (!name.startsWith("dev.surgery.core.")
          && !name.startsWith("dev.surgery.trainer.")
          && !name.startsWith("dev.surgery.agent.testapp.")) {
        return super.loadClass(name, resolve);
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

  /**
   * Launches the program.
   *
   * @param args child class path, main class, program arguments
   * @throws Exception when the program fails
   */
  public static void main(String[] args) throws Exception {
    String[] entries = args[0].split(File.pathSeparator);
    URL[] urls = new URL[entries.length];
    for (int i = 0; i < entries.length; i++) {
      urls[i] = new File(entries[i]).toURI().toURL();
    }
    try (ChildFirst child = new ChildFirst(urls, ChildFirstLauncher.class.getClassLoader())) {
      Thread.currentThread().setContextClassLoader(child);
      Class<?> main = Class.forName(args[1], true, child);
      Method m = main.getMethod("main", String[].class);
      m.invoke(null, (Object) Arrays.copyOfRange(args, 2, args.length));
    }
  }
}
