package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonParser;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.trainer.config.ScheduledAlgorithm;
import dev.surgery.trainer.config.Trigger;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The surgery record as JSON: what is the same entry, and what a hand-edited record may not be. */
class SurgeryJsonTest {

  @Test
  void hyperparametersAreTheSameAsTheirRecordReadsBack() {
    // A plugin's float reads back as the double of its text; an int as a long; order is free.
    assertTrue(SurgeryJson.sameHyperparameters(Map.of("alpha", 0.1f), Map.of("alpha", 0.1)));
    assertTrue(SurgeryJson.sameHyperparameters(Map.of("n", 64), Map.of("n", 64.0)));
    assertTrue(
        SurgeryJson.sameHyperparameters(Map.of("a", 1, "b", "x"), Map.of("b", "x", "a", 1L)));
    assertFalse(SurgeryJson.sameHyperparameters(Map.of("alpha", 0.1f), Map.of("alpha", 0.2)));
    assertFalse(SurgeryJson.sameHyperparameters(Map.of("a", 1), Map.of("a", 1, "b", 2)));
    List<SurgeryRecord> written =
        List.of(new SurgeryRecord("leaky", Map.of("alpha", 0.1f), 1, 3, Map.of()));
    SurgeryRecord read = SurgeryJson.recordsFromJson(SurgeryJson.recordsToJson(written)).get(0);
    assertTrue(SurgeryJson.sameHyperparameters(read.hyperparameters(), Map.of("alpha", 0.1f)));
    assertEquals(Map.of(), read.changes());
    // Each record says its format; one without (written before the field) reads as format 1.
    assertTrue(
        SurgeryJson.recordsToJson(written).startsWith("[{\"format\":1,\"algorithm\":\"leaky\""),
        SurgeryJson.recordsToJson(written));
    assertEquals(
        "blurpool",
        SurgeryJson.recordsFromJson("[{\"algorithm\":\"blurpool\",\"epoch\":1}]")
            .get(0)
            .algorithm());
  }

  /**
   * The log put together from items printed one by one (kept between writes, so a long search's log
   * does not print every outcome again at each write) is the text Gson prints for the whole tree at
   * once.
   */
  @Test
  void theLogOfItemsIsTheWholeTreePrettyPrinted() {
    SurgeryChanges changes =
        new SurgeryChanges(
            "blurpool",
            Map.of("min_channels", 0),
            List.of(new SurgeryChanges.Change("02Conv2d", "Conv2d", "BlurConv2d")),
            100,
            100,
            5_000_000,
            List.of("a warning"));
    List<SurgeryOutcome> outcomes =
        List.of(
            new SurgeryOutcome(
                1,
                "blurpool",
                Map.of("min_channels", 0),
                1,
                8,
                "s.yaml:2:5",
                SurgeryOutcome.Status.APPLIED,
                changes,
                null,
                5_000_000,
                1.5,
                4,
                Double.NaN,
                0),
            new SurgeryOutcome(
                2,
                "t_fail",
                Map.of(),
                2,
                16,
                "s.yaml:4:5",
                SurgeryOutcome.Status.SKIPPED,
                null,
                "failed \"quoted\" <here>",
                10,
                null,
                0,
                0.25,
                3));
    com.google.gson.JsonObject notRun = new com.google.gson.JsonObject();
    notRun.addProperty("trainer", 1);
    notRun.addProperty("reason", "never");
    com.google.gson.Gson pretty =
        new com.google.gson.GsonBuilder()
            .serializeSpecialFloatingPointValues()
            .disableHtmlEscaping()
            .setPrettyPrinting()
            .create();
    for (boolean cutShort : new boolean[] {false, true}) {
      for (List<SurgeryOutcome> some : List.of(outcomes, List.<SurgeryOutcome>of())) {
        for (List<com.google.gson.JsonObject> pending :
            List.of(List.of(notRun, notRun), List.<com.google.gson.JsonObject>of())) {
          com.google.gson.JsonObject root = new com.google.gson.JsonObject();
          if (cutShort) {
            root.addProperty("cut_short", true);
          }
          com.google.gson.JsonArray apps = new com.google.gson.JsonArray();
          some.forEach(o -> apps.add(SurgeryJson.outcome(o)));
          root.add("applications", apps);
          com.google.gson.JsonArray notRunArray = new com.google.gson.JsonArray();
          pending.forEach(notRunArray::add);
          root.add("not_run", notRunArray);
          assertEquals(pretty.toJson(root), SurgeryJson.log(some, pending, cutShort));
        }
      }
    }
  }

