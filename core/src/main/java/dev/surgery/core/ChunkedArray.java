package dev.surgery.core;

import java.util.Arrays;

/**
 * An append-only array of references cut into chunks of {@value #CHUNK}, for the surgery's records
 * that grow with the tree ({@link IdentityIndex}'s keys and values, {@link PassedEdges}). Chunks
 * rather than one array: appending never copies what is there beyond the small first chunk, and no
 * array is so large that G1 makes it humongous (a store of a young object into a humongous array
 * takes the write barrier's slow path). The first chunk starts small and doubles, as most surgeries
 * record a few hundred elements.
 */
final class ChunkedArray {

  private static final int CHUNK_BITS = 14;
  private static final int CHUNK = 1 << CHUNK_BITS;
  private static final int CHUNK_MASK = CHUNK - 1;
  private static final int FIRST_LENGTH = 64;

  private Object[][] chunks = new Object[1][];
  private int size;

  /** Appends an element; its index is the size before the call. */
  void add(Object element) {
    int chunk = size >>> CHUNK_BITS;
    int at = size & CHUNK_MASK;
    Object[] elements = chunk < chunks.length ? chunks[chunk] : null;
    if (elements == null || at == elements.length) {
      elements = extend(chunk);
    }
    elements[at] = element;
    size++;
  }

  /** The element at an index. */
  Object get(int index) {
    if (index < 0 || index >= size) {
      throw new IndexOutOfBoundsException(index);
    }
    return chunks[index >>> CHUNK_BITS][index & CHUNK_MASK];
  }

  /** The number of elements. */
  int size() {
    return size;
  }

  /** Makes room for the next element in a chunk: a new chunk, or the first one doubled. */
  private Object[] extend(int chunk) {
    if (chunk == chunks.length) {
      chunks = Arrays.copyOf(chunks, 2 * chunk);
    }
    Object[] elements = chunks[chunk];
    chunks[chunk] =
        elements == null
            ? new Object[chunk == 0 ? FIRST_LENGTH : CHUNK]
            : Arrays.copyOf(elements, Math.min(CHUNK, 2 * elements.length));
    return chunks[chunk];
  }
}
