package dev.surgery.core;

import java.util.Arrays;

/**
 * An identity map for the surgery's one lookup per block. Keys and values are appended to arrays in
 * the order they are entered; the hash table holds, per slot, one {@code long}: the key's identity
 * hash and its position in those arrays. A probe thus reads one primitive slot and touches a key
 * only when the hashes agree, and entering a new key writes the slot the probe just read plus the
 * next place of the appended arrays, which is in cache: one cache miss per new key on a large tree
 * where a table of key and value references costs two. Growing (fourfold, so a tree of n blocks is
 * rehashed about n/3 times in all) rewrites the primitive table from the stored hashes and reads no
 * key. Neither structure is a humongous array of references: the appended arrays are cut into
 * chunks of {@value #CHUNK} (under G1, storing young nodes into a humongous reference array takes
 * the write barrier's slow path), and the table holds no references. Not a general collection: no
 * removal, no iteration.
 *
 * @param <V> the value type
 */
final class IdentityIndex<V> {

  private static final int CHUNK_BITS = 14;
  private static final int CHUNK = 1 << CHUNK_BITS;
  private static final int CHUNK_MASK = CHUNK - 1;
  private static final long POSITION_MASK = 0xFFFF_FFFFL;

  /** Per slot: 0 when empty, else the key's identity hash (never 0) above its position. */
  private long[] slots;

  private Object[][] keys = new Object[1][];
  private Object[][] values = new Object[1][];
  private int size;
  private int mask; // slots - 1
  private int shift; // 32 - log2(slots)

  IdentityIndex() {
    slots = new long[256];
    mask = 255;
    shift = 32 - 8;
  }

  private int slot(int hash) {
    // Fibonacci hashing: the identity hash's high bits after a multiply pick the slot.
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
        int position = (int) (s & POSITION_MASK);
        if (keys[position >>> CHUNK_BITS][position & CHUNK_MASK] == key) {
          return position;
        }
      }
      i = (i + 1) & mask;
    }
  }

  /** The value of a key, or null. */
  @SuppressWarnings("unchecked")
  V get(Object key) {
    int position = find(key, System.identityHashCode(key));
    return position < 0 ? null : (V) values[position >>> CHUNK_BITS][position & CHUNK_MASK];
  }

  /** Maps a key to a value unless it has one; returns the value it had, or null if it had none. */
  @SuppressWarnings("unchecked")
  V putIfAbsent(Object key, V value) {
    int hash = System.identityHashCode(key);
    int found = find(key, hash);
    if (found >= 0) {
      return (V) values[found >>> CHUNK_BITS][found & CHUNK_MASK];
    }
    int position = size;
    int chunk = position >>> CHUNK_BITS;
    int j = position & CHUNK_MASK;
    Object[] chunkKeys = chunk < keys.length ? keys[chunk] : null;
    if (chunkKeys == null || j == chunkKeys.length) {
      chunkKeys = extend(chunk);
    }
    chunkKeys[j] = key;
    values[chunk][j] = value;
    slots[-1 - found] = ((long) hash << 32) | position;
    if (++size * 2 > mask + 1) {
      grow();
    }
    return null;
  }

  /** The number of keys. */
  int size() {
    return size;
  }

  /** Makes room for the next key in a chunk: a new chunk, or the first one doubled. */
  private Object[] extend(int chunk) {
    if (chunk == keys.length) {
      keys = Arrays.copyOf(keys, 2 * chunk);
      values = Arrays.copyOf(values, 2 * chunk);
    }
    if (keys[chunk] == null) {
      // The first chunk starts small and doubles: most surgeries meet a few hundred blocks.
      int length = chunk == 0 ? 64 : CHUNK;
      keys[chunk] = new Object[length];
      values[chunk] = new Object[length];
    } else {
      int length = Math.min(CHUNK, 2 * keys[chunk].length);
      keys[chunk] = Arrays.copyOf(keys[chunk], length);
      values[chunk] = Arrays.copyOf(values[chunk], length);
    }
    return keys[chunk];
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
