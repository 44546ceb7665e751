package dev.surgery.core;

/**
 * An identity map for the surgery's one lookup per block: open addressing with keys and values side
 * by side (one cache line per probe), and a table that grows fourfold, so a tree of n blocks is
 * rehashed about n/3 times in all instead of n ({@link java.util.IdentityHashMap} doubles). Each
 * slot's identity hash is kept beside the table, so growing reads no key object's header (one cache
 * miss per key on a large tree). The table is cut into chunks of {@value #CHUNK} slots: one array
 * for a large tree would be a humongous object, allocated outside the young generation, and under
 * G1 every store of a young node into it takes the write barrier's slow path (about a third of the
 * surgery's time on a tree of 200,000 blocks). Not a general collection: no removal, no iteration.
 *
 * @param <V> the value type
 */
final class IdentityIndex<V> {

  private static final int CHUNK_BITS = 14;
  private static final int CHUNK = 1 << CHUNK_BITS;
  private static final int CHUNK_MASK = CHUNK - 1;

  private Object[][] table; // per chunk: key at 2j, value at 2j + 1
  private int[][] hashes; // per chunk: identity hash of the key in slot j
  private int size;
  private int mask; // slots - 1
  private int shift; // 32 - log2(slots)

  IdentityIndex() {
    allocate(256);
    shift = 32 - 8;
  }

  private void allocate(int slots) {
    int chunkSlots = Math.min(slots, CHUNK);
    int chunks = slots / chunkSlots;
    table = new Object[chunks][2 * chunkSlots];
    hashes = new int[chunks][chunkSlots];
    mask = slots - 1;
  }

  private int slot(int hash) {
    // Fibonacci hashing: the identity hash's high bits after a multiply pick the slot.
    return (hash * 0x9E3779B9) >>> shift;
  }

  /** The slot holding the key, or the empty slot where it would go. */
  private int find(Object key, int hash) {
    int i = slot(hash);
    while (true) {
      Object k = table[i >>> CHUNK_BITS][2 * (i & CHUNK_MASK)];
      if (k == key || k == null) {
        return i;
      }
      i = (i + 1) & mask;
    }
  }

  /** The value of a key, or null. */
  @SuppressWarnings("unchecked")
  V get(Object key) {
    int i = find(key, System.identityHashCode(key));
    return (V) table[i >>> CHUNK_BITS][2 * (i & CHUNK_MASK) + 1];
  }

  /** Maps a key to a value unless it has one; returns the value it had, or null if it had none. */
  @SuppressWarnings("unchecked")
  V putIfAbsent(Object key, V value) {
    int hash = System.identityHashCode(key);
    int i = find(key, hash);
    Object[] chunk = table[i >>> CHUNK_BITS];
    int j = i & CHUNK_MASK;
    if (chunk[2 * j] == key) {
      return (V) chunk[2 * j + 1];
    }
    chunk[2 * j] = key;
    chunk[2 * j + 1] = value;
    hashes[i >>> CHUNK_BITS][j] = hash;
    if (++size * 2 > mask + 1) {
      grow();
    }
    return null;
  }

  /** The number of keys. */
  int size() {
    return size;
  }

  private void grow() {
    Object[][] oldTable = table;
    int[][] oldHashes = hashes;
    allocate(4 * (mask + 1));
    shift -= 2;
    for (int c = 0; c < oldTable.length; c++) {
      Object[] oldChunk = oldTable[c];
      int[] oldChunkHashes = oldHashes[c];
      for (int j = 0; j < oldChunkHashes.length; j++) {
        Object key = oldChunk[2 * j];
        if (key != null) {
          int hash = oldChunkHashes[j];
          int i = slot(hash);
          while (table[i >>> CHUNK_BITS][2 * (i & CHUNK_MASK)] != null) {
            i = (i + 1) & mask;
          }
          Object[] chunk = table[i >>> CHUNK_BITS];
          chunk[2 * (i & CHUNK_MASK)] = key;
          chunk[2 * (i & CHUNK_MASK) + 1] = oldChunk[2 * j + 1];
          hashes[i >>> CHUNK_BITS][i & CHUNK_MASK] = hash;
        }
      }
    }
  }
}
