package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.surgery.core.internal.IdentityHashes;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The surgery's identity map, against what identity means: equal but distinct keys differ. */
class IdentityIndexTest {

  @Test
  void keepsEveryKeyThroughGrowthAndTellsEqualKeysApart() {
    IdentityIndex<Integer> index = new IdentityIndex<>();
    List<String> keys = new ArrayList<>();
    for (int i = 0; i < 20_000; i++) {
      keys.add(new String("k" + (i % 100))); // many equal, all distinct objects
    }
    for (int i = 0; i < keys.size(); i++) {
      assertNull(index.putIfAbsent(keys.get(i), i));
    }
    assertEquals(keys.size(), index.size());
    for (int i = 0; i < keys.size(); i++) {
      assertEquals(i, index.get(keys.get(i)));
      assertEquals(i, index.putIfAbsent(keys.get(i), -1), "the first value stays");
    }
    assertNull(index.get(new String("k1")));
    assertEquals(keys.size(), index.size());
    Object value = new Object();
    IdentityIndex<Object> small = new IdentityIndex<>();
    small.putIfAbsent("x", value);
    assertSame(value, small.get("x"));
  }

  /**
   * Past the first chunk of keys (about 17 chunks of 16k for 270,000 distinct keys, the slot table
   * grown to a million slots), every answer is java.util.IdentityHashMap's, including for keys
   * never entered and keys entered twice.
   */
  @Test
  void agreesWithIdentityHashMapAcrossManyChunks() {
    IdentityIndex<Object> index = new IdentityIndex<>();
    java.util.Map<Object, Object> oracle = new java.util.IdentityHashMap<>();
    java.util.Random random = new java.util.Random(5);
    List<Object> keys = new ArrayList<>();
    for (int i = 0; i < 300_000; i++) {
      Object key =
          random.nextInt(10) == 0 && !keys.isEmpty()
              ? keys.get(random.nextInt(keys.size())) // entered again
              : new Object();
      keys.add(key);
      Object value = new Object();
      assertSame(oracle.putIfAbsent(key, value), index.putIfAbsent(key, value), "put " + i);
      if (i % 1000 == 0) {
        assertNull(index.get(new Object()), "a key never entered");
      }
    }
    assertEquals(oracle.size(), index.size());
    for (Object key : keys) {
      assertSame(oracle.get(key), index.get(key));
    }
  }

  /**
   * {@code putNew} (no probe for a key whose identity hash was never computed) against
   * java.util.IdentityHashMap, mixed with the other operations: new objects, objects entered before
   * through either path, objects hashed elsewhere first (a HashSet), and look-ups of keys still
   * pending.
   */
  @Test
  void putNewAgreesWithIdentityHashMapWhateverTheKeysHistory() {
    IdentityIndex<Object> index = new IdentityIndex<>();
    java.util.Map<Object, Object> oracle = new java.util.IdentityHashMap<>();
    java.util.Set<Object> hashedElsewhere = new java.util.HashSet<>();
    java.util.Random random = new java.util.Random(8);
    List<Object> keys = new ArrayList<>();
    for (int i = 0; i < 200_000; i++) {
      int kind = random.nextInt(10);
      Object key;
      if (kind < 6 || keys.isEmpty()) {
        key = new Object(); // never hashed
      } else if (kind < 8) {
        key = keys.get(random.nextInt(keys.size())); // met before, through either path
      } else {
        key = new Object();
        hashedElsewhere.add(key); // hashed by someone else first
      }
      keys.add(key);
      Object value = new Object();
      Object expected = oracle.putIfAbsent(key, value);
      Object actual =
          random.nextBoolean() ? index.putNew(key, value) : index.putIfAbsent(key, value);
      assertSame(expected, actual, "put " + i);
      if (i % 997 == 0) {
        Object asked = keys.get(random.nextInt(keys.size()));
        assertSame(oracle.get(asked), index.get(asked), "get " + i);
        assertEquals(oracle.size(), index.size(), "size " + i);
      }
    }
    assertEquals(oracle.size(), index.size());
    for (Object key : keys) {
      assertSame(oracle.get(key), index.get(key));
    }
  }

