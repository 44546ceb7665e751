package dev.surgery.core.testing;

import java.util.HashMap;
import java.util.Map;

/**
 * Distinct objects with the same identity hash, for the identity tables whose probes compare the
 * stored hash first and the object only when the hashes agree. Identity hashes have 31 bits, so a
 * few tens of thousands of fresh objects hold such a pair (the birthday bound): it is found, not
 * assumed.
 */
public final class IdentityHashCollisions {

  private IdentityHashCollisions() {}

  /**
   * Returns two distinct objects whose identity hashes are equal.
   *
   * @return the pair
   */
  public static Object[] pair() {
    Map<Integer, Object> seen = new HashMap<>();
    for (int i = 0; i < 10_000_000; i++) {
      Object o = new Object();
      Object before = seen.putIfAbsent(System.identityHashCode(o), o);
      if (before != null) {
        return new Object[] {before, o};
      }
    }
    throw new AssertionError("no two of ten million objects share an identity hash");
  }
}
