package dev.surgery.agent.testapp;

import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.List;

/**
 * Loads a class that has nothing to do with DJL in a class loader that cannot see the system class
 * path (as another agent's or a plugin's loader would), then trains {@link CnnApp}. Arguments: the
 * test classes folder, then {@link CnnApp} options.
 */
public final class UnrelatedIsolatedLoaderApp {

  private UnrelatedIsolatedLoaderApp() {}

  /**
   * Runs the program.
   *
   * @param args the test classes folder, then {@link CnnApp} options
   * @throws Exception when loading or training fails
   */
  public static void main(String[] args) throws Exception {
    try (URLClassLoader isolated =
        new URLClassLoader(new URL[] {Path.of(args[0]).toUri().toURL()}, null)) {
      Class<?> loaded = Class.forName(AppendingSystemLoader.class.getName(), true, isolated);
      System.out.println("UNRELATED: loaded " + loaded.getName() + " in " + isolated);
    }
    CnnApp.run(java.util.Arrays.copyOfRange(args, 1, args.length), List.of());
  }
}
