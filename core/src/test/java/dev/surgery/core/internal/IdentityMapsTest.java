package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The identity maps keep equal keys apart; the weak one lets its keys go. */
class IdentityMapsTest {

  /** Equal to every other instance: what a value-style class does at the extreme. */
  static final class AllEqual {
    @Override
    public boolean equals(Object o) {
      return o instanceof AllEqual;
    }

    @Override
    public int hashCode() {
      return 7;
    }
  }

  @Test
  void theLinkedMapKeepsEqualKeysApartInInsertionOrder() {
    AllEqual a = new AllEqual();
    AllEqual b = new AllEqual();
    AllEqual c = new AllEqual();
    Map<AllEqual, String> map = new LinkedIdentityMap<>();
    map.put(b, "b");
    map.put(a, "a");
    map.put(c, "c");
    assertEquals("c", map.put(c, "c2"), "a second put replaces the value");
    assertEquals(3, map.size());
    assertEquals(List.of("b", "a", "c2"), List.copyOf(map.values()));
    assertEquals("a", map.get(a));
    assertTrue(map.keySet().contains(b));
    assertNull(map.get(new AllEqual()));
    // Removal keeps the order of the rest (layer_freezing narrows its layers to the targets).
    assertEquals("a", map.remove(a));
    assertEquals(List.of("b", "c2"), List.copyOf(map.values()));
    map.keySet().removeIf(k -> k == b);
    assertEquals(List.of("c2"), List.copyOf(map.values()));
    map.put(a, "a again");
    assertEquals(List.of("c2", "a again"), List.copyOf(map.values()));
    Iterator<Map.Entry<AllEqual, String>> it = map.entrySet().iterator();
    it.next();
    it.remove();
    assertEquals(List.of("a again"), List.copyOf(map.values()));
    assertThrows(IllegalStateException.class, it::remove);
    map.clear();
    assertTrue(map.isEmpty());
  }

  /**
   * With keys whose equals is identity, java.util.LinkedHashMap is the oracle: every answer, the
   * order of keys, values and entries, and the views' sizes after each of many random puts,
   * removals (through the map, the key set and the iterators) and clears.
   */
  @Test
  void theLinkedMapAgreesWithALinkedHashMapUnderRandomChanges() {
    java.util.Random random = new java.util.Random(21);
    List<Object> pool = new java.util.ArrayList<>();
    for (int i = 0; i < 40; i++) {
      pool.add(new Object());
    }
    Map<Object, Integer> map = new LinkedIdentityMap<>();
    Map<Object, Integer> oracle = new java.util.LinkedHashMap<>();
    for (int i = 0; i < 20_000; i++) {
      Object key = pool.get(random.nextInt(pool.size()));
      int op = random.nextInt(100);
      if (op < 45) {
        Integer value = random.nextInt(5) == 0 ? null : i;
        assertEquals(oracle.put(key, value), map.put(key, value), "put " + i);
      } else if (op < 60) {
        assertEquals(oracle.remove(key), map.remove(key), "remove " + i);
      } else if (op < 70) {
        assertEquals(oracle.keySet().remove(key), map.keySet().remove(key), "keySet remove " + i);
      } else if (op < 80) {
        assertEquals(oracle.containsKey(key), map.containsKey(key), "containsKey " + i);
        assertEquals(oracle.keySet().contains(key), map.keySet().contains(key), "contains " + i);
        assertEquals(oracle.get(key), map.get(key), "get " + i);
      } else if (op < 90) {
        // Take out the entries at some positions through the iterator.
        int every = 2 + random.nextInt(4);
        Iterator<Map.Entry<Object, Integer>> expected = oracle.entrySet().iterator();
        Iterator<Map.Entry<Object, Integer>> actual = map.entrySet().iterator();
        for (int at = 0; expected.hasNext(); at++) {
          assertEquals(true, actual.hasNext());
          Map.Entry<Object, Integer> e = expected.next();
          Map.Entry<Object, Integer> a = actual.next();
          assertSame(e.getKey(), a.getKey());
          assertEquals(e.getValue(), a.getValue());
          if (at % every == 0) {
            expected.remove();
            actual.remove();
          }
        }
        assertEquals(false, actual.hasNext());
      } else if (op < 99) {
        Iterator<Object> expected = oracle.keySet().iterator();
        Iterator<Object> actual = map.keySet().iterator();
        if (expected.hasNext()) {
          assertSame(expected.next(), actual.next());
          expected.remove();
          actual.remove();
        }
      } else {
        oracle.clear();
        map.clear();
      }
      assertEquals(oracle.size(), map.size(), "size " + i);
      assertEquals(oracle.size(), map.keySet().size());
      assertEquals(oracle.size(), map.entrySet().size());
      assertEquals(
          new java.util.ArrayList<>(oracle.keySet()), new java.util.ArrayList<>(map.keySet()));
      assertEquals(
          new java.util.ArrayList<>(oracle.values()), new java.util.ArrayList<>(map.values()));
    }
  }

