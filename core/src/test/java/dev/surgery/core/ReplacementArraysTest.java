package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.TinyDense;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The arrays of replacements that end up outside the model (replaced again under {@code
 * recurseOnReplacements}, or dropped with the replacement that held them) are freed when the
 * surgery commits; the arrays the model still uses are not. The oracle is the model itself: after
 * the surgery its manager holds exactly the arrays of its parameters, and it computes what it did
 * before (every replacement copies the weights it replaces).
 */
class ReplacementArraysTest {

  private static final Shape INPUT = new Shape(2, 3);

  /** One copying {@link TinyDense} (the one that surgery replaces) and a Linear. */
  private static SequentialBlock model() {
    return new SequentialBlock().add(new TinyDense(4)).add(Linear.builder().setUnits(2).build());
  }

  @Test
  void aReplacementReplacedAgainIsFreed() {
    // TinyDense -> copy -> copy: the middle copy never stays in the model.
    assertOnlyTheModelsArraysStayOpen(
        (block, index) -> index < 2 ? TinyDense.copyingWeight((TinyDense) block) : null,
        TinyDense.class);
  }

  @Test
  void aBlockDroppedFromInsideAReplacementIsFreed() {
    // TinyDense -> FieldHolder(copy, identity); then the copy inside it is replaced by another
    // copy.
    assertOnlyTheModelsArraysStayOpen(
        (block, index) ->
            switch (index) {
              case 0 ->
                  new Fixtures.FieldHolder(
                      TinyDense.copyingWeight((TinyDense) block), Blocks.identityBlock());
              case 1 -> TinyDense.copyingWeight((TinyDense) block);
              default -> null;
            },
        Fixtures.FieldHolder.class);
  }

  private static void assertOnlyTheModelsArraysStayOpen(
      ReplacementFunction function, Class<?> expectedFirstChild) {
    try (NDManager manager = NDManager.newBaseManager()) {
      SequentialBlock root = model();
      root.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32, INPUT);
      manager.getEngine().setRandomSeed(3);
      NDArray x = manager.randomNormal(INPUT);
      float[] before = forward(root, manager, x);
      // DJL leaves some scratch arrays of its own on the manager (initializers): not ours to free.
      Set<NDArray> others = openBesides(manager, root);

      Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
      policies.put((block, path) -> block instanceof TinyDense, function);
      ModuleSurgery.replaceModules(
          root, policies, SurgeryOptions.builder().optRecurseOnReplacements(true).build());
      assertInstanceOf(expectedFirstChild, root.getChildren().valueAt(0));

      Set<NDArray> left = openBesides(manager, root);
      left.removeAll(others);
      assertEquals(Set.of(), left, "arrays left open besides the model's parameters");
      assertArrayEquals(before, forward(root, manager, x), "the model computes what it did");
    }
  }

  /** The manager's open arrays that are not arrays of the model's parameters. */
  private static Set<NDArray> openBesides(NDManager manager, Block root) {
    Set<NDArray> open = OpenArrays.managedBy(manager);
    for (Parameter p : BlockTrees.parametersOf(root)) {
      open.remove(p.getArray());
    }
    return open;
  }

  private static float[] forward(Block root, NDManager manager, NDArray x) {
    try (NDManager scratch = manager.newSubManager()) {
      NDList out = root.forward(new ParameterStore(scratch, false), new NDList(x), false);
      return out.singletonOrThrow().toFloatArray();
    }
  }
}
