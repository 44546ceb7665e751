package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.trainer.docs.MarkdownDoc;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The surgery log's application fields are what trainer-integration/README.md's table tells tools
 * that read the log: each field of every kind of outcome is in the table, of its type, and present
 * exactly when the table says. The table is read from the README, so a field added, renamed or
 * dropped on either side fails here.
 */
class SurgeryLogFieldsDocTest {

  private static final Pattern NAME = Pattern.compile("`([a-z_]+)`");

  /** One documented field: its type and when it is present, as the table writes them. */
  private record Field(String type, String present) {}

  private static Map<String, Field> documented() throws Exception {
    List<String> lines =
        Files.readAllLines(
            MarkdownDoc.repositoryRoot().resolve("trainer-integration/README.md"),
            StandardCharsets.UTF_8);
    int start = -1;
    for (int i = 0; i < lines.size(); i++) {
      if (lines.get(i).contains("An application's fields")) {
        start = i;
        break;
      }
    }
    assertTrue(start >= 0, "README has no table of an application's fields");
    Map<String, Field> fields = new LinkedHashMap<>();
    for (int i = start + 1; i < lines.size(); i++) {
      String row = lines.get(i).strip();
      if (row.isEmpty() && !fields.isEmpty()) {
        break;
      }
      if (!row.startsWith("| `")) {
        continue;
      }
      String[] cells = row.split("\\|");
      // cells[0] is empty (the row begins with '|'): name(s), type, present, meaning.
      Matcher names = NAME.matcher(cells[1]);
      while (names.find()) {
        fields.put(names.group(1), new Field(cells[2].strip(), cells[3].strip()));
      }
    }
    return fields;
  }

  private static SurgeryOutcome outcome(
      SurgeryOutcome.Status status, SurgeryChanges changes, String error, Double before) {
    return new SurgeryOutcome(
        2,
        "blurpool",
        Map.of("min_channels", 16),
        3,
        120,
        "s.yaml:2:5",
        status,
        changes,
        error,
        2_500_000,
        before,
        before == null ? 0 : 20,
        before == null ? null : before / 2,
        before == null ? 0 : 7);
  }

  private static SurgeryChanges changes(long parametersBefore, List<String> warnings) {
    return new SurgeryChanges(
        "blurpool",
        Map.of("min_channels", 16),
        List.of(
            new SurgeryChanges.Change("02Conv2d", "Conv2d", "BlurConv2d"),
            new SurgeryChanges.Change("05Conv2d", "Conv2d", "BlurConv2d")),
        parametersBefore,
        parametersBefore,
        1_000_000,
        warnings);
  }

