package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.surgery.core.algorithms.SurgeryChanges;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A record's contract as its Javadoc states it: what it refuses, what it copies, which fields make
 * two records the same application, and how a record reads back as changes.
 */
class SurgeryRecordTest {

  private static SurgeryRecord record(
      String algorithm, int epoch, int total, Map<String, String> changes, long step) {
    return new SurgeryRecord(algorithm, Map.of(), epoch, total, changes, null, step, null);
  }

  @Test
  void refusesWhatNoRecordCanHold() {
    assertThrows(IllegalArgumentException.class, () -> record(null, 0, 0, null, -1));
    assertThrows(IllegalArgumentException.class, () -> record("", 0, 0, null, -1));
    assertThrows(IllegalArgumentException.class, () -> record("a", -1, 0, null, -1));
    assertThrows(IllegalArgumentException.class, () -> record("a", 0, -1, null, -1));
    assertThrows(IllegalArgumentException.class, () -> record("a", 0, 0, null, -2));
    assertThrows(
        IllegalArgumentException.class, () -> record("a", 0, 0, Map.of("p", "Linear"), -1));
    Map<String, String> nullValue = new LinkedHashMap<>();
    nullValue.put("p", null);
    assertThrows(IllegalArgumentException.class, () -> record("a", 0, 0, nullValue, -1));
    Map<String, String> nullKey = new LinkedHashMap<>();
    nullKey.put(null, "A->B");
    assertThrows(IllegalArgumentException.class, () -> record("a", 0, 0, nullKey, -1));
    List<String> unnamed = new ArrayList<>();
    unnamed.add(null);
    assertThrows(
        IllegalArgumentException.class,
        () -> new SurgeryRecord("a", Map.of(), 0, 0, Map.of(), List.of("")));
    assertThrows(
        IllegalArgumentException.class,
        () -> new SurgeryRecord("a", Map.of(), 0, 0, Map.of(), unnamed));
    // The edges the Javadoc allows: before training, unknown length, unknown step.
    SurgeryRecord edges = record("a", 0, 0, Map.of("p", "A->B"), -1);
    assertEquals(-1, edges.step());
    assertEquals(0, record("a", 0, 0, null, 0).step());
  }

  @Test
  void copiesWhatItIsGivenAndIsNotChangedThroughIt() {
    Map<String, Object> hyper = new LinkedHashMap<>(Map.of("k", 1));
    Map<String, String> changes = new LinkedHashMap<>(Map.of("p", "A->B"));
    List<String> born = new ArrayList<>(List.of("w"));
    SurgeryRecord r = new SurgeryRecord("a", hyper, 1, 2, changes, born, 3, "at epoch 1");
    hyper.put("k", 2);
    changes.put("q", "C->D");
    born.add("v");
    assertEquals(Map.of("k", 1), r.hyperparameters());
    assertEquals(Map.of("p", "A->B"), r.changes());
    assertEquals(List.of("w"), r.bornFrozen());
    assertThrows(UnsupportedOperationException.class, () -> r.hyperparameters().put("x", 0));
    assertThrows(UnsupportedOperationException.class, () -> r.changes().put("x", "A->B"));
    // No hyperparameters reads as none; unknown changes and born-frozen names stay unknown.
    SurgeryRecord bare = new SurgeryRecord("a", null, 0, 0);
    assertEquals(Map.of(), bare.hyperparameters());
    assertNull(bare.changes());
    assertNull(bare.bornFrozen());
    assertEquals(-1, bare.step());
    assertNull(bare.trigger());
  }

  @Test
  void theSameApplicationIsAlgorithmEpochChangesAndHyperparameters() {
    SurgeryRecord r =
        new SurgeryRecord("a", Map.of("k", 1), 2, 6, Map.of("p", "A->B"), List.of("w"), 9, "x");
    // Not the length, step, trigger or born-frozen names, which an older record may lack.
    assertTrue(
        r.sameApplicationAs(new SurgeryRecord("a", Map.of("k", 1), 2, 0, Map.of("p", "A->B"))));
    assertFalse(
        r.sameApplicationAs(new SurgeryRecord("b", Map.of("k", 1), 2, 6, Map.of("p", "A->B"))));
    assertFalse(
        r.sameApplicationAs(new SurgeryRecord("a", Map.of("k", 1), 3, 6, Map.of("p", "A->B"))));
    assertFalse(
        r.sameApplicationAs(new SurgeryRecord("a", Map.of("k", 1), 2, 6, Map.of("q", "A->B"))));
    assertFalse(r.sameApplicationAs(new SurgeryRecord("a", Map.of("k", 1), 2, 6, null)));
    assertFalse(
        r.sameApplicationAs(new SurgeryRecord("a", Map.of("k", 2), 2, 6, Map.of("p", "A->B"))));
  }

  @Test
  void changesOfJoinsReplacementsOfOnePathInOrder() {
    SurgeryChanges changes =
        new SurgeryChanges(
            "a",
            Map.of(),
            List.of(
                new SurgeryChanges.Change("p", "A", "B"),
                new SurgeryChanges.Change("q", "C", "D"),
                new SurgeryChanges.Change("p", "B", "E")),
            1,
            1,
            0);
    Map<String, String> byPath = SurgeryRecord.changesOf(changes);
    assertEquals(List.of("p", "q"), new ArrayList<>(byPath.keySet()));
    assertEquals("A->B, B->E", byPath.get("p"));
    assertEquals("C->D", byPath.get("q"));
  }

  @Test
  void asChangesReadsEachReplacementBackInOrder() {
    Map<String, String> replaced = new LinkedHashMap<>();
    replaced.put("p", "A->B, B->C");
    // ", " inside a type name: not every part is a replacement, so the whole value is one.
    replaced.put("q", "X, Y->Z");
    String json =
        SurgeryJson.recordsToJson(
            List.of(
                new SurgeryRecord("a", Map.of("k", 1), 1, 2, replaced),
                new SurgeryRecord("b", Map.of(), 0, 0)));
    List<SurgeryChanges> read = SurgeryRecord.asChanges(json);
    assertEquals(2, read.size());
    assertEquals("a", read.get(0).algorithm());
    // (Read back from JSON, a whole number may come back as another Number type.)
    assertTrue(SurgeryJson.sameHyperparameters(Map.of("k", 1), read.get(0).hyperparameters()));
    assertEquals(
        List.of(
            new SurgeryChanges.Change("p", "A", "B"),
            new SurgeryChanges.Change("p", "B", "C"),
            new SurgeryChanges.Change("q", "X, Y", "Z")),
        read.get(0).changes());
    assertEquals(SurgeryChanges.UNKNOWN_PARAMETERS, read.get(0).parametersBefore());
    assertEquals(SurgeryChanges.UNKNOWN_PARAMETERS, read.get(0).parametersAfter());
    assertEquals(0, read.get(0).nanos());
    // Unknown changes read as none replaced.
    assertEquals("b", read.get(1).algorithm());
    assertTrue(read.get(1).changes().isEmpty());
  }

  @Test
  void asChangesOfNoOrAnUnreadableRecordIsEmpty() {
    assertEquals(List.of(), SurgeryRecord.asChanges(null));
    assertEquals(List.of(), SurgeryRecord.asChanges(""));
    assertEquals(List.of(), SurgeryRecord.asChanges("  "));
    // A property this build cannot read is no record it can report on.
    assertEquals(List.of(), SurgeryRecord.asChanges("not json"));
    assertEquals(List.of(), SurgeryRecord.asChanges("{}"));
  }
}