  /**
   * Entering only the wanted pending keys: those are found afterwards, the others are absent (as if
   * never entered), keys entered earlier stay, and the index keeps working for new keys.
   */
  @Test
  void enteringOnlyTheWantedPendingKeysForgetsTheOthers() {
    IdentityIndex<Integer> index = new IdentityIndex<>();
    List<Object> entered = new ArrayList<>();
    for (int i = 0; i < 1000; i++) {
      Object key = new Object();
      entered.add(key);
      assertNull(index.putIfAbsent(key, -1 - i));
    }
    List<Object> pending = new ArrayList<>();
    for (int i = 0; i < 5000; i++) {
      Object key = new Object();
      pending.add(key);
      assertNull(index.putNew(key, i));
    }
    index.enterPending(value -> value % 3 == 0);
    for (int i = 0; i < pending.size(); i++) {
      Integer found = index.get(pending.get(i));
      if (i % 3 == 0) {
        assertEquals(i, found, "wanted " + i);
      } else if (IdentityHashes.usable()) {
        assertNull(found, "forgotten " + i);
      } else {
        // Without the object header's word (a JVM other than HotSpot 17 to 22) every key is
        // entered at once, as putIfAbsent would: harmless to a caller that asks for wanted keys.
        assertEquals(i, found, "entered at once " + i);
      }
    }
    for (int i = 0; i < entered.size(); i++) {
      assertEquals(-1 - i, index.get(entered.get(i)), "entered before " + i);
    }
    assertEquals(IdentityHashes.usable() ? 1000 + 1667 : 1000 + 5000, index.size());
    if (IdentityHashes.usable()) {
      Object forgotten = pending.get(1);
      assertNull(index.putIfAbsent(forgotten, 7), "a forgotten key can be entered again");
      assertEquals(7, index.get(forgotten));
    }
  }

  /** The header check the fast path rests on answers as the JVM does, where it is usable. */
  @Test
  void aComputedIdentityHashIsNeverMissed() {
    for (int i = 0; i < 10_000; i++) {
      Object o = new Object();
      System.identityHashCode(o);
      org.junit.jupiter.api.Assertions.assertFalse(
          dev.surgery.core.internal.IdentityHashes.neverComputed(o), "hashed object " + i);
      Object locked = new Object();
      synchronized (locked) {
        org.junit.jupiter.api.Assertions.assertFalse(
            dev.surgery.core.internal.IdentityHashes.neverComputed(locked), "a locked header");
      }
    }
    // A hash computed while the header is locked (thin, then inflated by a wait) is not missed
    // once the lock is gone either.
    for (int i = 0; i < 100; i++) {
      Object thin = new Object();
      synchronized (thin) {
        System.identityHashCode(thin);
      }
      org.junit.jupiter.api.Assertions.assertFalse(
          dev.surgery.core.internal.IdentityHashes.neverComputed(thin), "hashed while locked");
      Object inflated = new Object();
      synchronized (inflated) {
        try {
          inflated.wait(1);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        System.identityHashCode(inflated);
      }
      org.junit.jupiter.api.Assertions.assertFalse(
          dev.surgery.core.internal.IdentityHashes.neverComputed(inflated), "hashed in a monitor");
    }
    // Where the fast path is meant to work (HotSpot, JDK 17 to 22), it must: else the index
    // would quietly probe for every replacement again.
    boolean hotSpot = System.getProperty("java.vm.name", "").contains("64-Bit Server VM");
    if (hotSpot && Runtime.version().feature() <= 22) {
      org.junit.jupiter.api.Assertions.assertTrue(
          dev.surgery.core.internal.IdentityHashes.usable());
    }
    if (dev.surgery.core.internal.IdentityHashes.usable()) {
      org.junit.jupiter.api.Assertions.assertTrue(
          dev.surgery.core.internal.IdentityHashes.neverComputed(new Object()));
    }
  }
}