  @Test
  void everyOutcomesFieldsAreTheDocumentedOnesOfTheirTypesWhenTheTableSaysSo() throws Exception {
    Map<String, Field> table = documented();
    List<SurgeryOutcome> outcomes = new ArrayList<>();
    outcomes.add(
        outcome(SurgeryOutcome.Status.APPLIED, changes(1234, List.of("a warning")), null, 0.75));
    outcomes.add(
        outcome(
            SurgeryOutcome.Status.APPLIED,
            changes(SurgeryChanges.UNKNOWN_PARAMETERS, List.of()),
            null,
            null));
    outcomes.add(outcome(SurgeryOutcome.Status.SKIPPED, null, "it failed", 0.5));
    outcomes.add(outcome(SurgeryOutcome.Status.FAILED, null, "it failed too", null));
    Set<String> seen = new java.util.HashSet<>();
    for (SurgeryOutcome o : outcomes) {
      // As the log file holds it: written, then read back as a tool would.
      JsonObject json =
          JsonParser.parseString(SurgeryJson.log(List.of(o), List.of(), false))
              .getAsJsonObject()
              .getAsJsonArray("applications")
              .get(0)
              .getAsJsonObject();
      for (Map.Entry<String, JsonElement> member : json.entrySet()) {
        Field field = table.get(member.getKey());
        assertTrue(field != null, "undocumented field " + member.getKey() + " in " + json);
        assertTypeIs(field.type(), member.getValue(), member.getKey());
        seen.add(member.getKey());
      }
      boolean applied = o.status() == SurgeryOutcome.Status.APPLIED;
      boolean known =
          applied && o.changes().parametersBefore() != SurgeryChanges.UNKNOWN_PARAMETERS;
      for (Map.Entry<String, Field> f : table.entrySet()) {
        String name = f.getKey();
        String present = f.getValue().present();
        boolean expected =
            switch (present) {
              case "always" -> true;
              case "for `applied`" -> applied;
              case "when the model had its shapes" -> known;
              case "in their place otherwise" -> applied && !known;
              case "when the algorithm warned" -> applied && !o.changes().warnings().isEmpty();
              case "for `skipped` and `failed`" -> !applied;
              case "when batches ran before / after it" -> o.lossBefore() != null;
              default -> throw new AssertionError("a presence the test does not know: " + present);
            };
        assertEquals(expected, json.has(name), name + " (" + present + ") in " + json);
      }
      assertEquals(
          o.status().name().toLowerCase(java.util.Locale.ROOT), json.get("status").getAsString());
      assertEquals(o.nanos() / 1e6, json.get("time_ms").getAsDouble(), 0.0);
      assertEquals(o.source(), json.get("source").getAsString());
      assertEquals(o.trainer(), json.get("trainer").getAsInt());
      assertEquals(o.epoch(), json.get("epoch").getAsInt());
      assertEquals(o.step(), json.get("step").getAsLong());
      assertEquals(16, json.getAsJsonObject("hyperparameters").get("min_channels").getAsInt());
      if (applied) {
        // "the length of changes", each change as {path, from, to}.
        assertEquals(json.getAsJsonArray("changes").size(), json.get("blocks_replaced").getAsInt());
        JsonObject first = json.getAsJsonArray("changes").get(0).getAsJsonObject();
        assertEquals(Set.of("path", "from", "to"), first.keySet());
        assertEquals(
            List.of("02Conv2d", "Conv2d", "BlurConv2d"),
            List.of(
                first.get("path").getAsString(),
                first.get("from").getAsString(),
                first.get("to").getAsString()));
      } else {
        assertEquals(o.error(), json.get("error").getAsString());
      }
      if (known) {
        assertEquals(1234, json.get("parameters_before").getAsLong());
      }
      if (o.lossBefore() != null) {
        JsonObject before = json.getAsJsonObject("loss_before");
        assertEquals(Set.of("mean", "batches"), before.keySet());
        assertEquals(o.lossBefore(), before.get("mean").getAsDouble(), 0.0);
        assertEquals(20, before.get("batches").getAsInt());
        assertEquals(7, json.getAsJsonObject("loss_after").get("batches").getAsInt());
      }
    }
    // Every documented field came out of some outcome: the table lists nothing the log lacks.
    assertEquals(table.keySet(), seen);
    assertFalse(table.isEmpty());
  }

  private static void assertTypeIs(String type, JsonElement value, String name) {
    boolean ok;
    if (type.startsWith("int")) {
      ok =
          value.isJsonPrimitive()
              && value.getAsJsonPrimitive().isNumber()
              && value.getAsDouble() == Math.rint(value.getAsDouble());
    } else if (type.startsWith("number")) {
      ok = value.isJsonPrimitive() && value.getAsJsonPrimitive().isNumber();
    } else if (type.equals("`true`")) {
      ok =
          value.isJsonPrimitive() && value.getAsJsonPrimitive().isBoolean() && value.getAsBoolean();
    } else if (type.startsWith("array")) {
      ok = value.isJsonArray();
    } else if (type.startsWith("`{")) {
      ok = value.isJsonObject();
    } else if (type.equals("string, object")) {
      // 'algorithm' is a string, 'hyperparameters' an object.
      ok = name.equals("algorithm") ? isString(value) : value.isJsonObject();
    } else if (type.startsWith("string")) {
      ok = isString(value);
    } else {
      throw new AssertionError("a type the test does not know: " + type);
    }
    assertTrue(ok, name + " should be " + type + ", is " + value);
  }