  /**
   * Iterating while the map changes fails fast, as a LinkedHashMap does; a value change is none.
   */
  @Test
  void theLinkedMapsIteratorsFailOnAChangeTheyDidNotMake() {
    Object a = new Object();
    Object b = new Object();
    for (int change = 0; change < 3; change++) {
      Map<Object, String> map = new LinkedIdentityMap<>();
      map.put(a, "a");
      map.put(b, "b");
      Iterator<Object> it = map.keySet().iterator();
      it.next();
      map.put(a, "a2"); // a new value for a key already there
      switch (change) {
        case 0 -> map.put(new Object(), "c");
        case 1 -> map.remove(b);
        default -> map.clear();
      }
      assertThrows(java.util.ConcurrentModificationException.class, it::next, "change " + change);
      assertThrows(java.util.ConcurrentModificationException.class, it::remove, "change " + change);
    }
  }

  /**
   * Equality as documented: the same keys by identity with equal values, in any order, and only
   * with another LinkedIdentityMap; the hash code is the sum of the entries' (Map's contract), and
   * it follows which key objects are in the map.
   */
  @Test
  void theLinkedMapIsEqualToTheSameKeysWithEqualValuesInAnyOrder() {
    AllEqual a = new AllEqual();
    AllEqual b = new AllEqual();
    AllEqual c = new AllEqual();
    LinkedIdentityMap<AllEqual, String> ab = new LinkedIdentityMap<>();
    ab.put(a, "x");
    ab.put(b, null);
    LinkedIdentityMap<AllEqual, String> ba = new LinkedIdentityMap<>();
    ba.put(b, null);
    ba.put(a, new String("x")); // equal, not the same
    assertEquals(ab, ab);
    assertEquals(ab, ba);
    assertEquals(ba, ab);
    assertEquals(ab.hashCode(), ba.hashCode());
    int sum = 0;
    for (Map.Entry<AllEqual, String> e : ab.entrySet()) {
      sum += e.hashCode();
    }
    assertEquals(sum, ab.hashCode());

    LinkedIdentityMap<AllEqual, String> otherValue = new LinkedIdentityMap<>();
    otherValue.put(a, "y");
    otherValue.put(b, null);
    assertNotEquals(ab, otherValue);
    LinkedIdentityMap<AllEqual, String> nullForAbsent = new LinkedIdentityMap<>();
    nullForAbsent.put(a, "x");
    nullForAbsent.put(c, null); // c is equal to b, but another key
    assertNotEquals(ab, nullForAbsent);
    assertNotEquals(nullForAbsent, ab);
    LinkedIdentityMap<AllEqual, String> smaller = new LinkedIdentityMap<>();
    smaller.put(a, "x");
    assertNotEquals(ab, smaller);
    assertNotEquals(smaller, ab);
    Map<AllEqual, String> sameContents = new java.util.LinkedHashMap<>();
    sameContents.put(a, "x");
    sameContents.put(b, null);
    assertNotEquals(ab, sameContents, "another kind of map");
    assertNotEquals(ab, null);

    // The same value under each of many distinct keys: the hash codes are not all one.
    java.util.Set<Integer> hashes = new java.util.HashSet<>();
    for (int i = 0; i < 20; i++) {
      LinkedIdentityMap<AllEqual, String> single = new LinkedIdentityMap<>();
      single.put(new AllEqual(), "v");
      hashes.add(single.hashCode());
    }
    assertTrue(hashes.size() > 1, hashes.toString());
  }

