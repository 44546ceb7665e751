package dev.surgery.trainer.config;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The config's {@code report} path, checked before training as the surgery log's writer will use it
 * after training: resolved as the writer resolves it, never the config file itself, never a
 * directory, with names a file system takes and a directory where files can be created.
 */
final class ReportPath {

  private ReportPath() {}

  /**
   * Tells why the report could not be written after training, or null when it can: the report is
   * written only once surgery ran, so a path that cannot take it would lose it after the whole run
   * (and one that names the config would overwrite the config).
   *
   * @param text the path as the config wrote it
   * @param report the path
   * @param source the config file, or null when it was read from text
   */
  static String problem(String text, Path report, Path source) {
    String last = report.getFileName() == null ? "" : report.getFileName().toString();
    if (text.endsWith("/")
        || text.endsWith(File.separator)
        || last.equals(".")
        || last.equals("..")) {
      // Path.of drops the slash: the report would be a file of that name, not one in that folder.
      String folder = text.endsWith("/") || text.endsWith(File.separator) ? text : text + "/";
      return "report names a directory ('"
          + text
          + "' ends with "
          + (last.equals(".") || last.equals("..") ? "'" + last + "'" : "a slash")
          + "); name a file in it, such as "
          + folder
          + "surgery-log.json";
    }
    Path target;
    try {
      target = resolvedTarget(report);
    } catch (IOException e) {
      return "report cannot be written to " + report + ": " + e.getMessage();
    }
    if (target == null) {
      return "report cannot be written to "
          + report
          + ": it goes up ('..') from a directory that does not exist";
    }
    if (source != null && sameFile(target, resolvedOrAbsolute(source))) {
      return "report names the config file itself, which the JSON report would overwrite; name"
          + " another file, such as surgery-log.json";
    }
    if (Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
      return "report names the directory "
          + target
          + "; name a file in it, such as "
          + target.resolve("surgery-log.json");
    }
    // An existing read-only file is no obstacle: the report is written beside it and moved over it.
    // The writer creates missing directories: the nearest existing one must take new entries.
    Path dir = target.getParent();
    List<String> newNames = new ArrayList<>();
    newNames.add(target.getFileName() + SurgeryConfig.REPORT_TEMP_SUFFIX);
    while (dir != null && !Files.exists(dir)) {
      if (dir.getFileName() != null) {
        newNames.add(dir.getFileName().toString());
      }
      dir = dir.getParent();
    }
    for (int i = 0; i < newNames.size(); i++) {
      String name = newNames.get(i);
      int bytes = name.getBytes(StandardCharsets.UTF_8).length;
      if (bytes > SurgeryConfig.MAX_NAME_BYTES) {
        // The name, not the whole path: it is long, and shown with any invisible character marked.
        return "report cannot be written: "
            + (i == 0
                ? "it is written first to a file named as it with '"
                    + SurgeryConfig.REPORT_TEMP_SUFFIX
                    + "' added, "
                : "the directory name ")
            + ConfigText.shown(
                name.codePointCount(0, name.length()) > 40
                    ? name.substring(0, name.offsetByCodePoints(0, 40)) + "..."
                    : name)
            + " of "
            + bytes
            + " bytes, over the "
            + SurgeryConfig.MAX_NAME_BYTES
            + " a file system takes; name a shorter "
            + (i == 0 ? "file" : "directory");
      }
    }
    if (dir == null) {
      return null;
    }
    if (!Files.isDirectory(dir)) {
      return "report cannot be written to "
          + target
          + ": "
          + dir
          + " is not a directory, so the report's directory cannot be created";
    }
    if (!canCreateIn(dir)) {
      return "report cannot be written to "
          + target
          + ": nothing can be created in "
          + dir
          + "; name a writable location";
    }
    return null;
  }

  /**
   * Where the report writer puts a path: its directory as the file system resolves it (the longest
   * part that exists with its links followed, as the operating system resolves them: {@code
   * link/..} is the link target's parent, not the folder the text shows; then the rest by name),
   * and the file name as written (the writer renames its temporary file over that name, replacing a
   * link there rather than writing through it). Null when a {@code ..} follows a directory that
   * does not exist yet (the operating system cannot resolve it).
   *
   * @throws IOException for a path the writer cannot use: one through a file or a link to nothing
   */
  static Path resolvedTarget(Path path) throws IOException {
    Path absolute = path.toAbsolutePath();
    Path name = absolute.getFileName();
    if (name == null) {
      return absolute;
    }
    Path parent = absolute.getParent();
    Path existing = parent.getRoot();
    int count = parent.getNameCount();
    int known = 0;
    while (known < count) {
      Path next = existing.resolve(parent.getName(known));
      if (Files.isSymbolicLink(next) && !Files.exists(next)) {
        throw new IOException(next + " is a link to nothing");
      }
      if (!Files.exists(next)) {
        if (!parent.getName(known).toString().equals("..") || Files.isDirectory(existing)) {
          break;
        }
        throw new IOException(existing + " is not a directory");
      }
      existing = next;
      known++;
    }
    if (!Files.isDirectory(existing)) {
      throw new IOException(existing + " is not a directory");
    }
    Path target = existing.toRealPath();
    for (int i = known; i < count; i++) {
      String part = parent.getName(i).toString();
      if (part.equals("..")) {
        return null;
      }
      if (!part.equals(".")) {
        target = target.resolve(part);
      }
    }
    return target.resolve(name.toString());
  }

  private static Path resolvedOrAbsolute(Path path) {
    try {
      Path resolved = resolvedTarget(path);
      return resolved != null ? resolved : path.toAbsolutePath().normalize();
    } catch (IOException e) {
      return path.toAbsolutePath().normalize();
    }
  }

  private static boolean sameFile(Path a, Path b) {
    if (a.equals(b)) {
      return true;
    }
    try {
      // A link named as the report is replaced by the writer's rename, not written through.
      return !Files.isSymbolicLink(a)
          && Files.exists(a)
          && Files.exists(b)
          && Files.isSameFile(a, b);
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * Tries to create (and removes) an empty file: permission bits alone do not tell, since a process
   * running as root passes them everywhere, even in {@code /proc}.
   */
  private static boolean canCreateIn(Path dir) {
    try {
      Path probe = Files.createTempFile(dir, ".surgery-report", ".probe");
      Files.deleteIfExists(probe);
      return true;
    } catch (IOException | SecurityException | UnsupportedOperationException e) {
      return false;
    }
  }
}
