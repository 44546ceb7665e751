package dev.surgery.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.JarFile;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The library jars as packaged by this build declare the module name users write in their {@code
 * module-info.java} ({@code requires dev.surgery.core;}); the name must not change between
 * releases.
 */
class LibraryManifestIT {

  @ParameterizedTest
  @CsvSource({
    "surgery.core.jar, dev.surgery.core",
    "surgery.trainer.jar, dev.surgery.trainer",
    "surgery.agent.jar, dev.surgery.agent"
  })
  void declaresAutomaticModuleName(String jarProperty, String moduleName) throws IOException {
    String location = System.getProperty(jarProperty);
    assertTrue(location != null, "system property " + jarProperty + " not set");
    Path jar = Path.of(location);
    assertTrue(Files.isRegularFile(jar), "not packaged by this build: " + jar);
    try (JarFile file = new JarFile(jar.toFile())) {
      assertEquals(
          moduleName,
          file.getManifest().getMainAttributes().getValue("Automatic-Module-Name"),
          jar.toString());
    }
  }
}
