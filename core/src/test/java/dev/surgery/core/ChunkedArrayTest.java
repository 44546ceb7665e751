package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The chunked array answers as an ArrayList fed the same appends, through every kind of growth. */
class ChunkedArrayTest {

  /**
   * Past the first chunk's doublings (64 to 16k), across whole chunks and into a partial one: every
   * element where it was appended, and no index at or past the size readable, even where a chunk
   * has room left beyond it (a read there would return a stale or empty slot).
   */
  @Test
  void agreesWithAnArrayListAndRefusesIndicesPastTheSize() {
    ChunkedArray array = new ChunkedArray();
    List<Object> oracle = new ArrayList<>();
    int n = 3 * (1 << 14) + 100;
    for (int i = 0; i < n; i++) {
      int size = oracle.size();
      assertThrows(IndexOutOfBoundsException.class, () -> array.get(size), "get(size) at " + size);
      assertThrows(IndexOutOfBoundsException.class, () -> array.get(-1));
      Object element = i % 7 == 0 ? null : new Object(); // nulls are elements too
      array.add(element);
      oracle.add(element);
      assertEquals(oracle.size(), array.size());
      if (Integer.bitCount(i + 1) == 1 || i % 4099 == 0) {
        for (int j = 0; j < oracle.size(); j++) {
          assertSame(oracle.get(j), array.get(j), "element " + j + " of " + oracle.size());
        }
      }
    }
    for (int j = 0; j < n; j++) {
      assertSame(oracle.get(j), array.get(j), "element " + j);
    }
  }
}
