package dev.surgery.core;

/**
 * An identity map for the surgery's one lookup per block: open addressing with keys and values side
 * by side in one array (one cache line per probe), and a table that grows fourfold, so a tree of n
 * blocks is rehashed about n/3 times in all instead of n ({@link java.util.IdentityHashMap}
 * doubles). Each slot's identity hash is kept beside the table, so growing reads two arrays in
 * order instead of the header of every key object (one cache miss per key on a large tree). Not a
 * general collection: no removal, no iteration.
 *
 * @param <V> the value type
 */
final class IdentityIndex<V> {

  private Object[] table; // key at 2i, value at 2i + 1
  private int[] hashes; // identity hash of the key in slot i
  private int size;
  private int shift; // 32 - log2(slots)

  IdentityIndex() {
    table = new Object[2 * 256];
    hashes = new int[256];
    shift = 32 - 8;
  }

  private int slot(int hash) {
    // Fibonacci hashing: the identity hash's high bits after a multiply pick the slot.
    return (hash * 0x9E3779B9) >>> shift;
  }

  /** The slot holding the key, or the empty slot where it would go. */
  private int find(Object key, int hash) {
    int mask = (table.length >> 1) - 1;
    int i = slot(hash);
    for (Object k = table[2 * i]; k != key && k != null; k = table[2 * i]) {
      i = (i + 1) & mask;
    }
    return i;
  }

  /** The value of a key, or null. */
  @SuppressWarnings("unchecked")
  V get(Object key) {
    return (V) table[2 * find(key, System.identityHashCode(key)) + 1];
  }

  /** Maps a key to a value unless it has one; returns the value it had, or null if it had none. */
  @SuppressWarnings("unchecked")
  V putIfAbsent(Object key, V value) {
    int hash = System.identityHashCode(key);
    int i = find(key, hash);
    if (table[2 * i] == key) {
      return (V) table[2 * i + 1];
    }
    table[2 * i] = key;
    table[2 * i + 1] = value;
    hashes[i] = hash;
    if (++size * 2 > table.length >> 1) {
      grow();
    }
    return null;
  }

  /** The number of keys. */
  int size() {
    return size;
  }

  private void grow() {
    Object[] old = table;
    int[] oldHashes = hashes;
    table = new Object[old.length * 4];
    hashes = new int[oldHashes.length * 4];
    shift -= 2;
    int mask = (table.length >> 1) - 1;
    for (int j = 0; j < oldHashes.length; j++) {
      Object key = old[2 * j];
      if (key != null) {
        int hash = oldHashes[j];
        int i = slot(hash);
        while (table[2 * i] != null) {
          i = (i + 1) & mask;
        }
        table[2 * i] = key;
        table[2 * i + 1] = old[2 * j + 1];
        hashes[i] = hash;
      }
    }
  }
}
