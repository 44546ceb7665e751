package dev.surgery.agent.hookloader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmProvider;
import dev.surgery.testplugin.DuplicatePluginProvider;
import dev.surgery.testplugin.RecordingAlgorithm;
import dev.surgery.testplugin.TestPluginProvider;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.List;
import java.util.ServiceLoader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The loader of the {@code extensions} jars: what it takes from its jars and what from the host.
 */
class ExtensionLoaderTest {

  @TempDir Path dir;

  /**
   * A jar holding a services file for one provider and the given classes, from the test classes.
   */
  private Path jar(String name, Class<?> provider, Class<?>... classes) throws IOException {
    return PluginJar.of(dir.resolve(name), provider, classes);
  }

  /** {@code plugin.jar}: the test plugin's provider and its recording algorithm. */
  private Path recordingPluginJar() throws IOException {
    return PluginJar.recording(dir);
  }

  @Test
  void pluginClassesComeFromTheJarTheHostsFromTheParent() throws Exception {
    Path plugin = recordingPluginJar();
    ClassLoader host = ExtensionLoaderTest.class.getClassLoader();
    try (ExtensionLoader loader = new ExtensionLoader(List.of(plugin), host)) {
      // The test class path holds these classes too: the jar's copy wins.
      assertSame(loader, loader.loadClass(RecordingAlgorithm.class.getName()).getClassLoader());
      // What the host provides is never taken from a plugin jar.
      assertSame(Algorithm.class, loader.loadClass(Algorithm.class.getName()));
      assertSame(
          ai.djl.training.Trainer.class, loader.loadClass(ai.djl.training.Trainer.class.getName()));
    }
  }

  /**
   * A plugin jar that bundles a class the host provides (a fat jar with the surgery library or DJL
   * in it) still gets the host's: a plugin's own copy of {@code Algorithm} would be another type
   * than the one the agent's registry accepts.
   */
  @Test
  void aHostClassBundledInAPluginJarStillComesFromTheHost() throws Exception {
    Path fat =
        jar(
            "fat-plugin.jar",
            TestPluginProvider.class,
            TestPluginProvider.class,
            Algorithm.class,
            ai.djl.training.Trainer.class);
    ClassLoader host = ExtensionLoaderTest.class.getClassLoader();
    try (ExtensionLoader loader = new ExtensionLoader(List.of(fat), host)) {
      assertSame(Algorithm.class, loader.loadClass(Algorithm.class.getName()));
      assertSame(
          ai.djl.training.Trainer.class, loader.loadClass(ai.djl.training.Trainer.class.getName()));
      // Resources other than the library's service files are looked up as usual, parent first.
      // (The jar has no manifest: the host's are all there is.)
      assertEquals(
          java.util.Collections.list(host.getResources("META-INF/MANIFEST.MF")),
          java.util.Collections.list(loader.getResources("META-INF/MANIFEST.MF")));
    }
  }

  /** A jar that cannot be read is named in the refusal, as given (made absolute). */
  @Test
  void anUnreadableJarIsNamed() {
    Path missing = dir.resolve("missing.jar");
    String problem = ExtensionLoader.duplicateProvider(List.of(missing));
    assertTrue(
        problem != null && problem.startsWith("cannot read " + missing.toAbsolutePath()),
        String.valueOf(problem));
  }

  @Test
  void servicesComeFromThePluginJarsOnly() throws Exception {
    Path plugin = recordingPluginJar();
    Path elsewhere = jar("app-plugin.jar", DuplicatePluginProvider.class);
    ClassLoader test = ExtensionLoaderTest.class.getClassLoader();
    // A provider the host's class path lists (the application's own business under the agent).
    try (URLClassLoader host = new URLClassLoader(new URL[] {elsewhere.toUri().toURL()}, test);
        ExtensionLoader loader = new ExtensionLoader(List.of(plugin), host)) {
      assertEquals(
          1,
          java.util.Collections.list(
                  host.getResources("META-INF/services/" + AlgorithmProvider.class.getName()))
              .size());
      List<String> found =
          ServiceLoader.load(AlgorithmProvider.class, loader).stream()
              .map(p -> p.type().getName())
              .toList();
      assertEquals(List.of(TestPluginProvider.class.getName()), found);
    }
  }

  /**
   * Two jars declaring the same provider class (two versions of one plugin): one loader defines the
   * class once, so one jar would be ignored silently; refused naming the class and both jars.
   */
  @Test
  void theSameProviderClassInTwoJarsIsRefusedNamingBoth() throws IOException {
    Path first = jar("plugin-v1.jar", TestPluginProvider.class, TestPluginProvider.class);
    Path second = jar("plugin-v2.jar", TestPluginProvider.class, TestPluginProvider.class);
    String problem = ExtensionLoader.duplicateProvider(List.of(first, second));
    assertTrue(
        problem != null
            && problem.contains(TestPluginProvider.class.getName())
            && problem.contains("plugin-v1.jar")
            && problem.contains("plugin-v2.jar"),
        String.valueOf(problem));
    // The same jar under two spellings is one jar.
    assertNull(
        ExtensionLoader.duplicateProvider(
            List.of(first, first.getParent().resolve(".").resolve(first.getFileName()))));
    Path other = jar("other.jar", DuplicatePluginProvider.class, DuplicatePluginProvider.class);
    assertNull(ExtensionLoader.duplicateProvider(List.of(first, other)));
  }
}
