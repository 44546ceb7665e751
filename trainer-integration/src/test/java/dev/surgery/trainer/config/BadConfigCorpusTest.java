package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.listener.TrainingListener;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.trainer.SurgeryListener;
import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Runs every file of the bad-input corpus ({@code src/test/resources/bad-configs}) through {@link
 * SurgeryListener#fromYaml} and {@link SurgeryConfig#load}: each must be refused with one {@link
 * SurgeryConfigException} that lists the problems its row in {@code expectations.tsv} names, as
 * {@code <file>:<line>:<column>: <message>}, and no listener may come out of it. The agent runs the
 * same corpus ({@code BadConfigCorpusIT}). Problems with the file itself (a directory, a symbolic
 * link loop, an unreadable or too large file) cannot live in git; {@link SurgeryConfigFileTest}
 * creates them at test time.
 */
class BadConfigCorpusTest {

  /** The corpus must stay at least this large (issue 8 asks for 30 or more malformed configs). */
  static final int MIN_CORPUS_SIZE = 30;

  /** One expected problem of a corpus file. */
  record Expected(String file, int line, int column, String fragment, String what) {
    String describe() {
      return file + ":" + line + ":" + column + ": ..." + fragment + "...";
    }
  }

  static Path corpusDir() throws URISyntaxException {
    URL url = BadConfigCorpusTest.class.getResource("/bad-configs/expectations.tsv");
    if (url == null) {
      throw new AssertionError("bad-configs/expectations.tsv is not on the test class path");
    }
    return Path.of(url.toURI()).getParent();
  }

  /** The rows of {@code expectations.tsv}, grouped by file, in file order. */
  static Map<String, List<Expected>> expectations() throws IOException, URISyntaxException {
    Map<String, List<Expected>> byFile = new LinkedHashMap<>();
    List<String> lines =
        Files.readAllLines(corpusDir().resolve("expectations.tsv"), StandardCharsets.UTF_8);
    for (String line : lines) {
      if (line.isBlank() || line.startsWith("#")) {
        continue;
      }
      String[] cols = line.split("\t", -1);
      if (cols.length != 5) {
        throw new AssertionError("expectations.tsv: expected 5 tab-separated columns: " + line);
      }
      Expected e =
          new Expected(
              cols[0], Integer.parseInt(cols[1]), Integer.parseInt(cols[2]), cols[3], cols[4]);
      byFile.computeIfAbsent(e.file(), k -> new ArrayList<>()).add(e);
    }
    return byFile;
  }

  static Stream<String> corpusFiles() throws Exception {
    return expectations().keySet().stream();
  }

  @Test
  void everyCorpusFileHasExpectationsAndEveryExpectationHasAFile() throws Exception {
    Path dir = corpusDir();
    Set<String> files;
    try (Stream<Path> list = Files.list(dir)) {
      files =
          list.map(p -> p.getFileName().toString())
              .filter(n -> !n.equals("expectations.tsv"))
              .collect(Collectors.toCollection(TreeSet::new));
    }
    assertEquals(files, new TreeSet<>(expectations().keySet()));
    assertTrue(
        files.size() >= MIN_CORPUS_SIZE, "only " + files.size() + " malformed configs in " + dir);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("corpusFiles")
  void corpusFileIsRefusedWithItsPositions(String name) throws Exception {
    Path file = corpusDir().resolve(name);
    List<Expected> expected = expectations().get(name);

    // The way users build a trainer config: a refused file registers nothing.
    DefaultTrainingConfig trainingConfig = new DefaultTrainingConfig(new GcSafeL2Loss());
    int listenersBefore = trainingConfig.getTrainingListeners().size();
    SurgeryConfigException e =
        assertThrows(
            SurgeryConfigException.class,
            () -> trainingConfig.addTrainingListeners(SurgeryListener.fromYaml(file)));
    List<TrainingListener> listeners = trainingConfig.getTrainingListeners();
    assertEquals(listenersBefore, listeners.size());
    assertFalse(listeners.stream().anyMatch(l -> l instanceof SurgeryListener));

    List<ConfigProblem> problems = e.getProblems();
    assertFalse(problems.isEmpty());
    for (Expected x : expected) {
      assertTrue(
          problems.stream()
              .anyMatch(
                  p ->
                      p.line() == x.line()
                          && p.column() == x.column()
                          && p.message().contains(x.fragment())),
          () -> "expected " + x.describe() + " (" + x.what() + ") in\n" + e.getMessage());
    }
    String header =
        "invalid surgery config ("
            + problems.size()
            + (problems.size() == 1 ? " problem)" : " problems)");
    assertTrue(e.getMessage().startsWith(header), e.getMessage());
    for (ConfigProblem p : problems) {
      assertEquals(file.toString(), p.file());
      assertTrue(p.line() >= 1 && p.column() >= 1, "a content problem has a position: " + p);
      assertTrue(p.toString().startsWith(file + ":" + p.line() + ":" + p.column() + ": "));
      assertTrue(e.getMessage().contains(p.toString()));
      assertFalse(p.message().isBlank(), p.toString());
    }
    // Problems come in file order, so the first line a user reads is the first place to fix.
    for (int i = 1; i < problems.size(); i++) {
      ConfigProblem a = problems.get(i - 1);
      ConfigProblem b = problems.get(i);
      assertTrue(
          a.line() < b.line() || (a.line() == b.line() && a.column() <= b.column()),
          e.getMessage());
    }

    // The plain loader refuses it with exactly the same problems.
    SurgeryConfigException again =
        assertThrows(SurgeryConfigException.class, () -> SurgeryConfig.load(file));
    assertEquals(problems, again.getProblems());
  }
}
