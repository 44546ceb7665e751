package dev.surgery.core;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Parameter;
import dev.surgery.core.internal.BlockFields;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.internal.FieldSlot;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What a block tree is made of at one moment, to put back after a multi-step change failed part way
 * (a checkpoint's surgery replay and the parameter load after it): every block's children and every
 * field of it (a layer's settings, which DJL's load writes as it reads them, and the fields that
 * hold blocks, with the contents of their lists, arrays and maps), each block's recorded input
 * shapes, and each parameter's array, shape and whether it trains. A restore drops what the failed
 * change added, and frees the arrays of parameters that have no place in the restored tree or that
 * replaced an array the snapshot knew.
 *
 * <p>One surgery is all-or-nothing by itself (its own undo log); this is for a sequence of them
 * plus DJL's own writes, which keep no log. It holds references, not copies of values: an array
 * whose values were changed in place is not put back, nor one a committed surgery freed (the arrays
 * of the blocks it replaced). So it is taken where the tree holds no array a change could free: a
 * model not initialized, or one whose arrays were taken off their parameters for the time of the
 * change, as a checkpoint load does.
 */
public final class BlockTreeSnapshot {

  private final Block root;
  private final List<BlockState> blocks = new ArrayList<>();
  private final List<ParameterState> parameters = new ArrayList<>();

  /** A block's children and its fields (its recorded input shapes among them). */
  private record BlockState(
      Block block, List<String> keys, List<Block> children, List<FieldState> fields) {}

  private record FieldState(FieldSlot field, Object value, Object contents) {}

  private record ParameterState(
      Parameter parameter, NDArray array, Shape shape, boolean requiresGradient) {}

  private BlockTreeSnapshot(Block root) {
    this.root = root;
  }

  /**
   * Records a tree as it is now.
   *
   * @param root the root block
   * @return the snapshot
   */
  public static BlockTreeSnapshot of(Block root) {
    BlockTreeSnapshot snapshot = new BlockTreeSnapshot(root);
    Set<Object> met = identitySet();
    for (Block block : reachable(root)) {
      BlockList children = DjlBlocks.registeredChildren(block);
      List<FieldState> fields = new ArrayList<>();
      List<FieldSlot> holding = BlockFields.blockHoldingFields(block.getClass());
      for (FieldSlot field : BlockFields.instanceFields(block.getClass())) {
        // Every field: DJL's load writes a layer's settings (Linear.units) as it reads them.
        Object value = field.get(block);
        fields.add(
            new FieldState(field, value, holding.contains(field) ? contentsOf(value) : null));
      }
      snapshot.blocks.add(
          new BlockState(
              block,
              children == null ? null : new ArrayList<>(children.keys()),
              children == null ? null : new ArrayList<>(children.values()),
              fields));
      for (Parameter p : block.getDirectParameters().values()) {
        if (met.add(p)) {
          snapshot.parameters.add(
              new ParameterState(
                  p, p.isInitialized() ? p.getArray() : null, p.getShape(), p.requiresGradient()));
        }
      }
    }
    return snapshot;
  }

  /**
   * Puts the tree back as it was recorded. Arrays of parameters the restored tree no longer has,
   * and arrays that replaced a recorded one, are freed: nothing else holds them.
   */
  @SuppressWarnings("unchecked")
  public void restore() {
    Set<Object> known = identitySet();
    Set<Object> knownArrays = identitySet();
    for (ParameterState state : parameters) {
      known.add(state.parameter());
      if (state.array() != null) {
        knownArrays.add(state.array());
      }
    }
    // What the failed change added: parameters reachable now that the snapshot does not know.
    List<Parameter> added = new ArrayList<>();
    Set<Object> met = identitySet();
    for (Block block : reachable(root)) {
      for (Parameter p : block.getDirectParameters().values()) {
        if (met.add(p) && !known.contains(p)) {
          added.add(p);
        }
      }
    }
    for (BlockState state : blocks) {
      if (state.children() != null) {
        BlockList children = DjlBlocks.registeredChildren(state.block());
        children.keys().clear();
        children.keys().addAll(state.keys());
        children.values().clear();
        children.values().addAll(state.children());
      }
      for (FieldState field : state.fields()) {
        Object now = field.field().get(state.block());
        boolean same =
            field.field().type().isPrimitive() ? now.equals(field.value()) : now == field.value();
        if (!same) {
          field.field().set(state.block(), field.value());
        }
        if (field.contents() != null
            && !sameElements(contentsOf(field.value()), field.contents())) {
          restoreContents(field.value(), field.contents());
        }
      }
    }
    for (ParameterState state : parameters) {
      Parameter p = state.parameter();
      NDArray now = p.isInitialized() ? p.getArray() : null;
      if (now != state.array()) {
        if (now != null && !knownArrays.contains(now)) {
          now.close();
        }
        DjlBlocks.restoreParameter(p, state.array(), state.shape());
      } else if (p.getShape() != state.shape()) {
        DjlBlocks.restoreParameter(p, state.array(), state.shape());
      }
      if (p.requiresGradient() != state.requiresGradient()) {
        p.freeze(!state.requiresGradient());
      }
    }
    for (Parameter p : added) {
      if (p.isInitialized() && !knownArrays.contains(p.getArray())) {
        p.close();
      }
    }
  }

  /** A copy of what a list, array, map or other collection holds; null for anything else. */
  private static Object contentsOf(Object value) {
    if (value instanceof Object[] array) {
      return array.clone();
    }
    if (value instanceof Map<?, ?> map) {
      return new LinkedHashMap<>(map);
    }
    if (value instanceof Collection<?> collection) {
      return new ArrayList<>(collection);
    }
    return null;
  }

  /** Whether two copies made by {@link #contentsOf} hold the same objects (an unchanged field). */
  private static boolean sameElements(Object now, Object saved) {
    if (now == null || saved == null) {
      return now == saved;
    }
    if (now instanceof Object[] a && saved instanceof Object[] b) {
      return identical(Arrays.asList(a), Arrays.asList(b));
    }
    if (now instanceof Map<?, ?> a && saved instanceof Map<?, ?> b) {
      return identical(new ArrayList<>(a.keySet()), new ArrayList<>(b.keySet()))
          && identical(new ArrayList<>(a.values()), new ArrayList<>(b.values()));
    }
    return identical((List<?>) now, (List<?>) saved);
  }

  private static boolean identical(List<?> a, List<?> b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (int i = 0; i < a.size(); i++) {
      if (a.get(i) != b.get(i)) {
        return false;
      }
    }
    return true;
  }

  @SuppressWarnings("unchecked")
  private static void restoreContents(Object value, Object contents) {
    if (value instanceof Object[] array) {
      Object[] saved = (Object[]) contents;
      System.arraycopy(saved, 0, array, 0, Math.min(saved.length, array.length));
    } else if (value instanceof Map<?, ?> map) {
      Map<Object, Object> target = (Map<Object, Object>) map;
      target.clear();
      target.putAll((Map<Object, Object>) contents);
    } else if (value instanceof Collection<?> collection) {
      Collection<Object> target = (Collection<Object>) collection;
      target.clear();
      target.addAll((Collection<Object>) contents);
    }
  }

  /** Every block under the root and the root, each once, parents before children. */
  private static List<Block> reachable(Block root) {
    List<Block> order = new ArrayList<>();
    BlockTrees.visitOnce(root, order::add);
    return order;
  }

  private static Set<Object> identitySet() {
    return Collections.newSetFromMap(new IdentityHashMap<>());
  }
}
