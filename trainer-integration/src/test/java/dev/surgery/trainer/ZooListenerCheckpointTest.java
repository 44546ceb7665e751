package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryCheckpointTest.outputs;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.basicmodelzoo.cv.classification.MobileNetV1;
import ai.djl.basicmodelzoo.cv.classification.SqueezeNet;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.Algorithms;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The listener schedules surgery on DJL zoo classifiers (MobileNetV1's depthwise convolutions,
 * SqueezeNet's concatenating fire modules): blurpool, squeeze_excite, factorize and ghost_batchnorm
 * at epoch 1, layer_freezing at epoch 2 of 3. Every entry applies and changes something (ghost
 * batch norm where the network has batch norms), the trainer's store follows, and a checkpoint
 * loads into a freshly built model with the same structure, the same frozen parameters and the same
 * evaluation output bit for bit.
 */
class ZooListenerCheckpointTest {

  private static final int BATCH = 4;

  @TempDir Path dir;

  static Stream<Arguments> zoo() {
    return Stream.of(
        Arguments.of(
            "MobileNetV1",
            (Supplier<Block>)
                () -> MobileNetV1.builder().optWidthMultiplier(0.25f).setOutSize(4).build(),
            new Shape(3, 32, 32)),
        Arguments.of(
            "SqueezeNet", (Supplier<Block>) () -> SqueezeNet.squeezenet(4), new Shape(3, 64, 64)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("zoo")
  void scheduledSurgeryOnAZooModelSurvivesACheckpoint(
      String name, Supplier<Block> net, Shape sample) throws Exception {
    Engine.getInstance().setRandomSeed(5);
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(Algorithms.spec("blurpool").create(Map.of("min_channels", 8)), 1)
            .add(
                Algorithms.spec("squeeze_excite")
                    .create(Map.of("min_channels", 16, "latent_channels", 0.25)),
                1)
            .add(
                Algorithms.spec("factorize")
                    .create(
                        Map.of(
                            "min_channels",
                            16,
                            "latent_channels",
                            0.25,
                            "min_features",
                            32,
                            "latent_features",
                            0.25)),
                1)
            .add(Algorithms.spec("ghost_batchnorm").create(Map.of("ghost_batch_size", 2)), 1)
            .add(Algorithms.spec("layer_freezing").create(Map.of("freeze_start", 0.0)), 2)
            .optTotalEpochs(3)
            .build();
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray labels = data.arange(8).mod(4).toType(DataType.FLOAT32, false);
      NDArray images =
          data.randomNormal(new Shape(8).addAll(sample)).add(labels.reshape(8, 1, 1, 1));
      ArrayDataset dataset =
          new ArrayDataset.Builder()
              .setData(images)
              .optLabels(labels)
              .setSampling(BATCH, false)
              .build();
      NDArray probe = data.randomNormal(new Shape(2).addAll(sample));
      float[] saved;
      String structure;
      TreeSet<String> frozen = new TreeSet<>();
      try (Model model = Model.newInstance(name)) {
        model.setBlock(net.get());
        try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
          trainer.initialize(new Shape(BATCH).addAll(sample));
          EasyTrain.fit(trainer, 3, dataset, null);
          TestModels.assertStoreMatchesModel(trainer);
        }
        List<SurgeryOutcome> outcomes = listener.getOutcomes();
        assertEquals(5, outcomes.size(), outcomes.toString());
        for (SurgeryOutcome outcome : outcomes) {
          assertEquals(SurgeryOutcome.Status.APPLIED, outcome.status(), outcome.toString());
          boolean ghostWithoutBatchNorm =
              "ghost_batchnorm".equals(outcome.changes().algorithm()) && "SqueezeNet".equals(name);
          assertEquals(
              ghostWithoutBatchNorm,
              outcome.changes().isEmpty(),
              name + ": " + outcome.changes().algorithm() + " " + outcome.changes().changes());
          if (outcome.changes().isEmpty()) {
            assertFalse(outcome.changes().warnings().isEmpty(), name + ": silent no-op");
          }
        }
        for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
          Parameter.Type type = p.getValue().getType();
          boolean statistic =
              type == Parameter.Type.RUNNING_MEAN || type == Parameter.Type.RUNNING_VAR;
          if (!statistic && !p.getValue().requiresGradient()) {
            frozen.add(p.getKey());
          }
        }
        assertFalse(frozen.isEmpty(), name + ": layer_freezing froze nothing");
        structure = TestModels.structure(model.getBlock());
        saved = outputs(model, probe);
        for (float v : saved) {
          assertTrue(Float.isFinite(v), name + ": output");
        }
        model.save(dir, name);
      }
      try (Model restored = Model.newInstance(name)) {
        restored.setBlock(net.get());
        SurgeryCheckpoint.load(restored, dir, name);
        assertEquals(structure, TestModels.structure(restored.getBlock()), name);
        assertArrayEquals(saved, outputs(restored, probe), name + ": restored output");
        java.util.Set<Parameter> replayFrozen =
            SurgeryCheckpoint.frozenByReplay(restored.getBlock());
        TreeSet<String> restoredFrozen = new TreeSet<>();
        for (Pair<String, Parameter> p : restored.getBlock().getParameters()) {
          if (replayFrozen.contains(p.getValue())) {
            restoredFrozen.add(p.getKey());
          }
        }
        assertEquals(frozen, restoredFrozen, name + ": frozen by the replay");
      }
    }
  }
}
