package dev.surgery.core;

import ai.djl.nn.Block;
import dev.surgery.core.internal.DjlInternals;
import java.lang.reflect.Field;
import java.util.Arrays;
import java.util.Collection;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The blocks a block's field value reaches, in the places the engine's field checks know: the value
 * itself, the elements of a collection or an array, a map's keys and values, one level further down
 * in a nested collection, array or map, and inside DJL's {@code Pair} and {@code PairList}, an
 * {@code Optional}, a {@code Map.Entry}, an {@code AtomicReference}, a reference, an {@code
 * AtomicReferenceArray}, a lambda's captured values and a plain holder's fields. A block met in
 * several places is given as often as it is met.
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

  /** Every block the value reaches in a place the engine's checks know. */
  static void forEach(Object value, Consumer<Block> action) {
    if (value == null) {
      return;
    }
    if (value instanceof Block block) {
      action.accept(block);
    } else if (value instanceof ai.djl.util.Pair<?, ?> pair) {
      one(pair.getKey(), action);
      one(pair.getValue(), action);
    } else if (value instanceof ai.djl.util.PairList<?, ?> pairs) {
      each(pairs.keys(), action);
      each(pairs.values(), action);
    } else if (value instanceof java.util.Optional<?> optional) {
      optional.ifPresent(o -> one(o, action));
    } else if (value instanceof Map.Entry<?, ?> entry) {
      one(entry.getKey(), action);
      one(entry.getValue(), action);
    } else if (value instanceof java.util.concurrent.atomic.AtomicReference<?> reference) {
      one(reference.get(), action);
    } else if (value instanceof Map<?, ?> map) {
      nested(map.keySet(), action);
      nested(map.values(), action);
    } else if (value instanceof Collection<?> items) {
      nested(items, action);
    } else if (value instanceof Object[] array) {
      nested(Arrays.asList(array), action);
    } else if (value instanceof java.lang.ref.Reference<?> reference) {
      one(reference.get(), action);
    } else if (value instanceof java.util.concurrent.atomic.AtomicReferenceArray<?> cells) {
      for (int i = 0; i < cells.length(); i++) {
        one(cells.get(i), action);
      }
    } else {
      Class<?> type = value.getClass();
      if (type.isSynthetic() || type.isHidden()) {
        each(DjlInternals.capturedValues(value), action);
      } else if (DjlInternals.isPlainHolder(type)) {
        for (Field inner : DjlInternals.plainHolderFields(type)) {
          Object held = DjlInternals.read(inner, value);
          if (held instanceof Collection<?> c) {
            each(c, action);
          } else if (held instanceof Object[] a) {
            each(Arrays.asList(a), action);
          } else {
            one(held, action);
          }
        }
      }
    }
  }

  /** The items and, one level down, the items of collections, arrays and maps among them. */
  private static void nested(Collection<?> items, Consumer<Block> action) {
    for (Object item : items) {
      if (item instanceof Collection<?> c) {
        each(c, action);
      } else if (item instanceof Object[] a) {
        each(Arrays.asList(a), action);
      } else if (item instanceof Map<?, ?> m) {
        each(m.keySet(), action);
        each(m.values(), action);
      } else {
        one(item, action);
      }
    }
  }

  private static void each(Collection<?> items, Consumer<Block> action) {
    for (Object item : items) {
      one(item, action);
    }
  }

  private static void eachBlock(Collection<?> items, Consumer<Block> action) {
    for (Object item : items) {
      if (item instanceof Block block) {
        action.accept(block);
      }
    }
  }

  private static void one(Object item, Consumer<Block> action) {
    if (item instanceof Block block) {
      action.accept(block);
    }
  }
}
