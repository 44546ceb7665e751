package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.Trainer;
import dev.surgery.core.algorithms.AlgorithmPluginException;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.testing.PluginJars;
import dev.surgery.trainer.config.SurgeryConfig;
import dev.surgery.trainer.config.SurgeryConfigException;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Algorithms from plugin jars: compiled here into real jars, loaded through their own class loader
 * ({@link java.util.ServiceLoader}), named in YAML like the built-ins.
 */
class PluginJarTest {

  @TempDir Path dir;

  /** A plugin whose algorithm appends the step to a system property every {@code every_n} steps. */
  private static String source(String pkg, String provider, String name) {
    return "package "
        + pkg
        + ";\n"
        + "import dev.surgery.core.algorithms.*;\n"
        + "import dev.surgery.core.events.*;\n"
        + "import java.util.*;\n"
        + "public final class "
        + provider
        + " implements AlgorithmProvider {\n"
        + "  static final HyperParameter<Integer> N =\n"
        + "      HyperParameter.ofInt(\"every_n\", 2, 1, 100, \"steps between marks\");\n"
        + "  public List<AlgorithmSpec> algorithms() {\n"
        + "    return List.of(AlgorithmSpec.of(\""
        + name
        + "\", List.of(N), v -> new Mark(v.get(N))));\n"
        + "  }\n"
        + "  static final class Mark implements Algorithm {\n"
        + "    final int n;\n"
        + "    Mark(int n) { this.n = n; }\n"
        + "    public String name() { return \""
        + name
        + "\"; }\n"
        + "    public Map<String, Object> hyperparameters() { return Map.of(\"every_n\", n); }\n"
        + "    public Set<Event> events() { return EnumSet.of(Event.BATCH_END); }\n"
        + "    public boolean match(Event e, State s) { return s.globalSteps() % n == 0; }\n"
        + "    public SurgeryChanges apply(Event e, State s) {\n"
        + "      String key = \""
        + name
        + ".marks\";\n"
        + "      System.setProperty(key, System.getProperty(key, \"\") + s.globalSteps() + \";\");\n"
        + "      return null;\n"
        + "    }\n"
        + "    public SurgeryChanges apply(SurgeryContext c) { throw new UnsupportedOperationException(); }\n"
        + "  }\n"
        + "}\n";
  }

  /** Compiles one plugin and packs it, with its service file, into {@code dir/jarName}. */
  private Path pluginJar(String jarName, String pkg, String provider, String name)
      throws IOException {
    return PluginJars.compile(dir, jarName, pkg + "." + provider, source(pkg, provider, name));
  }

  private static URLClassLoader loader(Path... jars) throws IOException {
    URL[] urls = new URL[jars.length];
    for (int i = 0; i < jars.length; i++) {
      urls[i] = jars[i].toUri().toURL();
    }
    return new URLClassLoader(urls, PluginJarTest.class.getClassLoader());
  }

  @Test
  void aPluginJarRunsFromYamlWithItsHyperparametersCheckedLikeBuiltins() throws Exception {
    Path jar = pluginJar("marks.jar", "p1", "MarksProvider", "t_jar_marks");
    try (URLClassLoader loader = loader(jar)) {
      List<AlgorithmSpec> added = Algorithms.loadPlugins(loader);
      assertEquals(List.of("t_jar_marks"), added.stream().map(AlgorithmSpec::name).toList());
      assertTrue(Algorithms.origin("t_jar_marks").endsWith("marks.jar"));
      assertEquals(List.of(), Algorithms.loadPlugins(loader), "a second load adds nothing");

      SurgeryConfigException bad =
          assertThrows(
              SurgeryConfigException.class,
              () ->
                  SurgeryConfig.parse(
                      "algorithms:\n  - name: t_jar_marks\n    every_n: 0\n", "plug.yaml"));
      assertTrue(
          bad.getMessage().contains("plug.yaml:3:14: t_jar_marks: every_n must be in [1, 100]"),
          bad.getMessage());

      SurgeryListener listener =
          SurgeryListener.fromConfig(
              SurgeryConfig.parse(
                  "algorithms:\n  - name: t_jar_marks\n    every_n: 3\n", "plug.yaml"),
              SurgeryTrain.EVENTS);
      System.clearProperty("t_jar_marks.marks");
      try (Model model = TestModels.model("plugin");
          NDManager manager = NDManager.newBaseManager();
          Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(TestModels.INPUT);
        SurgeryTrain.fit(trainer, 2, TestModels.dataset(manager, 1), null);
      }
      assertEquals("3;6;", System.getProperty("t_jar_marks.marks"));
    }
  }

