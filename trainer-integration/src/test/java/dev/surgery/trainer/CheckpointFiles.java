package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/** Damaged copies of a parameter file, for the tests of loads that must fail cleanly. */
final class CheckpointFiles {

  private CheckpointFiles() {}

  /**
   * Copies a parameter file into a folder of its own with its last bytes cut off.
   *
   * @param file the file
   * @param folder where the copy goes (created), under the same file name
   * @param cut how many bytes to leave out at the end
   * @return the copy's folder
   */
  static Path truncated(Path file, Path folder, int cut) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    Files.createDirectories(folder);
    Files.write(folder.resolve(file.getFileName()), Arrays.copyOf(bytes, bytes.length - cut));
    return folder;
  }

  /**
   * Copies a parameter file into a folder of its own with one text of its header replaced by
   * another of the same length (DJL's header strings are length-prefixed).
   *
   * @param file the file
   * @param folder where the copy goes (created), under the same file name
   * @param from the text as saved, which must be there
   * @param to its replacement, as long
   * @return the copy's folder
   */
  static Path edited(Path file, Path folder, String from, String to) throws IOException {
    // ISO-8859-1 maps every byte to one char and back: the binary rest is kept as it was.
    String text = new String(Files.readAllBytes(file), StandardCharsets.ISO_8859_1);
    assertTrue(text.contains(from), "the file as saved holds " + from);
    assertTrue(from.length() == to.length(), "an edit of the same length");
    Files.createDirectories(folder);
    Files.write(
        folder.resolve(file.getFileName()),
        text.replace(from, to).getBytes(StandardCharsets.ISO_8859_1));
    return folder;
  }
}
