package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryCheckpointTest.outputs;
import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.algorithms.Algorithms;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The built-in BlurPool scheduled by the listener, from YAML and from code, and checkpointed. */
class BlurPoolScheduleTest {

  @TempDir Path dir;

  @Test
  void blurpoolFromYamlAtEpochOneThenCheckpointRoundTrip() throws Exception {
    Path yaml = dir.resolve("surgery.yaml");
    Files.writeString(yaml, "algorithms:\n  - name: blurpool\n    epoch: 1\n    min_channels: 4\n");
    SurgeryListener listener = SurgeryListener.fromYaml(yaml);
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 8);
      NDArray batch = TestModels.probeBatch(data, 3);
      float[] saved;
      String structure;
      try (Model model = TestModels.model("blur")) {
        try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
          trainer.initialize(INPUT);
          EasyTrain.fit(trainer, 1, dataset, null);
          assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
          assertEquals(1, TestModels.count(model.getBlock(), "BlurMaxPool2d"));
          TestModels.assertStoreMatchesModel(trainer);
          EasyTrain.fit(trainer, 1, dataset, null);
          TestModels.assertStoreMatchesModel(trainer);
        }
        SurgeryOutcome a = listener.getOutcomes().get(0);
        assertEquals(SurgeryOutcome.Status.APPLIED, a.status());
        assertEquals(2, a.changes().changes().size());
        assertEquals(
            Map.of("Conv2d->BlurConv2d", 1, "maxPool2d->BlurMaxPool2d", 1),
            a.changes().countsByType());
        structure = TestModels.structure(model.getBlock());
        saved = outputs(model, batch);
        model.save(dir, "blur");
      }
      try (Model restored = TestModels.model("blur")) {
        SurgeryCheckpoint.load(restored, dir, "blur");
        assertEquals(structure, TestModels.structure(restored.getBlock()));
        assertArrayEquals(saved, outputs(restored, batch));
        try (Trainer trainer = restored.newTrainer(TestModels.config())) {
          trainer.initialize(INPUT);
          EasyTrain.fit(trainer, 1, dataset, null);
          TestModels.assertStoreMatchesModel(trainer);
        }
      }
    }
  }

  @Test
  void blurpoolAtEpochZeroWithMinChannelsWaitsForOnInitialized() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(Algorithms.spec("blurpool").create(Map.of("min_channels", 4)), 0)
            .build();
    try (Model model = TestModels.model("blur0");
        NDManager data = NDManager.newBaseManager()) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        assertEquals(0, TestModels.count(model.getBlock(), "BlurConv2d"));
        trainer.initialize(INPUT);
        listener.onInitialized(trainer);
        assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
        TestModels.assertStoreMatchesModel(trainer);
        EasyTrain.fit(trainer, 1, TestModels.dataset(data, 4), null);
      }
      List<String> record =
          SurgeryJson.recordsFromJson(model.getProperty("surgery")).stream()
              .map(SurgeryRecord::algorithm)
              .toList();
      assertEquals(List.of("blurpool"), record);
      assertTrue(listener.getWarnings().isEmpty(), listener.getWarnings().toString());
    }
  }
}
