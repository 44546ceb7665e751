package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.testing.PluginJars;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A plugin jar whose provider {@link java.util.ServiceLoader} cannot instantiate: the error names
 * the jar that lists the provider and the innermost cause, whatever words the JDK's message uses.
 * The jars are compiled here, so that only their own class loader holds the provider.
 */
class PluginLoadFailureTest {

  @TempDir Path dir;

  /** Compiles one provider class, body given, and packs it with its service file. */
  private Path providerJar(String jarName, String pkg, String body) throws IOException {
    return PluginJars.provider(
        dir,
        jarName,
        pkg,
        body + "  public List<AlgorithmSpec> algorithms() { return List.of(); }\n");
  }

  private static String loadFailure(Path jar) throws IOException {
    try (URLClassLoader loader =
        new URLClassLoader(
            new URL[] {jar.toUri().toURL()}, PluginLoadFailureTest.class.getClassLoader())) {
      return assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(loader))
          .getMessage();
    }
  }

  /**
   * An outside probe: ServiceLoader words this one "X Unable to get public no-arg constructor",
   * without the "Provider X " the message was searched for, so the jar went unnamed.
   */
  @Test
  void aProviderWithoutAPublicNoArgConstructorIsNamedWithItsJar() throws Exception {
    Path jar = providerJar("noctor.jar", "noctor", "  public P(int x) {}\n");
    String message = loadFailure(jar);
    assertTrue(
        message.contains("noctor.P Unable to get public no-arg constructor")
            && message.contains("(listed in " + jar.toRealPath() + ")")
            && message.contains("NoSuchMethodException"),
        message);
  }

  /**
   * An outside probe: the message ended in a bare {@code java.lang.ExceptionInInitializerError},
   * without what the static initializer threw.
   */
  @Test
  void aProviderWhoseStaticInitializerThrowsIsNamedWithItsJarAndTheCause() throws Exception {
    Path jar =
        providerJar(
            "staticinit.jar",
            "staticinit",
            "  static { if (true) throw new IllegalStateException(\"static init boom\"); }\n");
    String message = loadFailure(jar);
    assertTrue(
        message.contains("staticinit.P could not be instantiated")
            && message.contains("(listed in " + jar.toRealPath() + ")")
            && message.contains("java.lang.IllegalStateException: static init boom"),
        message);
  }
}
