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
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.core.Linear;
import ai.djl.nn.core.LinearCollection;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.util.PairList;
import dev.surgery.core.testing.TinyModels;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
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
    return trainAndSave(layer, batchShape, probe, "blurpool", Map.of());
  }

  /** Trains a model whose block is {@code layer} with one entry at epoch 1, then saves. */
  private float[] trainAndSave(
      Supplier<Block> layer,
      Shape batchShape,
      NDArray probe,
      String algorithm,
      Map<String, Object> settings)
      throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder().add(algorithm(algorithm, settings), 1).build();
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
          List.of(algorithm),
          SurgeryJson.recordsFromJson(model.getProperty("surgery")).stream()
              .map(SurgeryRecord::algorithm)
              .toList(),
          "the entry is recorded (one that changed nothing too), so the load replays it");
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

  /**
   * An outside tester: a program's root block that describes its input per sample (without the
   * batch dimension, as DJL's {@code Linear} leaves out its last): DJL's header holds that
   * description, and a replay shaped from it refused the file ("holds (3) in the file, but the
   * replayed surgery built it as (5)") for every entry, one that changed nothing too, where DJL's
   * own load reads it. The shapes are read from the root's metadata, which DJL's blocks start with.
   */
  @Test
  void aRootThatDescribesItsInputPerSampleLoadsBitForBit() throws Exception {
    Shape batchShape = new Shape(16, 4, 8, 8);
    for (Map<String, Object> blur :
        List.of(
            Map.<String, Object>of("min_channels", 2),
            Map.<String, Object>of("min_channels", 64))) {
      try (NDManager data = NDManager.newBaseManager()) {
        data.getEngine().setRandomSeed(7);
        NDArray probe = data.randomNormal(new Shape(3, 4, 8, 8));
        float[] saved = trainAndSave(PerSampleNet::new, batchShape, probe, "blurpool", blur);
        try (Model restored = Model.newInstance("root")) {
          restored.setBlock(new PerSampleNet());
          SurgeryCheckpoint.load(restored, dir, "root");
          assertArrayEquals(saved, SurgeryCheckpointTest.outputs(restored, probe), "" + blur);
        }
      }
    }
  }

  /**
   * The same block saving metadata of its own, so that the file does not tell its shapes: the
   * replay of an entry that needs them is refused as a malformed file, named (it was DJL's
   * "Expected layout: NCHW" from deep inside the shaping, with the header's per-sample shape), with
   * the way out the message gives: a model initialized with its input shapes before the load loads
   * bit for bit (an outside probe found the advice did not work: the load's own undo takes the
   * arrays off, and the replay shaped the model from the header again).
   */
  @Test
  void aRootWhoseFileDoesNotTellItsInputShapesIsRefusedByNameUnlessInitialized() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(7);
      NDArray probe = data.randomNormal(new Shape(3, 4, 8, 8));
      float[] saved =
          trainAndSave(
              OwnMetadataNet::new,
              new Shape(16, 4, 8, 8),
              probe,
              "blurpool",
              Map.of("min_channels", 2));
      try (Model restored = Model.newInstance("root")) {
        restored.setBlock(new OwnMetadataNet());
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class, () -> SurgeryCheckpoint.load(restored, dir, "root"));
        assertTrue(e.getMessage().contains("root-0000.params"), e.getMessage());
        assertTrue(
            e.getMessage().contains("cannot be shaped from the input shapes it was given"),
            e.getMessage());
        assertTrue(e.getMessage().contains("initialize the model"), e.getMessage());
        assertFalse(restored.getBlock().isInitialized(), "the refused load left it as it was");
      }
      try (Model initialized = Model.newInstance("root")) {
        initialized.setBlock(new OwnMetadataNet());
        initialized
            .getBlock()
            .initialize(initialized.getNDManager(), DataType.FLOAT32, new Shape(1, 4, 8, 8));
        SurgeryCheckpoint.load(initialized, dir, "root");
        assertArrayEquals(saved, SurgeryCheckpointTest.outputs(initialized, probe));
      }
    }
  }

  /** A strided convolution then batch norm; describes its input without the batch dimension. */
  static class PerSampleNet extends AbstractBlock {
    private final Block conv = addChildBlock("conv", TinyModels.conv3x3(4, 2));
    private final Block norm = addChildBlock("norm", BatchNorm.builder().build());

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      NDList out = conv.forward(store, inputs, training, params);
      return new NDList(norm.forward(store, out, training, params).head().reshape(-1, 64));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return new Shape[] {new Shape(inputs[0].get(0), 64)};
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputs) {
      conv.initialize(manager, dataType, inputs);
      norm.initialize(manager, dataType, conv.getOutputShapes(inputs));
    }

    @Override
    public PairList<String, Shape> describeInput() {
      return new PairList<>(List.of("image"), List.of(inputShapes[0].slice(1)));
    }
  }

  /** {@link PerSampleNet} whose metadata is its own: a version of its own, then the shapes. */
  static final class OwnMetadataNet extends PerSampleNet {
    @Override
    protected void saveMetadata(DataOutputStream os) throws IOException {
      os.writeInt(7);
      saveInputShapes(os);
    }

    @Override
    public void loadMetadata(byte loadVersion, DataInputStream is)
        throws IOException, MalformedModelException {
      is.readInt();
      readInputShapes(is);
    }
  }

  @Test
  void aBareLayerWhoseInputTheFileCannotTellIsRefusedSayingSo() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(7);
      Shape batchShape = new Shape(16, 3, 4);
      NDArray probe = data.randomNormal(new Shape(2, 3, 4));
      Supplier<Block> collection = () -> LinearCollection.builder().setUnits(4).build();
      float[] saved = trainAndSave(collection, batchShape, probe);
      try (Model restored = Model.newInstance("root")) {
        restored.setBlock(collection.get());
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class, () -> SurgeryCheckpoint.load(restored, dir, "root"));
        assertTrue(e.getMessage().contains("blurpool"), e.getMessage());
        assertTrue(
            e.getMessage().contains("no input shapes of its root block (LinearCollection)"),
            e.getMessage());
        assertFalse(restored.getBlock().isInitialized());
      }
      try (Model initialized = Model.newInstance("root")) {
        initialized.setBlock(collection.get());
        initialized.getBlock().initialize(initialized.getNDManager(), DataType.FLOAT32, batchShape);
        SurgeryCheckpoint.load(initialized, dir, "root");
        assertArrayEquals(saved, SurgeryCheckpointTest.outputs(initialized, probe));
      }
    }
  }
}
