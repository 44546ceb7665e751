package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A user's root block class that compares by value (Lombok's {@code @EqualsAndHashCode}, a
 * value-style network class): two models built from it are equal blocks, yet two models. What is
 * noted of one model's block (the surgery it carries) must not be taken for the other's.
 */
class ValueEqualBlocksTest {

  @TempDir Path dir;

  /** The test CNN under a root that equals every other instance of its class. */
  static final class ValueEqualNet extends SequentialBlock {
    ValueEqualNet() {
      for (Block child : TestModels.cnn().getChildren().values()) {
        add(child);
      }
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof ValueEqualNet;
    }

    @Override
    public int hashCode() {
      return 1;
    }
  }

  @Test
  void aCheckpointLoadedIntoAFreshModelWithAnEqualRootIsReplayed() throws Exception {
    SurgeryListener listener = SurgeryListener.builder().add(TestModels.blurpool(), 1).build();
    try (NDManager data = NDManager.newBaseManager();
        Model trained = Model.newInstance("net")) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      NDArray batch = data.randomNormal(TestModels.INPUT);
      trained.setBlock(new ValueEqualNet());
      try (Trainer trainer = trained.newTrainer(TestModels.config(listener))) {
        trainer.initialize(TestModels.INPUT);
        EasyTrain.fit(trainer, 2, dataset, null);
      }
      String structure = TestModels.structure(trained.getBlock());
      assertEquals(1, TestModels.count(trained.getBlock(), "BlurConv2d"), structure);
      float[] saved = SurgeryCheckpointTest.outputs(trained, batch);
      trained.save(dir, "net");

      // The trained model stays open: its block still carries its record.
      try (Model fresh = Model.newInstance("net")) {
        fresh.setBlock(new ValueEqualNet());
        assertEquals(trained.getBlock(), fresh.getBlock(), "the user's class says they are equal");
        assertNotEquals(structure, TestModels.structure(fresh.getBlock()));
        SurgeryCheckpoint.load(fresh, dir, "net");
        assertEquals(structure, TestModels.structure(fresh.getBlock()), "blurpool replayed");
        assertArrayEquals(saved, SurgeryCheckpointTest.outputs(fresh, batch));
      }
    }
  }
}