  /**
   * The entries are Map.Entry values keyed by identity: equal to an entry of the same key object
   * and an equal value, shown as the JDK shows an entry.
   */
  @Test
  void theLinkedMapsEntriesCompareKeysByIdentity() {
    AllEqual a = new AllEqual();
    Map<AllEqual, String> map = new LinkedIdentityMap<>();
    map.put(a, "x");
    Map.Entry<AllEqual, String> entry = map.entrySet().iterator().next();
    assertSame(a, entry.getKey());
    // The entry's own equals is asked: a JDK entry would compare the keys with equals.
    assertTrue(entry.equals(new java.util.AbstractMap.SimpleEntry<>(a, new String("x"))));
    assertFalse(entry.equals(new java.util.AbstractMap.SimpleEntry<>(new AllEqual(), "x")));
    assertFalse(entry.equals(new java.util.AbstractMap.SimpleEntry<>(a, "y")));
    assertFalse(entry.equals("x"));
    assertEquals(new java.util.AbstractMap.SimpleEntry<>(a, "x").toString(), entry.toString());
    assertEquals("x", entry.setValue("z"));
    assertEquals("z", map.get(a), "an entry writes through");
  }

  @Test
  void theWeakMapKeepsEqualKeysApartAndForgetsCollectedOnes() throws InterruptedException {
    WeakIdentityMap<AllEqual, String> map = new WeakIdentityMap<>();
    AllEqual kept = new AllEqual();
    map.put(kept, "kept");
    map.put(new AllEqual(), "dropped");
    assertEquals("kept", map.get(kept));
    assertNull(map.get(new AllEqual()), "an equal key that was never put");
    assertEquals("kept", map.computeIfAbsent(kept, k -> "other"));
    for (int i = 0; i < 100 && map.size() > 1; i++) {
      System.gc();
      Thread.sleep(10);
    }
    assertEquals(1, map.size(), "the dropped key's entry went with it");
    assertEquals("kept", map.remove(kept));
    assertNull(map.get(kept));
    assertNull(map.get(null));
  }

  /**
   * Against java.util.IdentityHashMap fed the same calls, with two keys that share an identity hash
   * among them (the weak keys compare the hash first, then the referents): every answer, and the
   * keys as a set by identity.
   */
  @Test
  void theWeakMapAgreesWithAnIdentityHashMapWithKeysOfOneHash() {
    Object[] pair = dev.surgery.core.testing.IdentityHashCollisions.pair();
    List<Object> pool = new java.util.ArrayList<>(List.of(pair[0], pair[1]));
    for (int i = 0; i < 8; i++) {
      pool.add(new AllEqual());
    }
    WeakIdentityMap<Object, Integer> map = new WeakIdentityMap<>();
    Map<Object, Integer> oracle = new java.util.IdentityHashMap<>();
    java.util.Random random = new java.util.Random(9);
    for (int i = 0; i < 5_000; i++) {
      Object key = pool.get(random.nextInt(pool.size()));
      switch (random.nextInt(6)) {
        case 0 -> assertEquals(oracle.put(key, i), map.put(key, i), "put " + i);
        case 1 -> assertEquals(oracle.putIfAbsent(key, i), map.putIfAbsent(key, i), "pia " + i);
        case 2 -> assertEquals(oracle.remove(key), map.remove(key), "remove " + i);
        case 3 -> {
          int value = i;
          List<Object> computed = new java.util.ArrayList<>();
          Integer expected = oracle.computeIfAbsent(key, k -> value);
          Integer actual =
              map.computeIfAbsent(
                  key,
                  k -> {
                    computed.add(k);
                    return value;
                  });
          assertEquals(expected, actual, "computeIfAbsent " + i);
          assertEquals(expected == value ? List.of(key) : List.of(), computed, "computed " + i);
        }
        case 4 -> assertNull(map.computeIfAbsent(new Object(), k -> null), "null enters nothing");
        default -> {
          assertEquals(oracle.containsKey(key), map.containsKey(key), "containsKey " + i);
          assertEquals(oracle.get(key), map.get(key), "get " + i);
        }
      }
      assertEquals(oracle.size(), map.size(), "size " + i);
      java.util.Set<Object> keys =
          java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
      keys.addAll(map.keys());
      assertEquals(oracle.keySet(), keys, "keys " + i);
      assertEquals(oracle.size(), map.keys().size());
    }
    assertEquals(false, map.containsKey(null));
    assertNull(map.remove(null));
  }

