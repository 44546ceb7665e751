package dev.surgery.core.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.surgery.core.internal.DjlOptimizers;
import dev.surgery.core.internal.DjlTrainers;
import dev.surgery.core.layers.BlurConv2d;
import dev.surgery.core.layers.BlurMaxPool2d;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyModels;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * BlurPool applied inside {@code EasyTrain.fit} with Adam, after the first epoch, on DJL's
 * ResNet-20 at 28 x 28: training goes on with a finite loss, the strided convolutions are
 * BlurConv2d, and their parameters keep their trainer entries and Adam state.
 */
class BlurPoolLiveTest {

  private static final int BATCH = 8;

  @Test
  void blurPoolDuringTrainingKeepsParametersAndAdamStateAndTrainingGoesOn() throws Exception {
    Block resNet = TinyModels.resNet20();
    try (Model model = Model.newInstance("resnet20");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(resNet);
      data.getEngine().setRandomSeed(13);
      ArrayDataset dataset = TinyData.images(data, 32, 1, 28, BATCH);
      SurgeryAtEpoch listener = new SurgeryAtEpoch(BlurPool.builder().build(), 1, 3);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.003f)).build())
              .addTrainingListeners(listener);

      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(BATCH, 1, 28, 28));
        EasyTrain.fit(trainer, 3, dataset, null);

        assertNotNull(listener.report, "surgery must have run after epoch 1");
        assertEquals(Map.of("Conv2d->BlurConv2d", 4), listener.report.countsByType());
        // The report's counts against DJL's own arrays, counted before and after the surgery.
        assertEquals(listener.scalarsBefore, listener.report.parametersBefore());
        assertEquals(listener.scalarsBefore, listener.scalarsAfter, "blurring adds no parameter");
        assertEquals(listener.scalarsAfter, listener.report.parametersAfter());
        String tree = model.getBlock().toString();
        assertTrue(tree.contains("BlurConv2d"), tree);
        assertEquals(4, countBlurConvs(model.getBlock()));

        // Parameters were adopted: the trainer kept its entries and Adam its very state arrays.
        assertEquals(listener.storeSizeBefore, listener.storeSizeAfter);
        assertEquals(listener.stateBefore.size(), listener.stateAfter.size());
        for (Map.Entry<String, Object> e : listener.stateBefore.entrySet()) {
          assertSame(e.getValue(), listener.stateAfter.get(e.getKey()), e.getKey());
        }
        // Whether training goes on exactly is the hand-built oracle's, on a smaller network below.
      }
    }
  }

  @Test
  void blurLastAndMaxPoolDuringTrainingThenTheCheckpointLoadsIntoTheBlurredNetworkOnly(
      @TempDir Path dir) throws Exception {
    try (Model model = Model.newInstance("cnn");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(smallCnn());
      data.getEngine().setRandomSeed(17);
      ArrayDataset dataset = TinyData.images(data, 32, 3, 12, BATCH);
      BlurPool blurPool = BlurPool.builder().optBlurFirst(false).optMinChannels(4).build();
      SurgeryAtEpoch listener = new SurgeryAtEpoch(blurPool, 1, 2);
      DefaultTrainingConfig config =
          new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
              .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(0.01f)).build())
              .addTrainingListeners(listener);
      try (Trainer trainer = model.newTrainer(config)) {
        trainer.initialize(new Shape(BATCH, 3, 12, 12));
        EasyTrain.fit(trainer, 2, dataset, null);
        assertNotNull(listener.report);
        assertEquals(
            Map.of("maxPool2d->BlurMaxPool2d", 1, "Conv2d->BlurConv2d", 1),
            listener.report.countsByType());
        model.save(dir, "cnn");
      }
      try (Model original = Model.newInstance("cnn")) {
        // The original layers would compute without the blur: their Conv2d refuses the version.
        original.setBlock(smallCnn());
        MalformedModelException refused =
            assertThrows(MalformedModelException.class, () -> original.load(dir, "cnn"));
        assertEquals("Unsupported encoding version: 83", refused.getMessage());
      }
      try (Model blurred = Model.newInstance("cnn")) {
        blurred.setBlock(smallCnn());
        blurred
            .getBlock()
            .initialize(blurred.getNDManager(), blurred.getDataType(), new Shape(BATCH, 3, 12, 12));
        blurPool.apply(SurgeryContext.of(blurred.getBlock()));
        blurred.load(dir, "cnn");
        List<Parameter> trained = model.getBlock().getParameters().values();
        List<Parameter> loaded = blurred.getBlock().getParameters().values();
        assertEquals(trained.size(), loaded.size());
        for (int i = 0; i < trained.size(); i++) {
          assertArrayEquals(
              trained.get(i).getArray().toFloatArray(),
              loaded.get(i).getArray().toFloatArray(),
              0f);
        }
      }
    }
  }

  /**
   * Live, after three Adam steps, blurring before and after the convolution: the subject equals the
   * model built by hand with a {@code BlurConv2d} around the strided convolution's parameters and a
   * {@code BlurMaxPool2d} for the max pool, with a fresh Adam seeded with the moments, bit for bit
   * in every parameter, moment and update count over four more steps.
   */
  @ParameterizedTest
  @ValueSource(booleans = {true, false})
  void liveBlurPoolTrainsExactlyLikeTheModelBuiltByHand(boolean blurFirst) throws Exception {
    HandBuiltOracle.Case c = new HandBuiltOracle.Case();
    c.before = BlurPoolLiveTest::smallCnn;
    c.sample = new Shape(3, 12, 12);
    c.batch = BATCH;
    c.algorithm = BlurPool.builder().optBlurFirst(blurFirst).optMinChannels(4).build();
    c.byHand =
        fresh -> {
          List<Block> blocks = fresh.getChildren().values();
          SequentialBlock built = new SequentialBlock();
          for (int i = 0; i < blocks.size(); i++) {
            if (i == 2) { // the strided convolution, 8 >= 4 input channels
              built.add(BlurConv2d.fromConv2d((Conv2d) blocks.get(i), blurFirst));
            } else if (i == 3) { // the 2 x 2 max pool, stride 2, no padding
              built.add(
                  new BlurMaxPool2d(new Shape(2, 2), new Shape(2, 2), new Shape(0, 0), false));
            } else {
              built.add(blocks.get(i));
            }
          }
          return built;
        };
    SurgeryChanges report = HandBuiltOracle.run(c);
    assertEquals(
        Map.of("maxPool2d->BlurMaxPool2d", 1, "Conv2d->BlurConv2d", 1), report.countsByType());
  }

  /** Conv 3 -> 8, a strided conv 8 -> 8 (replaced), a max pool (replaced), a classifier. */
  private static Block smallCnn() {
    return new SequentialBlock()
        .add(TinyModels.conv3x3(8, 1))
        .add(Activation.reluBlock())
        .add(TinyModels.conv3x3(8, 2))
        .add(Pool.maxPool2dBlock(new Shape(2, 2)))
        .add(Blocks.batchFlattenBlock())
        .add(Linear.builder().setUnits(4).build());
  }

  private static int countBlurConvs(Block block) {
    int n = block instanceof BlurConv2d ? 1 : 0;
    for (Block child : block.getChildren().values()) {
      n += countBlurConvs(child);
    }
    return n;
  }

  /** Applies BlurPool at the end of one epoch and records the trainer state around it. */
  private static final class SurgeryAtEpoch extends TrainingListenerAdapter {

    private final Algorithm algorithm;
    private final int atEpoch;
    private final int totalEpochs;
    private int epochs;
    SurgeryChanges report;
    int storeSizeBefore;
    int storeSizeAfter;
    long scalarsBefore;
    long scalarsAfter;
    Map<String, Object> stateBefore;
    Map<String, Object> stateAfter;

    SurgeryAtEpoch(Algorithm algorithm, int atEpoch, int totalEpochs) {
      this.algorithm = algorithm;
      this.atEpoch = atEpoch;
      this.totalEpochs = totalEpochs;
    }

    @Override
    public void onEpoch(Trainer trainer) {
      epochs++;
      if (epochs != atEpoch) {
        return;
      }
      storeSizeBefore = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).size();
      stateBefore = adamState(trainer);
      scalarsBefore = scalars(trainer.getModel().getBlock());
      report =
          algorithm.apply(
              SurgeryContext.live(trainer.getModel().getBlock(), trainer, epochs, totalEpochs));
      storeSizeAfter = DjlTrainers.storeEntries(DjlTrainers.parameterStore(trainer)).size();
      stateAfter = adamState(trainer);
      scalarsAfter = scalars(trainer.getModel().getBlock());
    }

    /** Parameter scalars as DJL's arrays hold them (each array once). */
    private static long scalars(Block block) {
      Map<NDArray, Boolean> seen = new java.util.IdentityHashMap<>();
      long n = 0;
      for (Parameter p : block.getParameters().values()) {
        if (seen.put(p.getArray(), true) == null) {
          n += p.getArray().size();
        }
      }
      return n;
    }

    /** Every Adam state array by "field/parameter id/device". */
    private static Map<String, Object> adamState(Trainer trainer) {
      Map<String, Object> flat = new java.util.LinkedHashMap<>();
      Map<String, Map<String, Map<Device, NDArray>>> states =
          DjlOptimizers.optimizerStates(DjlTrainers.optimizer(trainer));
      for (Map.Entry<String, Map<String, Map<Device, NDArray>>> field : states.entrySet()) {
        for (Map.Entry<String, Map<Device, NDArray>> param : field.getValue().entrySet()) {
          for (Map.Entry<Device, NDArray> device : param.getValue().entrySet()) {
            flat.put(
                field.getKey() + "/" + param.getKey() + "/" + device.getKey(), device.getValue());
          }
        }
      }
      assertFalse(flat.isEmpty(), "Adam must have state after an epoch");
      return flat;
    }
  }
}
