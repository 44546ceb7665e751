package dev.surgery.core.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.nn.Block;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.ProviderDeclarations;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

/**
 * Builds algorithm plugin jars at test time, as a user's build would: one provider class compiled
 * against this build's library and DJL, packed with its {@code META-INF/services} declaration.
 */
public final class PluginJars {

  private PluginJars() {}

  /**
   * Compiles a provider's source and packs it with its service file into {@code dir/jarName}.
   *
   * @param dir the folder to work in
   * @param jarName the jar's file name
   * @param provider the provider's fully qualified class name
   * @param source the provider's Java source
   * @return the jar
   * @throws IOException if a file cannot be written
   */
  public static Path compile(Path dir, String jarName, String provider, String source)
      throws IOException {
    Path src = dir.resolve(jarName + "-src/" + provider.replace('.', '/') + ".java");
    Path classes = dir.resolve(jarName + "-classes");
    Files.createDirectories(src.getParent());
    Files.createDirectories(classes);
    Files.writeString(src, source);
    String classPath =
        String.join(java.io.File.pathSeparator, location(Algorithm.class), location(Block.class));
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    int rc =
        javac.run(
            null, null, null, "-classpath", classPath, "-d", classes.toString(), src.toString());
    assertEquals(0, rc, "the plugin source compiles");
    Path jar = dir.resolve(jarName);
    try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar));
        Stream<Path> files = Files.walk(classes)) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        out.putNextEntry(new JarEntry(classes.relativize(f).toString().replace('\\', '/')));
        Files.copy(f, out);
        out.closeEntry();
      }
      out.putNextEntry(new JarEntry(ProviderDeclarations.SERVICE_FILE));
      OutputStream o = out;
      o.write((provider + "\n").getBytes(StandardCharsets.UTF_8));
      out.closeEntry();
    }
    return jar;
  }

  private static String location(Class<?> type) {
    try {
      return Path.of(type.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
    } catch (java.net.URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * Compiles a provider class {@code pkg.P} with the given members and packs it with its service
   * file.
   *
   * @param dir where the jar is written
   * @param jarName the jar's file name
   * @param pkg the provider's package
   * @param members the class body: at least its {@code algorithms()} method
   * @return the jar
   * @throws IOException if the jar cannot be written
   */
  public static Path provider(Path dir, String jarName, String pkg, String members)
      throws IOException {
    return compile(
        dir,
        jarName,
        pkg + ".P",
        "package "
            + pkg
            + ";\n"
            + "import dev.surgery.core.algorithms.*;\n"
            + "import java.util.List;\n"
            + "public final class P implements AlgorithmProvider {\n"
            + members
            + "}\n");
  }
}
