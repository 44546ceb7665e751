package dev.surgery.core;

import ai.djl.nn.Block;
import dev.surgery.core.internal.DjlInternals;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The engine's writes into the fields of a block that holds a replaced block (a parent's own
 * fields, or a tying block's), journaled, and the refusals where a field holds it in a place that
 * cannot be written, in words that name the place.
 */
final class FieldWrites {

  private final Journal journal;

  FieldWrites(Journal journal) {
    this.journal = journal;
  }

  /**
   * Writes {@code replacement} wherever the fields the engine writes of {@code holder} hold {@code
   * old}: a field of a block type, a list's or other collection's elements, an array's, a map's
   * values.
   */
  void writeFields(Block holder, Block old, Block replacement, String path) {
    for (Field field : DjlInternals.blockHoldingFields(holder.getClass())) {
      writeIntoField(holder, field, old, replacement, path);
    }
  }

  /**
   * Where a field's value keeps {@code old} out of the engine's reach, looking one level into the
   * common holders; null when it does not. A {@code List}, array, other collection or map value is
   * written by {@link #writeIntoField} and holds the old block no more by now; a map's keys are
   * not.
   */
  private static String holderOf(Object value, Block old, Field field) {
    if (value == null) {
      return null;
    }
    if (value == old) {
      return "in a field of type " + field.getType().getName();
    }
    if (value instanceof ai.djl.util.Pair<?, ?> pair) {
      return pair.getKey() == old || pair.getValue() == old ? "inside a Pair" : null;
    }
    if (value instanceof ai.djl.util.PairList<?, ?> pairs) {
      return TreeSurgery.containsIdentity(pairs.keys(), old)
              || TreeSurgery.containsIdentity(pairs.values(), old)
          ? "inside a PairList"
          : null;
    }
    if (value instanceof java.util.Optional<?> optional) {
      return optional.isPresent() && optional.get() == old ? "inside an Optional" : null;
    }
    if (value instanceof Map.Entry<?, ?> entry) {
      return entry.getKey() == old || entry.getValue() == old ? "inside a Map.Entry" : null;
    }
    if (value instanceof java.util.concurrent.atomic.AtomicReference<?> reference) {
      return reference.get() == old ? "inside an AtomicReference" : null;
    }
    if (value instanceof Map<?, ?> map) {
      if (TreeSurgery.containsIdentity(map.keySet(), old)) {
        return "as a key of a Map";
      }
      return TreeSurgery.containsIdentity(map.values(), old)
          ? "in a Map the surgery does not write"
          : null;
    }
    // A collection or array the writes reached holds the old block no more; one still holding it
    // sits in a field the surgery does not write (declared Iterable, say), or one level down in
    // a list of lists or an array of arrays, which the writes do not reach.
    if (value instanceof Collection<?> items) {
      if (TreeSurgery.containsIdentity(items, old)) {
        return "in a collection the surgery does not write";
      }
      return nestedIn(items, old) ? "in a collection nested in a collection" : null;
    }
    if (value instanceof Object[] array) {
      List<Object> items = Arrays.asList(array);
      if (TreeSurgery.containsIdentity(items, old)) {
        return "in an array the surgery does not write";
      }
      return nestedIn(items, old) ? "in a collection or array nested in an array" : null;
    }
    if (value instanceof java.lang.ref.Reference<?> reference) {
      return reference.get() == old ? "inside a " + value.getClass().getSimpleName() : null;
    }
    if (value instanceof java.util.concurrent.atomic.AtomicReferenceArray<?> cells) {
      for (int i = 0; i < cells.length(); i++) {
        if (cells.get(i) == old) {
          return "inside an AtomicReferenceArray";
        }
      }
      return null;
    }
    Class<?> type = value.getClass();
    if (type.isSynthetic() || type.isHidden()) {
      // A lambda calls what it captured: a field holding one that captured the block.
      return TreeSurgery.containsIdentity(DjlInternals.capturedValues(value), old)
          ? "captured by a lambda"
          : null;
    }
    if (DjlInternals.isPlainHolder(type)) {
      for (Field inner : DjlInternals.plainHolderFields(type)) {
        Object held = DjlInternals.read(inner, value);
        if (held == old
            || (held instanceof Collection<?> c && TreeSurgery.containsIdentity(c, old))
            || (held instanceof Object[] a
                && TreeSurgery.containsIdentity(Arrays.asList(a), old))) {
          return "inside a " + type.getName() + " (its field '" + inner.getName() + "')";
        }
      }
    }
    return null;
  }

