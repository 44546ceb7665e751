package dev.surgery.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The file checks premain makes before parsing, each naming the path as the user gave it. */
class SurgeryAgentTest {

  @TempDir Path dir;

  @Test
  void readableFileHasNoProblem() throws Exception {
    Path file = Files.writeString(dir.resolve("ok.yaml"), "algorithms: []\n");
    assertEquals(List.of(), SurgeryAgent.checkFile(file.toString()));
  }

  @Test
  void extensionJarsMustExistAndBeJars() throws Exception {
    String missing = dir.resolve("missing.jar").toString();
    List<String> problems = SurgeryAgent.checkExtension(missing);
    assertEquals(1, problems.size());
    assertTrue(
        problems.get(0).startsWith(missing + ":0:0: extensions: plugin jar not found"),
        problems.get(0));
    Path notAJar = Files.writeString(dir.resolve("plugin.jar"), "not a zip");
    problems = SurgeryAgent.checkExtension(notAJar.toString());
    assertEquals(1, problems.size());
    assertTrue(
        problems.get(0).startsWith(notAJar + ":0:0: extensions: cannot be read as a jar"),
        problems.get(0));
    assertEquals(
        List.of(dir + ":0:0: extensions: is not a regular file, expected a plugin jar"),
        SurgeryAgent.checkExtension(dir.toString()));
    Path jar = dir.resolve("ok.jar");
    try (java.util.jar.JarOutputStream out =
        new java.util.jar.JarOutputStream(Files.newOutputStream(jar))) {
      out.putNextEntry(new java.util.zip.ZipEntry("META-INF/services/x"));
      out.closeEntry();
    }
    assertEquals(List.of(), SurgeryAgent.checkExtension(jar.toString()));
  }

  @Test
  void theKillSwitchIsReadBesideAMalformedSettingInEveryKeySpelling() {
    for (String disabled :
        List.of(
            "enabled=false;bogus=1",
            "surgery.enabled=false;debugg=true",
            " Surgery.Enabled = FALSE ;debugg=true",
            "debugg=true;SURGERY.ENABLED=false",
            "config=run.yaml;enabled=false")) {
      assertTrue(SurgeryAgent.saysDisabled(disabled), disabled);
    }
    for (String notDisabled :
        List.of(
            "enabled=falsey;bogus=1",
            "notenabled=false",
            "xsurgery.enabled=false",
            "surgery.enabledx=false",
            "surgery..enabled=false",
            "enabled=true;bogus=1")) {
      assertFalse(SurgeryAgent.saysDisabled(notDisabled), notDisabled);
    }
  }

  /**
   * Before it refuses, the installing agent looks ahead for a kill switch: a later {@code
   * -javaagent} of this agent (a jar whose manifest names it as {@code Premain-Class}, a copy too)
   * with {@code enabled=false}, also beside a malformed setting, as that agent's own premain reads
   * it. An earlier one, another agent's, or one that is not disabled does not count.
   */
  @Test
  void aLaterKillSwitchOfThisAgentIsFoundAmongTheJvmsArguments() throws Exception {
    String agent = "-javaagent:" + agentJar("surgery-agent.jar", SurgeryAgent.class.getName());
    String copy = "-javaagent:" + agentJar("copy.jar", SurgeryAgent.class.getName());
    String other = "-javaagent:" + agentJar("other.jar", "other.Agent");
    String own = "missing.yaml";
    String first = agent + "=" + own;
    assertTrue(laterKillSwitch(own, "-Xmx1g", first, copy + "=enabled=false"));
    assertTrue(laterKillSwitch(own, first, agent + "=Surgery.Enabled=false;bogus=1"));
    assertTrue(laterKillSwitch(null, agent, agent + "=enabled=false"), "own without an argument");
    assertFalse(laterKillSwitch(own, agent + "=enabled=false", first), "earlier");
    assertFalse(laterKillSwitch(own, first, other + "=enabled=false"), "another agent's");
    assertFalse(
        laterKillSwitch(own, first, "-javaagent:" + dir.resolve("none.jar") + "=enabled=false"),
        "no jar there");
    assertFalse(laterKillSwitch(own, first, agent + "=config=x.yaml;bogus=1"), "malformed");
    assertFalse(laterKillSwitch(own, first, agent + "=enabled=true", "-Dsurgery.enabled=false"));
  }

  private static boolean laterKillSwitch(String own, String... arguments) {
    return SurgeryAgent.laterKillSwitch(own, List.of(arguments));
  }

