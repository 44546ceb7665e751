package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The map a surgery returns is a view of the surgery's own records, not a copied {@code
 * LinkedHashMap}: it must answer every question as a {@code LinkedHashMap} of the same pairs, in
 * the order the policies decided, and refuse changes. The expected pairs are collected by the
 * replacement functions themselves as they are called.
 */
class ReplacementMapTest {

  /** Root: a, identity, inner(b, shared), shared, c; c is kept (returned as is), b is declined. */
  @Test
  void answersAsALinkedHashMapOfThePairsInDecisionOrder() {
    Linear a = linear();
    Linear b = linear();
    Linear shared = linear();
    Linear c = linear();
    SequentialBlock inner = new SequentialBlock().add(b).add(shared);
    SequentialBlock root =
        new SequentialBlock().add(a).add(Blocks.identityBlock()).add(inner).add(shared).add(c);
    Map<Block, Block> expected = new LinkedHashMap<>();
    List<Block> calls = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies =
        everyLinear(
            calls,
            (block, index) -> {
              Block replacement = block == b ? null : block == c ? block : linear();
              if (replacement != null) {
                expected.put(block, replacement);
              }
              return replacement;
            });

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults());

    assertEquals(List.of(a, b, shared, c), calls, "pre-order, each block asked once");
    assertEquals(List.of(a, shared, c), new ArrayList<>(expected.keySet()));
    assertEquals(expected, replaced);
    assertEquals(replaced, expected);
    assertEquals(expected.hashCode(), replaced.hashCode());
    assertEquals(new ArrayList<>(expected.keySet()), new ArrayList<>(replaced.keySet()));
    assertEquals(new ArrayList<>(expected.values()), new ArrayList<>(replaced.values()));
    assertEquals(3, replaced.size());
    // The entry view is a set of its own: compared by size first, both ways round.
    assertEquals(expected.entrySet().size(), replaced.entrySet().size());
    assertEquals(expected.entrySet(), replaced.entrySet());
    assertEquals(replaced.entrySet(), expected.entrySet());
    for (Map.Entry<Block, Block> e : expected.entrySet()) {
      assertTrue(replaced.containsKey(e.getKey()));
      assertSame(e.getValue(), replaced.get(e.getKey()));
    }
    assertSame(c, replaced.get(c), "a block returned as is maps to itself");
    assertFalse(replaced.containsKey(b), "a declined block is no key");
    assertNull(replaced.get(b));
    assertNull(replaced.get(inner), "a block met but not matched is no key");
    assertNull(replaced.get(linear()), "a block never met is no key");
    assertNull(replaced.get("not a block"));
    assertNull(replaced.get(null));
    assertFalse(replaced.containsKey(null));
    assertTrue(replaced.containsValue(expected.get(a)));
  }

  @Test
  void refusesChanges() {
    Linear a = linear();
    SequentialBlock root = new SequentialBlock().add(a);
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModuleClasses(root, Map.of(Linear.class, (block, index) -> linear()));
    Block replacement = replaced.get(a);
    assertThrows(UnsupportedOperationException.class, () -> replaced.put(a, a));
    assertThrows(UnsupportedOperationException.class, () -> replaced.remove(a));
    assertThrows(UnsupportedOperationException.class, replaced::clear);
    Iterator<Map.Entry<Block, Block>> it = replaced.entrySet().iterator();
    Map.Entry<Block, Block> entry = it.next();
    assertThrows(UnsupportedOperationException.class, it::remove);
    assertThrows(UnsupportedOperationException.class, () -> entry.setValue(a));
    assertFalse(it.hasNext());
    assertThrows(java.util.NoSuchElementException.class, it::next);
    assertSame(replacement, replaced.get(a), "unchanged after the refused calls");
    assertEquals(1, replaced.size());
  }

  /** Under recursion a replacement decided on again is a key of its own, after its original. */
  @Test
  void keepsReplacementsOfReplacementsInOrder() {
    Linear a = linear();
    SequentialBlock root = new SequentialBlock().add(a);
    List<Block> calls = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies =
        everyLinear(calls, (block, index) -> index < 2 ? linear() : null); // a -> r1 -> r2, no more
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root, policies, SurgeryOptions.builder().optRecurseOnReplacements(true).build());
    assertEquals(3, calls.size());
    assertEquals(List.of(calls.get(0), calls.get(1)), new ArrayList<>(replaced.keySet()));
    assertSame(calls.get(1), replaced.get(a));
    assertSame(calls.get(2), replaced.get(calls.get(1)));
    assertSame(calls.get(2), root.getChildren().get(0).getValue());
  }

  /** One policy for every {@code Linear}, recording each block it is asked about. */
  private static Map<BlockMatcher, ReplacementFunction> everyLinear(
      List<Block> calls, ReplacementFunction function) {
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(Linear.class),
        (block, index) -> {
          calls.add(block);
          return function.apply(block, index);
        });
    return policies;
  }

  private static Linear linear() {
    return Linear.builder().setUnits(3).build();
  }
}
