package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import dev.surgery.trainer.config.SurgeryConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Entries written as aliases ({@code - *a}) are told apart at run time by their own place in the
 * file: the outcomes, the warnings for entries that never ran and the surgery log's {@code source}
 * name the alias's line and column, not the anchor's entry.
 */
class AliasedEntrySourceTest {

  @TempDir Path tmp;

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
  }

  @Test
  void outcomesWarningsAndTheLogNameEachAliasedEntryAtItsAlias() throws Exception {
    Path report = tmp.resolve("log.json");
    String yaml =
        "algorithms:\n"
            + "  - &a {name: t_log, tag: a, epoch: 1}\n"
            + "  - *a\n"
            + "  - &b {name: t_log, tag: b, epoch: 3}\n"
            + "  - *b\n"
            + "report: '"
            + report.toString().replace("'", "''")
            + "'\n";
    SurgeryListener listener = SurgeryListener.fromConfig(SurgeryConfig.parse(yaml, "x.yaml"));
    try (Model model = TestModels.model("aliased");
        NDManager manager = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(TestModels.INPUT);
      EasyTrain.fit(trainer, 2, TestModels.dataset(manager, 1), null);
    }
    assertEquals(
        List.of("x.yaml:2:5", "x.yaml:3:5"),
        listener.getOutcomes().stream().map(SurgeryOutcome::source).toList());
    for (String source : List.of("x.yaml:4:5", "x.yaml:5:5")) {
      assertEquals(
          1,
          listener.getWarnings().stream()
              .filter(w -> w.contains("t_log at epoch 3 (" + source + ") never ran"))
              .count(),
          listener.getWarnings().toString());
    }
    List<String> notRun =
        StreamSupport.stream(
                JsonParser.parseString(Files.readString(report))
                    .getAsJsonObject()
                    .getAsJsonArray("not_run")
                    .spliterator(),
                false)
            .map(JsonElement::getAsJsonObject)
            .map(o -> o.get("source").getAsString())
            .toList();
    assertEquals(List.of("x.yaml:4:5", "x.yaml:5:5"), notRun);
    assertTrue(Files.readString(report).contains("\"x.yaml:3:5\""));
  }
}
