package dev.surgery.agent.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/** Config files the agent tests write into their working directories. */
final class AgentConfigs {

  /** BlurPool at epoch 1, with defaults that cover the test CNN's 16-channel strided conv. */
  static final String BLURPOOL_AT_EPOCH_1 =
      String.join("\n", "algorithms:", "  - name: blurpool", "    epoch: 1", "");

  private AgentConfigs() {}

  static Path write(Path dir, String name, String yaml) throws IOException {
    Files.createDirectories(dir);
    Path file = dir.resolve(name);
    Files.writeString(file, yaml);
    return file;
  }

  /** A fresh, empty working directory (output of earlier runs removed). */
  static Path dir(String name) throws IOException {
    Path dir = ForkedJvm.workRoot().resolve(name);
    if (Files.isDirectory(dir)) {
      try (Stream<Path> files = Files.walk(dir)) {
        for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
          Files.delete(p);
        }
      }
    }
    Files.createDirectories(dir);
    return dir;
  }

  /**
   * A fresh working directory ({@link #dir}) holding {@code surgery.yaml} with the given config:
   * the setup most runs under the agent start from.
   */
  static Path dirWithConfig(String name, String yaml) throws IOException {
    Path dir = dir(name);
    write(dir, "surgery.yaml", yaml);
    return dir;
  }
}
