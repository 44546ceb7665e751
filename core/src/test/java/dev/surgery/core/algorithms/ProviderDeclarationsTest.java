package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The service-file reader the library and the agent share: it must read a file exactly as {@link
 * ServiceLoader} does (else a declared provider escapes the duplicate check, or a comment is taken
 * for one), and report a class declared in two places, not one place read twice.
 */
class ProviderDeclarationsTest {

  /** A provider the JDK's loader can instantiate. */
  public static final class NoAlgorithms implements AlgorithmProvider {
    /** For the service loader. */
    public NoAlgorithms() {}

    @Override
    public List<AlgorithmSpec> algorithms() {
      return List.of();
    }
  }

  @Test
  void readsClassNamesAsServiceLoaderDoes(@TempDir Path dir) throws IOException {
    String text =
        "# plugins\r\n"
            + "  dev.surgery.core.algorithms.ProviderDeclarationsTest$NoAlgorithms  # the built-ins\r\n"
            + "\n"
            + "\t\n"
            + "#dev.example.Commented\n"
            + "dev.surgery.core.algorithms.ProviderDeclarationsTest$NoAlgorithms";
    List<String> names = ProviderDeclarations.classNames(text);
    String provider = NoAlgorithms.class.getName();
    assertEquals(List.of(provider, provider), names);
    // The oracle: the JDK's own reader of the same file finds those classes (it drops repeats).
    Path file = dir.resolve(ProviderDeclarations.SERVICE_FILE);
    Files.createDirectories(file.getParent());
    Files.writeString(file, text);
    try (URLClassLoader loader =
        new URLClassLoader(new URL[] {dir.toUri().toURL()}, getClass().getClassLoader())) {
      List<String> loaded =
          ServiceLoader.load(AlgorithmProvider.class, loader).stream()
              .map(p -> p.type().getName())
              .distinct()
              .toList();
      assertEquals(List.of(provider), loaded);
    } catch (ServiceConfigurationError e) {
      throw new AssertionError("the JDK refused a file the reader accepted", e);
    }
  }

  @Test
  void aClassDeclaredInTwoPlacesIsAConflictNamingBoth() {
    ProviderDeclarations declarations = new ProviderDeclarations();
    assertTrue(declarations.add("/jars/a-1.0.jar", "dev.example.A\ndev.example.B\n").isEmpty());
    assertTrue(declarations.add("/jars/c.jar", "dev.example.C\n").isEmpty());
    assertEquals(
        new ProviderDeclarations.Conflict("dev.example.B", "/jars/a-1.0.jar", "/jars/a-1.1.jar"),
        declarations.add("/jars/a-1.1.jar", "# newer\ndev.example.B\n").orElseThrow());
  }

  @Test
  void onePlaceReadTwiceIsNoConflict() {
    ProviderDeclarations declarations = new ProviderDeclarations();
    assertTrue(declarations.add("/jars/a.jar", "dev.example.A").isEmpty());
    assertTrue(declarations.add("/jars/a.jar", "dev.example.A").isEmpty());
    assertTrue(declarations.add("/jars/a.jar", "dev.example.A\ndev.example.A").isEmpty());
  }
}
