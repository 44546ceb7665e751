package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.trainer.docs.MarkdownDoc;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * Keeps {@code docs/configuration.md} in step with the code: every top-level key and entry key the
 * parser accepts, every built-in algorithm of the registry and every one of its hyperparameters has
 * a table row there, and the page lists nothing the code does not know. Reads the registry through
 * names only ({@link Algorithms#names}, {@link AlgorithmSpec#names}), so the test does not depend
 * on how hyperparameters are declared.
 */
class ConfigurationDocTest {

  private static final String DOC = "docs/configuration.md";

  /**
   * The algorithms this project ships: registered algorithms whose class lives in core's algorithm
   * package. Tests of this module register algorithms of their own in the same registry.
   */
  static Set<String> builtinAlgorithms() {
    Set<String> out = new TreeSet<>();
    for (String name : Algorithms.names()) {
      // By where the spec came from, not by building it: test plugins here may fail to build.
      if ("built-in".equals(Algorithms.origin(name))) {
        out.add(name);
      }
    }
    return out;
  }

  @Test
  void everyTopLevelKeyIsDocumented() throws Exception {
    MarkdownDoc doc = MarkdownDoc.read(DOC);
    Set<String> documented = MarkdownDoc.tableKeys(doc.section("Top-level keys"));
    assertEquals(
        new TreeSet<>(ConfigParser.TOP_LEVEL_KEYS),
        new TreeSet<>(documented),
        DOC + " section 'Top-level keys' must have one row per key ConfigParser accepts");
  }

  @Test
  void everyEntryKeyIsDocumented() throws Exception {
    MarkdownDoc doc = MarkdownDoc.read(DOC);
    Set<String> documented = MarkdownDoc.tableKeys(doc.section("Entries"));
    assertEquals(
        new TreeSet<>(ConfigParser.ENTRY_KEYS),
        new TreeSet<>(documented),
        DOC + " section 'Entries' must have one row per entry key ConfigParser accepts");
  }

  @Test
  void everyBuiltinAlgorithmHasASection() throws Exception {
    MarkdownDoc doc = MarkdownDoc.read(DOC);
    List<String> sections =
        MarkdownDoc.headings(doc.section("Algorithms and their hyperparameters"), 3);
    Set<String> documented = new TreeSet<>();
    for (String h : sections) {
      documented.add(h.replace("`", ""));
    }
    Set<String> builtins = builtinAlgorithms();
    assertTrue(builtins.size() >= 7, "expected the seven built-in algorithms, got " + builtins);
    assertEquals(builtins, documented, DOC + ": one '### `name`' section per built-in algorithm");
  }

  @Test
  void everyHyperParameterIsDocumentedInItsAlgorithmsTable() throws Exception {
    MarkdownDoc doc = MarkdownDoc.read(DOC);
    List<String> problems = new ArrayList<>();
    for (String name : builtinAlgorithms()) {
      Set<String> documented = MarkdownDoc.tableKeys(doc.section("`" + name + "`"));
      Set<String> declared = new LinkedHashSet<>(Algorithms.spec(name).names());
      for (String key : declared) {
        if (!documented.contains(key)) {
          problems.add(name + ": hyperparameter '" + key + "' is missing");
        }
      }
      for (String key : documented) {
        if (!declared.contains(key)) {
          problems.add(name + ": '" + key + "' is documented but not declared");
        }
      }
    }
    assertTrue(problems.isEmpty(), DOC + " is out of date:\n" + String.join("\n", problems));
  }

  @Test
  void theCompleteExampleIsAValidConfig() throws Exception {
    MarkdownDoc doc = MarkdownDoc.read(DOC);
    MarkdownDoc.Block example = doc.codeBlocks("yaml").get(0);
    SurgeryConfig config = SurgeryConfig.parse(example.text(), example.where());
    assertEquals(3, config.getAlgorithms().size());
    assertEquals(10, config.getTotalEpochs());
    assertEquals(1200, config.getAlgorithms().get(2).trigger().amount());
  }
}
