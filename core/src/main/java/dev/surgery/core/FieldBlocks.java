package dev.surgery.core;

import ai.djl.nn.Block;
import dev.surgery.core.internal.BlockFields;
import dev.surgery.core.internal.CapturedFunctions;
import dev.surgery.core.internal.FieldSlot;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * The blocks a block's field value reaches: the ones the engine can write ({@link
 * #forEachWritable}) and every one it can find through the holders it knows ({@link #search}), so
 * that a block still reaching a replaced block after the writes is refused.
 */
final class FieldBlocks {

  private FieldBlocks() {}

  /**
   * The blocks a field's value holds where the engine writes them ({@link
   * FieldWrites#writeIntoField}): the value itself, and the items of a {@link Holder#written}
   * holder (a list's or other collection's elements, an array's elements, a map's values; a map's
   * keys are not written).
   */
  static void forEachWritable(Object value, Consumer<Block> action) {
    if (value instanceof Block block) {
      action.accept(block);
      return;
    }
    Holder kind = value == null ? Holder.OTHER : Holder.of(value);
    if (kind.written) {
      forEachItem(
          value,
          kind,
          (item, part) -> {
            if (part != MAP_KEY && item instanceof Block block) {
              action.accept(block);
            }
            return false;
          });
    }
  }

  /**
   * How many holders one search enters at most (each holder once, however deep: a chain of the
   * program's own data objects is followed to its end); what lies beyond is {@link
   * Found#unexplored}, which the engine refuses rather than passes by.
   */
  static final int MAX_HOLDERS = 100_000;

  /**
   * What a search found: the first wanted block, the first unreadable function met, and the first
   * holder it could not look through (one still queued after {@link #MAX_HOLDERS}, or a method
   * handle with bound values, which the JDK does not let be read); each null if none.
   */
  record Found(Block block, Object opaque, Object unexplored) {}

  /**
   * Looks for a wanted block through the holders the engine knows, however nested (up to {@link
   * #MAX_HOLDERS} holders), breadth first (so a holder is entered at its shallowest depth) and each
   * holder once: collections, arrays, maps (keys and values), DJL's {@code Pair} and {@code
   * PairList}, {@code Optional}, {@code Map.Entry}, {@code AtomicReference}, references, {@code
   * AtomicReferenceArray}, the values a lambda or a method reference captured (so a composed lambda
   * is looked through) and the fields of a class of the program's own. A block is looked at, not
   * into (its children are blocks of the tree); values that cannot hold a block (strings, numbers,
   * DJL's arrays) are passed by. Collections are iterated in place, never copied.
   *
   * @param value a field's value
   * @param wanted the blocks looked for
   * @return the first wanted block met (null if none) and the first function whose captured values
   *     may hold a block but cannot be read ({@link CapturedFunctions#opaqueFunction}; null if
   *     none)
   */
  static Found search(Object value, Predicate<Block> wanted) {
    return search(value, wanted, null);
  }

  /**
   * As {@link #search(Object, Predicate)}, passing by the holders an earlier search with the same
   * question entered at the same depth or less and found nothing in ({@code clean}, holder to
   * depth; null for none), and adding to it the holders of this search if it finds nothing, not
   * even an unreadable function: blocks that keep one large collection between them (a vocabulary)
   * have it searched once, and a search that met such a function records nothing, so that each
   * search through it reports it.
   */
  static Found search(Object value, Predicate<Block> wanted, Map<Object, Integer> clean) {
    if (value == null) {
      return new Found(null, null, null);
    }
    if (value instanceof Block block) {
      return new Found(wanted.test(block) ? block : null, null, null);
    }
    Map<Object, Integer> entered = new IdentityHashMap<>();
    ArrayDeque<Object> level = new ArrayDeque<>();
    ArrayDeque<Object> next = new ArrayDeque<>();
    level.add(value);
    Object opaque = null;
    Object unexplored = null;
    for (int depth = 0; entered.size() < MAX_HOLDERS && !level.isEmpty(); depth++) {
      for (Object holder : level) {
        Integer before = clean == null ? null : clean.get(holder);
        if ((before != null && before <= depth) || entered.putIfAbsent(holder, depth) != null) {
          continue;
        }
        if (opaque == null && CapturedFunctions.opaqueFunction(holder)) {
          opaque = holder;
        }
        if (unexplored == null && isBoundMethodHandle(holder)) {
          unexplored = holder;
        }
        Block found = open(holder, wanted, next);
        if (found != null) {
          return new Found(found, opaque, unexplored);
        }
      }
      ArrayDeque<Object> swap = level;
      level = next;
      next = swap;
      next.clear();
    }
    if (unexplored == null && !level.isEmpty()) {
      unexplored = level.peekFirst(); // more holders than a search enters
    }
    if (clean != null && opaque == null && unexplored == null) {
      entered.forEach((holder, depth) -> clean.merge(holder, depth, Math::min));
    }
    return new Found(null, opaque, unexplored);
  }