  /** A record read back as changes, as an event-driven algorithm's State shows it. */
  @Test
  void aRecordReadsAsTheChangesOfEachEntry() {
    Map<String, String> changes = new java.util.LinkedHashMap<>();
    changes.put("02Conv2d", "Conv2d->BlurConv2d");
    changes.put("03Seq/01Linear", "Linear->FactorizedLinear, FactorizedLinear->Frozen");
    changes.put("04LambdaBlock", "pool(a, b)->BlurMaxPool2d");
    String json =
        SurgeryJson.recordsToJson(
            List.of(new SurgeryRecord("blurpool", Map.of("min_channels", 0), 1, 3, changes)));
    List<SurgeryChanges> read = SurgeryRecord.asChanges(json);
    assertEquals(1, read.size());
    assertEquals("blurpool", read.get(0).algorithm());
    assertTrue(
        SurgeryJson.sameHyperparameters(Map.of("min_channels", 0), read.get(0).hyperparameters()));
    assertEquals(
        List.of(
            new SurgeryChanges.Change("02Conv2d", "Conv2d", "BlurConv2d"),
            new SurgeryChanges.Change("03Seq/01Linear", "Linear", "FactorizedLinear"),
            new SurgeryChanges.Change("03Seq/01Linear", "FactorizedLinear", "Frozen"),
            new SurgeryChanges.Change("04LambdaBlock", "pool(a, b)", "BlurMaxPool2d")),
        read.get(0).changes());
    assertEquals(SurgeryChanges.UNKNOWN_PARAMETERS, read.get(0).parametersBefore());
    assertEquals(List.of(), SurgeryRecord.asChanges(null));
    assertEquals(List.of(), SurgeryRecord.asChanges("{not a record"));
  }