  /**
   * A key whose reference the JVM queued leaves the map at the next call of any kind; a map that
   * keeps collected values hands its value to the next drain (once), another forgets it.
   */
  @Test
  void aQueuedKeyLeavesAtTheNextCallAndOnlyAKeepingMapHandsItsValueOn() throws Exception {
    for (boolean keeping : new boolean[] {true, false}) {
      WeakIdentityMap<Object, String> map =
          keeping ? WeakIdentityMap.keepingCollected() : new WeakIdentityMap<>();
      Object kept = new Object();
      Object dropped = new Object();
      map.put(kept, "kept");
      map.put(dropped, "dropped");
      referenceOf(map, dropped)
          .enqueue(); // cleared and queued, as the collector and its handler do
      assertEquals(1, map.size(), "keeping " + keeping);
      assertEquals(List.of("kept"), List.copyOf(entriesOf(map).values()));
      assertEquals(keeping ? List.of("dropped") : List.of(), map.drainCollected());
      List<String> none = map.drainCollected();
      assertEquals(List.of(), none, "drained once");
      // The list is the caller's: the trainer registry filters and sorts what it drains.
      none.add("the caller's own");
      assertEquals(List.of(), map.drainCollected());
      assertEquals("kept", map.get(kept));
    }
  }

  /**
   * A null key is refused by computeIfAbsent as by put: entered, it would be a weak reference to
   * nothing, which no look-up finds and the collector never queues (an entry left for good in the
   * trainer module's static maps, and a fresh value at each call).
   */
  @Test
  void theWeakMapRefusesANullKeyToComputeIfAbsentAsToPut() {
    WeakIdentityMap<Object, String> map = WeakIdentityMap.keepingCollected();
    List<Object> computed = new java.util.ArrayList<>();
    assertThrows(
        NullPointerException.class,
        () ->
            map.computeIfAbsent(
                null,
                k -> {
                  computed.add("called");
                  return "value";
                }));
    assertThrows(NullPointerException.class, () -> map.put(null, "value"));
    assertThrows(NullPointerException.class, () -> map.putIfAbsent(null, "value"));
    assertEquals(List.of(), computed);
    assertEquals(0, map.size());
    assertEquals(List.of(), map.drainCollected(), "no value handed on as if collected");
  }

  /**
   * The collector clears a weak key at once, and the JVM's reference handler thread queues it some
   * time later: a listener whose next trainer started in between did not end the collected trainer
   * (its test failed once in a full run). A key cleared but not yet queued is drained too: clearing
   * it by hand (which queues nothing) is that moment, held still.
   */
  @Test
  void aKeyClearedButNotYetQueuedIsDrained() throws Exception {
    WeakIdentityMap<Object, String> map = WeakIdentityMap.keepingCollected();
    Object kept = new Object();
    Object dropped = new Object();
    map.put(kept, "kept");
    map.put(dropped, "dropped");
    referenceOf(map, dropped).clear();
    assertEquals(List.of("dropped"), map.drainCollected());
    assertEquals(List.of(), map.drainCollected(), "drained once");
    assertEquals("kept", map.get(kept));
    assertEquals(1, map.size());
  }

  /** A map's entries as it holds them: weak references to the keys, and the values. */
  private static Map<?, ?> entriesOf(WeakIdentityMap<?, ?> map)
      throws ReflectiveOperationException {
    java.lang.reflect.Field entries = WeakIdentityMap.class.getDeclaredField("entries");
    entries.setAccessible(true);
    return (Map<?, ?>) entries.get(map);
  }

  /** The weak reference a map holds for a key. */
  private static java.lang.ref.Reference<?> referenceOf(WeakIdentityMap<?, ?> map, Object key)
      throws ReflectiveOperationException {
    for (Object k : entriesOf(map).keySet()) {
      java.lang.ref.Reference<?> reference = (java.lang.ref.Reference<?>) k;
      if (reference.get() == key) {
        return reference;
      }
    }
    throw new AssertionError("the map holds no reference to the key");
  }
}