  /**
   * Whether a field holds the function a DJL block runs in its forward ({@code LambdaBlock}'s,
   * {@code ParallelBlock}'s): one whose captured values cannot be read may call any block. A
   * function in another field (a comparator, a callback) is not assumed to be called in forward.
   */
  static boolean runsInForward(Field field) {
    return !java.lang.reflect.Modifier.isStatic(field.getModifiers())
        && field.getDeclaringClass().getName().startsWith("ai.djl.nn.")
        && java.util.function.Function.class.isAssignableFrom(field.getType());
  }

  /** The refusal for a forward's function whose captured values cannot be read. */
  static SurgeryException unreadableFunction(
      String path, Block holder, Field field, Object function) {
    return new SurgeryException(
        BlockPaths.display(path),
        "field "
            + where(holder, field)
            + " holds a function the engine cannot look into ("
            + function.getClass().getName()
            + ", a lambda of a module that does not open its package, such as the one"
            + " Function.andThen returns): it may call a block this surgery replaces, and would"
            + " then keep calling the old one; write the function as one lambda of your own"
            + " (x -> g.apply(f.apply(x)))");
  }

  /** Where a field's value holds the block, in words: one level in, or nested deeper. */
  static String describeHolder(Object value, Block block, Field field) {
    String where = holderOf(value, block, field);
    if (where != null) {
      return where;
    }
    Class<?> type = value.getClass();
    return type.isSynthetic() || type.isHidden()
        ? "captured by a lambda, through what it captured"
        : "nested inside a " + type.getTypeName();
  }

  /** Whether a collection or array among the items holds the block. */
  private static boolean nestedIn(Collection<?> items, Block old) {
    for (Object item : items) {
      if ((item instanceof Collection<?> c && TreeSurgery.containsIdentity(c, old))
          || (item instanceof Object[] a && TreeSurgery.containsIdentity(Arrays.asList(a), old))
          || (item instanceof Map<?, ?> m
              && (TreeSurgery.containsIdentity(m.values(), old)
                  || TreeSurgery.containsIdentity(m.keySet(), old)))) {
        return true;
      }
    }
    return false;
  }

  @SuppressWarnings("unchecked")
  void writeIntoField(Block parent, Field field, Block old, Block replacement, String path) {
    Object value = DjlInternals.read(field, parent);
    if (value == old) {
      if (!field.getType().isInstance(replacement)) {
        throw new SurgeryException(
            BlockPaths.display(path),
            "field "
                + where(parent, field)
                + " of type "
                + field.getType().getSimpleName()
                + " cannot hold the replacement "
                + replacement.getClass().getName());
      }
      DjlInternals.write(field, parent, replacement);
      journal.onRollback(() -> DjlInternals.write(field, parent, old));
    } else if (value instanceof List<?> list) {
      List<Object> objects = (List<Object>) list;
      for (int i = 0; i < objects.size(); i++) {
        if (objects.get(i) == old) {
          refuseUndeclaredElement(parent, field, 0, replacement, path);
          try {
            objects.set(i, replacement);
          } catch (UnsupportedOperationException | ClassCastException e) {
            throw new SurgeryException(
                BlockPaths.display(path),
                "list field " + where(parent, field) + " holds the block but cannot be changed",
                e);
          }
          journal.elementSet(objects, i, old);
        }
      }
    } else if (value instanceof Object[] array) {
      for (int i = 0; i < array.length; i++) {
        if (array[i] == old) {
          int at = i;
          try {
            array[i] = replacement;
          } catch (ArrayStoreException e) {
            throw new SurgeryException(
                BlockPaths.display(path),
                "array field "
                    + where(parent, field)
                    + " cannot hold "
                    + replacement.getClass().getName(),
                e);
          }
          journal.onRollback(() -> array[at] = old);
        }
      }
    } else if (value instanceof Map<?, ?> map && TreeSurgery.containsIdentity(map.values(), old)) {
      Map<Object, Object> objects = (Map<Object, Object>) map;
      List<Map.Entry<Object, Object>> entries = new ArrayList<>(objects.size());
      for (Map.Entry<Object, Object> e : objects.entrySet()) {
        entries.add(new java.util.AbstractMap.SimpleImmutableEntry<>(e.getKey(), e.getValue()));
      }
      boolean journaled = false;
      for (Map.Entry<Object, Object> e : entries) {
        if (e.getValue() == old) {
          refuseUndeclaredElement(parent, field, 1, replacement, path);
          try {
            objects.put(e.getKey(), replacement);
          } catch (UnsupportedOperationException | ClassCastException ex) {
            throw new SurgeryException(
                BlockPaths.display(path),
                "map field " + where(parent, field) + " holds the block but cannot be changed",
                ex);
          }
          if (!journaled) {
            // After the first put succeeded (an unmodifiable map changed nothing): the whole map
            // is put back in its order, as a put of an existing key moves it to the end of an
            // access-ordered LinkedHashMap.
            journaled = true;
            journal.onRollback(
                () -> {
                  objects.clear();
                  for (Map.Entry<Object, Object> kept : entries) {
                    objects.put(kept.getKey(), kept.getValue());
                  }
                });
          }
        }
      }
    } else if (value instanceof Collection<?> collection
        && TreeSurgery.containsIdentity(collection, old)) {
      refuseUndeclaredElement(parent, field, 0, replacement, path);
      // Swap in place of the old element, keeping the collection's order (a deque, an ordered set).
      Collection<Object> objects = (Collection<Object>) collection;
      List<Object> snapshot = new ArrayList<>(objects);
      List<Object> swapped = new ArrayList<>(snapshot.size());
      for (Object o : snapshot) {
        swapped.add(o == old ? replacement : o);
      }
      // The undo first: an addAll that fails after the clear (a sorted set refusing the new
      // element) must still leave the collection as it was.
      journal.onRollback(
          () -> {
            objects.clear();
            objects.addAll(snapshot);
          });
      try {
        objects.clear();
        objects.addAll(swapped);
      } catch (RuntimeException e) {
        throw new SurgeryException(
            BlockPaths.display(path),
            "collection field " + where(parent, field) + " holds the block but cannot be changed",
            e);
      }
    }
  }

