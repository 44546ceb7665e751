package dev.surgery.agent.hookloader;

import dev.surgery.core.algorithms.AlgorithmProvider;
import dev.surgery.testplugin.RecordingAlgorithm;
import dev.surgery.testplugin.TestPluginProvider;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;

/** Plugin jars for the {@code extensions} of in-process tests, packed from the test classes. */
public final class PluginJar {

  private PluginJar() {}

  /**
   * Writes a jar holding a services file for one provider and the given classes.
   *
   * @param jar the jar to write
   * @param provider the provider its services file names
   * @param classes the classes it holds
   * @return the jar
   * @throws IOException if it cannot be written
   */
  public static Path of(Path jar, Class<?> provider, Class<?>... classes) throws IOException {
    try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar))) {
      for (Class<?> c : classes) {
        String entry = c.getName().replace('.', '/') + ".class";
        out.putNextEntry(new JarEntry(entry));
        try (InputStream in = c.getClassLoader().getResourceAsStream(entry)) {
          in.transferTo(out);
        }
        out.closeEntry();
      }
      out.putNextEntry(new JarEntry("META-INF/services/" + AlgorithmProvider.class.getName()));
      out.write((provider.getName() + "\n").getBytes(StandardCharsets.UTF_8));
      out.closeEntry();
    }
    return jar;
  }

  /**
   * Writes {@code dir/plugin.jar}: the test plugin's provider and its recording algorithm, which
   * writes each event it is asked about to the file named by {@code surgery.test.record}.
   *
   * @param dir the folder
   * @return the jar
   * @throws IOException if it cannot be written
   */
  public static Path recording(Path dir) throws IOException {
    return of(
        dir.resolve("plugin.jar"),
        TestPluginProvider.class,
        TestPluginProvider.class,
        RecordingAlgorithm.class);
  }
}
