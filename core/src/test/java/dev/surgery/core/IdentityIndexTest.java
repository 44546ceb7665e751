package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.surgery.core.internal.IdentityHashes;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
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
      // The index first: the oracle computes the key's identity hash, after which putNew would
      // find the key hashed and take the probing path.
      Object actual =
          random.nextBoolean() ? index.putNew(key, value) : index.putIfAbsent(key, value);
      Object expected = oracle.putIfAbsent(key, value);
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

  /**
   * A key entered by {@code putNew} waits in a list until the next operation: a look-up, the size
   * and a second entry of the same key (through either path) must see it all the same, as
   * java.util.IdentityHashMap fed the same calls does.
   */
  @Test
  void aPendingKeyIsFoundCountedAndKeepsItsFirstValue() {
    IdentityIndex<Object> index = new IdentityIndex<>();
    java.util.Map<Object, Object> oracle = new java.util.IdentityHashMap<>();
    // Each call on the index comes before the oracle's, which computes the key's identity hash.
    Object first = new Object();
    Object firstValue = new Object();
    assertNull(index.putNew(first, firstValue));
    oracle.put(first, firstValue);
    assertEquals(oracle.size(), index.size(), "counted while pending");
    assertSame(firstValue, index.get(first), "found while pending");
    Object second = new Object();
    Object secondValue = new Object();
    assertNull(index.putNew(second, secondValue));
    oracle.put(second, secondValue);
    assertSame(secondValue, index.putIfAbsent(second, new Object()), "the first value stays");
    Object third = new Object();
    Object thirdValue = new Object();
    assertNull(index.putNew(third, thirdValue));
    oracle.put(third, thirdValue);
    assertSame(thirdValue, index.putNew(third, new Object()), "met again, it is looked up");
    assertEquals(oracle.size(), index.size());
    for (Object key : oracle.keySet()) {
      assertSame(oracle.get(key), index.get(key));
    }
  }

  /**
   * Any sequence of calls over a pool of keys (each made at its first use, so that {@code putNew}
   * meets keys never hashed, and met again later) answers as java.util.IdentityHashMap fed the same
   * calls: entries through either path, look-ups, sizes and entering the pending keys, past the
   * table's first growths. An op is {@code 4 * key + kind}; jqwik shrinks a failing sequence.
   */
  @Property(tries = 200)
  void anySequenceOfCallsAnswersAsAnIdentityHashMap(
      @ForAll @Size(max = 1500) List<@IntRange(min = 0, max = 4 * 500 - 1) Integer> ops) {
    IdentityIndex<Object> index = new IdentityIndex<>();
    java.util.Map<Object, Object> oracle = new java.util.IdentityHashMap<>();
    Object[] pool = new Object[500];
    for (int i = 0; i < ops.size(); i++) {
      int k = ops.get(i) / 4;
      if (pool[k] == null) {
        pool[k] = new Object();
      }
      Object key = pool[k];
      Integer value = i;
      // The index before the oracle, which computes the key's identity hash.
      switch (ops.get(i) % 4) {
        case 0 -> {
          Object had = index.putNew(key, value);
          assertSame(oracle.putIfAbsent(key, value), had, "new " + i);
        }
        case 1 -> {
          Object had = index.putIfAbsent(key, value);
          assertSame(oracle.putIfAbsent(key, value), had, "put " + i);
        }
        case 2 -> {
          Object found = index.get(key);
          assertSame(oracle.get(key), found, "get " + i);
        }
        default -> {
          assertEquals(oracle.size(), index.size(), "size " + i);
          index.enterPending();
        }
      }
    }
    assertEquals(oracle.size(), index.size());
    for (Object key : pool) {
      if (key != null) {
        assertSame(oracle.get(key), index.get(key));
      }
    }
  }

  /**
   * A key whose identity hash is 0 (null's; the JVM spec promises no object's is not) is a key like
   * any other, entered first (position 0) or later: its slot must not read as empty.
   */
  @Test
  void aKeyWithIdentityHashZeroIsKeptEvenInTheFirstPosition() {
    for (int before : new int[] {0, 1, 300}) {
      IdentityIndex<Object> index = new IdentityIndex<>();
      java.util.Map<Object, Object> oracle = new java.util.IdentityHashMap<>();
      for (int i = 0; i < before; i++) {
        Object key = new Object();
        assertSame(oracle.putIfAbsent(key, i), index.putIfAbsent(key, i));
      }
      assertSame(oracle.putIfAbsent(null, "first"), index.putIfAbsent(null, "first"));
      assertSame(oracle.putIfAbsent(null, "again"), index.putIfAbsent(null, "again"), "" + before);
      assertSame(oracle.get(null), index.get(null), before + " before");
      assertEquals(oracle.size(), index.size(), before + " before");
    }
  }

  /**
   * null has no header to read: asking whether its hash was computed answers false (a read of
   * address 0 would kill the JVM with SIGSEGV, no exception), and {@code putNew(null)} is a {@code
   * putIfAbsent(null)}, as an {@link java.util.IdentityHashMap} fed the same calls answers.
   */
  @Test
  void nullIsAskedAboutWithoutReadingAHeader() {
    org.junit.jupiter.api.Assertions.assertFalse(
        dev.surgery.core.internal.IdentityHashes.neverComputed(null));
    IdentityIndex<Object> index = new IdentityIndex<>();
    java.util.Map<Object, Object> oracle = new java.util.IdentityHashMap<>();
    Object key = new Object();
    assertSame(oracle.putIfAbsent(key, "key"), index.putNew(key, "key"));
    assertSame(oracle.putIfAbsent(null, "first"), index.putNew(null, "first"));
    assertSame(oracle.putIfAbsent(null, "again"), index.putNew(null, "again"));
    assertSame(oracle.get(null), index.get(null));
    assertSame(oracle.get(key), index.get(key));
    assertEquals(oracle.size(), index.size());
  }

  /**
   * Two distinct keys with the same identity hash share the stored hash, so only the key comparison
   * tells them apart: before, after and across several growths of the table.
   */
  @Test
  void tellsApartKeysWithTheSameIdentityHashAcrossGrowth() {
    Object[] pair = dev.surgery.core.testing.IdentityHashCollisions.pair();
    IdentityIndex<Object> index = new IdentityIndex<>();
    assertNull(index.putIfAbsent(pair[0], "first"));
    assertNull(index.get(pair[1]), "its twin was never entered");
    List<Object> others = new ArrayList<>();
    for (int i = 0; i < 5_000; i++) { // 256 slots grown fourfold three times
      Object key = new Object();
      others.add(key);
      assertNull(index.putIfAbsent(key, i));
    }
    assertNull(index.get(pair[1]), "still not entered after growth");
    assertNull(index.putIfAbsent(pair[1], "second"));
    assertEquals("first", index.putIfAbsent(pair[0], "again"));
    assertEquals("second", index.putIfAbsent(pair[1], "again"));
    for (int i = 0; i < others.size(); i++) {
      assertEquals(i, index.get(others.get(i)));
    }
    assertEquals(others.size() + 2, index.size());
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
