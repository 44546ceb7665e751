package dev.surgery.core.internal;

import java.util.AbstractMap;
import java.util.AbstractSet;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Set;

/**
 * A map that compares keys by identity, as {@link IdentityHashMap} does, and iterates in insertion
 * order, as {@link java.util.LinkedHashMap} does. Blocks are keyed by identity: a user's block
 * class may override {@code equals} (a value-style layer, Lombok), and two equal blocks are still
 * two places in a model. Not thread-safe; removal is not supported (the maps are built, then read).
 *
 * @param <K> the key type
 * @param <V> the value type
 */
public final class LinkedIdentityMap<K, V> extends AbstractMap<K, V> {

  private final IdentityHashMap<K, V> values = new IdentityHashMap<>();
  private final List<K> order = new ArrayList<>();

  /** Creates an empty map. */
  public LinkedIdentityMap() {}

  /** {@inheritDoc} */
  @Override
  public V put(K key, V value) {
    boolean had = values.containsKey(key);
    V previous = values.put(key, value);
    if (!had) {
      order.add(key);
    }
    return previous;
  }

  /** {@inheritDoc} */
  @Override
  public V get(Object key) {
    return values.get(key);
  }

  /** {@inheritDoc} */
  @Override
  public boolean containsKey(Object key) {
    return values.containsKey(key);
  }

  /** {@inheritDoc} */
  @Override
  public int size() {
    return order.size();
  }

  /** {@inheritDoc} */
  @Override
  public Set<Entry<K, V>> entrySet() {
    return new AbstractSet<>() {
      @Override
      public Iterator<Entry<K, V>> iterator() {
        return new Iterator<>() {
          private int next;

          @Override
          public boolean hasNext() {
            return next < order.size();
          }

          @Override
          public Entry<K, V> next() {
            if (next >= order.size()) {
              throw new NoSuchElementException();
            }
            K key = order.get(next++);
            return new SimpleImmutableEntry<>(key, values.get(key));
          }
        };
      }

      @Override
      public int size() {
        return order.size();
      }
    };
  }

  /** {@inheritDoc} */
  @Override
  public Set<K> keySet() {
    return new AbstractSet<>() {
      @Override
      public Iterator<K> iterator() {
        Iterator<K> it = order.iterator();
        return new Iterator<>() {
          @Override
          public boolean hasNext() {
            return it.hasNext();
          }

          @Override
          public K next() {
            return it.next();
          }
        };
      }

      @Override
      public boolean contains(Object key) {
        return values.containsKey(key);
      }

      @Override
      public int size() {
        return order.size();
      }
    };
  }

  /**
   * Compares as {@link IdentityHashMap} does: same keys by identity, equal values. (AbstractMap's
   * own comparison would look keys up in the other map by {@code equals}.)
   */
  @Override
  public boolean equals(Object o) {
    if (o == this) {
      return true;
    }
    if (!(o instanceof LinkedIdentityMap<?, ?> other)) {
      return false;
    }
    return values.equals(other.values);
  }

  /** {@inheritDoc} */
  @Override
  public int hashCode() {
    return values.hashCode();
  }
}
