package dev.surgery.core;

import ai.djl.nn.Block;
import dev.surgery.core.FieldBlocks.Holder;
import dev.surgery.core.internal.BlockFields;
import dev.surgery.core.internal.ClosedPackageException;
import dev.surgery.core.internal.FieldSlot;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
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
    for (FieldSlot field : BlockFields.blockHoldingFields(holder.getClass())) {
      writeIntoField(holder, field, old, replacement, path);
    }
  }

  /**
   * Where a field's value keeps {@code old} out of the engine's reach, looking one level into the
   * holders {@link FieldBlocks} knows (two into a collection, an array or a plain holder: a list of
   * lists, a record's list); null when it does not. A {@code List}, array, other collection or map
   * value is written by {@link #writeIntoField} and holds the old block no more by now, unless it
   * sits in a field the surgery does not write (declared {@code Iterable}, say); a map's keys are
   * never written.
   */
  private static String holderOf(Object value, Block old, FieldSlot field) {
    if (value == null) {
      return null;
    }
    if (value == old) {
      return "in a field of type " + field.type().getName();
    }
    Holder kind = Holder.of(value);
    Object[] part = new Object[1];
    if (FieldBlocks.forEachItem(value, kind, (item, where) -> item == old && found(part, where))) {
      return words(kind, value, part[0]);
    }
    if (kind != Holder.COLLECTION && kind != Holder.ARRAY && kind != Holder.PLAIN) {
      return null;
    }
    boolean nested =
        FieldBlocks.forEachItem(
            value, kind, (item, where) -> holdsDirectly(item, old) && found(part, where));
    if (!nested) {
      return null;
    }
    return switch (kind) {
      case COLLECTION -> "in a collection nested in a collection";
      case ARRAY -> "in a collection or array nested in an array";
      default -> words(kind, value, part[0]);
    };
  }

  private static boolean found(Object[] part, Object where) {
    part[0] = where;
    return true;
  }

  /** Whether an item is a collection, an array or a map (keys or values) holding the block. */
  private static boolean holdsDirectly(Object item, Block old) {
    if (item == null) {
      return false;
    }
    Holder kind = Holder.of(item);
    return kind.written && FieldBlocks.forEachItem(item, kind, (inner, where) -> inner == old);
  }

  /** The words for a block a holder of the kind holds at {@code part}. */
  private static String words(Holder kind, Object value, Object part) {
    return switch (kind) {
      case MAP -> part == FieldBlocks.MAP_KEY ? "as a key of a Map" : kind.words;
      case REFERENCE -> "inside a " + value.getClass().getSimpleName();
      case PLAIN ->
          "inside a "
              + value.getClass().getName()
              + " (its field '"
              + ((FieldSlot) part).name()
              + "')";
      default -> kind.words;
    };
  }

  /**
   * Whether a field holds the function a DJL block runs in its forward ({@code LambdaBlock}'s,
   * {@code ParallelBlock}'s): one whose captured values cannot be read may call any block. A
   * function in another field (a comparator, a callback) is not assumed to be called in forward.
   */
  static boolean runsInForward(FieldSlot field) {
    return !field.isStatic()
        && field.declaringClass().getName().startsWith("ai.djl.nn.")
        && java.util.function.Function.class.isAssignableFrom(field.type());
  }

  /**
   * The refusal for a field whose value the engine could not look through ({@link
   * FieldBlocks.Found#unexplored}): it may hold a block the surgery replaces, which the forward
   * would then keep calling.
   */
  static SurgeryException unexplored(String path, Block holder, FieldSlot field, Object value) {
    return new SurgeryException(
        BlockPaths.display(path),
        "field "
            + where(holder, field)
            + " holds "
            + FieldBlocks.unexploredWords(value)
            + ": it may hold a block this surgery replaces, and its forward would then keep"
            + " calling the old one; keep blocks in a field of type Block, a List, an array or a"
            + " Map, or in a lambda of your own");
  }

  /** The refusal for a forward's function whose captured values cannot be read. */
  static SurgeryException unreadableFunction(
      String path, Block holder, FieldSlot field, Object function) {
    if (java.lang.reflect.Proxy.isProxyClass(function.getClass())) {
      return new SurgeryException(
          BlockPaths.display(path),
          "field "
              + where(holder, field)
              + " holds a java.lang.reflect.Proxy ("
              + function.getClass().getName()
              + ") whose invocation handler, a "
              + java.lang.reflect.Proxy.getInvocationHandler(function).getClass().getName()
              + ", the engine cannot look into (MethodHandleProxies makes such proxies): it may"
              + " call a block this surgery replaces, and would then keep calling the old one;"
              + " write the function as a lambda or a class of your own");
    }
    return new SurgeryException(
        BlockPaths.display(path),
        "field "
            + where(holder, field)
            + " holds a function the engine cannot look into ("
            + function.getClass().getName()
            + (ClosedPackageException.isClosed(function.getClass())
                    && !function.getClass().getModule().getName().startsWith("java.")
                ? "): it may call a block this surgery replaces, and would then keep calling the"
                    + " old one; "
                    + ClosedPackageException.advice(function.getClass())
                : ", a lambda of a module that does not open its package, such as the one"
                    + " Function.andThen returns): it may call a block this surgery replaces, and"
                    + " would then keep calling the old one; write the function as one lambda of"
                    + " your own (x -> g.apply(f.apply(x)))"));
  }

  /** Where a field's value holds the block, in words: one level in, or nested deeper. */
  static String describeHolder(Object value, Block block, FieldSlot field) {
    String where = holderOf(value, block, field);
    if (where != null) {
      return where;
    }
    Class<?> type = value.getClass();
    return type.isSynthetic() || type.isHidden()
        ? "captured by a lambda, through what it captured"
        : java.lang.reflect.Proxy.isProxyClass(type)
            ? "held by the invocation handler of a java.lang.reflect.Proxy"
            : "nested inside a " + type.getTypeName();
  }

  @SuppressWarnings("unchecked")
  void writeIntoField(Block parent, FieldSlot field, Block old, Block replacement, String path) {
    Object value = field.get(parent);
    if (value == old) {
      if (!field.type().isInstance(replacement)) {
        throw new SurgeryException(
            BlockPaths.display(path),
            "field "
                + where(parent, field)
                + " of type "
                + field.type().getSimpleName()
                + " cannot hold the replacement "
                + replacement.getClass().getName());
      }
      field.set(parent, replacement);
      journal.onRollback(() -> field.set(parent, old));
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
    } else if (value instanceof Map<?, ?> map && BlockTrees.containsIdentity(map.values(), old)) {
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
        && BlockTrees.containsIdentity(collection, old)) {
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
      Block parent, FieldSlot field, int typeArgument, Block replacement, String path) {
    Class<?> element = field.declaredTypeArgument(typeArgument);
    if (element != null && !element.isInstance(replacement)) {
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
  static String where(Block parent, FieldSlot field) {
    return parent.getClass().getSimpleName() + "." + field.name();
  }

  /** What a field's value reached when first searched in this surgery. */
  private record Reach(Object value, Set<Block> blocks, Object opaque, Object unexplored) {}

  /** Per parent and field: the blocks its value reached, searched once per surgery. */
  private final Map<Block, Map<FieldSlot, Reach>> reached = new IdentityHashMap<>();

  /**
   * Refuses when one of a parent's fields still holds {@code old} after the writes, in a place the
   * engine cannot write (an {@code Optional}, a map's key, a lambda's capture, a record): the
   * parent's forward would still call the old block. A function the parent runs in its forward
   * whose captured values cannot be read is refused too: it may call the old block.
   *
   * <p>Each field is searched in full once per surgery, however many of the parent's children are
   * replaced (a field may hold a large collection): a child is looked for again only where that
   * search met it. A child the first search did not meet cannot be there later: the writes put only
   * replacements into fields, and a replacement function must not change the tree (one that adds an
   * original block to a parent's field during the surgery breaks that contract). A field given a
   * new value is searched again.
   */
  void refuseUnwritable(Block parent, Block old, Supplier<String> path) {
    Map<FieldSlot, Reach> fields = reached.computeIfAbsent(parent, p -> new HashMap<>());
    for (FieldSlot field : BlockFields.blockReferencingFields(parent.getClass())) {
      Object value = field.get(parent);
      Reach reach = fields.get(field);
      if (reach == null || reach.value() != value) {
        Set<Block> blocks = Collections.newSetFromMap(new IdentityHashMap<>());
        FieldBlocks.Found all =
            FieldBlocks.search(
                value,
                b -> {
                  blocks.add(b);
                  return false; // met, not wanted: the search goes through the whole value
                });
        reach = new Reach(value, blocks, all.opaque(), all.unexplored());
        fields.put(field, reach);
      }
      Object opaque = reach.opaque();
      String holder = null;
      if (reach.blocks().contains(old)) {
        // One search more, for this block: the words for a hit only (holderOf names the place).
        FieldBlocks.Found found = FieldBlocks.search(value, b -> b == old);
        opaque = found.opaque();
        holder = found.block() != null ? describeHolder(value, old, field) : null;
      }
      if (holder == null && opaque != null && runsInForward(field)) {
        throw unreadableFunction(path.get(), parent, field, opaque);
      }
      if (holder == null && reach.unexplored() != null) {
        throw unexplored(path.get(), parent, field, reach.unexplored());
      }
      if (holder != null) {
        throw new SurgeryException(
            BlockPaths.display(path.get()),
            "parent "
                + parent.getClass().getName()
                + " ("
                + (field.isStatic() ? "static " : "")
                + "field '"
                + field.name()
                + "') holds the block "
                + holder
                + ", which the surgery cannot change (its forward would still call the old"
                + " block); keep children in a field of type Block, a List, an array or a Map");
      }
    }
  }
}
