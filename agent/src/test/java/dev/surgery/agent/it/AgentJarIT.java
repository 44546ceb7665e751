package dev.surgery.agent.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The packaged agent jar: manifest, relocation, and nothing of DJL or SLF4J inside. */
class AgentJarIT {

  private static final Pattern UNRELOCATED =
      Pattern.compile("(?<![./])(net/bytebuddy/|org/snakeyaml/engine/|com/google/gson/)");

  @Test
  void manifestDeclaresTheAgent() throws IOException {
    try (JarFile jar = new JarFile(ForkedJvm.agentJar().toFile())) {
      Attributes main = jar.getManifest().getMainAttributes();
      assertEquals("dev.surgery.agent.SurgeryAgent", main.getValue("Premain-Class"));
      assertEquals("dev.surgery.agent.SurgeryAgent", main.getValue("Agent-Class"));
      assertEquals("true", main.getValue("Can-Retransform-Classes"));
      assertEquals("true", main.getValue("Can-Redefine-Classes"));
      assertEquals(null, main.getValue("Boot-Class-Path"));
    }
  }

  @Test
  void bundlesOnlyRelocatedLibrariesAndTheSurgeryClasses() throws IOException {
    List<String> foreign = new ArrayList<>();
    List<String> unrelocatedReferences = new ArrayList<>();
    boolean byteBuddy = false;
    boolean yaml = false;
    boolean listener = false;
    boolean engine = false;
    List<String> visibleLibrary = new ArrayList<>();
    try (JarFile jar = new JarFile(ForkedJvm.agentJar().toFile())) {
      Enumeration<JarEntry> entries = jar.entries();
      while (entries.hasMoreElements()) {
        JarEntry e = entries.nextElement();
        String name = e.getName();
        if (!name.startsWith("dev/surgery/")
            && !name.startsWith("META-INF/")
            && !name.equals("dev/")) {
          foreign.add(name);
        }
        if (name.startsWith("META-INF/versions/")
            || name.endsWith("module-info.class")
            || name.endsWith(".SF")
            || name.endsWith(".RSA")
            || name.endsWith(".DSA")) {
          foreign.add(name);
        }
        byteBuddy |= name.startsWith("dev/surgery/shaded/bytebuddy/agent/builder/AgentBuilder");
        yaml |= name.startsWith("dev/surgery/shaded/snakeyaml/");
        listener |=
            name.equals("dev/surgery/agent-library/dev/surgery/trainer/SurgeryListener.classdata");
        engine |= name.equals("dev/surgery/agent-library/dev/surgery/core/ModuleSurgery.classdata");
        if (name.startsWith("dev/surgery/core/") || name.startsWith("dev/surgery/trainer/")) {
          // The library's classes where the system class path would offer them to the program.
          visibleLibrary.add(name);
        }
        if (name.startsWith("dev/surgery/")
            && (name.endsWith(".class") || name.endsWith(".classdata"))) {
          try (InputStream in = jar.getInputStream(e)) {
            String text = new String(in.readAllBytes(), StandardCharsets.ISO_8859_1);
            // A class reference is an internal name in the constant pool; a URL such as
            // github.com/google/gson/... is not (hence the look-behind).
            if (UNRELOCATED.matcher(text).find()) {
              unrelocatedReferences.add(name);
            }
          }
        }
      }
    }
    assertTrue(foreign.isEmpty(), "entries outside dev/surgery and META-INF: " + foreign);
    assertTrue(byteBuddy, "relocated ByteBuddy missing");
    assertTrue(yaml, "relocated snakeyaml-engine missing");
    assertTrue(listener, "trainer-integration classes missing");
    assertTrue(engine, "core classes missing");
    assertTrue(
        visibleLibrary.isEmpty(),
        "library classes a program's class loader would find: " + visibleLibrary);
    assertFalse(
        !unrelocatedReferences.isEmpty(),
        "classes that still reference unrelocated packages: " + unrelocatedReferences);
  }
}
