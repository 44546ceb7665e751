package dev.surgery.agent.testapp;

import java.io.File;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Starts a program in a child class loader, as fat-jar launchers do: this class is alone on the
 * system class path, and DJL and the program are loaded by a {@link URLClassLoader} whose parent is
 * the system class loader. Arguments: the child class path ({@link File#pathSeparator}-separated),
 * the main class, then the program's arguments.
 */
public final class ChildLoaderLauncher {

  private ChildLoaderLauncher() {}

  /**
   * Launches the program.
   *
   * @param args child class path, main class, program arguments
   * @throws Exception when the program fails
   */
  public static void main(String[] args) throws Exception {
    boolean djlOnSystemPath;
    try {
      Class.forName("ai.djl.training.Trainer", false, ClassLoader.getSystemClassLoader());
      djlOnSystemPath = true;
    } catch (ClassNotFoundException e) {
      djlOnSystemPath = false;
    }
    System.out.println("LAUNCHER: DJL on the system class path: " + djlOnSystemPath);
    List<URL> urls = new ArrayList<>();
    for (String entry : args[0].split(File.pathSeparator)) {
      urls.add(new File(entry).toURI().toURL());
    }
    // -Dlauncher.isolated=true: the child does not delegate to the system class loader at all (as
    // some plugin loaders do), so it cannot see the agent jar either.
    ClassLoader parent =
        Boolean.getBoolean("launcher.isolated")
            ? ClassLoader.getPlatformClassLoader()
            : ClassLoader.getSystemClassLoader();
    try (URLClassLoader child = new URLClassLoader("child-app", urls.toArray(new URL[0]), parent)) {
      Thread.currentThread().setContextClassLoader(child);
      Class<?> main = Class.forName(args[1], true, child);
      Method m = main.getMethod("main", String[].class);
      m.invoke(null, (Object) Arrays.copyOfRange(args, 2, args.length));
    }
  }
}
