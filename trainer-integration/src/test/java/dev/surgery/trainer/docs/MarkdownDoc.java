package dev.surgery.trainer.docs;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Markdown file of {@code docs/} read for tests: its sections by heading, the keys of its tables
 * and its fenced code blocks. Fenced code is skipped when looking for headings and tables, so a
 * {@code #} comment in a YAML example is not a heading.
 */
public final class MarkdownDoc {

  private static final Pattern HEADING = Pattern.compile("^(#{1,6})\\s+(.*?)\\s*$");
  private static final Pattern TABLE_KEY = Pattern.compile("^\\|\\s*`([^`]+)`\\s*\\|");

  private final Path path;
  private final List<String> lines;

  private MarkdownDoc(Path path, List<String> lines) {
    this.path = path;
    this.lines = lines;
  }

  /**
   * Finds the repository root from the module directory a test runs in.
   *
   * @return the first directory upwards that holds {@code docs/} and {@code pom.xml}
   */
  public static Path repositoryRoot() {
    Path dir = Path.of("").toAbsolutePath();
    for (Path d = dir; d != null; d = d.getParent()) {
      if (Files.isDirectory(d.resolve("docs")) && Files.isRegularFile(d.resolve("pom.xml"))) {
        return d;
      }
    }
    throw new AssertionError("no repository root (a folder with docs/ and pom.xml) above " + dir);
  }

  /**
   * Reads a file of the repository.
   *
   * @param relative the path from the repository root, for example {@code docs/configuration.md}
   * @return the document
   * @throws IOException when it cannot be read
   */
  public static MarkdownDoc read(String relative) throws IOException {
    Path p = repositoryRoot().resolve(relative);
    return new MarkdownDoc(p, Files.readAllLines(p, StandardCharsets.UTF_8));
  }

  /**
   * Returns the file this document was read from.
   *
   * @return the path
   */
  public Path path() {
    return path;
  }

  /**
   * Returns the lines under a heading, up to the next heading of the same or a higher level.
   *
   * @param heading the heading text without the {@code #}s, for example {@code Top-level keys}
   * @return the section's lines
   * @throws AssertionError naming the file when the heading is not there
   */
  public List<String> section(String heading) {
    boolean fenced = false;
    int level = -1;
    List<String> out = new ArrayList<>();
    for (String line : lines) {
      if (line.strip().startsWith("```")) {
        fenced = !fenced;
      }
      Matcher m = fenced ? null : HEADING.matcher(line);
      if (m != null && m.matches()) {
        int l = m.group(1).length();
        if (level > 0 && l <= level) {
          return out;
        }
        if (level < 0 && m.group(2).equals(heading)) {
          level = l;
          continue;
        }
      }
      if (level > 0) {
        out.add(line);
      }
    }
    if (level < 0) {
      throw new AssertionError(path + " has no heading '" + heading + "'");
    }
    return out;
  }

  /**
   * Returns the headings of one level below a section, in order.
   *
   * @param section lines from {@link #section}
   * @param level the heading level, for example 3 for {@code ###}
   * @return the heading texts
   */
  public static List<String> headings(List<String> section, int level) {
    List<String> out = new ArrayList<>();
    boolean fenced = false;
    for (String line : section) {
      if (line.strip().startsWith("```")) {
        fenced = !fenced;
      }
      Matcher m = HEADING.matcher(line);
      if (!fenced && m.matches() && m.group(1).length() == level) {
        out.add(m.group(2));
      }
    }
    return out;
  }

  /**
   * Returns the keys of the tables in some lines: the first cell of each row when it is a single
   * code span ({@code | `min_channels` | ...}), stopping at the first heading.
   *
   * @param section lines from {@link #section}
   * @return the keys, in order
   */
  public static Set<String> tableKeys(List<String> section) {
    Set<String> keys = new LinkedHashSet<>();
    boolean fenced = false;
    for (String line : section) {
      if (line.strip().startsWith("```")) {
        fenced = !fenced;
        continue;
      }
      if (fenced) {
        continue;
      }
      if (HEADING.matcher(line).matches()) {
        break;
      }
      Matcher m = TABLE_KEY.matcher(line);
      if (m.find()) {
        keys.add(m.group(1));
      }
    }
    return keys;
  }

  /**
   * Returns the table row whose first cell is a key.
   *
   * @param section lines from {@link #section}
   * @param key the key
   * @return the row, or null
   */
  public static String row(List<String> section, String key) {
    for (String line : section) {
      if (line.startsWith("| `" + key + "` |")) {
        return line;
      }
    }
    return null;
  }

  /**
   * Returns the fenced code blocks of a language, each with the line it starts on.
   *
   * @param language the info string, for example {@code yaml} or {@code java}
   * @return the blocks
   */
  public List<Block> codeBlocks(String language) {
    List<Block> out = new ArrayList<>();
    StringBuilder current = null;
    int start = 0;
    boolean otherFence = false;
    for (int i = 0; i < lines.size(); i++) {
      String line = lines.get(i);
      String trimmed = line.strip();
      if (current == null && !otherFence && trimmed.startsWith("```")) {
        if (trimmed.substring(3).strip().equals(language)) {
          current = new StringBuilder();
          start = i + 2;
        } else {
          otherFence = true;
        }
      } else if (trimmed.startsWith("```")) {
        if (current != null) {
          out.add(new Block(path, start, current.toString()));
        }
        current = null;
        otherFence = false;
      } else if (current != null) {
        current.append(line).append('\n');
      }
    }
    return out;
  }

  /**
   * A fenced code block.
   *
   * @param file the Markdown file
   * @param line the line of its first code line (1-based)
   * @param text the code
   */
  public record Block(Path file, int line, String text) {
    /**
     * Names the block in assertion messages.
     *
     * @return for example {@code docs/configuration.md:12}
     */
    public String where() {
      return repositoryRoot().relativize(file) + ":" + line;
    }
  }
}
