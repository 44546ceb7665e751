package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import dev.surgery.core.internal.ClosedPackageException;
import dev.surgery.core.testing.ClosedModules;
import dev.surgery.core.testing.TinyDense;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A program on the module path whose module does not open its package: the engine cannot read the
 * fields of its block classes (the module system refuses), so a surgery that needs them is refused
 * and rolled back, naming the block path and the {@code opens} that allows it, never with the JDK's
 * bare words or advice that does not apply (an outside probe met both).
 */
class ClosedModuleTest {

  private static final Shape INPUT = new Shape(2, 5);

  /** The classes of module {@code closedapp}: exported, not opened. */
  private static ClassLoader closedApp;

  @BeforeAll
  static void defineTheModule(@TempDir Path dir) throws Exception {
    closedApp = ClosedModules.closedApp(dir);
    assertTrue(ClosedPackageException.isClosed(closedApp.loadClass("closedapp.Holder")));
  }

  /** A surgery that needs the fields of every block on the way: each TinyDense replaced. */
  private static Map<Block, Block> renewDenseLayers(Block root) {
    return ModuleSurgery.replaceModuleClasses(
        root, Map.of(TinyDense.class, (b, i) -> new TinyDense(5)));
  }

  @Test
  void aSurgeryBelowABlockOfAClosedModuleIsRefusedNamingThePathAndTheOpens() throws Exception {
    try (Model model = Model.newInstance("closed")) {
      TinyDense dense = new TinyDense(5);
      SequentialBlock root =
          new SequentialBlock().add(new TinyDense(5)).add(ClosedModules.holder(closedApp, dense));
      model.setBlock(root);
      root.initialize(model.getNDManager(), DataType.FLOAT32, INPUT);
      float[] before = dense.getParameters().valueAt(0).getArray().toFloatArray();

      SurgeryException e = assertThrows(SurgeryException.class, () -> renewDenseLayers(root));

      assertEquals("02Holder", e.getBlockPath(), e.getMessage());
      assertInstanceOf(ClosedPackageException.class, e.getCause());
      String message = e.getMessage();
      assertTrue(message.contains("closedapp.Holder.inner"), message);
      // DJL Surgery runs from the class path in this test: the unqualified opens is the way.
      assertTrue(message.contains("add 'opens closedapp;' to its module-info.java"), message);
      assertTrue(message.contains("--add-opens closedapp/closedapp=ALL-UNNAMED"), message);
      // Rolled back: the same blocks, the same values.
      assertSame(dense, root.getChildren().get(1).getValue().getChildren().get(0).getValue());
      assertArrayEquals(before, dense.getParameters().valueAt(0).getArray().toFloatArray());
    }
  }

  @Test
  void aLambdaOfAClosedModuleIsRefusedWithTheOpensNotWithAdviceToRewriteIt() throws Exception {
    try (NDManager manager = NDManager.newBaseManager()) {
      TinyDense dense = new TinyDense(5);
      Block calls = ClosedModules.lambdaOver(closedApp, dense);
      SequentialBlock root = new SequentialBlock().add(dense).add(calls);
      root.initialize(manager, DataType.FLOAT32, INPUT);

      SurgeryException e = assertThrows(SurgeryException.class, () -> renewDenseLayers(root));

      String message = e.getMessage();
      assertTrue(message.contains("add 'opens closedapp;' to its module-info.java"), message);
      assertFalse(message.contains("write the function as one lambda"), message);
      assertSame(dense, root.getChildren().get(0).getValue());
    }
  }
}