  /** A jar whose manifest names {@code premainClass}: all a -javaagent jar is asked here. */
  private Path agentJar(String name, String premainClass) throws IOException {
    java.util.jar.Manifest manifest = new java.util.jar.Manifest();
    manifest.getMainAttributes().put(java.util.jar.Attributes.Name.MANIFEST_VERSION, "1.0");
    manifest.getMainAttributes().putValue("Premain-Class", premainClass);
    Path jar = dir.resolve(name);
    try (java.util.jar.JarOutputStream out =
        new java.util.jar.JarOutputStream(Files.newOutputStream(jar), manifest)) {
      out.putNextEntry(new java.util.zip.ZipEntry("x"));
      out.closeEntry();
    }
    return jar;
  }

  /** A path the file system cannot name (a NUL on Linux; '?' or '<' on Windows) says why. */
  @Test
  void aPathTheFileSystemRejectsIsNamedWithTheReason() {
    String given = "run\u0000.yaml";
    List<String> problems = SurgeryAgent.checkFile(given);
    assertEquals(1, problems.size(), problems.toString());
    assertTrue(
        problems.get(0).startsWith(given + ":0:0: not a valid file path: "), problems.get(0));
  }

  @Test
  void missingFile() {
    String given = dir.resolve("missing.yaml").toString();
    List<String> problems = SurgeryAgent.checkFile(given);
    assertEquals(1, problems.size());
    assertTrue(problems.get(0).startsWith(given + ":0:0: config file not found"), problems.get(0));
  }

  @Test
  void directory() {
    assertEquals(
        List.of(dir + ":0:0: is a directory, expected a YAML config file"),
        SurgeryAgent.checkFile(dir.toString()));
  }

  /** A character device exists and is no directory, but it is no config file either. */
  @Test
  void aDeviceIsNotARegularFile() {
    Path device = Path.of("/dev/null");
    org.junit.jupiter.api.Assumptions.assumeTrue(Files.exists(device), "a system with /dev/null");
    assertEquals(
        List.of(device + ":0:0: is not a regular file"), SurgeryAgent.checkFile(device.toString()));
  }

  @Test
  void aChainOfLinksNamesTheMissingFileAtItsEnd() throws Exception {
    Path sub = Files.createDirectories(dir.resolve("sub"));
    Path last = Files.createSymbolicLink(sub.resolve("last.yaml"), Path.of("gone.yaml"));
    Path first = Files.createSymbolicLink(dir.resolve("first.yaml"), dir.relativize(last));
    assertEquals(
        List.of(
            first
                + ":0:0: the config file is a symbolic link to a missing file: "
                + sub.resolve("gone.yaml").toAbsolutePath().normalize()
                + " does not exist"),
        SurgeryAgent.checkFile(first.toString()));
  }

  @Test
  void brokenAndLoopingSymbolicLinks() throws Exception {
    Path broken = Files.createSymbolicLink(dir.resolve("broken.yaml"), dir.resolve("nowhere"));
    Path a = dir.resolve("a.yaml");
    Path b = dir.resolve("b.yaml");
    Files.createSymbolicLink(a, b);
    Files.createSymbolicLink(b, a);
    assertEquals(
        List.of(
            broken
                + ":0:0: the config file is a symbolic link to a missing file: "
                + dir.resolve("nowhere").toAbsolutePath().normalize()
                + " does not exist"),
        SurgeryAgent.checkFile(broken.toString()));
    assertEquals(
        List.of(a + ":0:0: the config file is a looping chain of symbolic links"),
        SurgeryAgent.checkFile(a.toString()));
  }

  /**
   * Mode 000 is reported as permission denied. CI runs as root, which may read mode-000 files, so
   * the check asks a predicate that answers as the kernel answers a non-root owner.
   */
  @Test
  void unreadableFile() throws Exception {
    Path file = Files.writeString(dir.resolve("secret.yaml"), "algorithms: []\n");
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("---------"));
    assertEquals(
        List.of(file + ":0:0: the config file cannot be read (permission denied)"),
        SurgeryAgent.checkFile(file.toString(), SurgeryAgentTest::ownerMayRead));
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("r--------"));
    assertEquals(
        List.of(), SurgeryAgent.checkFile(file.toString(), SurgeryAgentTest::ownerMayRead));
  }

  private static boolean ownerMayRead(Path file) {
    try {
      return Files.getPosixFilePermissions(file).contains(PosixFilePermission.OWNER_READ);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
