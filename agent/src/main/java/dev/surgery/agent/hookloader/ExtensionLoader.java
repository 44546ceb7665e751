package dev.surgery.agent.hookloader;

import dev.surgery.agent.shared.ChildFirstLoader;
import dev.surgery.core.algorithms.ProviderDeclarations;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * The class loader of the plugin jars given with {@code extensions}, one per DJL class loader. Its
 * parent is the agent's {@code HookLoader}, so a plugin links against the agent's copy of the
 * surgery library (whose registry YAML reads) and the application's DJL. A plugin's own classes are
 * taken from its jar first, even when the application's class path has a copy: a copy defined by
 * the application's loader would implement the application's {@code AlgorithmProvider}, not the
 * agent's. What the host provides (the JDK, DJL, SLF4J, the surgery library) always comes from the
 * parent, never from a jar that bundles it.
 */
final class ExtensionLoader extends ChildFirstLoader {

  static {
    ClassLoader.registerAsParallelCapable();
  }

  private static final List<String> FROM_PARENT =
      List.of(
          "java.",
          "javax.",
          "jdk.",
          "sun.",
          "com.sun.",
          "org.w3c.",
          "org.xml.",
          "org.ietf.",
          "ai.djl.",
          "org.slf4j.",
          "dev.surgery.core.",
          "dev.surgery.trainer.",
          "dev.surgery.agent.",
          "dev.surgery.shaded.");

  ExtensionLoader(List<Path> jars, ClassLoader parent) {
    super("surgery-extensions", urls(jars), parent);
  }

  /**
   * Finds a provider class that two extension jars both declare: one class loader defines a class
   * name once, so the second jar's version (another default, another behaviour) would be ignored
   * without a word.
   *
   * @param jars the extension jars, in the order given
   * @return a message naming the class and both jars, or null when every provider is in one jar
   */
  static String duplicateProvider(List<Path> jars) {
    ProviderDeclarations declarations = new ProviderDeclarations();
    for (Path given : jars) {
      Path jar = canonical(given); // one jar under two spellings is one jar
      try (JarFile file = new JarFile(jar.toFile())) {
        JarEntry services = file.getJarEntry(ProviderDeclarations.SERVICE_FILE);
        if (services == null) {
          continue;
        }
        String text;
        try (InputStream in = file.getInputStream(services)) {
          text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        Optional<ProviderDeclarations.Conflict> conflict = declarations.add(jar.toString(), text);
        if (conflict.isPresent()) {
          return conflict
              .get()
              .message(
                  "the provider class",
                  "one class loader defines it once, so one jar would be ignored; give each its"
                      + " own class name, or give one jar");
        }
      } catch (IOException e) {
        return "cannot read " + jar + ": " + e.getMessage();
      }
    }
    return null;
  }

  private static Path canonical(Path jar) {
    try {
      return jar.toRealPath();
    } catch (IOException e) {
      return jar.toAbsolutePath().normalize();
    }
  }

  private static URL[] urls(List<Path> jars) {
    URL[] urls = new URL[jars.size()];
    for (int i = 0; i < urls.length; i++) {
      try {
        urls[i] = jars.get(i).toUri().toURL();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return urls;
  }

  /**
   * The JDK, DJL, logging and the surgery library from the parent; a plugin's own classes first.
   */
  @Override
  protected Class<?> delegate(String name, boolean resolve) throws ClassNotFoundException {
    for (String prefix : FROM_PARENT) {
      if (name.startsWith(prefix)) {
        return parentFirst(name, resolve);
      }
    }
    return null;
  }
}
