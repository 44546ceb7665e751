package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.loss.Loss;
import dev.surgery.core.algorithms.NothingTargetedException;
import dev.surgery.core.testing.BuiltinArbitraries;
import dev.surgery.core.testing.BuiltinArbitraries.Entry;
import dev.surgery.core.testing.OptimizerKind;
import dev.surgery.core.testing.TinyData;
import dev.surgery.core.testing.TinyModels;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Assume;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Random schedules of the built-in algorithms (random settings, targets and epochs, right after
 * {@code Trainer.initialize} included) run by the listener in library mode, then saved: {@link
 * SurgeryCheckpoint#load} into a freshly built model of the original architecture gives the same
 * structure and the same outputs bit for bit, and one more epoch under the same listener trains the
 * same parameters to the same values as the model that stayed in memory (freezes included). The
 * oracle is the run that never left memory. The twenty-eighth session's outside probe ran this over
 * 733 schedules; this keeps a few in every build.
 */
class ScheduleCheckpointPropertiesTest {

  static final int EPOCHS = 4;
  static final int BATCH = 8;
  static final Shape INPUT = new Shape(BATCH, 8, 16, 16);

  @Property(tries = 4)
  void aReloadedScheduleTrainsOnAsInMemory(
      @ForAll("schedules") List<Entry> schedule, @ForAll("optimizers") OptimizerKind optimizer)
      throws Exception {
    List<Entry> order = BuiltinArbitraries.applicationOrder(schedule);
    SurgeryListener.Builder builder = SurgeryListener.builder().optTotalEpochs(EPOCHS);
    schedule.forEach(e -> builder.add(e.algorithm(), e.epoch()));
    SurgeryListener listener = builder.build();
    Path dir = Files.createTempDirectory("schedule-checkpoint");
    try {
      trainSaveAndReload(order, schedule, listener, optimizer, dir);
    } catch (Exception | Error failure) {
      // A failed clean-up must not hide what failed.
      try {
        deleteAll(dir);
      } catch (IOException | UncheckedIOException e) {
        failure.addSuppressed(e);
      }
      throw failure;
    }
    deleteAll(dir);
  }

  private static void deleteAll(Path dir) throws IOException {
    try (var files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).forEach(ScheduleCheckpointPropertiesTest::delete);
    }
  }

  private static void delete(Path file) {
    try {
      Files.delete(file);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void trainSaveAndReload(
      List<Entry> order,
      List<Entry> schedule,
      SurgeryListener listener,
      OptimizerKind optimizer,
      Path dir)
      throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model model = TinyModels.model("m", net())) {
      Engine.getInstance().setRandomSeed(3);
      ArrayDataset dataset = TinyData.images(data, 32, 8, 16, BATCH);
      NDArray probe = data.randomNormal(INPUT);
      try (Trainer trainer = model.newTrainer(config(listener, optimizer))) {
        trainer.initialize(INPUT);
        listener.onInitialized(trainer); // epoch 0: right after initialize, before the first step
        EasyTrain.fit(trainer, EPOCHS - 1, dataset, null);
      } catch (RuntimeException e) {
        // Targets that select nothing an algorithm changes: refused when it runs, named.
        Assume.that(!causedBy(e, NothingTargetedException.class));
        throw e;
      }
      String structure = TestModels.structure(model.getBlock());
      float[] outputs = outputs(model, probe);
      model.save(dir, "m");
      Map<String, float[]> inMemory = oneMoreEpoch(model, listener, optimizer, dataset);
      try (Model restored = TinyModels.model("m", net())) {
        SurgeryCheckpoint.load(restored, dir, "m");
        assertEquals(structure, TestModels.structure(restored.getBlock()), order.toString());
        assertArrayEquals(outputs, outputs(restored, probe), "outputs after the load: " + order);
        Map<String, float[]> reloaded = oneMoreEpoch(restored, listener, optimizer, dataset);
        assertEquals(inMemory.keySet(), reloaded.keySet(), "the same parameters train: " + order);
        inMemory.forEach(
            (k, v) -> assertArrayEquals(v, reloaded.get(k), k + " after the load: " + order));
      }
    }
  }

  @Provide
  Arbitrary<List<Entry>> schedules() {
    return BuiltinArbitraries.acceptedSchedules(EPOCHS - 2);
  }

  @Provide
  Arbitrary<OptimizerKind> optimizers() {
    return BuiltinArbitraries.optimizers();
  }

  /**
   * The composition properties' network without its fixed batch norm: DJL's {@code newTrainer}
   * makes the fixed gamma and beta of a loaded model trainable, with or without surgery
   * (reliability.md, Known gaps), which this comparison is not about.
   */
  private static Block net() {
    return TinyModels.everyAlgorithmNet(false);
  }

  private static DefaultTrainingConfig config(SurgeryListener listener, OptimizerKind optimizer) {
    return new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
        .optOptimizer(optimizer.create())
        .addTrainingListeners(listener);
  }

  /**
   * One more epoch under the listener with a new trainer, from a fixed seed: the parameters that
   * changed, by path, all finite.
   */
  private static Map<String, float[]> oneMoreEpoch(
      Model model, SurgeryListener listener, OptimizerKind optimizer, ArrayDataset dataset)
      throws Exception {
    Map<String, float[]> before = values(model);
    Engine.getInstance().setRandomSeed(11);
    try (Trainer trainer = model.newTrainer(config(listener, optimizer))) {
      trainer.initialize(INPUT);
      listener.onInitialized(trainer);
      EasyTrain.fit(trainer, 1, dataset, null);
    }
    Map<String, float[]> trained = new LinkedHashMap<>();
    values(model)
        .forEach(
            (k, after) -> {
              for (float v : after) {
                assertTrue(Float.isFinite(v), k + " holds " + v);
              }
              if (!Arrays.equals(before.get(k), after)) {
                trained.put(k, after);
              }
            });
    return trained;
  }

  private static Map<String, float[]> values(Model model) {
    Map<String, float[]> values = new LinkedHashMap<>();
    TestModels.parametersByPath(model.getBlock())
        .forEach((k, p) -> values.put(k, p.getArray().toFloatArray()));
    return values;
  }

  private static float[] outputs(Model model, NDArray probe) {
    try (NDManager scope = model.getNDManager().newSubManager()) {
      ParameterStore store = new ParameterStore(scope, false);
      NDList out = model.getBlock().forward(store, new NDList(probe), false);
      return out.singletonOrThrow().toFloatArray();
    }
  }

  private static boolean causedBy(Throwable e, Class<? extends Throwable> type) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (type.isInstance(t)) {
        return true;
      }
    }
    return false;
  }
}