  /**
   * Whether a value is a method handle with bound values ({@code MethodHandle.bindTo}, {@code
   * MethodHandles.insertArguments}): it may call a block it holds, and {@code java.lang.invoke}
   * does not let its values be read. A direct handle holds nothing.
   */
  static boolean isBoundMethodHandle(Object value) {
    return value instanceof java.lang.invoke.MethodHandle
        && value.getClass().getName().startsWith("java.lang.invoke.BoundMethodHandle");
  }

  /** The words for a holder {@link Found#unexplored} names, in a refusal. */
  static String unexploredWords(Object unexplored) {
    return isBoundMethodHandle(unexplored)
        ? "a method handle with bound values ("
            + unexplored
            + "), which the JDK does not let the"
            + " engine read"
        : "more than "
            + MAX_HOLDERS
            + " holders of values (a "
            + unexplored.getClass().getName()
            + " beyond them), which the engine does not follow";
  }

  /** Looks at what one holder holds: returns a wanted block, or queues what may hold one. */
  private static Block open(Object holder, Predicate<Block> wanted, ArrayDeque<Object> next) {
    Block[] found = new Block[1];
    forEachItem(
        holder, Holder.of(holder), (item, part) -> (found[0] = one(wanted, next, item)) != null);
    return found[0];
  }

  /**
   * The kinds of holder the engine looks through, told apart in this order, each with the words a
   * refusal uses for a block it holds directly (null: built from the holder, see {@code
   * FieldWrites}) and whether the engine writes a replacement into it when it is a field's value.
   */
  enum Holder {
    PAIR("inside a Pair"),
    PAIR_LIST("inside a PairList"),
    OPTIONAL("inside an Optional"),
    MAP_ENTRY("inside a Map.Entry"),
    ATOMIC_REFERENCE("inside an AtomicReference"),
    MAP("in a Map the surgery does not write", true),
    COLLECTION("in a collection the surgery does not write", true),
    ARRAY("in an array the surgery does not write", true),
    REFERENCE(null),
    ATOMIC_REFERENCE_ARRAY("inside an AtomicReferenceArray"),
    /** A lambda or method reference: it holds what it captured. */
    FUNCTION("captured by a lambda"),
    /** A {@code java.lang.reflect.Proxy}: it calls what its invocation handler holds. */
    PROXY("held by a Proxy's invocation handler"),
    /** An object of a class of the program's own (a record, a small holder class). */
    PLAIN(null),
    /** Anything else: looked at, not into. */
    OTHER(null);

    final String words;

    /** Whether a field's value of this kind is written (a map: its values only). */
    final boolean written;

    Holder(String words) {
      this(words, false);
    }

    Holder(String words, boolean written) {
      this.words = words;
      this.written = written;
    }

    static Holder of(Object value) {
      if (value instanceof ai.djl.util.Pair<?, ?>) {
        return PAIR;
      } else if (value instanceof ai.djl.util.PairList<?, ?>) {
        return PAIR_LIST;
      } else if (value instanceof java.util.Optional<?>) {
        return OPTIONAL;
      } else if (value instanceof Map.Entry<?, ?>) {
        return MAP_ENTRY;
      } else if (value instanceof java.util.concurrent.atomic.AtomicReference<?>) {
        return ATOMIC_REFERENCE;
      } else if (value instanceof Map<?, ?>) {
        return MAP;
      } else if (value instanceof Collection<?>) {
        return COLLECTION;
      } else if (value instanceof Object[]) {
        return ARRAY;
      } else if (value instanceof java.lang.ref.Reference<?>) {
        return REFERENCE;
      } else if (value instanceof java.util.concurrent.atomic.AtomicReferenceArray<?>) {
        return ATOMIC_REFERENCE_ARRAY;
      }
      Class<?> type = value.getClass();
      if (type.isSynthetic() || type.isHidden()) {
        return FUNCTION;
      }
      if (java.lang.reflect.Proxy.isProxyClass(type)
          && !(value instanceof java.lang.annotation.Annotation)) {
        return PROXY;
      }
      return BlockFields.isPlainHolder(type) ? PLAIN : OTHER;
    }
  }

