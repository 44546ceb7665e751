package dev.surgery.core;

import ai.djl.nn.Block;
import dev.surgery.core.internal.DjlInternals;
import java.lang.reflect.Field;
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
   * The blocks a field can write directly: the value, a list's or other collection's elements, an
   * array's elements and a map's values (a map's keys are not written).
   */
  static void forEachWritable(Object value, Consumer<Block> action) {
    if (value instanceof Block block) {
      action.accept(block);
    } else if (value instanceof Collection<?> items) {
      eachBlock(items, action);
    } else if (value instanceof Object[] array) {
      eachBlock(Arrays.asList(array), action);
    } else if (value instanceof Map<?, ?> map) {
      eachBlock(map.values(), action);
    }
  }

  /** How many holders deep the search goes (a record in a list in an Optional is three). */
  static final int MAX_DEPTH = 8;

  /** What a search found: the first wanted block, and the first unreadable function met. */
  record Found(Block block, Object opaque) {}

  /**
   * Looks for a wanted block through the holders the engine knows, however nested (up to {@link
   * #MAX_DEPTH} holders deep), breadth first (so a holder is entered at its shallowest depth) and
   * each holder once: collections, arrays, maps (keys and values), DJL's {@code Pair} and {@code
   * PairList}, {@code Optional}, {@code Map.Entry}, {@code AtomicReference}, references, {@code
   * AtomicReferenceArray}, the values a lambda or a method reference captured (so a composed lambda
   * is looked through) and the fields of a class of the program's own. A block is looked at, not
   * into (its children are blocks of the tree); values that cannot hold a block (strings, numbers,
   * DJL's arrays) are passed by. Collections are iterated in place, never copied.
   *
   * @param value a field's value
   * @param wanted the blocks looked for
   * @return the first wanted block met (null if none) and the first function whose captured values
   *     may hold a block but cannot be read ({@link DjlInternals#opaqueFunction}; null if none)
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
      return new Found(null, null);
    }
    if (value instanceof Block block) {
      return new Found(wanted.test(block) ? block : null, null);
    }
    Map<Object, Integer> entered = new IdentityHashMap<>();
    ArrayDeque<Object> level = new ArrayDeque<>();
    ArrayDeque<Object> next = new ArrayDeque<>();
    level.add(value);
    Object opaque = null;
    for (int depth = 0; depth < MAX_DEPTH && !level.isEmpty(); depth++) {
      for (Object holder : level) {
        Integer before = clean == null ? null : clean.get(holder);
        if ((before != null && before <= depth) || entered.putIfAbsent(holder, depth) != null) {
          continue;
        }
        if (opaque == null && DjlInternals.opaqueFunction(holder)) {
          opaque = holder;
        }
        Block found = open(holder, wanted, next);
        if (found != null) {
          return new Found(found, opaque);
        }
      }
      ArrayDeque<Object> swap = level;
      level = next;
      next = swap;
      next.clear();
    }
    if (clean != null && opaque == null) {
      entered.forEach((holder, depth) -> clean.merge(holder, depth, Math::min));
    }
    return new Found(null, opaque);
  }

  /** Looks at what one holder holds: returns a wanted block, or queues what may hold one. */
  private static Block open(Object holder, Predicate<Block> wanted, ArrayDeque<Object> next) {
    Class<?> type = holder.getClass();
    if (holder instanceof ai.djl.util.Pair<?, ?> pair) {
      return first(wanted, next, pair.getKey(), pair.getValue());
    } else if (holder instanceof ai.djl.util.PairList<?, ?> pairs) {
      Block b = each(pairs.keys(), wanted, next);
      return b != null ? b : each(pairs.values(), wanted, next);
    } else if (holder instanceof java.util.Optional<?> optional) {
      return one(wanted, next, optional.orElse(null));
    } else if (holder instanceof Map.Entry<?, ?> entry) {
      return first(wanted, next, entry.getKey(), entry.getValue());
    } else if (holder instanceof java.util.concurrent.atomic.AtomicReference<?> reference) {
      return one(wanted, next, reference.get());
    } else if (holder instanceof Map<?, ?> map) {
      Block b = each(map.keySet(), wanted, next);
      return b != null ? b : each(map.values(), wanted, next);
    } else if (holder instanceof Collection<?> items) {
      return each(items, wanted, next);
    } else if (holder instanceof Object[] array) {
      return each(Arrays.asList(array), wanted, next);
    } else if (holder instanceof java.lang.ref.Reference<?> reference) {
      return one(wanted, next, reference.get());
    } else if (holder instanceof java.util.concurrent.atomic.AtomicReferenceArray<?> cells) {
      for (int i = 0; i < cells.length(); i++) {
        Block b = one(wanted, next, cells.get(i));
        if (b != null) {
          return b;
        }
      }
    } else if (type.isSynthetic() || type.isHidden()) {
      return each(DjlInternals.capturedValues(holder), wanted, next);
    } else if (DjlInternals.isPlainHolder(type)) {
      for (Field inner : DjlInternals.plainHolderFields(type)) {
        Block b = one(wanted, next, DjlInternals.read(inner, holder));
        if (b != null) {
          return b;
        }
      }
    }
    return null;
  }

  private static Block each(Iterable<?> items, Predicate<Block> wanted, ArrayDeque<Object> next) {
    for (Object item : items) {
      Block b = one(wanted, next, item);
      if (b != null) {
        return b;
      }
    }
    return null;
  }

  private static Block first(Predicate<Block> wanted, ArrayDeque<Object> next, Object... items) {
    for (Object item : items) {
      Block b = one(wanted, next, item);
      if (b != null) {
        return b;
      }
    }
    return null;
  }

  /** The item if it is a wanted block, else null; queues it if it may hold one. */
  private static Block one(Predicate<Block> wanted, ArrayDeque<Object> next, Object item) {
    if (item instanceof Block block) {
      return wanted.test(block) ? block : null;
    }
    if (item != null && DjlInternals.mayHoldBlock(item.getClass())) {
      next.add(item);
    }
    return null;
  }

  private static void eachBlock(Collection<?> items, Consumer<Block> action) {
    for (Object item : items) {
      if (item instanceof Block block) {
        action.accept(block);
      }
    }
  }
}
