package dev.surgery.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.modality.nlp.EncoderDecoder;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.ParameterStore;
import ai.djl.training.optimizer.Optimizer;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** The reflection layer resolves against this DJL and names what changed when it does not. */
class DjlInternalsTest {

  @Test
  void everyFieldResolvesAgainstThisDjl() {
    DjlInternals.verify();
  }

  @Test
  void missingFieldNamesTheDjlClassAndField() {
    DjlInternalsException e =
        assertThrows(
            DjlInternalsException.class,
            () -> DjlInternals.field(AbstractBlock.class, "childrenRenamed", Object.class));
    assertTrue(e.getMessage().contains("ai.djl.nn.AbstractBlock.childrenRenamed"), e.getMessage());
  }

  @Test
  void retypedFieldNamesBothTypes() {
    DjlInternalsException e =
        assertThrows(
            DjlInternalsException.class,
            () -> DjlInternals.field(ParameterStore.class, "parameterMap", Optimizer.class));
    assertTrue(e.getMessage().contains("ai.djl.training.ParameterStore.parameterMap"));
    assertTrue(e.getMessage().contains(Map.class.getName()), e.getMessage());
  }

  @Test
  void optimizerStateMapsAreFoundByType() {
    assertEquals(
        java.util.Set.of("Adam.means", "Adam.variances"),
        DjlInternals.optimizerStates(Optimizer.adam().build()).keySet());
    assertEquals(
        java.util.Set.of("Sgd.momentumStates"),
        DjlInternals.optimizerStates(
                Optimizer.sgd()
                    .setLearningRateTracker(ai.djl.training.tracker.Tracker.fixed(0.1f))
                    .build())
            .keySet());
  }

  /**
   * Where the answer is yes, DJL's own save of an initialized block starts its metadata with the
   * shapes the block was initialized with (the version byte, the count, the shapes); DJL's {@code
   * Linear} writes other metadata first and is answered no.
   */
  @Test
  void blocksSaidToSaveTheirInputShapesFirstDoSo() throws Exception {
    Shape input = new Shape(2, 3, 4, 4);
    Map<Supplier<Block>, Boolean> blocks = new LinkedHashMap<>();
    blocks.put(() -> new SequentialBlock().add(Blocks.batchFlattenBlock()), true);
    blocks.put(() -> BatchNorm.builder().build(), true);
    blocks.put(() -> LayerNorm.builder().build(), true);
    blocks.put(() -> Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(2).build(), true);
    blocks.put(() -> new ParallelBlock(list -> list.get(0)), true);
    blocks.put(() -> Linear.builder().setUnits(2).build(), false);
    // Saves its encoder and decoder itself (a reviewer): its metadata is not its shapes.
    assertFalse(DjlInternals.savesInputShapesFirst(EncoderDecoder.class));
    assertTrue(DjlInternals.describesInputItself(EncoderDecoder.class));
    assertTrue(DjlInternals.describesInputItself(Linear.class));
    assertFalse(DjlInternals.describesInputItself(SequentialBlock.class));
    assertFalse(DjlInternals.describesInputItself(Conv2d.class));
    try (NDManager manager = NDManager.newBaseManager()) {
      for (Map.Entry<Supplier<Block>, Boolean> e : blocks.entrySet()) {
        Block block = e.getKey().get();
        String name = block.getClass().getSimpleName();
        assertEquals(e.getValue(), DjlInternals.savesInputShapesFirst(block.getClass()), name);
        if (!e.getValue()) {
          continue;
        }
        block.initialize(manager, DataType.FLOAT32, input);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        block.saveParameters(new DataOutputStream(bytes));
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()));
        in.readByte(); // version
        assertEquals(1, in.readInt(), name);
        assertEquals(input, Shape.decode(in), name);
      }
    }
  }
}
