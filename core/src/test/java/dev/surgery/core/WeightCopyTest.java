package dev.surgery.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.transformer.IdEmbedding;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.Trainer;
import ai.djl.training.initializer.Initializer;
import ai.djl.training.optimizer.Optimizer;
import dev.surgery.core.internal.DjlShapes;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.GcSafeL2Loss;
import dev.surgery.core.testing.TinyModels;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class WeightCopyTest {

  private static final Shape INPUT = new Shape(2, 3, 8, 8);

  private static Conv2d conv(int stride) {
    return TinyModels.conv3x3(4, stride);
  }

  /**
   * A copy into a block whose own settings shape the parameter otherwise (another kernel, another
   * number of filters, a linear layer): accepted, the surgery's output-shape check passed where the
   * kernel changed (the declared shapes follow the settings, the forward the arrays), and the model
   * computed something else without a word (an outside probe). Refused, the fresh block as it was.
   */
  @Test
  void aCopyIntoABlockWhoseSettingsShapeTheWeightOtherwiseIsRefused() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Conv2d old = conv(1);
      old.initialize(manager, DataType.FLOAT32, INPUT);
      NDArray oldWeight = old.getParameters().get("weight").getArray();
      Map<Block, String> wrong =
          Map.of(
              Conv2d.builder()
                  .setKernelShape(new Shape(5, 5))
                  .optPadding(new Shape(2, 2))
                  .setFilters(4)
                  .build(),
              "(4, 3, 5, 5)",
              TinyModels.conv3x3(8, 1),
              "(8, 3, 3, 3)",
              ai.djl.nn.core.Linear.builder().setUnits(4).build(),
              "(4, 8)");
      wrong.forEach(
          (fresh, declared) -> {
            IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> WeightCopy.into(fresh, old));
            assertTrue(e.getMessage().contains("'weight' is (4, 3, 3, 3)"), e.getMessage());
            assertTrue(e.getMessage().contains("make it " + declared), e.getMessage());
            for (Parameter p : fresh.getParameters().values()) {
              assertTrue(!p.isInitialized() && p.getShape() == null, "left as it was: " + p);
            }
            assertEquals(null, DjlShapes.recordedInputShapes(fresh), "no input shapes left");
          });
      assertTrue(old.getParameters().get("weight").getArray() == oldWeight);
      // The same block with matching settings still takes the copy.
      Block right = WeightCopy.into(conv(1), old);
      assertEquals(
          new Shape(4, 3, 3, 3), right.getParameters().get("weight").getArray().getShape());
    }
  }

  @Test
  void aCopiedConvolutionComputesTheSameWithoutRunningItsInitializer() {
    Conv2d old = conv(2);
    SequentialBlock net = new SequentialBlock().add(old);
    try (Model model = Model.newInstance("copy")) {
      model.setBlock(net);
      try (Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss())
                  .optOptimizer(Optimizer.adam().build()))) {
        trainer.initialize(INPUT);
        NDArray x = model.getNDManager().randomNormal(INPUT);
        float[] before = trainer.evaluate(new NDList(x)).singletonOrThrow().toFloatArray();
        AtomicInteger initializerCalls = new AtomicInteger();
        Map<Block, Block> replaced =
            ModuleSurgery.replaceModuleClasses(
                net,
                Map.of(
                    Conv2d.class,
                    (block, index) -> {
                      Conv2d fresh = conv(2);
                      fresh.setInitializer(counting(initializerCalls), Parameter.Type.WEIGHT);
                      return WeightCopy.into(fresh, block);
                    }),
                List.of(trainer),
                false,
                null);
        Conv2d copy = (Conv2d) replaced.get(old);
        assertEquals(0, initializerCalls.get(), "no random values computed to be overwritten");
        List<Parameter> copied = copy.getParameters().values();
        for (Parameter p : copied) {
          assertTrue(p.getArray().hasGradient(), p.getName() + " trains");
        }
        float[] after = trainer.evaluate(new NDList(x)).singletonOrThrow().toFloatArray();
        ExactnessOracle.assertBitsEqual(
            model.getNDManager().create(before), model.getNDManager().create(after), "output");
        assertNotSame(old, copy);
        assertEquals(
            new Shape(4, 3, 3, 3), copy.getParameters().get("weight").getArray().getShape());
        assertEquals(INPUT, copy.getInputShapes()[0]);
      }
    }
  }

  @Test
  void mismatchedLayoutsAreRefusedBeforeAnythingChanges() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Conv2d old = conv(1);
      old.initialize(manager, DataType.FLOAT32, INPUT);
      Conv2d initialized = conv(1);
      initialized.initialize(manager, DataType.FLOAT32, INPUT);
      IllegalArgumentException twice =
          assertThrows(IllegalArgumentException.class, () -> WeightCopy.into(initialized, old));
      assertTrue(twice.getMessage().contains("already holds an array"), twice.getMessage());

      Conv2d noBias =
          Conv2d.builder().setKernelShape(new Shape(3, 3)).setFilters(4).optBias(false).build();
      IllegalArgumentException count =
          assertThrows(IllegalArgumentException.class, () -> WeightCopy.into(noBias, old));
      assertTrue(count.getMessage().contains("has 2 parameters"), count.getMessage());
      assertEquals(null, noBias.getParameters().get("weight").getShape(), "untouched");

      IllegalArgumentException uninitialized =
          assertThrows(IllegalArgumentException.class, () -> WeightCopy.into(conv(1), conv(1)));
      assertTrue(
          uninitialized.getMessage().contains("not initialized"), uninitialized.getMessage());
    }
  }

  /**
   * DJL's {@code IdEmbedding} sets its parameter's shape when it is built: a fresh one was refused
   * as "initialized" (an outside probe), so the copy recipe could not replace one. A shape set at
   * build time that equals the copied array's is accepted, and the model computes the same; one
   * that differs is refused, naming both shapes, the fresh block unchanged.
   */
  @Test
  void aBlockThatSetsItsShapesWhenBuiltTakesACopyOfTheSameShape() {
    IdEmbedding old = idEmbedding(20);
    SequentialBlock net = new SequentialBlock().add(old);
    Shape ids = new Shape(2, 5);
    try (Model model = Model.newInstance("embedding-copy")) {
      model.setBlock(net);
      try (Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss())
                  .optOptimizer(Optimizer.adam().build()))) {
        trainer.initialize(ids);
        NDArray x = model.getNDManager().randomInteger(0, 20, ids, DataType.INT32);
        float[] before = trainer.evaluate(new NDList(x)).singletonOrThrow().toFloatArray();

        IdEmbedding wider = idEmbedding(30);
        IllegalArgumentException refused =
            assertThrows(IllegalArgumentException.class, () -> WeightCopy.into(wider, old));
        assertTrue(
            refused.getMessage().contains("(20, 16)") && refused.getMessage().contains("(30, 16)"),
            refused.getMessage());
        assertFalse(wider.getParameters().get("embedding").isInitialized(), "untouched");
        assertEquals(new Shape(30, 16), wider.getParameters().get("embedding").getShape());

        Map<Block, Block> replaced =
            ModuleSurgery.replaceModuleClasses(
                net,
                Map.of(
                    IdEmbedding.class, (block, index) -> WeightCopy.into(idEmbedding(20), block)),
                List.of(trainer),
                false,
                null);
        Block copy = replaced.get(old);
        assertNotSame(old, copy);
        Parameter embedding = copy.getParameters().get("embedding");
        assertEquals(new Shape(20, 16), embedding.getArray().getShape());
        assertEquals("embedding", embedding.getArray().getName());
        assertTrue(embedding.getArray().hasGradient(), "the copy trains");
        float[] after = trainer.evaluate(new NDList(x)).singletonOrThrow().toFloatArray();
        ExactnessOracle.assertBitsEqual(
            model.getNDManager().create(before), model.getNDManager().create(after), "output");
      }
    }
  }

  /**
   * A copy is named after the parameter that holds it, as DJL's {@code Parameter.setArray} names an
   * array, whatever the old array was called: {@code duplicate()} keeps the old name, and a
   * parameter with a shape set when built (IdEmbedding) is not given its copy through {@code
   * setArray}.
   */
  @Test
  void aCopyIsNamedAfterItsParameterAsSetArrayNamesIt() {
    try (NDManager manager = NDManager.newBaseManager()) {
      IdEmbedding oldEmbedding = idEmbedding(20);
      oldEmbedding.initialize(manager, DataType.FLOAT32, new Shape(2, 5));
      oldEmbedding.getParameters().get("embedding").getArray().setName("renamed");
      IdEmbedding copied = WeightCopy.into(idEmbedding(20), oldEmbedding);
      assertEquals("embedding", copied.getParameters().get("embedding").getArray().getName());

      Conv2d oldConv = conv(1);
      oldConv.initialize(manager, DataType.FLOAT32, INPUT);
      oldConv.getParameters().get("weight").getArray().setName("renamed");
      Parameter byDjl =
          Parameter.builder().setName("weight").setType(Parameter.Type.WEIGHT).build();
      byDjl.setArray(oldConv.getParameters().get("weight").getArray().duplicate());
      Conv2d copiedConv = WeightCopy.into(conv(1), oldConv);
      assertEquals(
          byDjl.getArray().getName(),
          copiedConv.getParameters().get("weight").getArray().getName());
    }
  }

  private static IdEmbedding idEmbedding(int dictionary) {
    return new IdEmbedding.Builder().setDictionarySize(dictionary).setEmbeddingSize(16).build();
  }

  private static Initializer counting(AtomicInteger calls) {
    return (manager, shape, dataType) -> {
      calls.incrementAndGet();
      return manager.zeros(shape, dataType);
    };
  }
}
