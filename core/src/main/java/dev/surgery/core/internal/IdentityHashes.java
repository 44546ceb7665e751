package dev.surgery.core.internal;

import java.lang.reflect.Field;

/**
 * Tells, without computing it, whether an object's identity hash was ever computed: an object whose
 * hash never was cannot be a key of any identity table, so a surgery need not probe its table for a
 * new replacement (a cache miss per replacement on a large tree). HotSpot keeps the hash in the
 * object's header, where {@code sun.misc.Unsafe} reads it.
 *
 * <p>Used only where checked: at class initialization, fresh objects must show no hash and then
 * exactly the hash {@link System#identityHashCode} returns, in HotSpot's layout of JDK 17 to 22;
 * else (another JVM, another layout, biased locking switched on, {@code Unsafe} unavailable, or a
 * JDK from 23 on, which may warn on its use) {@link #neverComputed} always answers false and
 * callers probe as before. An answer of true is safe whatever other threads do: a header that is
 * locked or biased answers false, and a computed hash never leaves an unlocked header.
 */
public final class IdentityHashes {

  private static final java.lang.invoke.MethodHandle GET_LONG;
  private static final boolean USABLE;

  /** Unlocked and not biased: the low three bits of the mark word. */
  private static final long UNLOCKED = 0b001;

  private static final int HASH_SHIFT = 8;
  private static final long HASH_MASK = 0x7FFF_FFFFL;

  static {
    java.lang.invoke.MethodHandle getLong = null;
    boolean usable = false;
    // JDK 24 warns at the first use of Unsafe's memory access, and JDK 23 does when started with
    // --sun-misc-unsafe-memory-access=warn: the header is read on 17 to 22 only.
    if (Runtime.version().feature() <= 22) {
      try {
        Class<?> type = Class.forName("sun.misc.Unsafe");
        Field field = type.getDeclaredField("theUnsafe");
        field.setAccessible(true);
        Object unsafe = field.get(null);
        getLong =
            java.lang.invoke.MethodHandles.lookup()
                .findVirtual(
                    type,
                    "getLong",
                    java.lang.invoke.MethodType.methodType(long.class, Object.class, long.class))
                .bindTo(unsafe);
        usable = layoutAsExpected(getLong);
      } catch (Throwable e) { // an absent or closed Unsafe: the plain path
        usable = false;
      }
    }
    GET_LONG = getLong;
    USABLE = usable;
  }

  private IdentityHashes() {}

  /**
   * Whether the check at start-up found the header layout this class reads.
   *
   * @return true when {@link #neverComputed} can answer true
   */
  public static boolean usable() {
    return USABLE;
  }

  /**
   * Tells whether an object's identity hash was never computed, by anyone.
   *
   * @param object an object, or null (which has no header: false)
   * @return true only when its header proves that no identity hash was computed; false when it was,
   *     or when that cannot be read
   */
  public static boolean neverComputed(Object object) {
    // Unsafe does not check for null: reading null's "header" reads address 0 and the JVM dies
    // with SIGSEGV instead of throwing.
    if (!USABLE || object == null) {
      return false;
    }
    long mark;
    try {
      mark = (long) GET_LONG.invokeExact(object, 0L);
    } catch (Throwable e) {
      return false; // unreachable for a plain read
    }
    return unlockedHolding(mark, 0);
  }

  /** Whether a mark word is unlocked, not biased, and holds this identity hash (0: none yet). */
  private static boolean unlockedHolding(long mark, long hash) {
    return (mark & 0b111) == UNLOCKED && ((mark >>> HASH_SHIFT) & HASH_MASK) == hash;
  }

  private static long mark(java.lang.invoke.MethodHandle getLong, Object object) {
    try {
      return (long) getLong.invokeExact(object, 0L);
    } catch (Throwable e) {
      return -1; // unreachable for a plain read; -1 reads as locked
    }
  }

  /** Fresh objects show no hash, then exactly the one computed, where this class reads it. */
  private static boolean layoutAsExpected(java.lang.invoke.MethodHandle getLong) {
    for (int i = 0; i < 256; i++) {
      Object probe = new Object();
      if (!unlockedHolding(mark(getLong, probe), 0)) {
        return false;
      }
      int hash = System.identityHashCode(probe);
      if (!unlockedHolding(mark(getLong, probe), hash)) {
        return false;
      }
    }
    return true;
  }
}
