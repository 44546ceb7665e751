package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.testing.PluginJars;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Algorithms of plugin jars join the registry once, under their jar's name, and a name claimed
 * twice, a provider declared by two jars, or a provider that lists no specs is refused naming the
 * jars. The registry is one per JVM: every name here is new to it (a test framework may run a test
 * again in the same JVM).
 */
class PluginRegistrationTest {

  @TempDir Path dir;

  /** A name no earlier run in this JVM registered. */
  private static String freshName() {
    return "probe_" + UUID.randomUUID().toString().replace("-", "");
  }

  /** A jar whose provider {@code pkg.P} lists what {@code algorithms} returns. */
  private Path providerJar(String jarName, String pkg, String algorithms) throws IOException {
    return PluginJars.provider(
        dir,
        jarName,
        pkg,
        "  public List<AlgorithmSpec> algorithms() { return " + algorithms + "; }\n");
  }

  /** A jar whose provider lists one spec named {@code name}. */
  private Path jarNaming(String jarName, String pkg, String name) throws IOException {
    return providerJar(
        jarName,
        pkg,
        "List.of(AlgorithmSpec.of(\""
            + name
            + "\", List.of(), v -> GhostBatchNorm.builder().build()))");
  }

  private static URLClassLoader loaderOf(Path... jars) throws IOException {
    URL[] urls = new URL[jars.length];
    for (int i = 0; i < jars.length; i++) {
      urls[i] = jars[i].toUri().toURL();
    }
    return new URLClassLoader(urls, PluginRegistrationTest.class.getClassLoader());
  }

  /** The jar as a code source location names it. */
  private static String place(Path jar) throws IOException {
    return jar.toUri().toURL().getPath();
  }

  @Test
  void aPluginsAlgorithmsJoinOnceUnderTheirJarsName() throws Exception {
    String name = freshName();
    // In a package under the library's own: a plugin's class is never built-in.
    Path jar = jarNaming("one.jar", "dev.surgery.core.algorithms.one" + name, name);
    try (URLClassLoader loader = loaderOf(jar);
        URLClassLoader again = loaderOf(jar)) {
      List<AlgorithmSpec> added = Algorithms.loadPlugins(loader);
      assertEquals(List.of(name), added.stream().map(AlgorithmSpec::name).toList());
      assertSame(added.get(0), Algorithms.spec(name));
      assertEquals(place(jar), Algorithms.origin(name));
      assertEquals(place(jar), Algorithms.origins().get(name));
      assertTrue(Algorithms.names().contains(name));
      // The same loader again adds nothing; the same jar through a second loader is no second name.
      assertEquals(List.of(), Algorithms.loadPlugins(loader));
      assertEquals(List.of(), Algorithms.loadPlugins(again));
      assertSame(added.get(0), Algorithms.spec(name));
      // The built-ins keep their origin.
      assertEquals("built-in", Algorithms.origins().get(BlurPool.NAME));
    }
  }