  /**
   * Refuses a replacement that a collection or map field's declared element type cannot hold
   * ({@code List<Linear>} given a {@code SequentialBlock}): erased at run time, the write would
   * succeed and the block's own code fail with a ClassCastException at its next forward.
   */
  private static void refuseUndeclaredElement(
      Block parent, Field field, int typeArgument, Block replacement, String path) {
    java.lang.reflect.Type type = field.getGenericType();
    if (!(type instanceof java.lang.reflect.ParameterizedType parameterized)
        || !(parameterized.getRawType() instanceof Class<?> raw)
        || !raw.getName().startsWith("java.util.")) {
      return; // no declared element type (an Object field, a raw List), or a type of its own
    }
    java.lang.reflect.Type[] arguments = parameterized.getActualTypeArguments();
    if (typeArgument >= arguments.length) {
      return;
    }
    java.lang.reflect.Type argument = arguments[typeArgument];
    if (argument instanceof java.lang.reflect.ParameterizedType inner) {
      argument = inner.getRawType();
    }
    if (argument instanceof Class<?> element && !element.isInstance(replacement)) {
      throw new SurgeryException(
          BlockPaths.display(path),
          "field "
              + where(parent, field)
              + " is declared to hold "
              + element.getSimpleName()
              + " and cannot hold the replacement "
              + replacement.getClass().getName());
    }
  }

  /** Names a parent's field in a message; built only when one is needed. */
  static String where(Block parent, Field field) {
    return parent.getClass().getSimpleName() + "." + field.getName();
  }

  /**
   * Refuses when one of a parent's fields still holds {@code old} after the writes, in a place the
   * engine cannot write (an {@code Optional}, a map's key, a lambda's capture, a record): the
   * parent's forward would still call the old block. A function the parent runs in its forward
   * whose captured values cannot be read is refused too: it may call the old block.
   */
  static void refuseUnwritable(Block parent, Block old, Supplier<String> path) {
    for (Field field : DjlInternals.blockReferencingFields(parent.getClass())) {
      Object value = DjlInternals.read(field, parent);
      // One search; the words for a hit only (holderOf names the place one level in).
      FieldBlocks.Found found = FieldBlocks.search(value, b -> b == old);
      String holder = null;
      if (found.block() != null) {
        holder = describeHolder(value, old, field);
      } else if (found.opaque() != null && runsInForward(field)) {
        throw unreadableFunction(path.get(), parent, field, found.opaque());
      }
      if (holder != null) {
        throw new SurgeryException(
            BlockPaths.display(path.get()),
            "parent "
                + parent.getClass().getName()
                + " ("
                + (java.lang.reflect.Modifier.isStatic(field.getModifiers()) ? "static " : "")
                + "field '"
                + field.getName()
                + "') holds the block "
                + holder
                + ", which the surgery cannot change (its forward would still call the old"
                + " block); keep children in a field of type Block, a List, an array or a Map");
      }
    }
  }
}