  @Test
  void twoAlgorithmsWithOneNameAreAnErrorNamingBothJars() throws Exception {
    Path first = pluginJar("first.jar", "p2", "FirstProvider", "t_jar_dup");
    Path second = pluginJar("second.jar", "p3", "SecondProvider", "t_jar_dup");
    try (URLClassLoader loader = loader(first, second)) {
      AlgorithmPluginException e =
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(loader));
      assertTrue(
          e.getMessage().contains("two algorithms are named 't_jar_dup'")
              && e.getMessage().contains(first.toString())
              && e.getMessage().contains(second.toString()),
          e.getMessage());
      assertTrue(Algorithms.find("t_jar_dup").isEmpty(), "nothing of the loader is registered");
    }
    Path clash = pluginJar("clash.jar", "p4", "ClashProvider", "blurpool");
    try (URLClassLoader loader = loader(clash)) {
      AlgorithmPluginException e =
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(loader));
      assertTrue(
          e.getMessage().contains("built-in") && e.getMessage().contains(clash.toString()),
          e.getMessage());
      // No jar of the user's to remove on the built-in's side: the advice is to rename.
      assertTrue(
          e.getMessage().endsWith("a built-in's name is taken: rename the plugin's algorithm"),
          e.getMessage());
    }
  }

  /**
   * Two copies (or two versions) of one plugin jar on one class path: the loader defines the
   * provider class once, so one of them would be ignored without a word; refused, naming both.
   */
  @Test
  void twoCopiesOfOnePluginJarAreAnErrorNamingBoth() throws Exception {
    Path jar = pluginJar("copied.jar", "p5", "CopiedProvider", "t_jar_copied");
    Path copy = dir.resolve("copied-again.jar");
    Files.copy(jar, copy);
    try (URLClassLoader loader = loader(jar, copy)) {
      AlgorithmPluginException e =
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(loader));
      assertTrue(
          e.getMessage().contains("p5.CopiedProvider is in both")
              && e.getMessage().contains(jar.toRealPath().toString())
              && e.getMessage().contains(copy.toRealPath().toString()),
          e.getMessage());
      assertTrue(Algorithms.find("t_jar_copied").isEmpty(), "nothing of the loader is registered");
    }
    // One jar under two spellings (a ./ in its path, a symbolic link to it) is one jar.
    Path spelled = dir.resolve(".").resolve("copied.jar");
    Path link = Files.createSymbolicLink(dir.resolve("link.jar"), jar);
    try (URLClassLoader loader = loader(jar, spelled, link)) {
      assertEquals(
          List.of("t_jar_copied"),
          Algorithms.loadPlugins(loader).stream().map(AlgorithmSpec::name).toList());
    }
  }

  /** A provider whose constructor throws: listed by a service file of the test's own. */
  public static final class ThrowingProvider
      implements dev.surgery.core.algorithms.AlgorithmProvider {
    /** Throws, as a broken plugin's constructor may. */
    public ThrowingProvider() {
      throw new IllegalStateException("boom in the provider's constructor");
    }

    @Override
    public List<AlgorithmSpec> algorithms() {
      return List.of();
    }
  }

  @Test
  void aProviderThatCannotBeLoadedIsNamedWithItsJarAndItsCause() throws Exception {
    // With several extension jars, ServiceLoader's own message names neither the jar nor what the
    // constructor threw.
    Path services = dir.resolve("broken/META-INF/services");
    Files.createDirectories(services);
    Files.writeString(
        services.resolve(dev.surgery.core.algorithms.AlgorithmProvider.class.getName()),
        "# a broken plugin\n" + ThrowingProvider.class.getName() + "\n",
        StandardCharsets.UTF_8);
    try (URLClassLoader loader =
        new URLClassLoader(
            new URL[] {dir.resolve("broken").toUri().toURL()}, getClass().getClassLoader())) {
      AlgorithmPluginException e =
          assertThrows(AlgorithmPluginException.class, () -> Algorithms.loadPlugins(loader));
      assertTrue(
          e.getMessage().contains(ThrowingProvider.class.getName() + " could not be instantiated")
              && e.getMessage().contains("(listed in " + dir.resolve("broken").toRealPath())
              && e.getMessage().contains("boom in the provider's constructor"),
          e.getMessage());
    }
  }
}