  @Test
  void aNameClaimedByTwoJarsIsRefusedNamingBoth() throws Exception {
    String name = freshName();
    Path first = jarNaming("first.jar", "first" + name, name);
    Path second = jarNaming("second.jar", "second" + name, name);
    try (URLClassLoader one = loaderOf(first);
        URLClassLoader other = loaderOf(second)) {
      Algorithms.loadPlugins(one);
      AlgorithmPluginException e =
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(other));
      assertEquals(
          "two algorithms are named '"
              + name
              + "': one in "
              + place(first)
              + ", one in "
              + place(second)
              + " (second"
              + name
              + ".P); remove one of the jars or rename one algorithm",
          e.getMessage());
      assertEquals(place(first), Algorithms.origin(name));
    }
  }

  @Test
  void aProviderDeclaredByTwoJarsIsRefusedNamingBoth() throws Exception {
    String name = freshName();
    Path first = jarNaming("copy1.jar", "dup" + name, name);
    Path second = jarNaming("copy2.jar", "dup" + name, name);
    try (URLClassLoader loader = loaderOf(first, second)) {
      AlgorithmPluginException e =
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(loader));
      assertTrue(
          e.getMessage()
              .startsWith(
                  "the algorithm provider dup"
                      + name
                      + ".P is in both "
                      + first.toRealPath()
                      + " and "
                      + second.toRealPath()
                      + ": "),
          e.getMessage());
      assertTrue(Algorithms.find(name).isEmpty(), "nothing of the loader registered");
    }
  }

  @Test
  void aProviderThatListsNoSpecsIsRefused() throws Exception {
    String name = freshName();
    try (URLClassLoader nothing = loaderOf(providerJar("null.jar", "n" + name, "null"));
        URLClassLoader aNull =
            loaderOf(
                providerJar(
                    "nullspec.jar", "e" + name, "java.util.Arrays.asList((AlgorithmSpec) null)"))) {
      assertTrue(
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(nothing))
              .getMessage()
              .contains("listed no list of algorithms (null)"));
      assertTrue(
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(aNull))
              .getMessage()
              .contains("listed a null algorithm spec"));
    }
  }

  /**
   * An algorithm registered in code by a class outside this library's package is the caller's, not
   * built-in; a second registration of the name is refused naming the first one's origin.
   */
  @Test
  void anAlgorithmRegisteredInCodeKeepsItsNameAndOrigin() {
    String name = freshName();
    AlgorithmSpec spec = AlgorithmSpec.of(name, List.of(), v -> GhostBatchNorm.builder().build());
    dev.surgery.core.testing.Registrar.register(spec);
    assertSame(spec, Algorithms.spec(name));
    String origin = Algorithms.origin(name);
    // The test classes' folder, where the registering class was loaded from.
    assertTrue(origin.endsWith("/test-classes/"), origin);
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> Algorithms.register(spec));
    assertEquals(
        "algorithm name already registered: " + name + " (by " + origin + ")", e.getMessage());
  }

  /**
   * A provider declared by a class folder and a jar is refused naming both; the folder is named by
   * its own path.
   */
  @Test
  void aProviderDeclaredByAFolderAndAJarIsRefusedNamingBoth() throws Exception {
    String name = freshName();
    Path jar = jarNaming("copy.jar", "dir" + name, name);
    // The classes PluginJars compiled, with the service file a folder on a class path holds.
    Path folder = dir.resolve("copy.jar-classes");
    Path services = folder.resolve(ProviderDeclarations.SERVICE_FILE);
    java.nio.file.Files.createDirectories(services.getParent());
    java.nio.file.Files.writeString(services, "dir" + name + ".P\n");
    try (URLClassLoader loader =
        new URLClassLoader(
            new URL[] {folder.toUri().toURL(), jar.toUri().toURL()},
            PluginRegistrationTest.class.getClassLoader())) {
      AlgorithmPluginException e =
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(loader));
      assertTrue(
          e.getMessage()
              .startsWith(
                  "the algorithm provider dir"
                      + name
                      + ".P is in both "
                      + folder.toRealPath()
                      + " and "
                      + jar.toRealPath()
                      + ": "),
          e.getMessage());
    }
  }

  /** A class loader whose service files cannot be read is refused saying so. */
  @Test
  void unreadableServiceFilesAreRefusedSayingSo() {
    ClassLoader unreadable =
        new ClassLoader(PluginRegistrationTest.class.getClassLoader()) {
          @Override
          public java.util.Enumeration<URL> getResources(String resource) throws IOException {
            throw new IOException("the disk is gone");
          }
        };
    AlgorithmPluginException e =
        assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(unreadable));
    assertEquals(
        "cannot read the algorithm plugins' "
            + ProviderDeclarations.SERVICE_FILE
            + ": the disk is gone",
        e.getMessage());
  }

  /**
   * A provider whose static initializer throws an exception whose causes form a cycle is still
   * reported (the search for the innermost cause stops, on one of the cycle's exceptions), naming
   * the jar.
   */
  @Test
  void aCyclicCauseChainIsStillReported() throws Exception {
    String name = freshName();
    Path jar =
        PluginJars.compile(
            dir,
            "cycle.jar",
            "c" + name + ".P",
            "package c"
                + name
                + ";\n"
                + "import dev.surgery.core.algorithms.*;\n"
                + "import java.util.List;\n"
                + "public final class P implements AlgorithmProvider {\n"
                + "  static {\n"
                + "    IllegalStateException a = new IllegalStateException(\"a\");\n"
                + "    RuntimeException b = new RuntimeException(\"b\", a);\n"
                + "    a.initCause(b);\n"
                + "    if (true) throw a;\n"
                + "  }\n"
                + "  public List<AlgorithmSpec> algorithms() { return List.of(); }\n"
                + "}\n");
    try (URLClassLoader loader = loaderOf(jar)) {
      // On a thread of its own, so that a search that never stops fails here instead of hanging.
      java.util.concurrent.ExecutorService probe =
          java.util.concurrent.Executors.newSingleThreadExecutor(
              r -> {
                Thread t = new Thread(r, "cyclic-cause-probe");
                t.setDaemon(true);
                return t;
              });
      String message;
      try {
        message =
            probe
                .submit(
                    () ->
                        assertThrows(
                            AlgorithmPluginException.class, () -> Algorithms.loadPlugins(loader)))
                .get(20, java.util.concurrent.TimeUnit.SECONDS)
                .getMessage();
      } finally {
        probe.shutdownNow();
      }
      assertTrue(
          message.contains("(listed in " + jar.toRealPath() + ")")
              && message.contains(", caused by java.lang."),
          message);
    }
  }
}
