package dev.surgery.core;

/**
 * Counts the distinct objects among many added, by identity, where nearly all are met once (the
 * matched leaves of a large tree). An identity set would cost a probe into a table as large as the
 * tree per object, a cache miss each once the table outgrows the caches; here each object's
 * identity hash is read while the caller has the object at hand and appended, and the count sorts
 * them out at the end with two sequential passes over a bit filter of a few hundred kilobytes: an
 * object whose filter bit no other shares is distinct, and only the few that share a bit (a repeat,
 * or a collision of hashes in the filter) are compared by identity. Not a general collection.
 */
final class DistinctCount {

  /** Filter bits per object: about 6 % of objects share a bit with another by chance. */
  private static final int BITS_PER_OBJECT = 16;

  private final ChunkedArray objects = new ChunkedArray();
  private int[] hashes = new int[64];
  private int size;

  /** Adds an object; the same object may be added any number of times. */
  void add(Object object) {
    if (size == hashes.length) {
      hashes = java.util.Arrays.copyOf(hashes, 2 * size);
    }
    hashes[size++] = System.identityHashCode(object);
    objects.add(object);
  }

  /** The number of distinct objects added. */
  int distinct() {
    if (size < 2) {
      return size;
    }
    int bits = Integer.highestOneBit(size * BITS_PER_OBJECT - 1) << 1;
    int shift = 32 - Integer.numberOfTrailingZeros(bits);
    long[] once = new long[Math.max(1, bits >>> 6)];
    long[] shared = new long[once.length];
    boolean anyShared = false;
    for (int i = 0; i < size; i++) {
      int bit = IdentityIndex.fibonacci(hashes[i], shift);
      long mask = 1L << bit;
      if ((once[bit >>> 6] & mask) != 0) {
        shared[bit >>> 6] |= mask;
        anyShared = true;
      } else {
        once[bit >>> 6] |= mask;
      }
    }
    if (!anyShared) {
      return size;
    }
    IdentityIndex<Boolean> sharing = new IdentityIndex<>();
    int distinct = 0;
    for (int i = 0; i < size; i++) {
      int bit = IdentityIndex.fibonacci(hashes[i], shift);
      if ((shared[bit >>> 6] & (1L << bit)) == 0
          || sharing.putIfAbsent(objects.get(i), Boolean.TRUE) == null) {
        distinct++;
      }
    }
    return distinct;
  }
}
