package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.trainer.SurgeryListener;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Problems with the file itself: they have no position inside it and are reported at line 0, column
 * 0, naming the path as given; problems in its bytes point at the first bad one.
 */
class SurgeryConfigFileTest {

  @TempDir Path dir;

  @BeforeAll
  static void register() throws Exception {
    Class.forName(SurgeryConfigTest.class.getName()); // registers c_plain and c_typed
  }

  static ConfigProblem onlyProblem(Path file) {
    SurgeryConfigException e =
        assertThrows(SurgeryConfigException.class, () -> SurgeryListener.fromYaml(file));
    assertEquals(1, e.getProblems().size(), e.getMessage());
    ConfigProblem p = e.getProblems().get(0);
    assertEquals(file.toString(), p.file());
    return p;
  }

  @Test
  void missingFile() {
    Path file = dir.resolve("absent.yaml");
    ConfigProblem p = onlyProblem(file);
    assertEquals(0, p.line());
    assertEquals(0, p.column());
    assertTrue(p.message().contains("file not found"), p.message());
    assertTrue(p.message().contains(file.toAbsolutePath().toString()), p.message());
    assertEquals(file + ":0:0: " + p.message(), p.toString());
  }

  @Test
  void directory() {
    ConfigProblem p = onlyProblem(dir);
    assertEquals("is a directory, not a YAML file", p.message());
    assertEquals(0, p.line());
  }

  @Test
  void symbolicLinkLoop() throws Exception {
    Path a = dir.resolve("a.yaml");
    Path b = dir.resolve("b.yaml");
    Files.createSymbolicLink(a, b);
    Files.createSymbolicLink(b, a);
    ConfigProblem p = onlyProblem(a);
    assertTrue(p.message().contains("symbolic link loop"), p.message());
    assertEquals(0, p.line());
  }

  @Test
  void danglingSymbolicLink() throws Exception {
    Path link = dir.resolve("link.yaml");
    Files.createSymbolicLink(link, dir.resolve("gone.yaml"));
    ConfigProblem p = onlyProblem(link);
    assertTrue(p.message().contains("symbolic link to a missing file"), p.message());
    // The message names what is missing, not the link the user gave.
    assertTrue(
        p.message().contains(dir.resolve("gone.yaml").toAbsolutePath() + " does not exist"),
        p.message());
  }

  @Test
  void danglingRelativeSymbolicLinkNamesItsTargetFromTheLinksFolder() throws Exception {
    Path sub = Files.createDirectories(dir.resolve("sub"));
    Path hop = sub.resolve("hop.yaml");
    Files.createSymbolicLink(hop, Path.of("../missing/gone.yaml"));
    Path link = dir.resolve("link.yaml");
    Files.createSymbolicLink(link, Path.of("sub/hop.yaml"));
    ConfigProblem p = onlyProblem(link);
    assertEquals(0, p.line());
    assertTrue(
        p.message()
            .endsWith(
                "symbolic link to a missing file: "
                    + dir.resolve("missing/gone.yaml").toAbsolutePath().normalize()
                    + " does not exist"),
        p.message());
  }

  /**
   * Mode 000 is refused with the exception {@link Files#readAllBytes} throws on EACCES. The tests
   * run as root in CI, and root reads mode-000 files, so the file is read through a reader that
   * answers as the kernel answers a non-root owner; everything else is the real path.
   */
  @Test
  void unreadableFile() throws Exception {
    Path file = dir.resolve("secret.yaml");
    Files.writeString(file, "algorithms: []\n");
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("---------"));
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () -> SurgeryConfig.load(file, SurgeryConfigFileTest::readAsOwner));
    assertEquals(1, e.getProblems().size(), e.getMessage());
    ConfigProblem p = e.getProblems().get(0);
    assertEquals(file + ":0:0: cannot be read: permission denied", p.toString());

    // The same reader lets the owner read once the owner-read bit is set.
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("r--------"));
    assertEquals(
        0, SurgeryConfig.load(file, SurgeryConfigFileTest::readAsOwner).getAlgorithms().size());
  }

  private static byte[] readAsOwner(Path file) throws IOException {
    if (!Files.getPosixFilePermissions(file).contains(PosixFilePermission.OWNER_READ)) {
      throw new AccessDeniedException(file.toString());
    }
    return Files.readAllBytes(file);
  }

  @Test
  void notARegularFile() {
    Path device = Path.of("/dev/null");
    assertTrue(Files.exists(device), "needs /dev/null");
    ConfigProblem p = onlyProblem(device);
    assertTrue(p.message().contains("not a regular file"), p.message());
  }

  @Test
  void binaryGarbageIsReportedAtTheFirstBadByte() throws Exception {
    Path file = dir.resolve("garbage.yaml");
    byte[] head = "algorithms:\n  - name: ".getBytes(StandardCharsets.US_ASCII);
    byte[] bytes = new byte[head.length + 3];
    System.arraycopy(head, 0, bytes, 0, head.length);
    bytes[head.length] = (byte) 0xC3; // a UTF-8 lead byte ...
    bytes[head.length + 1] = (byte) 0x28; // ... followed by a byte that cannot continue it
    bytes[head.length + 2] = (byte) 0xFF;
    Files.write(file, bytes);
    ConfigProblem p = onlyProblem(file);
    assertEquals(2, p.line());
    assertEquals(11, p.column());
    assertTrue(p.message().startsWith("binary data: byte 0xC3 at offset 22"), p.message());
  }

  @Test
  void randomBytesNeverEscapeAsAnotherException() throws Exception {
    java.util.Random random = new java.util.Random(42);
    for (int i = 0; i < 200; i++) {
      byte[] bytes = new byte[1 + random.nextInt(64)];
      random.nextBytes(bytes);
      Path file = dir.resolve("random-" + i + ".yaml");
      Files.write(file, bytes);
      try {
        SurgeryConfig.load(file);
      } catch (SurgeryConfigException e) {
        assertTrue(!e.getProblems().isEmpty());
      }
    }
  }

  @Test
  void tooLargeFile() throws Exception {
    Path file = dir.resolve("huge.yaml");
    Files.write(file, new byte[SurgeryConfig.MAX_FILE_BYTES + 1]);
    ConfigProblem p = onlyProblem(file);
    assertTrue(p.message().contains("at most 1,048,576 bytes"), p.message());
  }

  @Test
  void emptyFile() throws Exception {
    Path file = dir.resolve("empty.yaml");
    Files.writeString(file, "");
    ConfigProblem p = onlyProblem(file);
    assertEquals(1, p.line());
    assertEquals(1, p.column());
    assertTrue(p.message().contains("the file is empty"), p.message());
  }

  @Test
  void aValidFileBuildsAListener() throws Exception {
    Path file = dir.resolve("ok.yaml");
    Files.writeString(
        file,
        "algorithms:\n  - name: c_plain\n    epoch: 2\non_error: skip\nreport: r.json\n",
        StandardCharsets.UTF_8);
    SurgeryListener listener = SurgeryListener.fromYaml(file);
    assertEquals(1, listener.getSchedule().size());
    assertEquals(file + ":2:5", listener.getSchedule().get(0).source());
    assertEquals(OnError.SKIP, listener.getOnError());
    assertEquals(Path.of("r.json"), listener.getReportPath().orElseThrow());
  }
}
