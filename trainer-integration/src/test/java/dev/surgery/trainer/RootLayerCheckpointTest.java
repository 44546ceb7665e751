package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryListenerFitTest.algorithm;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.core.Linear;
import ai.djl.nn.core.LinearCollection;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints of a model whose root block is itself one layer (a bare {@code Linear}, as a linear
 * model is often built): DJL's file header holds what the root describes as its input, which for
 * {@code Linear} is the input without its last dimension, so a replay that shaped the layer from it
 * built a weight of the wrong width and refused the file.
 */
class RootLayerCheckpointTest {

  @TempDir Path dir;

  /**
   * Trains a model whose block is {@code layer} with an entry that changes no block, then saves.
   */
  private float[] trainAndSave(Supplier<Block> layer, Shape batchShape, NDArray probe)
      throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(algorithm("blurpool", Map.of()), 1).build();
    NDManager data = probe.getManager();
    Shape samples = new Shape(64).addAll(batchShape.slice(1));
    ArrayDataset dataset =
        new ArrayDataset.Builder()
            .setData(data.randomNormal(samples))
            .optLabels(data.randomInteger(0, 4, new Shape(64), DataType.INT32))
            .setSampling((int) batchShape.get(0), false)
            .build();
    try (Model model = Model.newInstance("root")) {
      model.setBlock(layer.get());
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(batchShape);
        EasyTrain.fit(trainer, 2, dataset, null);
      }
      assertEquals(
          List.of("blurpool"),
          SurgeryJson.recordsFromJson(model.getProperty("surgery")).stream()
              .map(SurgeryRecord::algorithm)
              .toList(),
          "the entry that changed nothing is recorded, so the load replays it");
      model.save(dir, "root");
      return SurgeryCheckpointTest.outputs(model, probe);
    }
  }

  @Test
  void aCheckpointOfABareLinearLoadsBitForBit() throws Exception {
    for (Shape batchShape : List.of(new Shape(16, 12), new Shape(16, 5, 12))) {
      try (NDManager data = NDManager.newBaseManager()) {
        data.getEngine().setRandomSeed(7);
        NDArray probe = data.randomNormal(new Shape(3).addAll(batchShape.slice(1)));
        Supplier<Block> linear = () -> Linear.builder().setUnits(4).build();
        float[] saved = trainAndSave(linear, batchShape, probe);
        Path file = SurgeryCheckpoint.resolveParamsFile(dir, "root", null);
        // What DJL wrote: the input without its last dimension.
        assertEquals(
            List.of(batchShape.slice(0, batchShape.dimension() - 1)),
            SurgeryCheckpoint.readHeader(file).inputShapes());
        try (Model restored = Model.newInstance("root")) {
          restored.setBlock(linear.get());
          SurgeryCheckpoint.load(restored, dir, "root");
          assertArrayEquals(saved, SurgeryCheckpointTest.outputs(restored, probe), "" + batchShape);
          assertEquals(
              new Shape(4, 12),
              restored.getBlock().getParameters().get("weight").getArray().getShape());
        }
        // The file's shapes are still checked: a layer of another width is refused.
        try (Model other = Model.newInstance("root")) {
          other.setBlock(Linear.builder().setUnits(5).build());
          MalformedModelException e =
              assertThrows(
                  MalformedModelException.class, () -> SurgeryCheckpoint.load(other, dir, "root"));
          assertTrue(e.getMessage().contains("(4, 12) in the file"), e.getMessage());
          assertFalse(
              other.getBlock().isInitialized(), "the refused load left the model as it was");
        }
      }
    }
  }

  @Test
  void aBareLayerWhoseInputTheFileCannotTellIsRefusedSayingSo() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(7);
      Shape batchShape = new Shape(16, 3, 4);
      NDArray probe = data.randomNormal(new Shape(2, 3, 4));
      Supplier<Block> collection = () -> LinearCollection.builder().setUnits(4).build();
      trainAndSave(collection, batchShape, probe);
      try (Model restored = Model.newInstance("root")) {
        restored.setBlock(collection.get());
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class, () -> SurgeryCheckpoint.load(restored, dir, "root"));
        assertTrue(e.getMessage().contains("blurpool"), e.getMessage());
        assertTrue(e.getMessage().contains("records no input shapes"), e.getMessage());
        assertFalse(restored.getBlock().isInitialized());
      }
    }
  }
}
