package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDList;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import dev.surgery.core.testing.TinyDense;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Where the engine writes a replacement: every place a parent holds the old block, whether the
 * block sits there once (the write then goes straight to where the walk met it), twice in one list,
 * under several parents, or in a list a replacement function lengthened against the contract.
 */
class ChildWritesTest {

  private static Linear linear() {
    return Linear.builder().setUnits(4).build();
  }

  private static List<Block> children(Block block) {
    return new ArrayList<>(block.getChildren().values());
  }

  private static SurgeryOptions recurse(boolean recurse) {
    return SurgeryOptions.builder().optRecurseOnReplacements(recurse).build();
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void eachLeafLandsInItsOwnPlaceAmongAlternatingSiblings(boolean recurse) {
    SequentialBlock root = new SequentialBlock();
    SequentialBlock left = new SequentialBlock();
    SequentialBlock right = new SequentialBlock();
    for (int i = 0; i < 6; i++) {
      left.add(i % 2 == 0 ? linear() : Blocks.identityBlock());
      right.add(i % 3 == 0 ? Blocks.identityBlock() : linear());
    }
    root.add(left).add(right);
    List<Block> leftBefore = children(left);
    List<Block> rightBefore = children(right);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.of(BlockMatcher.ofClass(Linear.class), (block, index) -> new TinyDense(4)),
            recurse(recurse));

    assertEquals(7, replaced.size());
    for (int i = 0; i < 6; i++) {
      Block l = leftBefore.get(i);
      Block r = rightBefore.get(i);
      assertSame(replaced.getOrDefault(l, l), left.getChildren().valueAt(i), "left " + i);
      assertSame(replaced.getOrDefault(r, r), right.getChildren().valueAt(i), "right " + i);
    }
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void aBlockTwiceInOneListAndOnceElsewhereIsReplacedInAllThreePlaces(boolean recurse) {
    Linear shared = linear();
    SequentialBlock twice =
        new SequentialBlock().add(shared).add(Blocks.identityBlock()).add(shared);
    SequentialBlock once = new SequentialBlock().add(linear()).add(shared);
    SequentialBlock root = new SequentialBlock().add(twice).add(once);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.of(
                BlockMatcher.ofClass(Linear.class),
                (block, index) -> block == shared ? new TinyDense(4) : null),
            recurse(recurse));

    Block dense = replaced.get(shared);
    assertSame(dense, twice.getChildren().valueAt(0));
    assertSame(dense, twice.getChildren().valueAt(2));
    assertSame(dense, once.getChildren().valueAt(1));
    assertEquals("03TinyDense", twice.getChildren().keyAt(2), "the key follows the new type");
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void aBlockTwiceInOneListAndNowhereElseIsReplacedAtBothPlaces(boolean recurse) {
    Linear shared = linear();
    SequentialBlock root =
        new SequentialBlock().add(shared).add(Blocks.identityBlock()).add(shared);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.of(BlockMatcher.ofClass(Linear.class), (block, index) -> new TinyDense(4)),
            recurse(recurse));

    assertEquals(1, replaced.size());
    Block dense = replaced.get(shared);
    assertSame(dense, root.getChildren().valueAt(0));
    assertSame(dense, root.getChildren().valueAt(2));
  }

  @ParameterizedTest(name = "recurse={0}")
  @ValueSource(booleans = {false, true})
  void aRollbackPutsTheBlockBackInEveryPlace(boolean recurse) {
    Linear shared = linear();
    Linear alone = linear();
    SequentialBlock twice =
        new SequentialBlock().add(shared).add(Blocks.identityBlock()).add(shared);
    SequentialBlock root = new SequentialBlock().add(twice).add(alone);
    List<Block> twiceBefore = children(twice);
    List<Block> rootBefore = children(root);

    List<Block> twiceWhenTheLastFailed = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(Linear.class),
        (block, index) -> {
          if (block == alone) {
            twiceWhenTheLastFailed.addAll(children(twice));
            throw new IllegalStateException("the last one fails");
          }
          return new TinyDense(4);
        });
    assertThrows(
        SurgeryException.class,
        () -> ModuleSurgery.replaceModules(root, policies, recurse(recurse)));