  private static boolean isString(JsonElement value) {
    return value.isJsonPrimitive() && value.getAsJsonPrimitive().isString();
  }

  /**
   * A full record (every optional field known) has exactly the keys the README lists for the model
   * property {@code surgery}, and reads back as written.
   */
  @Test
  void aRecordHasTheKeysTheReadmeLists() throws Exception {
    String readme =
        String.join(
            " ",
            Files.readAllLines(
                MarkdownDoc.repositoryRoot().resolve("trainer-integration/README.md"),
                StandardCharsets.UTF_8));
    Matcher listed = Pattern.compile("JSON array of `\\{([a-z_, ]+)}`").matcher(readme);
    assertTrue(listed.find(), "README lists no keys of the surgery record");
    Set<String> documented = new java.util.TreeSet<>();
    for (String key : listed.group(1).split(",")) {
      documented.add(key.strip());
    }
    SurgeryRecord full =
        new SurgeryRecord(
            "blurpool",
            Map.of("min_channels", 16),
            2,
            6,
            Map.of("02Conv2d", "Conv2d->BlurConv2d"),
            List.of("02Conv2d.weight"),
            40,
            "at epoch 2");
    String json = SurgeryJson.recordsToJson(List.of(full));
    JsonObject written = JsonParser.parseString(json).getAsJsonArray().get(0).getAsJsonObject();
    assertEquals(documented, new java.util.TreeSet<>(written.keySet()), json);
    SurgeryRecord read = SurgeryJson.recordsFromJson(json).get(0);
    // Numbers read back as JSON numbers: the hyperparameters compare as a record compares them.
    assertTrue(SurgeryJson.sameHyperparameters(full.hyperparameters(), read.hyperparameters()));
    assertEquals(
        new SurgeryRecord(
            full.algorithm(),
            read.hyperparameters(),
            full.epoch(),
            full.totalEpochs(),
            full.changes(),
            full.bornFrozen(),
            full.step(),
            full.trigger()),
        read);
  }

  /**
   * A {@code not_run} item has the keys the README lists ({@code trainer}, {@code algorithm},
   * {@code epoch} for an entry scheduled by epoch only, {@code when}, {@code source}, {@code
   * reason}).
   */
  @Test
  void aNotRunItemHasTheKeysTheReadmeLists() {
    var blurpool = dev.surgery.core.algorithms.Algorithms.spec("blurpool").create(Map.of());
    var byEpoch =
        dev.surgery.trainer.config.ScheduledAlgorithm.of(
            blurpool, dev.surgery.trainer.config.Trigger.atEpoch(3), 0, "s.yaml:2:5");
    var byStep =
        dev.surgery.trainer.config.ScheduledAlgorithm.of(
            blurpool, dev.surgery.trainer.config.Trigger.atStep(30), 1, "s.yaml:4:5");
    JsonObject epoch = SurgeryLogWriter.notRunItem(2, byEpoch, "not reached");
    assertEquals(
        Set.of("trainer", "algorithm", "epoch", "when", "source", "reason"), epoch.keySet());
    assertEquals(
        List.of("2", "blurpool", "3", "at epoch 3", "s.yaml:2:5", "not reached"),
        List.of("trainer", "algorithm", "epoch", "when", "source", "reason").stream()
            .map(k -> epoch.get(k).getAsString())
            .toList());
    JsonObject step = SurgeryLogWriter.notRunItem(1, byStep, "not reached");
    assertEquals(Set.of("trainer", "algorithm", "when", "source", "reason"), step.keySet());
    assertEquals(byStep.trigger().describe(), step.get("when").getAsString());
  }
}