  @Test
  void aHandEditedRecordWithWrongTypesIsRefusedNamingTheField() {
    Map<String, String> refusals = new java.util.LinkedHashMap<>();
    refusals.putAll(
        Map.of(
            "[{\"algorithm\":\"blurpool\",\"hyperparameters\":\"garbage\",\"epoch\":1}]",
            "'hyperparameters' must be an object",
            "[{\"algorithm\":\"blurpool\",\"epoch\":1.7}]",
            "'epoch' and 'total_epochs' must be whole numbers",
            "[{\"algorithm\":\"blurpool\",\"epoch\":1,\"total_epochs\":\"two\"}]",
            "'epoch' and 'total_epochs' must be whole numbers",
            "[{\"algorithm\":\"blurpool\",\"epoch\":1,\"changes\":\"x\"}]",
            "'changes' must be an object of block paths",
            "[{\"algorithm\":\"blurpool\",\"epoch\":1,\"changes\":{\"02Conv2d\":3}}]",
            "must be a string such as 'Conv2d->BlurConv2d'",
            "[{\"format\":1.5,\"algorithm\":\"blurpool\",\"epoch\":1}]",
            "'format' must be a whole number from 1",
            "[{\"format\":3,\"algorithm\":\"blurpool\",\"epoch\":1}]",
            "is in record format 3, written by a newer DJL Surgery; this one reads format 1",
            // A later format may shape an entry anew: named before anything else (a reviewer).
            "[{\"algorithm\":\"blurpool\"},{\"format\":2,\"at\":{\"epoch\":0}}]",
            "surgery record entry 2 is in record format 2"));
    refusals.putAll(
        Map.of(
            "[{\"algorithm\":\"factorize\",\"epoch\":1,\"born_frozen\":\"01Conv2d_weight\"}]",
            "entry 1 is malformed: 'born_frozen' must be an array of parameter names",
            "[{\"algorithm\":\"factorize\",\"epoch\":1,\"born_frozen\":[\"a\",2]}]",
            "entry 1 is malformed: 'born_frozen' must be an array of parameter names",
            "[{\"algorithm\":\"factorize\",\"epoch\":1,\"born_frozen\":[\"\"]}]",
            "entry 1 is malformed: born frozen parameters must be named"));
    for (Map.Entry<String, String> r : refusals.entrySet()) {
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class, () -> SurgeryJson.recordsFromJson(r.getKey()));
      assertTrue(e.getMessage().contains(r.getValue()), r.getKey() + ": " + e.getMessage());
    }
  }

  /**
   * Which parameters a record's replacements brought frozen is written when known and read back; a
   * record without it (an earlier build's) reads as unknown, and the replay then infers it.
   */
  @Test
  void theParametersBornFrozenAreWrittenWhenKnownAndReadBack() {
    SurgeryRecord known =
        new SurgeryRecord(
            "factorize",
            Map.of("min_channels", 2),
            1,
            2,
            Map.of("01Conv2d", "Conv2d->FactorizedConv2d"),
            List.of("01FactorizedConv2d_01Conv2d_weight"));
    SurgeryRecord unknown =
        new SurgeryRecord(
            "factorize", Map.of(), 1, 2, Map.of("01Conv2d", "Conv2d->FactorizedConv2d"));
    String json = SurgeryJson.recordsToJson(List.of(known, unknown));
    List<SurgeryRecord> read = SurgeryJson.recordsFromJson(json);
    assertEquals(List.of("01FactorizedConv2d_01Conv2d_weight"), read.get(0).bornFrozen());
    assertNull(read.get(1).bornFrozen());
    assertEquals(1, json.split("born_frozen", -1).length - 1, json);
  }

  /** The step a record ran at is written when known, read back, and checked. */
  @Test
  void theStepIsWrittenWhenKnownAndReadBack() {
    SurgeryRecord atStep =
        new SurgeryRecord("blurpool", Map.of(), 0, 3, Map.of(), null, 7_000_000_000L, "every 7ba");
    SurgeryRecord unknown = new SurgeryRecord("blurpool", Map.of(), 0, 3, Map.of());
    String json = SurgeryJson.recordsToJson(List.of(atStep, unknown));
    List<SurgeryRecord> read = SurgeryJson.recordsFromJson(json);
    assertEquals(7_000_000_000L, read.get(0).step(), "past an int");
    assertEquals("every 7ba", read.get(0).trigger());
    assertEquals(-1, read.get(1).step());
    assertEquals(null, read.get(1).trigger());
    assertEquals(1, json.split("\"step\"", -1).length - 1, json);
    for (String bad : new String[] {"-1", "1.5", "\"3\""}) {
      String edited = json.replace("\"step\":7000000000", "\"step\":" + bad);
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> SurgeryJson.recordsFromJson(edited));
      assertTrue(e.getMessage().contains("'step' must be a whole number from 0"), e.getMessage());
    }
  }

  /** An algorithm that cannot tell its plan is no failure: the plan report says no_plan. */
  @Test
  void anEntryWithoutAPlanIsNotReportedAsAnError() {
    ScheduledAlgorithm entry =
        ScheduledAlgorithm.of(
            Algorithms.spec("blurpool").create(Map.of()), Trigger.atEpoch(1), 0, "test");
    String json =
        SurgeryJson.plans(
            List.of(
                new EntryPlan(entry, null, EntryPlan.NO_PLAN + "x cannot tell its plan"),
                new EntryPlan(entry, null, "include pattern 'x' matches no block")));
    JsonArray plans = JsonParser.parseString(json).getAsJsonObject().getAsJsonArray("plans");
    assertTrue(plans.get(0).getAsJsonObject().has("no_plan"), json);
    assertFalse(plans.get(0).getAsJsonObject().has("error"), json);
    assertTrue(plans.get(1).getAsJsonObject().has("error"), json);
  }
}
