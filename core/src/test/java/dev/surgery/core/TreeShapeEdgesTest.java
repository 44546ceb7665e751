package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import dev.surgery.core.testing.PassThroughBlock;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Trees an outside probe built where the benchmarks do not go: keys beyond the Basic Multilingual
 * Plane, keys that hold '/', and chains thousands of blocks deep.
 */
class TreeShapeEdgesTest {

  /** A block that names its children itself, as a user's block may. */
  private static final class Named extends PassThroughBlock {
    Named(Map<String, Block> children) {
      children.forEach(this::addChildBlock);
    }
  }

  @Test
  void aPatternWithACharacterBeyondTheBmpMatchesItsBlock() {
    Map<String, Block> children = new LinkedHashMap<>();
    children.put("brain\uD83E\uDDE0", Linear.builder().setUnits(2).build()); // U+1F9E0
    children.put("other", Linear.builder().setUnits(2).build());
    Named root = new Named(children);
    Block brain = root.getChildren().values().get(0);
    String path = BlockPaths.pathOf(root, brain);
    // The oracle: the path is its own glob when it holds no wildcard.
    assertTrue(BlockMatcher.pathGlob(path).matches(brain, path), path);
    assertTrue(BlockMatcher.pathGlob("*\uD83E\uDDE0").matches(brain, path), "a star before it");
    assertTrue(BlockMatcher.pathGlob("*?").matches(brain, path), "'?' takes the whole character");
    // An exclude that names it keeps it out, as an exclude of an ASCII key does.
    Targets.Selection selection = Targets.of(List.of(), List.of(path)).select(root);
    assertFalse(selection.contains(brain), "the excluded block is selected");
    assertTrue(selection.contains(root.getChildren().values().get(1)));
  }

  @Test
  void aKeyHoldingASlashIsResolvedFromThePathTheIndexGives() {
    Map<String, Block> children = new LinkedHashMap<>();
    Linear slashed = Linear.builder().setUnits(2).build();
    children.put("a/b", slashed);
    Named root = new Named(children);
    String path = BlockPaths.pathOf(root, slashed);
    assertEquals("01a/b", path); // DJL numbers the key
    assertSame(slashed, BlockPaths.resolve(root, path));
    assertEquals(null, BlockPaths.resolve(root, "01a/c"));
  }

  /** A chain of nested SequentialBlocks with one Linear at the bottom. */
  private static SequentialBlock chain(int depth) {
    SequentialBlock top = new SequentialBlock();
    SequentialBlock current = top;
    for (int i = 1; i < depth; i++) {
      SequentialBlock next = new SequentialBlock();
      current.add(next);
      current = next;
    }
    current.add(Linear.builder().setUnits(2).build());
    return top;
  }

  /**
   * A chain of blocks keyed {@code x} (paths of four characters a level: a deep chain's paths add
   * up to the square of its depth), with {@code bottom} at the end.
   */
  private static Named namedChain(int depth, Block bottom) {
    Block current = bottom;
    for (int i = 0; i < depth; i++) {
      current = new Named(Map.of("x", current));
    }
    return (Named) current;
  }

  /** Runs on a thread with a small stack, so that the depth that overflows does not vary. */
  private static <T> T onSmallStack(java.util.function.Supplier<T> work) throws Exception {
    AtomicReference<Object> result = new AtomicReference<>();
    Thread t =
        new Thread(
            null,
            () -> {
              try {
                result.set(work.get());
              } catch (Throwable e) {
                result.set(e);
              }
            },
            "small-stack",
            256 * 1024);
    t.start();
    t.join();
    if (result.get() instanceof Throwable e) {
      if (e instanceof RuntimeException r) {
        throw r;
      }
      throw new AssertionError("not a typed error: " + e, e);
    }
    @SuppressWarnings("unchecked")
    T value = (T) result.get();
    return value;
  }

  @Test
  void theIndexWalksAChainDeeperThanTheStackTakesByRecursion() throws Exception {
    Linear bottom = Linear.builder().setUnits(2).build();
    Named deep = namedChain(4_000, bottom);
    Map<Block, String> index = onSmallStack(() -> BlockPaths.index(deep));
    assertEquals(4_001, index.size());
    assertEquals(4_000 * 4 - 1, index.get(bottom).length()); // "01x/" per level, the last "01x"
    assertSame(bottom, onSmallStack(() -> BlockPaths.resolve(deep, index.get(bottom))));
  }

  @Test
  void aChainTooDeepForTheStackIsRefusedTypedAndUnchanged() throws Exception {
    Linear bottom = Linear.builder().setUnits(2).build();
    Named deep = namedChain(20_000, bottom);
    SurgeryException counted =
        assertThrows(
            SurgeryException.class,
            () -> onSmallStack(() -> ModuleSurgery.countModuleInstances(deep, Linear.class)));
    assertTrue(counted.getMessage().contains("nests too deeply"), counted.getMessage());
    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
    policies.put(
        BlockMatcher.ofClass(Linear.class), (b, i) -> Linear.builder().setUnits(2).build());
    SurgeryException replaced =
        assertThrows(
            SurgeryException.class,
            () ->
                onSmallStack(
                    () -> ModuleSurgery.replaceModules(deep, policies, SurgeryOptions.defaults())));
    assertTrue(replaced.getMessage().contains("nests too deeply"), replaced.getMessage());
    assertTrue(replaced.getMessage().contains("nothing was changed"), replaced.getMessage());
    // Unchanged: the bottom of the chain is still the original block.
    Block current = deep;
    while (!current.getChildren().isEmpty()) {
      current = current.getChildren().values().get(0);
    }
    assertSame(bottom, current);
  }

  @Test
  void aChainDjlCanInitializeIsCountedAndReplaced() {
    SequentialBlock chain = chain(1_000);
    try (NDManager manager = NDManager.newBaseManager()) {
      chain.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
      assertEquals(1, ModuleSurgery.countModuleInstances(chain, Linear.class));
      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put(
          BlockMatcher.ofClass(Linear.class), (b, i) -> Linear.builder().setUnits(2).build());
      assertEquals(
          1, ModuleSurgery.replaceModules(chain, policies, SurgeryOptions.defaults()).size());
    }
  }
}
