package dev.surgery.trainer.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.trainer.docs.MarkdownDoc;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * Keeps the method cards of {@code docs/algorithms.md} in step with the hyperparameter
 * declarations: one card per built-in algorithm, and in each card's table every declared key with
 * its declared default (read back as the declaration's type, so {@code 64} and {@code 64.0} are the
 * same float), and no key the code does not declare.
 */
class AlgorithmCardsDocTest {

  private static final String DOC = "docs/algorithms.md";

  @Test
  void everyBuiltinAlgorithmHasACard() throws Exception {
    MarkdownDoc doc = MarkdownDoc.read(DOC);
    Set<String> cards = new TreeSet<>();
    for (String h : MarkdownDoc.headings(doc.section("Method cards"), 3)) {
      cards.add(h.replace("`", ""));
    }
    assertEquals(
        ConfigurationDocTest.builtinAlgorithms(),
        cards,
        DOC + ": one '### `name`' card under 'Method cards' per built-in algorithm");
  }

  @Test
  void everyCardListsTheDeclaredKeysAndDefaults() throws Exception {
    MarkdownDoc doc = MarkdownDoc.read(DOC);
    List<String> problems = new ArrayList<>();
    for (String name : ConfigurationDocTest.builtinAlgorithms()) {
      List<String> card = doc.section("`" + name + "`");
      Set<String> documented = MarkdownDoc.tableKeys(card);
      for (HyperParameter<?> h : Algorithms.spec(name).hyperParameters()) {
        String row = MarkdownDoc.row(card, h.name());
        if (row == null) {
          problems.add(name + ": hyperparameter '" + h.name() + "' has no row");
          continue;
        }
        documented.remove(h.name());
        String cell = row.split("\\|")[2].strip().replace("`", "");
        if (!h.defaultValue().equals(parse(h, cell))) {
          problems.add(
              name
                  + ": '"
                  + h.name()
                  + "' default is "
                  + h.defaultValue()
                  + ", the card says "
                  + cell);
        }
      }
      documented.forEach(k -> problems.add(name + ": '" + k + "' is on the card but not declared"));
    }
    assertTrue(problems.isEmpty(), DOC + " is out of date:\n" + String.join("\n", problems));
  }

  /** Reads a documented default as a value of the declaration's type; null when it is not one. */
  private static Object parse(HyperParameter<?> h, String cell) {
    try {
      switch (h.type()) {
        case INT:
          return Integer.valueOf(cell);
        case FLOAT:
          return Double.valueOf(cell);
        case BOOLEAN:
          return cell.equals("true") || cell.equals("false") ? Boolean.valueOf(cell) : null;
        default:
          return cell;
      }
    } catch (NumberFormatException e) {
      return null;
    }
  }
}