  /** Where in its holder an item sits, for the holders whose parts differ: a map's keys. */
  static final Object MAP_KEY = new Object();

  /** Receives a holder's items one at a time. */
  @FunctionalInterface
  interface Items {
    /**
     * Takes one item.
     *
     * @param item what the holder holds (may be null)
     * @param part {@link #MAP_KEY} for a map's key, the {@link FieldSlot} of a {@link Holder#PLAIN}
     *     holder the item is in, null otherwise
     * @return true to stop
     */
    boolean next(Object item, Object part);
  }

  /**
   * Hands each item a holder holds directly to {@code items}, in order (a map's keys before its
   * values), until one stops it. Collections are iterated in place, never copied.
   *
   * @return whether {@code items} stopped it
   */
  static boolean forEachItem(Object holder, Holder kind, Items items) {
    switch (kind) {
      case PAIR:
        ai.djl.util.Pair<?, ?> pair = (ai.djl.util.Pair<?, ?>) holder;
        return items.next(pair.getKey(), null) || items.next(pair.getValue(), null);
      case PAIR_LIST:
        ai.djl.util.PairList<?, ?> pairs = (ai.djl.util.PairList<?, ?>) holder;
        return each(pairs.keys(), null, items) || each(pairs.values(), null, items);
      case OPTIONAL:
        return items.next(((java.util.Optional<?>) holder).orElse(null), null);
      case MAP_ENTRY:
        Map.Entry<?, ?> entry = (Map.Entry<?, ?>) holder;
        return items.next(entry.getKey(), null) || items.next(entry.getValue(), null);
      case ATOMIC_REFERENCE:
        return items.next(((java.util.concurrent.atomic.AtomicReference<?>) holder).get(), null);
      case MAP:
        Map<?, ?> map = (Map<?, ?>) holder;
        return each(map.keySet(), MAP_KEY, items) || each(map.values(), null, items);
      case COLLECTION:
        return each((Collection<?>) holder, null, items);
      case ARRAY:
        return each(Arrays.asList((Object[]) holder), null, items);
      case REFERENCE:
        return items.next(((java.lang.ref.Reference<?>) holder).get(), null);
      case ATOMIC_REFERENCE_ARRAY:
        java.util.concurrent.atomic.AtomicReferenceArray<?> cells =
            (java.util.concurrent.atomic.AtomicReferenceArray<?>) holder;
        for (int i = 0; i < cells.length(); i++) {
          if (items.next(cells.get(i), null)) {
            return true;
          }
        }
        return false;
      case FUNCTION:
        return each(CapturedFunctions.capturedValues(holder), null, items);
      case PROXY:
        return items.next(java.lang.reflect.Proxy.getInvocationHandler(holder), null);
      case PLAIN:
        for (FieldSlot inner : BlockFields.plainHolderFields(holder.getClass())) {
          if (items.next(inner.get(holder), inner)) {
            return true;
          }
        }
        return false;
      default:
        return false;
    }
  }

  private static boolean each(Iterable<?> values, Object part, Items items) {
    for (Object item : values) {
      if (items.next(item, part)) {
        return true;
      }
    }
    return false;
  }

  /** The item if it is a wanted block, else null; queues it if it may hold one. */
  private static Block one(Predicate<Block> wanted, ArrayDeque<Object> next, Object item) {
    if (item instanceof Block block) {
      return wanted.test(block) ? block : null;
    }
    if (item != null && BlockFields.mayHoldBlock(item.getClass())) {
      next.add(item);
    }
    return null;
  }
}
