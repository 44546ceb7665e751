package dev.surgery.core.internal;

import java.util.AbstractMap;
import java.util.AbstractSet;
import java.util.ConcurrentModificationException;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.function.Function;

/**
 * A map that compares keys by identity, as {@link IdentityHashMap} does, and iterates in insertion
 * order, as {@link java.util.LinkedHashMap} does. Blocks are keyed by identity: a user's block
 * class may override {@code equals} (a value-style layer, Lombok), and two equal blocks are still
 * two places in a model. Not thread-safe.
 *
 * @param <K> the key type
 * @param <V> the value type
 */
public final class LinkedIdentityMap<K, V> extends AbstractMap<K, V> {

  /** One entry, linked in insertion order. */
  private static final class Node<K, V> implements Map.Entry<K, V> {
    final K key;
    V value;
    Node<K, V> before;
    Node<K, V> after;

    Node(K key, V value) {
      this.key = key;
      this.value = value;
    }

    @Override
    public K getKey() {
      return key;
    }

    @Override
    public V getValue() {
      return value;
    }

    @Override
    public V setValue(V v) {
      V old = value;
      value = v;
      return old;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Map.Entry<?, ?> e
          && e.getKey() == key
          && java.util.Objects.equals(e.getValue(), value);
    }

    @Override
    public int hashCode() {
      return System.identityHashCode(key) ^ java.util.Objects.hashCode(value);
    }

    @Override
    public String toString() {
      return key + "=" + value;
    }
  }

  private final IdentityHashMap<K, Node<K, V>> nodes = new IdentityHashMap<>();
  private Node<K, V> head;
  private Node<K, V> tail;
  private int changes;

  /** Creates an empty map. */
  public LinkedIdentityMap() {}

  /** {@inheritDoc} */
  @Override
  public V put(K key, V value) {
    Node<K, V> node = nodes.get(key);
    if (node != null) {
      return node.setValue(value);
    }
    node = new Node<>(key, value);
    nodes.put(key, node);
    if (tail == null) {
      head = node;
    } else {
      tail.after = node;
      node.before = tail;
    }
    tail = node;
    changes++;
    return null;
  }

  /** {@inheritDoc} */
  @Override
  public V get(Object key) {
    Node<K, V> node = nodes.get(key);
    return node == null ? null : node.value;
  }

  /** {@inheritDoc} */
  @Override
  public boolean containsKey(Object key) {
    return nodes.containsKey(key);
  }

  /** {@inheritDoc} */
  @Override
  public V remove(Object key) {
    Node<K, V> node = nodes.remove(key);
    if (node == null) {
      return null;
    }
    unlink(node);
    return node.value;
  }

  /** {@inheritDoc} */
  @Override
  public void clear() {
    nodes.clear();
    head = null;
    tail = null;
    changes++;
  }

  /** {@inheritDoc} */
  @Override
  public int size() {
    return nodes.size();
  }

  private void unlink(Node<K, V> node) {
    if (node.before == null) {
      head = node.after;
    } else {
      node.before.after = node.after;
    }
    if (node.after == null) {
      tail = node.before;
    } else {
      node.after.before = node.before;
    }
    changes++;
  }

  /** Walks the entries in order; {@code remove} takes the last one returned out of the map. */
  private final class NodeIterator implements Iterator<Node<K, V>> {
    private Node<K, V> next = head;
    private Node<K, V> last;
    private int expected = changes;

    @Override
    public boolean hasNext() {
      return next != null;
    }

    @Override
    public Node<K, V> next() {
      if (changes != expected) {
        throw new ConcurrentModificationException();
      }
      if (next == null) {
        throw new NoSuchElementException();
      }
      last = next;
      next = next.after;
      return last;
    }

    @Override
    public void remove() {
      if (last == null) {
        throw new IllegalStateException();
      }
      if (changes != expected) {
        throw new ConcurrentModificationException();
      }
      LinkedIdentityMap.this.remove(last.key);
      last = null;
      expected = changes;
    }
  }

  /** The entries in order, seen through {@code view}; {@code remove} takes one out of the map. */
  private <T> Iterator<T> iterator(Function<Node<K, V>, T> view) {
    NodeIterator nodes = new NodeIterator();
    return new Iterator<>() {
      @Override
      public boolean hasNext() {
        return nodes.hasNext();
      }

      @Override
      public T next() {
        return view.apply(nodes.next());
      }

      @Override
      public void remove() {
        nodes.remove();
      }
    };
  }

  /** {@inheritDoc} */
  @Override
  public Set<Entry<K, V>> entrySet() {
    return new AbstractSet<>() {
      @Override
      public Iterator<Entry<K, V>> iterator() {
        return LinkedIdentityMap.this.iterator(node -> node);
      }

      @Override
      public int size() {
        return nodes.size();
      }
    };
  }

  /** {@inheritDoc} */
  @Override
  public Set<K> keySet() {
    return new AbstractSet<>() {
      @Override
      public Iterator<K> iterator() {
        return LinkedIdentityMap.this.iterator(node -> node.key);
      }

      @Override
      public boolean contains(Object key) {
        return containsKey(key);
      }

      @Override
      public boolean remove(Object key) {
        boolean had = containsKey(key);
        LinkedIdentityMap.this.remove(key);
        return had;
      }

      @Override
      public int size() {
        return nodes.size();
      }
    };
  }

  /**
   * Compares with another {@code LinkedIdentityMap} only: the same keys by identity, with equal
   * values ({@code equals}), in any order; any other map is not equal (AbstractMap's comparison
   * would look keys up by {@code equals}, and IdentityHashMap's compares values by identity).
   */
  @Override
  public boolean equals(Object o) {
    if (o == this) {
      return true;
    }
    if (!(o instanceof LinkedIdentityMap<?, ?> other) || other.size() != size()) {
      return false;
    }
    for (Node<K, V> n = head; n != null; n = n.after) {
      Object theirs = other.get(n.key);
      if (!java.util.Objects.equals(n.value, theirs)
          || (theirs == null && !other.containsKey(n.key))) {
        return false;
      }
    }
    return true;
  }

  /** {@inheritDoc} */
  @Override
  public int hashCode() {
    int h = 0;
    for (Node<K, V> n = head; n != null; n = n.after) {
      h += n.hashCode();
    }
    return h;
  }
}
