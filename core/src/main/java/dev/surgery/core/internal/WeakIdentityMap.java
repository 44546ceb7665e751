package dev.surgery.core.internal;

import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * A thread-safe map from objects, compared by identity and held weakly, to values (each method
 * holds the map's monitor, which a caller may hold around several calls): {@link
 * java.util.WeakHashMap} with the key comparison of {@link java.util.IdentityHashMap}. Models and
 * blocks are keyed by identity: a user's block class may override {@code equals}, and two equal
 * blocks of two models must not share what is noted of one (its surgery record, its frozen
 * parameters). An entry goes when its key is collected.
 *
 * @param <K> the key type
 * @param <V> the value type (held strongly: it must not refer to its key)
 */
public final class WeakIdentityMap<K, V> {

  private final Map<Key<K>, V> entries = new HashMap<>();
  private final ReferenceQueue<K> collected = new ReferenceQueue<>();

  /** The values of collected keys not drained yet; null when the map does not keep them. */
  private final List<V> dropped;

  /** Creates an empty map. */
  public WeakIdentityMap() {
    this.dropped = null;
  }

  private WeakIdentityMap(boolean keepDropped) {
    this.dropped = keepDropped ? new ArrayList<>() : null;
  }

  /**
   * Creates an empty map that keeps the value of each entry whose key was collected until {@link
   * #drainCollected} takes it: for an owner that must act on what was dropped (list it, let go of
   * what else it holds for it).
   *
   * @param <K> the key type
   * @param <V> the value type
   * @return the map
   */
  public static <K, V> WeakIdentityMap<K, V> keepingCollected() {
    return new WeakIdentityMap<>(true);
  }

  /**
   * Takes the values of the entries whose keys were collected since the last call (only a map made
   * by {@link #keepingCollected} keeps them; another answers an empty list). A key the collector
   * cleared counts even before the JVM's reference handler thread queued it: that thread runs
   * later, and a caller that saw the key gone (a weak reference of its own cleared) must find its
   * entry drained.
   *
   * @return the values, in no particular order
   */
  public synchronized List<V> drainCollected() {
    expunge();
    if (dropped != null) {
      // One look at each entry: the maps that keep collected values are small (live trainers).
      for (Iterator<Map.Entry<Key<K>, V>> it = entries.entrySet().iterator(); it.hasNext(); ) {
        Map.Entry<Key<K>, V> e = it.next();
        if (e.getKey().get() == null) {
          it.remove(); // the queue's later copy of this key finds nothing to remove
          if (e.getValue() != null) {
            dropped.add(e.getValue());
          }
        }
      }
    }
    if (dropped == null || dropped.isEmpty()) {
      return new ArrayList<>(0);
    }
    List<V> taken = new ArrayList<>(dropped);
    dropped.clear();
    return taken;
  }

  /**
   * Returns the value for a key.
   *
   * @param key the key, may be null (then null)
   * @return its value, or null
   */
  public synchronized V get(Object key) {
    if (key == null) {
      return null;
    }
    expunge();
    return entries.get(new Lookup(key));
  }

  /**
   * Sets the value for a key.
   *
   * @param key the key, not null
   * @param value the value
   * @return the previous value, or null
   */
  public synchronized V put(K key, V value) {
    java.util.Objects.requireNonNull(key, "key");
    expunge();
    return entries.put(new Key<>(key, collected), value);
  }

  /**
   * Removes a key.
   *
   * @param key the key
   * @return its value, or null
   */
  public synchronized V remove(Object key) {
    if (key == null) {
      return null;
    }
    expunge();
    return entries.remove(new Lookup(key));
  }

  /**
   * Returns the value for a key, computing and entering it when there is none.
   *
   * @param key the key, not null
   * @param compute makes the value (called under the map's lock)
   * @return the value
   */
  public synchronized V computeIfAbsent(K key, Function<? super K, ? extends V> compute) {
    // A null key would be a reference to nothing: found by no look-up, never queued.
    java.util.Objects.requireNonNull(key, "key");
    V value = get(key);
    if (value == null) {
      value = compute.apply(key);
      if (value != null) {
        entries.put(new Key<>(key, collected), value);
      }
    }
    return value;
  }

  /**
   * Tells whether a key has a value.
   *
   * @param key the key, may be null (then false)
   * @return whether it has one
   */
  public synchronized boolean containsKey(Object key) {
    if (key == null) {
      return false;
    }
    expunge();
    return entries.containsKey(new Lookup(key));
  }

  /**
   * Sets the value for a key that has none.
   *
   * @param key the key, not null
   * @param value the value
   * @return the value the key had (then unchanged), or null
   */
  public synchronized V putIfAbsent(K key, V value) {
    V had = get(key);
    if (had == null) {
      put(key, value);
    }
    return had;
  }

  /**
   * Returns the keys not collected yet, a copy in no particular order.
   *
   * @return the keys
   */
  public synchronized List<K> keys() {
    expunge();
    List<K> keys = new ArrayList<>(entries.size());
    for (Key<K> key : entries.keySet()) {
      K k = key.get();
      if (k != null) {
        keys.add(k);
      }
    }
    return keys;
  }

  /**
   * Returns the number of entries whose keys are not yet known to be collected.
   *
   * @return the size
   */
  public synchronized int size() {
    expunge();
    return entries.size();
  }

  private void expunge() {
    for (Reference<? extends K> r; (r = collected.poll()) != null; ) {
      V value = entries.remove(r);
      if (dropped != null && value != null) {
        dropped.add(value);
      }
    }
  }

  /**
   * Both kinds of key answer the referent's identity hash and compare referents by identity; a
   * collected key equals only itself, so that the queue can remove it.
   */
  private interface Identity {
    Object referent();

    int hash();
  }

  private static final class Key<K> extends WeakReference<K> implements Identity {
    private final int hash;

    Key(K key, ReferenceQueue<K> queue) {
      super(key, queue);
      this.hash = System.identityHashCode(key);
    }

    @Override
    public Object referent() {
      return get();
    }

    @Override
    public int hash() {
      return hash;
    }

    @Override
    public int hashCode() {
      return hash;
    }

    @Override
    public boolean equals(Object o) {
      if (o == this) {
        return true;
      }
      if (!(o instanceof Identity other)) {
        return false;
      }
      Object mine = get();
      return mine != null && mine == other.referent();
    }
  }

  /** A strong key for one lookup, so that a lookup creates no reference to be queued. */
  private record Lookup(Object referent) implements Identity {
    @Override
    public int hash() {
      return System.identityHashCode(referent);
    }

    @Override
    public int hashCode() {
      return hash();
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Identity other && referent == other.referent();
    }
  }
}
