package dev.surgery.core;

import ai.djl.nn.Block;
import dev.surgery.core.internal.DjlInternals;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * The blocks a block's field value reaches: the ones the engine can write ({@link
 * #forEachWritable}) and every one it can find through the holders it knows ({@link #forEach}), so
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

  /**
   * Every block the value reaches through holders the engine knows, however nested (up to {@link
   * #MAX_DEPTH} holders deep), each holder looked into once: collections, arrays, maps (keys and
   * values), DJL's {@code Pair} and {@code PairList}, {@code Optional}, {@code Map.Entry}, {@code
   * AtomicReference}, references, {@code AtomicReferenceArray}, the values a lambda or a method
   * reference captured (so a composed {@code f.andThen(g)} is looked through) and the fields of a
   * class of the program's own. A block is given, not looked into (its children are blocks of the
   * tree); values that cannot hold a block (strings, numbers, arrays of DJL) are passed by.
   */
  static void forEach(Object value, Consumer<Block> action) {
    Set<Object> entered = Collections.newSetFromMap(new IdentityHashMap<>());
    visit(value, action, entered, 0, o -> {});
  }

  /**
   * The first function met through the same holders as {@link #forEach} whose captured values may
   * hold a block but cannot be read ({@link DjlInternals#opaqueFunction}), or null.
   */
  static Object firstOpaque(Object value) {
    Object[] found = {null};
    Set<Object> entered = Collections.newSetFromMap(new IdentityHashMap<>());
    visit(value, b -> {}, entered, 0, o -> found[0] = found[0] == null ? o : found[0]);
    return found[0];
  }

  private static void visit(
      Object value,
      Consumer<Block> action,
      Set<Object> entered,
      int depth,
      Consumer<Object> opaque) {
    if (value == null) {
      return;
    }
    if (value instanceof Block block) {
      action.accept(block);
      return;
    }
    Class<?> type = value.getClass();
    if (depth >= MAX_DEPTH || !DjlInternals.mayHoldBlock(type) || !entered.add(value)) {
      return;
    }
    int next = depth + 1;
    if (value instanceof ai.djl.util.Pair<?, ?> pair) {
      visit(pair.getKey(), action, entered, next, opaque);
      visit(pair.getValue(), action, entered, next, opaque);
    } else if (value instanceof ai.djl.util.PairList<?, ?> pairs) {
      visitAll(pairs.keys(), action, entered, next, opaque);
      visitAll(pairs.values(), action, entered, next, opaque);
    } else if (value instanceof java.util.Optional<?> optional) {
      visit(optional.orElse(null), action, entered, next, opaque);
    } else if (value instanceof Map.Entry<?, ?> entry) {
      visit(entry.getKey(), action, entered, next, opaque);
      visit(entry.getValue(), action, entered, next, opaque);
    } else if (value instanceof java.util.concurrent.atomic.AtomicReference<?> reference) {
      visit(reference.get(), action, entered, next, opaque);
    } else if (value instanceof Map<?, ?> map) {
      visitAll(new ArrayList<>(map.keySet()), action, entered, next, opaque);
      visitAll(new ArrayList<>(map.values()), action, entered, next, opaque);
    } else if (value instanceof Collection<?> items) {
      visitAll(new ArrayList<>(items), action, entered, next, opaque);
    } else if (value instanceof Object[] array) {
      visitAll(Arrays.asList(array), action, entered, next, opaque);
    } else if (value instanceof java.lang.ref.Reference<?> reference) {
      visit(reference.get(), action, entered, next, opaque);
    } else if (value instanceof java.util.concurrent.atomic.AtomicReferenceArray<?> cells) {
      for (int i = 0; i < cells.length(); i++) {
        visit(cells.get(i), action, entered, next, opaque);
      }
    } else if (type.isSynthetic() || type.isHidden()) {
      if (DjlInternals.opaqueFunction(value)) {
        opaque.accept(value);
      }
      visitAll(DjlInternals.capturedValues(value), action, entered, next, opaque);
    } else if (DjlInternals.isPlainHolder(type)) {
      for (Field inner : DjlInternals.plainHolderFields(type)) {
        visit(DjlInternals.read(inner, value), action, entered, next, opaque);
      }
    }
  }

  private static void visitAll(
      Collection<?> items,
      Consumer<Block> action,
      Set<Object> entered,
      int depth,
      Consumer<Object> opaque) {
    for (Object item : items) {
      visit(item, action, entered, depth, opaque);
    }
  }

  private static void eachBlock(Collection<?> items, Consumer<Block> action) {
    for (Object item : items) {
      if (item instanceof Block block) {
        action.accept(block);
      }
    }
  }
}