    // Both places had been written before the failure, and both are put back.
    assertEquals(3, twiceWhenTheLastFailed.size());
    assertTrue(twiceWhenTheLastFailed.get(0) instanceof TinyDense);
    assertSame(twiceWhenTheLastFailed.get(0), twiceWhenTheLastFailed.get(2));
    assertEquals(twiceBefore, children(twice));
    assertEquals(rootBefore, children(root));
    assertEquals("01Linear", twice.getChildren().keyAt(0));
    assertEquals("03Linear", twice.getChildren().keyAt(2));
  }

  /**
   * A block twice in one list is written at both places, and so is its replacement when a recursion
   * replaces it again (two generations): the second write must not take the first one's last index
   * for the only place the replacement holds.
   */
  @Test
  void aBlockTwiceInOneListReplacedAgainUnderRecursionLandsAtBothPlaces() {
    Linear again = linear();
    SequentialBlock twice = new SequentialBlock().add(again).add(Blocks.identityBlock()).add(again);
    Map<Block, Integer> generation = new IdentityHashMap<>();
    Map<Block, Block> chain =
        ModuleSurgery.replaceModules(
            twice,
            Map.of(
                BlockMatcher.ofClass(Linear.class),
                Fixtures.generations(generation, 2, ChildWritesTest::linear)),
            recurse(true));
    Block last = chain.get(chain.get(again));
    assertEquals(2, generation.get(last));
    assertSame(last, twice.getChildren().valueAt(0), "the first place holds the last generation");
    assertSame(last, twice.getChildren().valueAt(2), "the second place holds the last generation");
  }

  @Test
  void aReplacementReplacedAgainUnderRecursionTakesTheSamePlace() {
    SequentialBlock parent =
        new SequentialBlock().add(Blocks.identityBlock()).add(linear()).add(linear());
    Block first = parent.getChildren().valueAt(1);
    Block second = parent.getChildren().valueAt(2);
    // Each Linear is replaced by a new one, which is replaced again, twice over: generations 0-2.
    Map<Block, Integer> generation = new IdentityHashMap<>();
    ReplacementFunction younger = Fixtures.generations(generation, 2, ChildWritesTest::linear);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            parent, Map.of(BlockMatcher.ofClass(Linear.class), younger), recurse(true));

    assertEquals(4, replaced.size(), "two originals replaced, and their replacements again");
    Block firstLast = replaced.get(replaced.get(first));
    Block secondLast = replaced.get(replaced.get(second));
    assertEquals(2, generation.get(firstLast));
    assertEquals(2, generation.get(secondLast));
    assertSame(firstLast, parent.getChildren().valueAt(1));
    assertSame(secondLast, parent.getChildren().valueAt(2));
    assertNotSame(firstLast, secondLast);
  }

  @Test
  void aFunctionThatLengthenedTheListStillSeesEveryPlaceWritten() {
    // Against the contract (a function must not change the tree): a list whose length changed
    // since the walk is scanned, as before. Only a change of length is noticed: an element a
    // function set in place, keeping the length, is not.
    Linear matched = linear();
    SequentialBlock parent = new SequentialBlock().add(Blocks.identityBlock()).add(matched);
    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            parent,
            Map.of(
                BlockMatcher.ofClass(Linear.class),
                (block, index) -> {
                  parent.add(block);
                  return new TinyDense(4);
                }),
            SurgeryOptions.defaults());

    Block dense = replaced.get(matched);
    assertSame(dense, parent.getChildren().valueAt(1));
    assertSame(dense, parent.getChildren().valueAt(2));
  }

  /**
   * A parent that runs its children from a field of its own, of each kind the engine writes: the
   * field's content read back, in order, is what the forward would call.
   */
  enum OwnField {
    LIST(
        blocks -> new Fixtures.ListHolder(blocks.toArray(Block[]::new)),
        holder -> new ArrayList<>(((Fixtures.ListHolder) holder).layers)),
    ARRAY(
        PropertyTrees.ArrayHolder::new,
        holder -> Arrays.asList(((PropertyTrees.ArrayHolder) holder).layers.clone())),
    MAP(
        PropertyTrees.MapHolder::new,
        holder -> new ArrayList<>(((PropertyTrees.MapHolder) holder).layers.values())),
    DEQUE(
        blocks -> new ModuleSurgeryTest.DequeHolder(blocks.toArray(Block[]::new)),
        holder -> new ArrayList<>(((ModuleSurgeryTest.DequeHolder) holder).layers)),
    /** A list kept in a field declared {@code Object}: written as the list it holds. */
    OBJECT(
        ObjectFieldHolder::new, holder -> new ArrayList<>(((ObjectFieldHolder) holder).layers()));

    final Function<List<Block>, Block> build;
    final Function<Block, List<Block>> content;

    OwnField(Function<List<Block>, Block> build, Function<Block, List<Block>> content) {
      this.build = build;
      this.content = content;
    }
  }

  /**
   * A surgery that fails after writing replacements into a parent's own List, array, Map or
   * collection field (or a field declared {@code Object} that holds a list) leaves that field as it
   * was before, element for element and in order: the parent's forward would otherwise call blocks
   * the failed surgery threw away.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(OwnField.class)
  void aRollbackPutsBackTheBlocksInAParentsOwnField(OwnField kind) {
    Linear a = linear();
    Linear b = linear();
    Linear alone = linear();
    Block holder = kind.build.apply(List.of(a, Blocks.identityBlock(), b));
    SequentialBlock root = new SequentialBlock().add(holder).add(alone);
    List<Block> before = kind.content.apply(holder);

    List<Block> whenTheLastFailed = new ArrayList<>();
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(Linear.class),
        (block, index) -> {
          if (block == alone) {
            whenTheLastFailed.addAll(kind.content.apply(holder));
            throw new IllegalStateException("the last one fails");
          }
          return new TinyDense(4);
        });
    assertThrows(
        SurgeryException.class,
        () -> ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults()));

    // The field had been written before the failure (else the check below proves nothing).
    assertTrue(whenTheLastFailed.get(0) instanceof TinyDense, whenTheLastFailed.toString());
    assertTrue(whenTheLastFailed.get(2) instanceof TinyDense, whenTheLastFailed.toString());
    List<Block> after = kind.content.apply(holder);
    assertEquals(before.size(), after.size(), after.toString());
    for (int i = 0; i < before.size(); i++) {
      assertSame(before.get(i), after.get(i), "element " + i);
    }
  }

  /** Runs its layers from a list it keeps in a field declared {@code Object}. */
  static final class ObjectFieldHolder extends Fixtures.InOrderHolder {
    final Object layers;

    ObjectFieldHolder(List<Block> blocks) {
      List<Block> list = new ArrayList<>();
      for (Block b : blocks) {
        list.add(addChildBlock("o", b));
      }
      layers = list;
    }

    @Override
    @SuppressWarnings("unchecked")
    List<Block> layers() {
      return (List<Block>) layers;
    }
  }

  /** Runs its layers from a Map field declared to hold Linear layers. */
  static final class LinearMapHolder extends Fixtures.InOrderHolder {
    final Map<String, Linear> layers = new LinkedHashMap<>();

    LinearMapHolder(Linear... blocks) {
      for (int i = 0; i < blocks.length; i++) {
        layers.put("m" + i, addChildBlock("m", blocks[i]));
      }
    }

    @Override
    List<Block> layers() {
      return new ArrayList<>(layers.values());
    }
  }

  /** Runs its layers from a Deque field declared to hold Linear layers. */
  static final class LinearDequeHolder extends Fixtures.InOrderHolder {
    final ArrayDeque<Linear> layers = new ArrayDeque<>();

    LinearDequeHolder(Linear... blocks) {
      for (Linear b : blocks) {
        layers.add(addChildBlock("d", b));
      }
    }

    @Override
    List<Block> layers() {
      return new ArrayList<>(layers);
    }
  }

  /**
   * A Map or collection field declared to hold Linear layers is not given a replacement of another
   * class: erased at run time, the write would succeed and the parent's own code fail with a
   * ClassCastException at its next forward. Refused, naming the field, the field as it was.
   */
  @ParameterizedTest(name = "map={0}")
  @ValueSource(booleans = {true, false})
  void aMapOrCollectionFieldTypedForTheOldClassIsNotGivenAnotherClass(boolean map) {
    Linear a = linear();
    Linear b = linear();
    Fixtures.InOrderHolder holder = map ? new LinearMapHolder(a, b) : new LinearDequeHolder(a, b);
    SequentialBlock root = new SequentialBlock().add(holder);
    Map<BlockMatcher, ReplacementFunction> policies =
        Fixtures.replacing(b, (block, index) -> new TinyDense(4));

    SurgeryException e =
        assertThrows(
            SurgeryException.class,
            () -> ModuleSurgery.replaceModules(root, policies, SurgeryOptions.defaults()));

    assertTrue(e.getMessage().contains("declared to hold Linear"), e.getMessage());
    List<Block> after = holder.layers();
    assertEquals(2, after.size(), after.toString());
    assertSame(a, after.get(0));
    assertSame(b, after.get(1));
  }

  /**
   * A branch of DJL's ParallelBlock is replaced in place: the block's own function, which it runs
   * in its forward and whose captured values (none) the engine can read, is no obstacle.
   */
  @Test
  void aBranchOfAParallelBlockIsReplacedBesideItsFunction() {
    Linear a = linear();
    Linear b = linear();
    ParallelBlock parallel =
        new ParallelBlock(
            list -> new NDList(list.get(0).singletonOrThrow().add(list.get(1).singletonOrThrow())),
            List.of(a, b));
    SequentialBlock root = new SequentialBlock().add(parallel);

    Map<Block, Block> replaced =
        ModuleSurgery.replaceModules(
            root,
            Map.of(
                BlockMatcher.ofClass(Linear.class),
                (block, index) -> block == a ? new TinyDense(4) : null),
            SurgeryOptions.defaults());

    assertTrue(replaced.get(a) instanceof TinyDense, replaced.toString());
    assertSame(replaced.get(a), parallel.getChildren().valueAt(0));
    assertSame(b, parallel.getChildren().valueAt(1));
  }

  /**
   * A key DJL derived from the old block's class is renamed as DJL would name the replacement at
   * that position, past the two-digit padding too (the oracle: DJL's own keys for a list of the new
   * layout), and a rollback gives every key back.
   */
  @Test
  void keysArePutAsDjlWouldNameTheReplacementPastTheTwoDigitPadding() {
    SequentialBlock root = new SequentialBlock();
    SequentialBlock expected = new SequentialBlock();
    for (int i = 0; i < 101; i++) {
      boolean replacedHere = i == 8 || i == 9 || i == 10 || i == 99 || i == 100;
      root.add(replacedHere ? linear() : Blocks.identityBlock());
      expected.add(replacedHere ? new TinyDense(4) : Blocks.identityBlock());
    }

    ModuleSurgery.replaceModules(
        root,
        Map.of(BlockMatcher.ofClass(Linear.class), (block, index) -> new TinyDense(4)),
        SurgeryOptions.builder().build());
    assertEquals(expected.getChildren().keys(), root.getChildren().keys());

    Map<BlockMatcher, ReplacementFunction> failing = new LinkedHashMap<>();
    failing.put(BlockMatcher.ofClass(TinyDense.class), (block, index) -> linear());
    failing.put(
        BlockMatcher.ofClass(Blocks.identityBlock().getClass()),
        (block, index) -> {
          if (index == 95) {
            throw new IllegalStateException("fails after the first writes");
          }
          return null;
        });
    assertThrows(
        SurgeryException.class,
        () -> ModuleSurgery.replaceModules(root, failing, SurgeryOptions.builder().build()));
    assertEquals(expected.getChildren().keys(), root.getChildren().keys(), "rolled back");
  }
}
