package dev.surgery.core;

import dev.surgery.core.internal.IdentityHashes;

/**
 * An identity map for the surgery's one lookup per block. Keys and values are appended to arrays in
 * the order they are entered; the hash table holds, per slot, one {@code long}: the key's identity
 * hash and its position in those arrays. A probe thus reads one primitive slot and touches a key
 * only when the hashes agree, and entering a new key writes the slot the probe just read plus the
 * next place of the appended arrays, which is in cache: one cache miss per new key on a large tree
 * where a table of key and value references costs two. Growing (fourfold, so a tree of n blocks is
 * rehashed about n/3 times in all) rewrites the primitive table from the stored hashes and reads no
 * key. Neither structure is a humongous array of references: keys and values are {@link
 * ChunkedArray}s, and the table holds no references. Not a general collection: no removal, no
 * iteration.
 *
 * @param <V> the value type
 */
final class IdentityIndex<V> {

  private static final long POSITION_MASK = 0xFFFF_FFFFL;

  /**
   * Per slot: 0 when empty, else the key's identity hash above its position plus one, so that no
   * entry reads as empty whatever its hash (null's is 0, and the JVM specification does not rule 0
   * out for an object).
   */
  private long[] slots;

  private final ChunkedArray keys = new ChunkedArray();
  private final ChunkedArray values = new ChunkedArray();
  private int size;

  /**
   * Keys entered by {@link #putNew} without a probe, with their values and hashes, in order: they
   * join the table before any other operation reads it.
   */
  private ChunkedArray pendingKeys;

  private ChunkedArray pendingValues;
  private int[] pendingHashes;
  private int pending;
  private int mask; // slots - 1
  private int shift; // 32 - log2(slots)

  IdentityIndex() {
    slots = new long[256];
    mask = 255;
    shift = 32 - 8;
  }

  private int slot(int hash) {
    return fibonacci(hash, shift);
  }

  /**
   * Fibonacci hashing: the top {@code 32 - shift} bits of the hash times the golden ratio, which
   * spreads identity hashes (often close together) over a power-of-two table.
   */
  static int fibonacci(int hash, int shift) {
    return (hash * 0x9E3779B9) >>> shift;
  }

  /** The key's position, or {@code -1 - slot} of the empty slot where it would go. */
  private int find(Object key, int hash) {
    int i = slot(hash);
    while (true) {
      long s = slots[i];
      if (s == 0) {
        return -1 - i;
      }
      if ((int) (s >>> 32) == hash) {
        int position = (int) (s & POSITION_MASK) - 1;
        if (keys.get(position) == key) {
          return position;
        }
      }
      i = (i + 1) & mask;
    }
  }

  /** The value of a key, or null. */
  @SuppressWarnings("unchecked")
  V get(Object key) {
    enterPending();
    int position = find(key, System.identityHashCode(key));
    return position < 0 ? null : (V) values.get(position);
  }

  /** Maps a key to a value unless it has one; returns the value it had, or null if it had none. */
  V putIfAbsent(Object key, V value) {
    enterPending();
    return putIfAbsent(key, System.identityHashCode(key), value);
  }

  @SuppressWarnings("unchecked")
  private V putIfAbsent(Object key, int hash, V value) {
    int found = find(key, hash);
    if (found >= 0) {
      return (V) values.get(found);
    }
    int position = size;
    keys.add(key);
    values.add(value);
    slots[-1 - found] = ((long) hash << 32) | (position + 1);
    if (++size * 2 > mask + 1) {
      grow();
    }
    return null;
  }

  /**
   * {@link #putIfAbsent} for a key that is likely new to the JVM (a replacement a function has just
   * built). A key whose identity hash no one ever computed cannot be in the table, so it is not
   * probed for (on a large tree the probe is a cache miss): its hash is computed, which marks it as
   * met should it come again, and it joins the table before any later look-up.
   */
  V putNew(Object key, V value) {
    if (!IdentityHashes.neverComputed(key)) {
      return putIfAbsent(key, value);
    }
    // Computing the hash stores it in the header: met again, the key is looked up.
    int hash = System.identityHashCode(key);
    if (pendingKeys == null) {
      pendingKeys = new ChunkedArray();
      pendingValues = new ChunkedArray();
      pendingHashes = new int[64];
    }
    if (pending == pendingHashes.length) {
      pendingHashes = java.util.Arrays.copyOf(pendingHashes, 2 * pending);
    }
    pendingKeys.add(key);
    pendingValues.add(value);
    pendingHashes[pending++] = hash;
    return null;
  }

  /**
   * Enters every key {@link #putNew} appended, in order, and lets the lists go. Called by every
   * other operation; the surgery calls it before it hands its result out, so that the index is only
   * read from then on (by the returned map, possibly from several threads).
   */
  void enterPending() {
    enterPending(value -> true);
  }

  /**
   * Enters the keys {@link #putNew} appended whose value is {@code wanted} and forgets the others:
   * for a caller that, from now on, looks up only the wanted ones (a forgotten key is then absent,
   * as if never entered). On a large tree this saves a probe per replacement that nobody will ask
   * for.
   *
   * @param wanted which pending values to keep
   */
  @SuppressWarnings("unchecked")
  void enterPending(java.util.function.Predicate<? super V> wanted) {
    if (pending == 0) {
      return;
    }
    ChunkedArray newKeys = pendingKeys;
    ChunkedArray newValues = pendingValues;
    int[] hashes = pendingHashes;
    int count = pending;
    pendingKeys = null;
    pendingValues = null;
    pendingHashes = null;
    pending = 0;
    for (int i = 0; i < count; i++) {
      V value = (V) newValues.get(i);
      if (wanted.test(value)) {
        putIfAbsent(newKeys.get(i), hashes[i], value);
      }
    }
  }

  /** The number of keys. */
  int size() {
    return size + pending;
  }

  private void grow() {
    long[] old = slots;
    slots = new long[4 * old.length];
    mask = slots.length - 1;
    shift -= 2;
    for (long s : old) {
      if (s != 0) {
        int i = slot((int) (s >>> 32));
        while (slots[i] != 0) {
          i = (i + 1) & mask;
        }
        slots[i] = s;
      }
    }
  }
}
