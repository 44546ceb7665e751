package dev.surgery.trainer;

import static dev.surgery.trainer.SurgeryListenerFitTest.algorithm;
import static dev.surgery.trainer.TestModels.INPUT;
import static dev.surgery.trainer.TestModels.train;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.util.Pair;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.algorithms.Algorithm;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.BlurPool;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.internal.DjlBlocks;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.TinyModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Checkpoints taken after surgery load into the original architecture, bit for bit. */
class SurgeryCheckpointTest {

  @TempDir Path dir;

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
  }

  /** Scaled convolutions at epochs 0 and 1, then a pool replaced at epoch 1. */
  private static SurgeryListener.Builder scaleThenPool() {
    return SurgeryListener.builder()
        .add(algorithm(TestAlgorithms.SCALE_CONV_MIN, Map.of("min_channels", 4)), 0)
        .add(algorithm(TestAlgorithms.SCALE_CONV, Map.of("stride", 1, "factor", 0.25)), 1)
        .add(algorithm(TestAlgorithms.POOL, Map.of()), 1);
  }

  /** Forward pass in inference mode on a fixed batch. */
  static float[] outputs(Model model, NDArray batch) {
    try (NDManager scratch = model.getNDManager().newSubManager()) {
      NDList out =
          model.getBlock().forward(new ParameterStore(scratch, false), new NDList(batch), false);
      return out.singletonOrThrow().toFloatArray();
    }
  }

  @Test
  void surgeryAtEpochOneSurvivesSaveAndLoadBitForBit() throws Exception {
    SurgeryListener listener = scaleThenPool().build();
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 21);
      NDArray batch = TestModels.probeBatch(data, 99);
      float[] saved;
      String savedStructure;
      try (Model model = TestModels.model("ckpt")) {
        try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
          trainer.initialize(INPUT);
          listener.onInitialized(trainer);
          EasyTrain.fit(trainer, 2, dataset, null);
        }
        savedStructure = TestModels.structure(model.getBlock());
        assertEquals(2, TestModels.count(model.getBlock(), "ScaledConv2d"), savedStructure);
        assertEquals(1, TestModels.count(model.getBlock(), "ProbePool"), savedStructure);
        saved = outputs(model, batch);
        model.save(dir, "ckpt");
      }

      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "ckpt", null);
      List<SurgeryRecord> record = SurgeryCheckpoint.readRecord(file);
      assertEquals(
          List.of("t_scale_conv_min", "t_scale_conv", "t_pool"),
          record.stream().map(SurgeryRecord::algorithm).toList());
      assertEquals(List.of(0, 1, 1), record.stream().map(SurgeryRecord::epoch).toList());
      assertEquals(0.25, ((Number) record.get(1).hyperparameters().get("factor")).doubleValue());
      assertEquals(4L, ((Number) record.get(0).hyperparameters().get("min_channels")).longValue());
      SurgeryCheckpoint.Header header = SurgeryCheckpoint.readHeader(file);
      assertEquals(List.of(INPUT), header.inputShapes());

      // A fresh model of the original architecture, restored through the record.
      try (Model restored = TestModels.model("ckpt")) {
        SurgeryCheckpoint.load(restored, dir, "ckpt");
        assertEquals(savedStructure, TestModels.structure(restored.getBlock()));
        assertArrayEquals(saved, outputs(restored, batch), "outputs must match bit for bit");

        // resume training with a new trainer (and a new listener that adds to the record)
        SurgeryListener more =
            SurgeryListener.builder()
                .add(algorithm(TestAlgorithms.LOG, Map.of("tag", "a")), 1)
                .build();
        try (Trainer trainer = restored.newTrainer(TestModels.config(more))) {
          trainer.initialize(INPUT);
          TestModels.assertStoreMatchesModel(trainer);
          float[] beforeResume = outputs(restored, batch);
          EasyTrain.fit(trainer, 1, dataset, null);
          float[] afterResume = outputs(restored, batch);
          assertFalse(java.util.Arrays.equals(beforeResume, afterResume), "training resumed");
          for (float v : afterResume) {
            assertTrue(Float.isFinite(v));
          }
        }
        assertEquals(4, SurgeryJson.recordsFromJson(restored.getProperty("surgery")).size());
      }

      // The same file loaded by plain DJL into the original architecture gives other outputs:
      // the replay is what makes the checkpoint right.
      try (Model plain = TestModels.model("ckpt")) {
        plain.load(dir, "ckpt");
        assertFalse(java.util.Arrays.equals(saved, outputs(plain, batch)));
      }
    }
  }

  /**
   * Resuming from a checkpoint with the same schedule (what a job under the agent does when it is
   * restarted with its config): the entries the replayed record holds are not applied again, not
   * recorded twice, and training goes on exactly as with a schedule that holds only the new entry.
   * A recorded entry at another epoch, or with other hyperparameters, is not taken for done.
   */
  @Test
  void resumingWithTheSameScheduleAppliesOnlyWhatTheRecordDoesNotHold() throws Exception {
    SurgeryListener first = scaleThenPool().build();
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 23);
      NDArray batch = TestModels.probeBatch(data, 5);
      String savedStructure;
      try (Model model = TestModels.model("resume")) {
        try (Trainer trainer = model.newTrainer(TestModels.config(first))) {
          trainer.initialize(INPUT);
          first.onInitialized(trainer);
          EasyTrain.fit(trainer, 2, dataset, null);
        }
        savedStructure = TestModels.structure(model.getBlock());
        model.save(dir, "resume");
      }

      float[][] resumed = new float[2][];
      List<List<SurgeryOutcome>> outcomes = new java.util.ArrayList<>();
      for (int run = 0; run < 2; run++) {
        SurgeryListener.Builder builder = SurgeryListener.builder();
        if (run == 0) { // the whole schedule again, as a restarted job would run it
          builder
              .add(algorithm(TestAlgorithms.SCALE_CONV_MIN, Map.of("min_channels", 4)), 0)
              .add(algorithm(TestAlgorithms.SCALE_CONV, Map.of("factor", 0.25, "stride", 1)), 1)
              .add(algorithm(TestAlgorithms.POOL, Map.of()), 1);
        }
        Path report = dir.resolve("resume-" + run + ".json");
        SurgeryListener again =
            builder.add(algorithm(TestAlgorithms.LOG, Map.of()), 1).optReportPath(report).build();
        try (Model restored = TestModels.model("resume")) {
          SurgeryCheckpoint.load(restored, dir, "resume");
          try (Trainer trainer = restored.newTrainer(TestModels.config(again))) {
            trainer.initialize(INPUT);
            again.onInitialized(trainer);
            EasyTrain.fit(trainer, 2, dataset, null);
          }
          assertEquals(savedStructure, TestModels.structure(restored.getBlock()));
          assertEquals(
              List.of("t_scale_conv_min", "t_scale_conv", "t_pool", "t_log"),
              SurgeryJson.recordsFromJson(restored.getProperty("surgery")).stream()
                  .map(SurgeryRecord::algorithm)
                  .toList(),
              "each surgery recorded once");
          resumed[run] = outputs(restored, batch);
        }
        outcomes.add(again.getOutcomes());
        // Restarted with its whole schedule, the job is told when its remaining entry runs.
        List<String> counted =
            again.getWarnings().stream()
                .filter(w -> w.contains("counts epochs from this trainer's start"))
                .toList();
        assertEquals(run == 0 ? 1 : 0, counted.size(), again.getWarnings().toString());
        if (run == 0) {
          assertTrue(
              counted.get(0).startsWith("Surgery: t_log")
                  && counted
                      .get(0)
                      .contains(
                          "reaches epoch 1, so it runs 1 epoch from now (at least epoch 2 of"
                              + " the whole job)"),
              counted.get(0));
        }
        // The report lists each skipped entry under not_run, saying why.
        String log = Files.readString(report);
        assertEquals(
            run == 0 ? 3 : 0,
            log.split("in the model's surgery record already", -1).length - 1,
            log);
      }
      for (List<SurgeryOutcome> o : outcomes) {
        assertEquals(
            List.of("t_log"), o.stream().map(SurgeryOutcome::algorithm).toList(), o.toString());
      }
      assertArrayEquals(resumed[1], resumed[0], "the same training as with the new entry alone");

      // Another epoch or other hyperparameters: not what the record holds, so it runs.
      SurgeryListener other =
          SurgeryListener.builder()
              .add(algorithm(TestAlgorithms.POOL, Map.of()), 2)
              .add(algorithm(TestAlgorithms.SCALE_CONV, Map.of("stride", 1, "factor", 0.5)), 1)
              .build();
      try (Model restored = TestModels.model("resume")) {
        SurgeryCheckpoint.load(restored, dir, "resume");
        train(restored, other, 2, dataset);
      }
      assertEquals(
          List.of("t_scale_conv", "t_pool"),
          other.getOutcomes().stream().map(SurgeryOutcome::algorithm).toList());

      // A schedule of the rest of training (the recorded entries dropped) runs in full, even an
      // entry equal to a recorded one: it is meant anew.
      SurgeryListener rest =
          SurgeryListener.builder().add(algorithm(TestAlgorithms.POOL, Map.of()), 1).build();
      try (Model restored = TestModels.model("resume")) {
        SurgeryCheckpoint.load(restored, dir, "resume");
        train(restored, rest, 1, dataset);
      }
      assertEquals(
          List.of("t_pool"), rest.getOutcomes().stream().map(SurgeryOutcome::algorithm).toList());
    }
  }

  /** The input of {@link #twoConvs}: two one-channel 10x10 images. */
  private static final Shape TWO_CONVS_INPUT = new Shape(2, 1, 10, 10);

  /** A two-convolution model; the strides are the only differences. */
  private static Block twoConvs(int firstStride, int secondStride) {
    SequentialBlock block = new SequentialBlock();
    for (int stride : new int[] {firstStride, secondStride}) {
      block.add(TinyModels.conv3x3(4, stride));
    }
    return block.add(Pool.globalAvgPool2dBlock()).add(Linear.builder().setUnits(2).build());
  }

  /** Each parameter's array object by its key, to check that a refused load kept them. */
  private static Map<String, NDArray> arraysByKey(Block block) {
    Map<String, NDArray> arrays = new LinkedHashMap<>();
    for (Pair<String, Parameter> p : block.getParameters()) {
      arrays.put(p.getKey(), p.getValue().getArray());
    }
    return arrays;
  }

  /** Each parameter's values by its key, to check that a refused load kept them. */
  private static Map<String, float[]> valuesByKey(Block block) {
    Map<String, float[]> values = new LinkedHashMap<>();
    for (Pair<String, Parameter> p : block.getParameters()) {
      values.put(p.getKey(), p.getValue().getArray().toFloatArray());
    }
    return values;
  }

  /** Saves a two-convolution model after BlurPool at epoch 1; returns its parameter file. */
  private Path savedWithBlurPool(int firstStride, int secondStride) throws Exception {
    SurgeryListener blur = blurpoolAtEpoch1();
    try (Model model = Model.newInstance("strided")) {
      model.setBlock(twoConvs(firstStride, secondStride));
      try (Trainer trainer = model.newTrainer(TestModels.config(blur))) {
        trainer.initialize(TWO_CONVS_INPUT);
        trainer.notifyListeners(l -> l.onEpoch(trainer));
      }
      model.save(dir, "strided");
    }
    return SurgeryCheckpoint.resolveParamsFile(dir, "strided", null);
  }

  /**
   * A model's own checkpoint from before its surgery, loaded back into it: the file holds no
   * record, the model's BlurPool keeps the layout, and the load went through silently into the
   * changed layers. Refused, the model as it was; into a fresh original model the same file loads.
   */
  @Test
  void aFileWithoutSurgeryIsRefusedByAModelThatHadSurgery() throws Exception {
    SurgeryListener blur = blurpoolAtEpoch1();
    try (Model model = Model.newInstance("before-surgery")) {
      model.setBlock(twoConvs(1, 2));
      try (Trainer trainer = model.newTrainer(TestModels.config(blur))) {
        trainer.initialize(TWO_CONVS_INPUT);
        model.save(dir, "before-surgery");
        trainer.notifyListeners(l -> l.onEpoch(trainer));
      }
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
      String structure = TestModels.structure(model.getBlock());
      Map<String, NDArray> arrays = arraysByKey(model.getBlock());
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class,
              () -> SurgeryCheckpoint.load(model, dir, "before-surgery"));
      assertTrue(e.getMessage().contains("holds no surgery record"), e.getMessage());
      assertTrue(e.getMessage().contains("changed by blurpool at epoch 1"), e.getMessage());
      assertEquals(structure, TestModels.structure(model.getBlock()));
      for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
        assertSame(arrays.get(p.getKey()), p.getValue().getArray(), p.getKey());
      }
    }
    try (Model fresh = Model.newInstance("before-surgery")) {
      fresh.setBlock(twoConvs(1, 2));
      SurgeryCheckpoint.load(fresh, dir, "before-surgery");
      assertEquals(0, TestModels.count(fresh.getBlock(), "BlurConv2d"));
    }
    // A model only frozen since is still the file's architecture: the file loads.
    SurgeryListener freeze = freezingListener();
    try (Model model = Model.newInstance("before-freezing")) {
      model.setBlock(twoConvs(1, 2));
      try (Trainer trainer = model.newTrainer(TestModels.config(freeze))) {
        trainer.initialize(TWO_CONVS_INPUT);
        model.save(dir, "before-freezing");
        trainer.notifyListeners(l -> l.onEpoch(trainer));
      }
      assertFalse(freeze.getOutcomes().get(0).changes().isEmpty(), "it froze a layer");
      SurgeryCheckpoint.load(model, dir, "before-freezing");
    }
  }

  /**
   * The same refusal in a model the program initialized: the replay runs with the model's arrays
   * taken off (the load's undo recorded the tree once, and puts it back): afterwards the model
   * holds its own blocks, the same array objects with the same values, and trains.
   */
  @Test
  void aRefusedReplayLeavesAnInitializedModelItsBlocksAndArrays() throws Exception {
    savedWithBlurPool(1, 2);
    try (Model other = Model.newInstance("strided")) {
      other.setBlock(twoConvs(2, 1)); // the stride moved: the replay blurs 01Conv2d instead
      other.getBlock().initialize(other.getNDManager(), other.getDataType(), TWO_CONVS_INPUT);
      List<Block> blocksBefore = new ArrayList<>(other.getBlock().getChildren().values());
      Map<String, NDArray> arraysBefore = arraysByKey(other.getBlock());
      Map<String, float[]> valuesBefore = valuesByKey(other.getBlock());
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class, () -> SurgeryCheckpoint.load(other, dir, "strided"));
      assertTrue(e.getMessage().contains("it replaced 01Conv2d"), e.getMessage());
      assertEquals(blocksBefore, new ArrayList<>(other.getBlock().getChildren().values()));
      assertEquals(0, TestModels.count(other.getBlock(), "BlurConv2d"));
      for (Pair<String, Parameter> p : other.getBlock().getParameters()) {
        NDArray array = p.getValue().getArray();
        assertSame(arraysBefore.get(p.getKey()), array, p.getKey());
        assertFalse(array.isReleased(), p.getKey());
        assertArrayEquals(valuesBefore.get(p.getKey()), array.toFloatArray(), p.getKey());
      }
      try (NDManager m = other.getNDManager().newSubManager()) {
        NDList out =
            other
                .getBlock()
                .forward(new ParameterStore(m, false), new NDList(m.ones(TWO_CONVS_INPUT)), false);
        assertEquals(new Shape(2, 2), out.head().getShape());
      }
    }
  }

  /**
   * BlurPool applied through the core API records nothing: the checkpoint of that model, loaded
   * into the original architecture with nothing to replay, loaded the trained weights into layers
   * without the blur, silently. The blurred layer's own version makes DJL refuse it; the load names
   * what happened and leaves the model as it was.
   */
  @Test
  void aCheckpointOfSurgeryThroughTheCoreApiIsRefusedByTheOriginalArchitecture() throws Exception {
    try (Model model = Model.newInstance("core-api")) {
      model.setBlock(twoConvs(1, 2));
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), TWO_CONVS_INPUT);
      BlurPool.builder().optMinChannels(0).build().apply(SurgeryContext.of(model.getBlock()));
      assertEquals(1, TestModels.count(model.getBlock(), "BlurConv2d"));
      assertNull(model.getProperty(SurgeryListener.PROPERTY));
      model.save(dir, "core-api");
    }
    try (Model original = Model.newInstance("core-api")) {
      original.setBlock(twoConvs(1, 2));
      original
          .getBlock()
          .initialize(original.getNDManager(), original.getDataType(), TWO_CONVS_INPUT);
      Map<String, NDArray> arraysBefore = arraysByKey(original.getBlock());
      Map<String, float[]> valuesBefore = valuesByKey(original.getBlock());
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class,
              () -> SurgeryCheckpoint.load(original, dir, "core-api"));
      assertTrue(
          e.getMessage()
              .startsWith(
                  dir.resolve("core-api-0000.params")
                      + ": the file holds a BlurConv2d (blur before the convolution), a layer of"
                      + " DJL Surgery, where this model has a block of the original architecture"
                      + " (DJL: Unsupported encoding version: 81)."),
          e.getMessage());
      assertTrue(e.getMessage().contains("make the same surgery on this model, then load"));
      assertEquals("Unsupported encoding version: 81", e.getCause().getMessage());
      for (Pair<String, Parameter> p : original.getBlock().getParameters()) {
        NDArray array = p.getValue().getArray();
        assertSame(arraysBefore.get(p.getKey()), array, p.getKey());
        assertArrayEquals(valuesBefore.get(p.getKey()), array.toFloatArray(), p.getKey());
      }
      // Made the same surgery first, the model loads the file.
      BlurPool.builder().optMinChannels(0).build().apply(SurgeryContext.of(original.getBlock()));
      SurgeryCheckpoint.load(original, dir, "core-api");
      assertEquals(1, TestModels.count(original.getBlock(), "BlurConv2d"));
    }
  }

  /**
   * A checkpoint loaded into another architecture whose parameters have the same layout must be
   * refused, whether the recorded BlurPool replaces nothing there (the stride changed) or another
   * block (the stride moved): DJL would load the weights without a word. The record says which
   * blocks the surgery replaced; the replay must replace the same. Into the original architecture
   * it loads.
   */
  @Test
  void aCheckpointIsRefusedByAnArchitectureOnWhichItsSurgeryReplacesOtherBlocks() throws Exception {
    Path file = savedWithBlurPool(1, 2);
    assertEquals(
        Map.of("02Conv2d", "Conv2d->BlurConv2d"),
        SurgeryCheckpoint.readRecord(file).get(0).changes());
    Map<String, String> refusals =
        Map.of(
            "no stride",
            "the saved model's surgery replaced 02Conv2d (Conv2d->BlurConv2d), the replay did not"
                + " (it replaced nothing)",
            "stride moved",
            "the saved model's surgery replaced 02Conv2d (Conv2d->BlurConv2d), the replay did not"
                + " (it replaced 01Conv2d)");
    for (Map.Entry<String, String> refusal : refusals.entrySet()) {
      try (Model other = Model.newInstance("strided")) {
        other.setBlock(refusal.getKey().equals("no stride") ? twoConvs(1, 1) : twoConvs(2, 1));
        String before = TestModels.structure(other.getBlock());
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class, () -> SurgeryCheckpoint.load(other, dir, "strided"));
        assertTrue(
            e.getMessage()
                .contains("cannot be replayed on this architecture: " + refusal.getValue()),
            e.getMessage());
        // Refused with nothing left changed, also where the refused replay replaced other blocks.
        assertEquals(before, TestModels.structure(other.getBlock()));
        for (Parameter p : other.getBlock().getParameters().values()) {
          assertFalse(p.isInitialized(), p.getName() + " was loaded");
        }
      }
    }
    try (Model original = Model.newInstance("strided")) {
      original.setBlock(twoConvs(1, 2));
      SurgeryCheckpoint.load(original, dir, "strided");
      assertEquals(1, TestModels.count(original.getBlock(), "BlurConv2d"));
      // The same model loaded again (a program that reloads what it saved): it already is the
      // saved architecture, so nothing is replayed and the load succeeds.
      SurgeryCheckpoint.load(original, dir, "strided");
      assertEquals(1, TestModels.count(original.getBlock(), "BlurConv2d"));
      // The same Model object given the original block again (one Model for several checkpoints):
      // it keeps the loaded file's surgery property, but its block carries no surgery, so the
      // replay runs (it was skipped: the weights went into the original layers, silently).
      original.setBlock(twoConvs(1, 2));
      SurgeryCheckpoint.load(original, dir, "strided");
      assertEquals(1, TestModels.count(original.getBlock(), "BlurConv2d"));
    }
  }

  /**
   * A record that names an algorithm this JVM does not know is refused before any record is
   * replayed: the model stays the original architecture.
   */
  @Test
  void anUnknownAlgorithmAnywhereInTheRecordLeavesTheModelAsItWas() throws Exception {
    List<SurgeryRecord> records =
        List.of(
            new SurgeryRecord("blurpool", Map.of("min_channels", 0), 1, 0),
            new SurgeryRecord("not_registered_here", Map.of(), 1, 0));
    try (Model model = Model.newInstance("unknown")) {
      model.setBlock(twoConvs(1, 2));
      String before = TestModels.structure(model.getBlock());
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class, () -> replayOnModel(model, records, TWO_CONVS_INPUT));
      assertTrue(e.getMessage().contains("not_registered_here"), e.getMessage());
      assertEquals(before, TestModels.structure(model.getBlock()));
    }
  }

  /**
   * DJL's newTrainer unfreezes every parameter of a loaded model: the layers the checkpoint's
   * layer_freezing froze must stay frozen when training resumes with a listener (the record's entry
   * is not applied again), their values bit for bit through another epoch.
   */
  @Test
  void layersTheRecordFrozeStayFrozenWhenTrainingResumes() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 29);
      saveAfterFreezing("frozen", dataset, false);
      try (Model restored = TestModels.model("frozen")) {
        SurgeryCheckpoint.load(restored, dir, "frozen");
        Set<Parameter> frozen = SurgeryCheckpoint.frozenByReplay(restored.getBlock());
        assertFalse(frozen.isEmpty(), "the record froze layers");
        Map<Parameter, float[]> saved = new IdentityHashMap<>();
        frozen.forEach(p -> saved.put(p, p.getArray().toFloatArray()));
        SurgeryListener again = freezingListener();
        train(restored, again, 1, dataset);
        for (Map.Entry<Parameter, float[]> e : saved.entrySet()) {
          assertFalse(e.getKey().requiresGradient(), e.getKey().getName() + " trains again");
          assertArrayEquals(e.getValue(), e.getKey().getArray().toFloatArray());
        }
        assertTrue(again.getOutcomes().isEmpty(), again.getOutcomes().toString());
      }
    }
  }

  /**
   * A layer the user froze by hand before training is not frozen by layer_freezing (it was
   * already), so the record does not name it. Freezing replaces no block, so the check of the
   * architecture leaves it out and the checkpoint loads; the replay on a fresh model, whose
   * layer_freezing freezes that layer too, leaves it trainable: the record says what surgery froze,
   * and the program's own freezes are not in the file (DJL's load keeps none).
   */
  @Test
  void aLayerFrozenByHandBeforeLayerFreezingStillLoads() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 31);
      saveAfterFreezing("hand", dataset, true);
      try (Model restored = TestModels.model("hand")) {
        SurgeryCheckpoint.load(restored, dir, "hand");
        assertTrue(
            restored.getBlock().getChildren().get(0).getValue().getParameters().values().stream()
                .allMatch(Parameter::requiresGradient),
            "the layer frozen by hand is the program's to freeze again");
        assertTrue(SurgeryCheckpoint.frozenByReplay(restored.getBlock()).isEmpty());
      }
    }
  }

  /**
   * An outside tester: a pretrained model (loaded), the first layer frozen by hand once its trainer
   * is made (DJL's newTrainer unfreezes a loaded model), whole or one of its parameters,
   * layer_freezing then freezing the first two layers, saved; the next trainer of that model in
   * memory (DJL's newTrainer unfreezes a loaded model, the listener freezes what surgery froze) and
   * the next trainer of the checkpoint reloaded must train the same parameters to the same values.
   * Before this was fixed, the replay froze the hand-frozen layer too, and kept it frozen for good;
   * a second probe: with one parameter frozen by hand, the record named the whole layer, and the
   * replay kept that parameter frozen too.
   */
  @ParameterizedTest
  @CsvSource({
    "'', ''",
    "weight, ''",
    "bias, ''",
    "'', factorize",
    "weight, factorize",
    "'', squeeze_excite",
    "weight, squeeze_excite"
  })
  void aLayerFrozenByHandTrainsTheSameInMemoryAndAfterAReload(
      String handFrozen, String replacedAfter) throws Exception {
    TestModels.saveInitialized(dir, "pretrained");
    SurgeryListener.Builder schedule =
        SurgeryListener.builder().add(TestModels.layerFreezingFromStart(), 3).optTotalEpochs(4);
    if (!replacedAfter.isEmpty()) {
      // A third probe: the layer replaced after it froze (its new parameters born frozen, as the
      // layer was whole) trained after a reload whose replay had unfrozen the program's part.
      schedule.add(smallLayers(replacedAfter), 3);
    }
    SurgeryListener listener = schedule.build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("pretrained")) {
      ArrayDataset dataset = TestModels.dataset(data, 37);
      model.load(dir, "pretrained");
      Block first = model.getBlock().getChildren().get(0).getValue();
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        // After newTrainer, which unfreezes every parameter of a loaded model.
        if (handFrozen.isEmpty()) {
          first.freezeParameters(true);
        } else {
          first.getParameters().get(handFrozen).freeze(true);
        }
        EasyTrain.fit(trainer, 3, dataset, null);
      }
      Map<String, String> changes =
          SurgeryJson.recordsFromJson(model.getProperty("surgery")).get(0).changes();
      String firstKey = model.getBlock().getChildren().get(0).getKey();
      if (handFrozen.isEmpty()) {
        assertEquals(1, changes.size(), "layer_freezing froze one layer itself: " + changes);
      } else {
        String other = handFrozen.equals("weight") ? "bias" : "weight";
        assertEquals(
            "Conv2d->frozen Conv2d (" + other + ")", changes.values().toArray()[0], "" + changes);
        assertEquals("BatchNorm->frozen BatchNorm", changes.values().toArray()[1], "" + changes);
      }
      model.save(dir, "hand-frozen");
      Map<String, float[]> inMemory = threeMoreEpochs(model, listener, dataset, data);
      try (Model restored = TestModels.model("pretrained")) {
        SurgeryCheckpoint.load(restored, dir, "hand-frozen");
        Map<String, float[]> reloaded = threeMoreEpochs(restored, listener, dataset, data);
        assertSameParametersTrainedTheSame(inMemory, reloaded);
      }
      if (replacedAfter.isEmpty()) {
        String hand = firstKey + "_" + (handFrozen.isEmpty() ? "weight" : handFrozen);
        assertTrue(inMemory.containsKey(hand), "DJL unfroze what the program froze: " + hand);
      } else {
        // New parameters born frozen train again where the layer was the program's alone (DJL
        // lifts its freezes), and stay frozen where surgery had frozen part of it.
        String born = firstKey + (replacedAfter.equals("factorize") ? "_" : "_02SqueezeExcite2d");
        boolean bornTrained = inMemory.keySet().stream().anyMatch(k -> k.contains(born));
        assertEquals(handFrozen.isEmpty(), bornTrained, born + " in " + inMemory.keySet());
      }
    }
  }

  /**
   * A plugin that replaces a layer and freezes its replacement on purpose, the layer trainable or
   * frozen in part by the program (one parameter frozen by hand, which no built-in algorithm
   * follows: they freeze the replacement of a layer frozen whole only). The next trainer in memory
   * keeps the replacement frozen: of a model built in the program DJL's newTrainer unfreezes
   * nothing (and the program's freeze went with the layer it replaced); of a loaded model it
   * unfreezes everything and the listener freezes again what surgery froze. The next trainer of the
   * checkpoint reloaded must train the same parameters to the same values. A layer frozen whole by
   * hand is the documented other case: a replacement born frozen there only follows the program's
   * freeze, which a reload lifts. Before this was fixed, the replay took the freeze of a layer
   * frozen in part for the program's and lifted it.
   */
  @ParameterizedTest
  @CsvSource({"'', false", "weight, false", "bias, false", "'', true", "weight, true"})
  void aReplacementAPluginFrozeOnPurposeTrainsAsInMemoryAfterAReload(
      String handFrozen, boolean loaded) throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm(TestAlgorithms.FRESH_FROZEN_CONV, Map.of("stride", 1)), 1)
            .build();
    SurgeryListener none = SurgeryListener.builder().build();
    if (loaded) {
      TestModels.saveInitialized(dir, "pretrained");
    }
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("pretrained")) {
      ArrayDataset dataset = TestModels.dataset(data, 53);
      if (loaded) {
        model.load(dir, "pretrained");
      }
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        // After newTrainer, which unfreezes every parameter of a loaded model.
        if (!handFrozen.isEmpty()) {
          Block first = model.getBlock().getChildren().get(0).getValue();
          first.getParameters().get(handFrozen).freeze(true);
        }
        EasyTrain.fit(trainer, 1, dataset, null);
      }
      Block replacement = model.getBlock().getChildren().get(0).getValue();
      assertTrue(replacement instanceof FreshConv2d, TestModels.structure(model.getBlock()));
      model.save(dir, "on-purpose");
      Map<String, float[]> inMemory = threeMoreEpochs(model, none, dataset, data);
      String born = model.getBlock().getChildren().get(0).getKey() + "_";
      assertTrue(
          inMemory.keySet().stream().noneMatch(k -> k.startsWith(born)),
          "the plugin's frozen layer stays frozen in memory: " + inMemory.keySet());
      try (Model restored = TestModels.model("pretrained")) {
        SurgeryCheckpoint.load(restored, dir, "on-purpose");
        Map<String, float[]> reloaded = threeMoreEpochs(restored, none, dataset, data);
        assertSameParametersTrainedTheSame(inMemory, reloaded);
      }
    }
  }

  /**
   * A record that says which parameters its replacements brought frozen is replayed so: those
   * frozen and kept for the next trainer, the others trainable; one that names a parameter the
   * replay did not bring does not describe the saved model and is refused, the block as it was.
   */
  @Test
  void theParametersARecordSaysWereBornFrozenAreFrozenByItsReplay() throws Exception {
    Map<String, Object> settings = smallLayers("factorize").settings();
    Map<String, String> changes =
        Map.of(
            "01Conv2d", "Conv2d->FactorizedConv2d",
            "04Conv2d", "Conv2d->FactorizedConv2d",
            "08Linear", "Linear->FactorizedLinear");
    String born = "04FactorizedConv2d_02Conv2d_weight";
    for (String named : List.of(born, "04FactorizedConv2d_03Conv2d_weight")) {
      SurgeryRecord record =
          new SurgeryRecord("factorize", settings, 1, 2, changes, List.of(named));
      Block block = TestModels.cnn();
      try (NDManager manager = NDManager.newBaseManager()) {
        if (named.equals(born)) {
          replayOnTheTestInput(block, record, manager, "recorded");
          Set<String> frozen =
              parameterPaths(block, p -> !p.requiresGradient() && !ParameterSets.isStatistic(p));
          assertEquals(Set.of(born), frozen);
          assertEquals(
              Set.of(block.getParameters().get(born)),
              SurgeryCheckpoint.frozenByReplay(block),
              "kept for the next trainer");
          continue;
        }
        String before = block.toString();
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class,
                () -> replayOnTheTestInput(block, record, manager, "edited"));
        assertTrue(
            e.getMessage()
                .contains(
                    "its record says its replacements brought "
                        + named
                        + " frozen, which the replay did not bring (an edited record?)"),
            e.getMessage());
        assertEquals(before, block.toString(), "the refused replay left the block as it was");
        assertTrue(
            block.getParameters().values().stream()
                .allMatch(p -> p.requiresGradient() || ParameterSets.isStatistic(p)));
      }
    }
  }

  /**
   * Replays the records on the model's own block, manager and data type for one input shape, as the
   * load of a file with that record would.
   */
  static void replayOnModel(Model model, List<SurgeryRecord> records, Shape input)
      throws MalformedModelException {
    SurgeryCheckpoint.replay(
        model.getBlock(),
        records,
        model.getNDManager(),
        model.getDataType(),
        new Shape[] {input},
        "test");
  }

  /** Replays one record on {@code block} for the test CNN's input, as a load of its file would. */
  private static void replayOnTheTestInput(
      Block block, SurgeryRecord record, NDManager manager, String origin)
      throws MalformedModelException {
    SurgeryCheckpoint.replay(
        block, List.of(record), manager, DataType.FLOAT32, new Shape[] {INPUT}, origin);
  }

  /**
   * A freeze record that names parameters ({@code frozen Conv2d (bias)}) is replayed for those
   * alone; one that names a parameter the layer lacks, or a layer the replay left trainable, does
   * not describe the saved model and is refused, the block left as it was.
   */
  @Test
  void aFreezeRecordIsReplayedForTheParametersItNames() throws Exception {
    Map<String, Object> settings = Map.of("freeze_start", 0.0);
    for (String change :
        List.of(
            "01Conv2d=Conv2d->frozen Conv2d (bias)",
            "01Conv2d=Conv2d->frozen Conv2d (gamma)",
            "02BatchNorm=BatchNorm->frozen BatchNorm (runningMean)",
            "04Conv2d=Conv2d->frozen Conv2d")) {
      String[] pathAndChange = change.split("=");
      SurgeryRecord record =
          new SurgeryRecord(
              "layer_freezing", settings, 1, 2, Map.of(pathAndChange[0], pathAndChange[1]));
      Block block = TestModels.cnn();
      Block conv = block.getChildren().get(0).getValue();
      try (NDManager manager = NDManager.newBaseManager()) {
        if (change.contains("bias")) {
          replayOnTheTestInput(block, record, manager, "edited");
          assertFalse(conv.getParameters().get("bias").requiresGradient(), change);
          assertTrue(conv.getParameters().get("weight").requiresGradient(), change);
          continue;
        }
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class,
                () -> replayOnTheTestInput(block, record, manager, "edited"));
        String named =
            change.contains("gamma")
                ? "its record says it froze 01Conv2d's parameters (gamma), which that layer does not"
                    + " have (an edited record?)"
                : change.contains("runningMean")
                    // A review: a running statistic is never frozen by surgery.
                    ? "its record says it froze 02BatchNorm's parameters (runningMean), which that"
                        + " layer does not have (an edited record?)"
                    : "its record says it froze 04Conv2d, which is still trainable";
        assertTrue(e.getMessage().contains(named), e.getMessage());
        assertTrue(
            block.getParameters().values().stream()
                .allMatch(p -> p.requiresGradient() || ParameterSets.isStatistic(p)),
            "the refused replay left the block as it was");
      }
    }
  }

  /**
   * A reviewer: a program's algorithm may freeze without saying so in its changes; the replay keeps
   * its freezes (only layer_freezing's records are held to the parameters they name). And a
   * parameter whose name holds ", " is read whole from a record that names it.
   */
  @Test
  void aQuietFreezeStaysAndAParameterNameWithACommaIsReadWhole() throws Exception {
    Block quiet = TestModels.cnn();
    try (NDManager manager = NDManager.newBaseManager()) {
      SurgeryCheckpoint.replay(
          quiet,
          List.of(
              new SurgeryRecord(
                  TestAlgorithms.FREEZE_QUIETLY, Map.of(), 1, 2, Map.<String, String>of())),
          manager,
          DataType.FLOAT32,
          new Shape[] {INPUT},
          "quiet");
      assertTrue(
          quiet.getChildren().get(0).getValue().getParameters().values().stream()
              .noneMatch(Parameter::requiresGradient),
          "the program's algorithm froze it, and the replay kept it");

      SequentialBlock odd =
          new SequentialBlock()
              .add(new NamedParameterLayer("w, x", "b"))
              .add(Linear.builder().setUnits(2).build())
              .add(Linear.builder().setUnits(2).build());
      String key = odd.getChildren().get(0).getKey();
      SurgeryCheckpoint.replay(
          odd,
          List.of(
              new SurgeryRecord(
                  "layer_freezing",
                  Map.of("freeze_start", 0.0),
                  1,
                  2,
                  Map.of(key, "NamedParameterLayer->frozen NamedParameterLayer (w, x)"))),
          manager,
          DataType.FLOAT32,
          new Shape[] {new Shape(2, 3)},
          "comma");
      Block layer = odd.getChildren().get(0).getValue();
      assertFalse(layer.getParameters().get("w, x").requiresGradient());
      assertTrue(layer.getParameters().get("b").requiresGradient(), "not in the record");
    }
  }

  /**
   * A probe: the checkpoints of such a run (the first layer's weight frozen by hand, layer_freezing
   * freezing its bias, factorize replacing it an epoch later) loaded in turn into one model train
   * as the last one loaded into a fresh model: the second load, which replays only factorize, has
   * the program's part frozen while it does, as the first load found it and the saved run had it.
   * Also with the records of an earlier build, which do not say what was born frozen ({@code
   * born_frozen}): the replay then infers it from the freezes, and the program's part the first
   * load found must be kept with the block for the next.
   */
  @ParameterizedTest
  @CsvSource({"false, false", "true, false", "false, true", "true, true"})
  void checkpointsOfAPartlyFrozenLayerLoadedInTurnTrainAsTheLastAlone(
      boolean trainerBetween, boolean olderRecords) throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(TestModels.layerFreezingFromStart(), 2)
            .add(smallLayers("factorize"), 3)
            .add(TestModels.layerFreezingFromStart(), 3)
            .optTotalEpochs(4)
            .build();
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 41);
      savePartlyFrozenRunEveryEpoch(dir, listener, dataset);
      Path files = olderRecords ? withoutBornFrozen(dir, "turns", 3) : dir;
      try (Model inTurn = TestModels.model("pretrained");
          Model fresh = TestModels.model("pretrained")) {
        for (int epoch = 1; epoch <= 3; epoch++) {
          SurgeryCheckpoint.load(inTurn, files, "turns", Map.of("epoch", epoch));
          if (trainerBetween && epoch == 2) {
            // A reviewer: DJL's newTrainer (no listener) unfroze what the second load's replay
            // froze, and the third load's factorize made trainable layers of a frozen one.
            inTurn.newTrainer(TestModels.config()).close();
          }
        }
        SurgeryCheckpoint.load(fresh, files, "turns", Map.of("epoch", 3));
        SurgeryListener none = SurgeryListener.builder().build();
        Map<String, float[]> last = threeMoreEpochs(fresh, none, dataset, data);
        Map<String, float[]> turns = threeMoreEpochs(inTurn, none, dataset, data);
        assertSameParametersTrainedTheSame(last, turns);
        assertTrue(
            last.keySet().stream().noneMatch(k -> k.startsWith("01FactorizedConv2d")),
            "born frozen, where surgery had frozen part of the layer: " + last.keySet());
      }
    }
  }

  /**
   * Copies the checkpoints {@code name-0001} to {@code name-000<epochs>} into a folder of their own
   * with their records as an earlier build wrote them, without {@code born_frozen}.
   */
  static Path withoutBornFrozen(Path dir, String name, int epochs) throws Exception {
    Path older = dir.resolve("older");
    for (int epoch = 1; epoch <= epochs; epoch++) {
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, name, Map.of("epoch", epoch));
      if (SurgeryCheckpoint.readRecord(file).isEmpty()) {
        Files.createDirectories(older);
        Files.copy(file, older.resolve(file.getFileName()));
        continue;
      }
      BornFrozenRecordTest.withRecord(
          file,
          older,
          json ->
              json.replaceAll(",\"born_frozen\":\\[[^\\]]*\\]", "")
                  .replaceAll("\"born_frozen\":\\[[^\\]]*\\],", ""));
    }
    for (int epoch = 1; epoch <= epochs; epoch++) {
      for (SurgeryRecord r :
          SurgeryCheckpoint.readRecord(
              SurgeryCheckpoint.resolveParamsFile(older, name, Map.of("epoch", epoch)))) {
        assertNull(r.bornFrozen(), "an earlier build's record");
      }
    }
    return older;
  }

  /**
   * A pretrained model (loaded), its first layer's weight frozen by hand once its trainer is made,
   * trained 3 epochs under {@code listener}, saved as {@code turns} after each (epochs 1 to 3).
   */
  static void savePartlyFrozenRunEveryEpoch(
      Path dir, SurgeryListener listener, ArrayDataset dataset) throws Exception {
    TestModels.saveInitialized(dir, "pretrained");
    try (Model model = TestModels.model("pretrained")) {
      model.load(dir, "pretrained");
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        model.getBlock().getChildren().get(0).getValue().getParameters().get("weight").freeze(true);
        for (int epoch = 1; epoch <= 3; epoch++) {
          EasyTrain.fit(trainer, 1, dataset, null);
          model.setProperty("Epoch", String.valueOf(epoch));
          model.save(dir, "turns");
        }
      }
    }
  }

  /**
   * A reviewer: the program froze the first layer of the fresh model before the load (it will
   * fine-tune the rest); the record's layer_freezing froze it in the saved run, and factorize then
   * replaced it, its new parameters born frozen: they must be frozen by the replay as on a plain
   * load, not taken for the program's because the layer was frozen already when its record
   * replayed.
   */
  @Test
  void aLayerTheProgramFrozeBeforeTheLoadKeepsSurgerysFreezeOnItsReplacement() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(TestModels.layerFreezingFromStart(), 1)
            .add(smallLayers("factorize"), 2)
            .optTotalEpochs(2)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("frozen-before")) {
      train(model, listener, 2, TestModels.dataset(data, 43));
      model.save(dir, "frozen-before");
    }
    Set<String> plain;
    try (Model restored = TestModels.model("frozen-before")) {
      SurgeryCheckpoint.load(restored, dir, "frozen-before");
      plain = frozenByReplayPaths(restored);
    }
    assertTrue(plain.stream().anyMatch(k -> k.startsWith("01FactorizedConv2d")), "" + plain);
    try (Model restored = TestModels.model("frozen-before")) {
      restored.getBlock().getChildren().get(0).getValue().freezeParameters(true);
      SurgeryCheckpoint.load(restored, dir, "frozen-before");
      assertEquals(plain, frozenByReplayPaths(restored));
    }
  }

  /**
   * The known gap of the twenty-seventh session, closed: the first layer's weight frozen by hand,
   * layer_freezing freezing its bias, then a second trainer of the loaded model (DJL's newTrainer
   * lifts the hand freeze; the program freezes it again or not) under which factorize replaces the
   * layer. Where the hand freeze was lifted, the layer was not frozen whole and factorize's
   * parameters were born trainable, and trained; the replay, which keeps the program's part frozen
   * while it runs, had them born frozen and kept them so. The record now says which new parameters
   * surgery kept frozen, and the reload trains the same parameters to the same values as the model
   * in memory, in both cases.
   */
  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void parametersBornAfterTheProgramsFreezeWasLiftedTrainAsInMemoryAfterAReload(boolean frozenAgain)
      throws Exception {
    TestModels.saveInitialized(dir, "pretrained");
    // One listener per stage, each with what remains of the job (each trainer counts its epochs).
    List<SurgeryListener> stages =
        List.of(
            SurgeryListener.builder()
                .add(TestModels.layerFreezingFromStart(), 1)
                .optTotalEpochs(1)
                .build(),
            SurgeryListener.builder().add(smallLayers("factorize"), 1).build());
    SurgeryListener listener = SurgeryListener.builder().build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("pretrained")) {
      ArrayDataset dataset = TestModels.dataset(data, 47);
      model.load(dir, "pretrained");
      for (int stage = 1; stage <= 2; stage++) {
        try (Trainer trainer = model.newTrainer(TestModels.config(stages.get(stage - 1)))) {
          trainer.initialize(INPUT);
          // After newTrainer, which unfreezes every parameter of a loaded model.
          Block first = model.getBlock().getChildren().get(0).getValue();
          if (stage == 1 || frozenAgain) {
            first.getParameters().get("weight").freeze(true);
          }
          EasyTrain.fit(trainer, 1, dataset, null);
        }
      }
      List<SurgeryRecord> records = SurgeryJson.recordsFromJson(model.getProperty("surgery"));
      assertEquals(List.of("layer_freezing", "factorize"), algorithms(records));
      assertNull(records.get(0).bornFrozen(), "layer_freezing replaced nothing");
      // The first layer's new parameters born frozen where it was frozen whole (surgery had
      // frozen part of it); the other layers layer_freezing froze whole are born frozen either way.
      List<String> born = records.get(1).bornFrozen();
      assertEquals(
          frozenAgain, born.stream().anyMatch(k -> k.startsWith("01FactorizedConv2d")), "" + born);
      assertTrue(born.stream().anyMatch(k -> k.startsWith("04FactorizedConv2d")), "" + born);
      model.save(dir, "lifted");
      Map<String, float[]> inMemory = threeMoreEpochs(model, listener, dataset, data);
      assertEquals(
          !frozenAgain,
          inMemory.keySet().stream().anyMatch(k -> k.startsWith("01FactorizedConv2d")),
          "factorize's parameters trained in memory: " + inMemory.keySet());
      try (Model restored = TestModels.model("pretrained")) {
        SurgeryCheckpoint.load(restored, dir, "lifted");
        Map<String, float[]> reloaded = threeMoreEpochs(restored, listener, dataset, data);
        assertSameParametersTrainedTheSame(inMemory, reloaded);
      }
    }
  }

  /**
   * Asserts that the same parameters trained ({@code expected}'s paths) and that each ended with
   * {@code expected}'s values, bit for bit.
   */
  private static void assertSameParametersTrainedTheSame(
      Map<String, float[]> expected, Map<String, float[]> actual) {
    assertEquals(expected.keySet(), actual.keySet(), "the same parameters trained");
    for (Map.Entry<String, float[]> e : expected.entrySet()) {
      assertArrayEquals(e.getValue(), actual.get(e.getKey()), e.getKey());
    }
  }

  private static List<String> algorithms(List<SurgeryRecord> records) {
    return records.stream().map(SurgeryRecord::algorithm).toList();
  }

  /** The paths of the parameters a replay froze for good ({@code frozenByReplay}). */
  static Set<String> frozenByReplayPaths(Model model) {
    Set<Parameter> frozen = SurgeryCheckpoint.frozenByReplay(model.getBlock());
    return parameterPaths(model.getBlock(), frozen::contains);
  }

  /** The sorted paths of the block's parameters that {@code which} accepts. */
  private static Set<String> parameterPaths(Block block, Predicate<Parameter> which) {
    Set<String> paths = new java.util.TreeSet<>();
    TestModels.parametersByPath(block)
        .forEach(
            (path, p) -> {
              if (which.test(p)) {
                paths.add(path);
              }
            });
    return paths;
  }

  /**
   * Three more epochs (12 Adam steps) of a model under a new trainer, the data drawn from one seed:
   * the parameters that changed, by path, with their values after them, every one finite.
   */
  private static Map<String, float[]> threeMoreEpochs(
      Model model, SurgeryListener listener, ArrayDataset dataset, NDManager data)
      throws Exception {
    Map<String, float[]> before = new LinkedHashMap<>();
    TestModels.parametersByPath(model.getBlock())
        .forEach((k, p) -> before.put(k, p.getArray().toFloatArray()));
    data.getEngine().setRandomSeed(11);
    train(model, listener, 3, dataset);
    Map<String, float[]> trained = new LinkedHashMap<>();
    TestModels.parametersByPath(model.getBlock())
        .forEach(
            (k, p) -> {
              float[] after = p.getArray().toFloatArray();
              for (float v : after) {
                assertTrue(Float.isFinite(v), k + " holds " + v);
              }
              if (!Arrays.equals(before.get(k), after)) {
                trained.put(k, after);
              }
            });
    return trained;
  }

  /**
   * A repeating entry records the runs that changed something: a no-op run would add a record every
   * time (rewriting the property, replayed at every load).
   */
  @Test
  void aRepeatingEntryRecordsOnlyTheRunsThatChangedSomething() throws Exception {
    Path yaml = dir.resolve("every.yaml");
    Files.writeString(
        yaml,
        "algorithms:\n  - name: blurpool\n    every: 1ep\n    min_channels: 0\ntotal_epochs: 3\n");
    SurgeryListener every = SurgeryListener.fromYaml(yaml);
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("every");
        Trainer trainer = model.newTrainer(TestModels.config(every))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 3, TestModels.dataset(data, 3), null);
      assertEquals(3, every.getOutcomes().size(), "it ran after each epoch");
      List<SurgeryRecord> records =
          SurgeryJson.recordsFromJson(model.getProperty(SurgeryListener.PROPERTY));
      assertEquals(1, records.size(), records.toString());
      assertFalse(records.get(0).changes().isEmpty());
    }
  }

  /**
   * Two trainers of one model, both built before either trains (under the agent, a program that
   * makes its trainers up front): the second must not apply again what the first recorded in the
   * model meanwhile (it did, with a second, empty record), as a trainer built afterwards does not.
   */
  @Test
  void aTrainerBuiltBeforeAnotherTrainedDoesNotApplyItsRecordedEntriesAgain() throws Exception {
    SurgeryListener listener = blurpoolAtEpoch1();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("two-trainers");
        Trainer first = model.newTrainer(TestModels.config(listener));
        Trainer second = model.newTrainer(TestModels.config(listener))) {
      first.initialize(INPUT);
      ArrayDataset dataset = TestModels.dataset(data, 4);
      EasyTrain.fit(first, 2, dataset, null);
      String structure = TestModels.structure(model.getBlock());
      assertEquals(
          2,
          TestModels.count(model.getBlock(), "BlurConv2d")
              + TestModels.count(model.getBlock(), "BlurMaxPool2d"),
          structure);
      second.initialize(INPUT);
      EasyTrain.fit(second, 2, dataset, null);
      assertEquals(structure, TestModels.structure(model.getBlock()));
      List<SurgeryRecord> records =
          SurgeryJson.recordsFromJson(model.getProperty(SurgeryListener.PROPERTY));
      assertEquals(1, records.size(), records.toString());
      assertEquals(1, appliedCount(listener), listener.getOutcomes().toString());
    }
  }

  /**
   * A model loaded from a plain checkpoint, layer_freezing run by a first trainer, then a second
   * trainer on the same model: DJL's newTrainer unfreezes every parameter of a loaded model, the
   * recorded entry is not applied again, and the frozen layer trained again, silently. The listener
   * freezes again what its own surgery froze, as it does for a replayed record.
   */
  @Test
  void layersFrozenByAnEarlierTrainerStayFrozenForTheNextOnALoadedModel() throws Exception {
    TestModels.saveInitialized(dir, "resume-frozen");
    SurgeryListener listener = freezingListener();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("resume-frozen")) {
      model.load(dir, "resume-frozen");
      ArrayDataset dataset = TestModels.dataset(data, 4);
      train(model, listener, 1, dataset);
      Map<Parameter, float[]> frozen = frozenWeights(model);
      assertFalse(frozen.isEmpty(), "the first trainer froze layers");
      assertStayFrozenUnderANextTrainer(model, listener, frozen, dataset);
    }
  }

  /**
   * An outside tester: a model built in the program (never loaded), layer_freezing run by a first
   * trainer, the program unfreezing those layers for a second stage with the documented {@code
   * ModuleSurgery.unfreezeParameters}: the second trainer's listener froze them again ("DJL's
   * newTrainer unfreezes a loaded model", which this model is not), and they never trained. DJL
   * unfroze nothing here: what trains was unfrozen by the program, and trains.
   */
  @Test
  void aModelNotLoadedKeepsWhatTheProgramUnfrozeForItsNextTrainer() throws Exception {
    SurgeryListener listener = freezingListener();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("stage-two")) {
      ArrayDataset dataset = TestModels.dataset(data, 4);
      train(model, listener, 1, dataset);
      Map<Parameter, float[]> frozen = frozenWeights(model);
      assertFalse(frozen.isEmpty(), "the first trainer froze layers");
      ModuleSurgery.unfreezeParameters(frozen.keySet(), null);
      assertTrainUnderANextTrainer(model, listener, frozen::keySet, frozen, dataset);
    }
  }

  /**
   * An outside tester: a loaded model whose layers the program froze with DJL's API, squeeze_excite
   * or factorize run by a first trainer (the new parameters of the frozen layers are born frozen,
   * as those layers are), then a second trainer: DJL's newTrainer unfreezes every parameter of a
   * loaded model, the program's freezes included, but the listener froze the new ones again, so the
   * convolutions trained and their gates stayed at their random start (the factorized layers did
   * not train at all). Only what surgery froze itself is frozen again.
   */
  @ParameterizedTest
  @ValueSource(strings = {"squeeze_excite", "factorize"})
  void aLoadedModelsParametersBornFrozenTrainWithTheirLayersUnderTheNextTrainer(String algorithm)
      throws Exception {
    TestModels.saveInitialized(dir, "fine-tune");
    SurgeryListener listener = SurgeryListener.builder().add(smallLayers(algorithm), 1).build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("fine-tune")) {
      model.load(dir, "fine-tune");
      Set<Parameter> original = parametersOf(model.getBlock());
      ArrayDataset dataset = TestModels.dataset(data, 4);
      try (Trainer first = model.newTrainer(TestModels.config(listener))) {
        first.initialize(INPUT);
        // The backbone frozen, the head (the last block) trains: a first stage of fine-tuning.
        Block head =
            model.getBlock().getChildren().values().get(model.getBlock().getChildren().size() - 1);
        Set<Parameter> headParameters = parametersOf(head);
        model.getBlock().freezeParameters(true, p -> !headParameters.contains(p));
        EasyTrain.fit(first, 2, dataset, null);
      }
      Map<Parameter, float[]> frozen = frozenWeights(model);
      assertTrue(
          frozen.keySet().stream().anyMatch(p -> !original.contains(p)),
          algorithm + "'s new parameters were born frozen");
      assertTrainUnderANextTrainer(model, listener, () -> weightsOf(model), frozen, dataset);
    }
  }

  /**
   * The other side of the rule above: layers layer_freezing froze ("layers are never unfrozen"),
   * then wrapped (squeeze_excite keeps the frozen convolution's parameters) or factorized (new
   * parameters only) by the next entry, stay frozen for a second trainer of the loaded model, their
   * parameters born frozen included.
   */
  @ParameterizedTest
  @ValueSource(strings = {"squeeze_excite", "factorize"})
  void layersLayerFreezingFrozeStayFrozenReplacedForTheNextTrainer(String algorithm)
      throws Exception {
    TestModels.saveInitialized(dir, "frozen-then-replaced");
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(TestModels.layerFreezingFromStart(), 1)
            .add(smallLayers(algorithm), 1)
            .optTotalEpochs(2)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("frozen-then-replaced")) {
      model.load(dir, "frozen-then-replaced");
      Set<Parameter> original = parametersOf(model.getBlock());
      ArrayDataset dataset = TestModels.dataset(data, 4);
      train(model, listener, 1, dataset);
      Map<Parameter, float[]> frozen = frozenWeights(model);
      assertTrue(
          frozen.keySet().stream().anyMatch(p -> !original.contains(p)),
          algorithm + "'s new parameters of the frozen layer were born frozen");
      assertStayFrozenUnderANextTrainer(model, listener, frozen, dataset);
    }
  }

  /**
   * A reviewer: a loaded model, the program freezing the second convolution with DJL's API,
   * layer_freezing freezing the first, then factorize replacing both. The next trainer froze both
   * factorized pairs again (a factorized layer holds none of the old parameters, and the rule was
   * one for the whole tree); only the first's is layer_freezing's: the second follows the program's
   * freeze, which DJL's newTrainer lifts. The layer a replacement stands for is now the one that
   * held its place. Also with the layers one level down the tree (the whole network a child of the
   * root): each place is found inside the blocks surgery left unchanged.
   */
  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void eachFactorizedLayerFollowsTheFreezeOfTheLayerWhosePlaceItTook(boolean nested)
      throws Exception {
    Supplier<Model> build =
        () ->
            nested
                ? TinyModels.model("mixed-freezes", new SequentialBlock().add(TestModels.cnn()))
                : TestModels.model("mixed-freezes");
    try (Model saved = build.get()) {
      saved.getBlock().initialize(saved.getNDManager(), saved.getDataType(), INPUT);
      saved.save(dir, "mixed-freezes");
    }
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(TestModels.layerFreezingFromStart(), 1)
            .add(smallLayers("factorize"), 1)
            .optTotalEpochs(2)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = build.get()) {
      model.load(dir, "mixed-freezes");
      Block layers = nested ? model.getBlock().getChildren().values().get(0) : model.getBlock();
      ArrayDataset dataset = TestModels.dataset(data, 4);
      try (Trainer first = model.newTrainer(TestModels.config(listener))) {
        first.initialize(INPUT);
        layers.getChildren().values().get(3).freezeParameters(true);
        EasyTrain.fit(first, 1, dataset, null);
      }
      Block firstConv = layers.getChildren().values().get(0);
      Block secondConv = layers.getChildren().values().get(3);
      assertEquals("FactorizedConv2d", BlockPaths.typeName(firstConv));
      assertEquals("FactorizedConv2d", BlockPaths.typeName(secondConv));
      try (Trainer second = model.newTrainer(TestModels.config(listener))) {
        for (Parameter p : firstConv.getParameters().values()) {
          assertFalse(p.requiresGradient(), "layer_freezing's " + p.getName() + " trains again");
        }
        for (Parameter p : secondConv.getParameters().values()) {
          assertTrue(p.requiresGradient(), "the program's " + p.getName() + " frozen again");
        }
        float[] firstWeights = firstConv.getParameters().values().get(0).getArray().toFloatArray();
        float[] secondWeights =
            secondConv.getParameters().values().get(0).getArray().toFloatArray();
        second.initialize(INPUT);
        EasyTrain.fit(second, 1, dataset, null);
        assertArrayEquals(
            firstWeights, firstConv.getParameters().values().get(0).getArray().toFloatArray());
        assertFalse(
            Arrays.equals(
                secondWeights,
                secondConv.getParameters().values().get(0).getArray().toFloatArray()));
      }
    }
  }

  /**
   * A reviewer: a record of factorize then layer_freezing (which froze the first convolution's
   * factorized pair), loaded into a model whose second convolution the program had frozen with
   * DJL's API: the next trainer left layer_freezing's pair trainable (the first convolution left
   * the tree trainable, and the program's freeze elsewhere made the whole replay look like the
   * program's). What the records froze stays frozen.
   */
  @Test
  void aReplayKeepsWhatLayerFreezingFrozeBesideTheProgramsOwnFreeze() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(smallLayers("factorize"), 1)
            .add(TestModels.layerFreezingFromStart(), 1)
            .optTotalEpochs(2)
            .build();
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 4);
      try (Model model = TestModels.model("factorize-then-freeze")) {
        train(model, listener, 1, dataset);
        assertFalse(frozenWeights(model).isEmpty(), "layer_freezing froze a factorized layer");
        model.save(dir, "factorize-then-freeze");
      }
      try (Model restored = TestModels.model("factorize-then-freeze")) {
        restored.getBlock().getChildren().values().get(3).freezeParameters(true);
        SurgeryCheckpoint.load(restored, dir, "factorize-then-freeze");
        Block firstConv = restored.getBlock().getChildren().values().get(0);
        assertEquals("FactorizedConv2d", BlockPaths.typeName(firstConv));
        // What a program without the listener freezes again: named.
        for (Parameter p : firstConv.getParameters().values()) {
          assertTrue(
              SurgeryCheckpoint.frozenByReplay(restored.getBlock()).contains(p),
              "layer_freezing's " + p.getName() + " is not named");
        }
        try (Trainer next = restored.newTrainer(TestModels.config(listener))) {
          for (Parameter p : firstConv.getParameters().values()) {
            assertFalse(p.requiresGradient(), "layer_freezing's " + p.getName() + " trains again");
          }
          float[] weights = firstConv.getParameters().values().get(0).getArray().toFloatArray();
          next.initialize(INPUT);
          EasyTrain.fit(next, 1, dataset, null);
          assertArrayEquals(
              weights, firstConv.getParameters().values().get(0).getArray().toFloatArray());
        }
      }
    }
  }

  /** conv0, relu, a ResNet unit [convA BN relu convB BN | identity], global pool, linear(4). */
  private static SequentialBlock residualNet() {
    java.util.function.IntFunction<Block> conv =
        f ->
            ai.djl.nn.convolutional.Conv2d.builder()
                .setKernelShape(new ai.djl.ndarray.types.Shape(3, 3))
                .optPadding(new ai.djl.ndarray.types.Shape(1, 1))
                .setFilters(f)
                .build();
    SequentialBlock branch =
        new SequentialBlock()
            .add(conv.apply(8))
            .add(ai.djl.nn.norm.BatchNorm.builder().build())
            .add(ai.djl.nn.Activation.reluBlock())
            .add(conv.apply(8))
            .add(ai.djl.nn.norm.BatchNorm.builder().build());
    SequentialBlock shortcut =
        new SequentialBlock().add(new ai.djl.nn.LambdaBlock(x -> x, "identity"));
    ai.djl.nn.ParallelBlock unit =
        new ai.djl.nn.ParallelBlock(
            list ->
                new NDList(
                    ai.djl.nn.Activation.relu(
                        list.get(0).singletonOrThrow().add(list.get(1).singletonOrThrow()))),
            List.of(branch, shortcut));
    return new SequentialBlock()
        .add(conv.apply(8))
        .add(ai.djl.nn.Activation.reluBlock())
        .add(unit)
        .add(ai.djl.nn.pooling.Pool.globalAvgPool2dBlock())
        .add(ai.djl.nn.core.Linear.builder().setUnits(4).build());
  }

  /**
   * A reviewer: under stochastic depth, whose residual wrapper adds a level to the tree, a replay
   * kept frozen a layer only the program had frozen with DJL's API before the load:
   * layer_freezing's recorded path, read in the final tree by number, named the whole branch
   * ({@code paths}); and the wrapper, itself new, decided every parameter born frozen below it at
   * once ({@code place}: the program-frozen layer's squeeze-excite gate). Each record's paths are
   * now read right after its own replay, and a wrapper's old blocks are walked into.
   */
  @ParameterizedTest
  @ValueSource(strings = {"paths", "place"})
  void aReplayUnderStochasticDepthKeepsOnlyWhatSurgeryFroze(String order) throws Exception {
    Algorithm freezing = TestModels.layerFreezingFromStart();
    Algorithm depth = Algorithms.spec("stochastic_depth").create(Map.of("drop_rate", 0.1));
    Algorithm excite =
        Algorithms.spec("squeeze_excite").create(Map.of("min_channels", 1, "latent_channels", 2));
    SurgeryListener.Builder builder = SurgeryListener.builder().optTotalEpochs(2);
    if (order.equals("paths")) {
      builder.add(freezing, 1).add(depth, 1);
    } else {
      builder.add(depth, 1).add(freezing, 1).add(excite, 1);
    }
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 4);
      try (Model model = Model.newInstance("residual-" + order)) {
        model.setBlock(residualNet());
        train(model, builder.build(), 2, dataset);
        model.save(dir, "residual-" + order);
      }
      try (Model restored = Model.newInstance("residual-" + order)) {
        restored.setBlock(residualNet());
        Block convB =
            restored
                .getBlock()
                .getChildren()
                .valueAt(2)
                .getChildren()
                .valueAt(0)
                .getChildren()
                .valueAt(3);
        convB.freezeParameters(true); // the program's fine-tuning recipe, before the load
        SurgeryCheckpoint.load(restored, dir, "residual-" + order);
        try (Trainer next =
            restored.newTrainer(TestModels.config(SurgeryListener.builder().build()))) {
          List<String> frozen = new ArrayList<>();
          for (ai.djl.util.Pair<String, Parameter> p : restored.getBlock().getParameters()) {
            if (!p.getValue().requiresGradient()
                && p.getValue().getType() != Parameter.Type.RUNNING_MEAN
                && p.getValue().getType() != Parameter.Type.RUNNING_VAR) {
              frozen.add(p.getKey());
            }
          }
          assertEquals(1, TestModels.count(restored.getBlock(), "StochasticResidual"));
          assertFalse(frozen.isEmpty(), "layer_freezing's layers");
          assertTrue(
              frozen.stream().noneMatch(k -> k.contains("01SequentialBlock_04")),
              "convB's place is frozen again: " + frozen);
          next.initialize(INPUT);
          EasyTrain.fit(next, 1, dataset, null);
        }
      }
    }
  }

  /** squeeze_excite or factorize with settings that take the test CNN's small layers. */
  static Algorithm smallLayers(String algorithm) {
    return algorithm.equals("factorize")
        ? Algorithms.spec("factorize")
            .create(
                Map.of(
                    "min_channels",
                    2,
                    "latent_channels",
                    0.5,
                    "min_features",
                    2,
                    "latent_features",
                    0.5))
        : Algorithms.spec("squeeze_excite").create(Map.of("min_channels", 1));
  }

  /** The block's parameters as a set of the very objects, to tell the ones a surgery brought. */
  private static Set<Parameter> parametersOf(Block block) {
    Set<Parameter> parameters = Collections.newSetFromMap(new IdentityHashMap<>());
    parameters.addAll(block.getParameters().values());
    return parameters;
  }

  /** A second trainer of the model: the frozen weights stay frozen and keep their values. */
  private static void assertStayFrozenUnderANextTrainer(
      Model model, SurgeryListener listener, Map<Parameter, float[]> frozen, ArrayDataset dataset)
      throws Exception {
    try (Trainer second = model.newTrainer(TestModels.config(listener))) {
      for (Parameter p : frozen.keySet()) {
        assertFalse(p.requiresGradient(), p.getName() + " trains again");
      }
      EasyTrain.fit(second, 1, dataset, null);
    }
    for (Map.Entry<Parameter, float[]> e : frozen.entrySet()) {
      assertArrayEquals(e.getValue(), e.getKey().getArray().toFloatArray(), e.getKey().getName());
    }
  }

  /**
   * A next trainer of the model: each of {@code trainable} (asked once that trainer is built)
   * trains, and after its epoch each parameter of {@code before} has moved from its values there.
   */
  private static void assertTrainUnderANextTrainer(
      Model model,
      SurgeryListener listener,
      Supplier<Collection<Parameter>> trainable,
      Map<Parameter, float[]> before,
      ArrayDataset dataset)
      throws Exception {
    try (Trainer second = model.newTrainer(TestModels.config(listener))) {
      for (Parameter p : trainable.get()) {
        assertTrue(p.requiresGradient(), p.getName() + " frozen again");
      }
      EasyTrain.fit(second, 1, dataset, null);
    }
    assertEachTrained(before);
  }

  /** The model's parameters of type {@code WEIGHT}, in the tree's order. */
  private static List<Parameter> weightsOf(Model model) {
    List<Parameter> weights = new ArrayList<>();
    for (Parameter p : model.getBlock().getParameters().values()) {
      if (p.getType() == Parameter.Type.WEIGHT) {
        weights.add(p);
      }
    }
    return weights;
  }

  private static void assertEachTrained(Map<Parameter, float[]> before) {
    for (Map.Entry<Parameter, float[]> e : before.entrySet()) {
      assertFalse(
          Arrays.equals(e.getValue(), e.getKey().getArray().toFloatArray()),
          e.getKey().getName() + " did not train");
    }
  }

  private static Map<Parameter, float[]> frozenWeights(Model model) {
    Map<Parameter, float[]> frozen = new IdentityHashMap<>();
    for (Parameter p : model.getBlock().getParameters().values()) {
      if (!p.requiresGradient() && p.getType() == Parameter.Type.WEIGHT) {
        frozen.put(p, p.getArray().toFloatArray());
      }
    }
    return frozen;
  }

  /**
   * Two live trainers of one model sharing the listener: the surgery one of them runs keeps both
   * exact. Factorize replaced layers whose arrays it freed, and only the trainer that ran it was
   * updated: the other's next step failed ("Native resource has been released already").
   */
  @Test
  void aSurgeryKeepsEveryLiveTrainerOfTheModelThatTheListenerServes() throws Exception {
    SurgeryListener listener = SurgeryListener.builder().add(smallLayers("factorize"), 1).build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("two-live-trainers");
        Trainer first = model.newTrainer(TestModels.config(listener));
        Trainer second = model.newTrainer(TestModels.config(listener))) {
      first.initialize(INPUT);
      second.initialize(INPUT);
      ArrayDataset dataset = TestModels.dataset(data, 4);
      EasyTrain.fit(first, 2, dataset, null);
      assertTrue(
          TestModels.count(model.getBlock(), "FactorizedConv2d")
                  + TestModels.count(model.getBlock(), "FactorizedLinear")
              > 0,
          TestModels.structure(model.getBlock()));
      TestModels.assertStoreMatchesModel(first);
      TestModels.assertStoreMatchesModel(second);
      EasyTrain.fit(second, 1, dataset, null);
      for (Parameter p : model.getBlock().getParameters().values()) {
        assertFalse(p.getArray().isReleased(), p.getName());
      }
    }
  }

  /**
   * The same with a shape-dependent epoch-0 entry, which waits for {@code onInitialized} in each
   * trainer (squeeze-excite's {@code min_channels}), and both trainers initialized before either
   * trains: the second found the entry waiting, not pending, applied it again (changing nothing)
   * and recorded it twice, and then, its schedule no longer accounting for the record, applied the
   * epoch-1 entry again too.
   */
  @Test
  void aWaitingEpochZeroEntryIsNotAppliedAgainByASecondTrainer() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(
                Algorithms.spec("squeeze_excite")
                    .create(Map.of("min_channels", 4, "latent_channels", 2)),
                0)
            .add(TestModels.blurpool(), 1)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("two-trainers-init");
        Trainer first = model.newTrainer(TestModels.config(listener));
        Trainer second = model.newTrainer(TestModels.config(listener))) {
      first.initialize(INPUT);
      listener.onInitialized(first);
      second.initialize(INPUT);
      listener.onInitialized(second);
      ArrayDataset dataset = TestModels.dataset(data, 4);
      EasyTrain.fit(first, 2, dataset, null);
      String structure = TestModels.structure(model.getBlock());
      assertTrue(TestModels.count(model.getBlock(), "SqueezeExciteConv2d") > 0, structure);
      EasyTrain.fit(second, 2, dataset, null);
      assertEquals(structure, TestModels.structure(model.getBlock()));
      List<SurgeryRecord> records =
          SurgeryJson.recordsFromJson(model.getProperty(SurgeryListener.PROPERTY));
      assertEquals(
          List.of("squeeze_excite", "blurpool"),
          records.stream().map(SurgeryRecord::algorithm).toList(),
          records.toString());
      assertEquals(2, appliedCount(listener), listener.getOutcomes().toString());
    }
  }

  /**
   * One {@code Model} given a new original block per trial (a hyperparameter search): the model's
   * {@code surgery} property still described the first trial's block, so the listener took the
   * later trials' entries for applied (no surgery after trial 1) and {@code model.save} wrote a
   * record of surgery the saved block never had, which a load then replayed.
   */
  @Test
  void aModelGivenANewBlockGetsItsOwnSurgeryAndSavesOnlyItsOwnRecord() throws Exception {
    SurgeryListener listener = SurgeryListener.builder().add(TestModels.blurpool(), 2).build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("trials")) {
      ArrayDataset dataset = TestModels.dataset(data, 5);
      for (int trial = 1; trial <= 2; trial++) {
        if (trial > 1) {
          model.setBlock(TestModels.cnn());
        }
        train(model, listener, 3, dataset);
        assertTrue(
            TestModels.count(model.getBlock(), "BlurConv2d") > 0,
            "trial " + trial + ": " + TestModels.structure(model.getBlock()));
      }
      // A trial that ends before the entry's epoch: its block has no surgery, nor its record.
      model.setBlock(TestModels.cnn());
      train(model, listener, 1, dataset);
      assertEquals(0, TestModels.count(model.getBlock(), "BlurConv2d"));
      model.save(dir, "short-trial");
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "short-trial", null);
      assertEquals(List.of(), SurgeryCheckpoint.readRecord(file));
      try (Model loaded = TestModels.model("short-trial")) {
        SurgeryCheckpoint.load(loaded, dir, "short-trial");
        assertEquals(
            TestModels.structure(model.getBlock()), TestModels.structure(loaded.getBlock()));
      }
    }
  }

  /**
   * One model that evaluates every checkpoint of a run in turn: the second load found the block
   * already carrying the first checkpoint's records and replayed them all again, which the
   * architecture check refused. Only the records the block does not carry are replayed now; each
   * load gives what the same file loaded into a fresh model gives.
   */
  @Test
  void checkpointsOfOneRunLoadInTurnIntoOneModel() throws Exception {
    SurgeryListener listener = blurpoolThenStandardization();
    try (NDManager data = NDManager.newBaseManager()) {
      trainAndSaveEveryEpoch(listener, "turns", 2, TestModels.dataset(data, 6));
      NDArray probe = data.randomNormal(INPUT);
      try (Model inTurn = TestModels.model("turns")) {
        for (int epoch = 1; epoch <= 2; epoch++) {
          SurgeryCheckpoint.load(inTurn, dir, "turns", Map.of("epoch", epoch));
          try (Model fresh = TestModels.model("turns")) {
            SurgeryCheckpoint.load(fresh, dir, "turns", Map.of("epoch", epoch));
            assertEquals(
                TestModels.structure(fresh.getBlock()),
                TestModels.structure(inTurn.getBlock()),
                "epoch " + epoch);
            assertArrayEquals(
                predict(fresh, probe), predict(inTurn, probe), "outputs at epoch " + epoch);
          }
        }
        assertTrue(TestModels.count(inTurn.getBlock(), "BlurConv2d") > 0);
      }
    }
  }

  /** How many of the listener's outcomes are applied surgery. */
  private static long appliedCount(SurgeryListener listener) {
    return listener.getOutcomes().stream()
        .filter(o -> o.status() == SurgeryOutcome.Status.APPLIED)
        .count();
  }

  /** A listener that applies BlurPool (every strided convolution) after the first epoch. */
  private static SurgeryListener blurpoolAtEpoch1() {
    return blurpoolAt1().build();
  }

  /** A builder with BlurPool (every strided convolution) after the first epoch. */
  private static SurgeryListener.Builder blurpoolAt1() {
    return SurgeryListener.builder().add(TestModels.blurpool(), 1);
  }

  /** BlurPool after the first epoch, weight standardization after the second. */
  private static SurgeryListener blurpoolThenStandardization() {
    return blurpoolAt1().add(Algorithms.spec("weight_standardization").create(Map.of()), 2).build();
  }

  /** Trains a fresh model of the test CNN under the listener, saving it after every epoch. */
  private void trainAndSaveEveryEpoch(
      SurgeryListener listener, String name, int epochs, ArrayDataset dataset) throws Exception {
    try (Model model = TestModels.model(name);
        Trainer trainer =
            model.newTrainer(
                TestModels.config(
                    listener,
                    new ai.djl.training.listener.SaveModelTrainingListener(
                        dir.toString(), name, 1)))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, epochs, dataset, null);
    }
  }

  private static float[] predict(Model model, NDArray input) {
    try (NDManager scratch = input.getManager().newSubManager()) {
      NDList out =
          model
              .getBlock()
              .forward(new ParameterStore(scratch, false), new NDList(input.duplicate()), false);
      return out.singletonOrThrow().toFloatArray();
    }
  }

  /**
   * A trainer built before the model was given a new block ({@code setBlock} between {@code
   * newTrainer} and training): its entries were closed as in the old block's record when it was
   * built, so the new block trained without its surgery, and the file recorded surgery it never
   * had.
   */
  @Test
  void aTrainerBuiltBeforeSetBlockRunsTheNewBlocksSurgery() throws Exception {
    SurgeryListener listener = blurpoolAtEpoch1();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("late-block")) {
      ArrayDataset dataset = TestModels.dataset(data, 7);
      train(model, listener, 2, dataset);
      try (Trainer second = model.newTrainer(TestModels.config(listener))) {
        model.setBlock(TestModels.cnn());
        second.initialize(INPUT);
        EasyTrain.fit(second, 2, dataset, null);
      }
      assertTrue(
          TestModels.count(model.getBlock(), "BlurConv2d") > 0,
          TestModels.structure(model.getBlock()));
      assertEquals(List.of(), listener.getWarnings());
      assertEquals(2, appliedCount(listener));
      model.save(dir, "late-block");
      try (Model loaded = TestModels.model("late-block")) {
        SurgeryCheckpoint.load(loaded, dir, "late-block");
        assertEquals(
            TestModels.structure(model.getBlock()), TestModels.structure(loaded.getBlock()));
        NDArray probe = data.randomNormal(INPUT);
        assertArrayEquals(predict(model, probe), predict(loaded, probe));
      }
    }
  }

  /**
   * A trainer that trained the old block and goes on training after {@code setBlock}: its epochs go
   * on, so what it applied to the old block is not due again; the new block trained without it, and
   * nothing said so. Now a warning and a not-run entry say it.
   */
  @Test
  void aTrainerThatGoesOnAfterSetBlockSaysWhatTheNewBlockDoesNotGet() throws Exception {
    SurgeryListener listener = blurpoolAt1().optTotalEpochs(4).build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("goes-on");
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      ArrayDataset dataset = TestModels.dataset(data, 12);
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 2, dataset, null);
      assertTrue(TestModels.count(model.getBlock(), "BlurConv2d") > 0);
      model.setBlock(TestModels.cnn());
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, 2, dataset, null);
      assertEquals(0, TestModels.count(model.getBlock(), "BlurConv2d"));
      assertEquals(1, listener.getWarnings().size(), listener.getWarnings().toString());
      assertTrue(
          listener.getWarnings().get(0).contains("applied it to the block its model had before"),
          listener.getWarnings().toString());
      assertEquals(
          null, model.getProperty(SurgeryListener.PROPERTY), "no record for the new block");
    }
  }

  /**
   * Without the agent, {@code syncRecord} before {@code model.save} makes the saved record the one
   * the model's block carries: none for a new block saved untrained, the block's own for a second
   * {@code Model} around a block that had surgery.
   */
  @Test
  void syncRecordMakesTheSavedRecordTheBlocks() throws Exception {
    SurgeryListener listener = blurpoolAtEpoch1();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("sync");
        Model second = TestModels.model("sync-second")) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 8), null);
      }
      Block trained = model.getBlock();
      second.setBlock(trained);
      SurgeryCheckpoint.syncRecord(second);
      assertEquals(model.getProperty(SurgeryListener.PROPERTY), second.getProperty("surgery"));

      model.setBlock(TestModels.cnn());
      model
          .getBlock()
          .initialize(model.getNDManager(), ai.djl.ndarray.types.DataType.FLOAT32, INPUT);
      SurgeryCheckpoint.syncRecord(model);
      model.save(dir, "sync");
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "sync", null);
      assertEquals(List.of(), SurgeryCheckpoint.readRecord(file));
    }
  }

  /**
   * A model that carries surgery the file's record does not start with (a later checkpoint loaded
   * first, then an earlier one): refused naming what is in the way, the model as it was.
   */
  @Test
  void aCheckpointWithoutTheSurgeryTheModelCarriesIsRefusedSayingSo() throws Exception {
    SurgeryListener listener = blurpoolThenStandardization();
    try (NDManager data = NDManager.newBaseManager()) {
      trainAndSaveEveryEpoch(listener, "order", 2, TestModels.dataset(data, 9));
      NDArray probe = data.randomNormal(INPUT);
      try (Model later = TestModels.model("order")) {
        SurgeryCheckpoint.load(later, dir, "order", Map.of("epoch", 2));
        String structure = TestModels.structure(later.getBlock());
        float[] before = predict(later, probe);
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class,
                () -> SurgeryCheckpoint.load(later, dir, "order", Map.of("epoch", 1)));
        assertTrue(
            e.getMessage().contains("already carries surgery the file's record does not have")
                && e.getMessage().contains("weight_standardization at epoch 2"),
            e.getMessage());
        assertEquals(structure, TestModels.structure(later.getBlock()));
        assertArrayEquals(before, predict(later, probe));
      }
    }
  }

  /**
   * Loading a run's checkpoints in turn into one model keeps what the run froze: the replay of the
   * records the block did not carry yet overwrote the set of parameters the earlier replay froze,
   * so a new trainer trained the frozen layers again (a reviewer's case).
   */
  @Test
  void inTurnLoadsKeepWhatTheRunFroze() throws Exception {
    SurgeryListener listener = freezingThenBlurpool();
    try (NDManager data = NDManager.newBaseManager()) {
      trainAndSaveEveryEpoch(listener, "frozen-turns", 3, TestModels.dataset(data, 10));
      try (Model inTurn = TestModels.model("frozen-turns")) {
        for (int epoch = 1; epoch <= 3; epoch++) {
          SurgeryCheckpoint.load(inTurn, dir, "frozen-turns", Map.of("epoch", epoch));
          try (Model fresh = TestModels.model("frozen-turns")) {
            SurgeryCheckpoint.load(fresh, dir, "frozen-turns", Map.of("epoch", epoch));
            assertEquals(
                trainableAfterNewTrainer(fresh),
                trainableAfterNewTrainer(inTurn),
                "trainable parameters after loading epoch " + epoch);
          }
        }
        assertFalse(SurgeryCheckpoint.frozenByReplay(inTurn.getBlock()).isEmpty());
      }
    }
  }

  /** The paths of the parameters a new trainer of the model trains (it re-freezes the replay's). */
  private static Set<String> trainableAfterNewTrainer(Model model) {
    try (Trainer trainer = model.newTrainer(TestModels.config(SurgeryListener.builder().build()))) {
      assertSame(model, trainer.getModel());
      return parameterPaths(model.getBlock(), Parameter::requiresGradient);
    }
  }

  /**
   * The same with a trainer without the listener between the loads (a plain evaluation trainer:
   * DJL's newTrainer unfreezes a loaded model): the frozen set kept only what was frozen at that
   * moment, so the run's frozen layers were lost (a second reviewer's case).
   */
  @Test
  void inTurnLoadsWithAPlainTrainerBetweenKeepWhatTheRunFroze() throws Exception {
    SurgeryListener listener = freezingThenBlurpool();
    try (NDManager data = NDManager.newBaseManager()) {
      trainAndSaveEveryEpoch(listener, "plain-between", 3, TestModels.dataset(data, 13));
      try (Model inTurn = TestModels.model("plain-between");
          Model fresh = TestModels.model("plain-between")) {
        for (int epoch = 1; epoch <= 3; epoch++) {
          SurgeryCheckpoint.load(inTurn, dir, "plain-between", Map.of("epoch", epoch));
          inTurn.newTrainer(TestModels.config()).close();
        }
        SurgeryCheckpoint.load(fresh, dir, "plain-between", Map.of("epoch", 3));
        assertEquals(trainableAfterNewTrainer(fresh), trainableAfterNewTrainer(inTurn));
      }
    }
  }

  /**
   * A trainer closed after its model was given a block loaded from a later checkpoint: it read that
   * block's record at its end and took its own unreached entry for run (a second reviewer's case).
   */
  @Test
  void aTrainerClosedAfterItsModelGotAnotherBlockReportsItsOwnEntries() throws Exception {
    SurgeryListener saving = freezingThenBlurpool();
    SurgeryListener listener = freezingThenBlurpool();
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 14);
      trainAndSaveEveryEpoch(saving, "later", 3, dataset);
      try (Model model = TestModels.model("closed-late")) {
        Trainer trainer = model.newTrainer(TestModels.config(listener));
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, dataset, null); // blurpool@2 not reached
        model.setBlock(TestModels.cnn());
        SurgeryCheckpoint.load(model, dir, "later", Map.of("epoch", 3));
        trainer.close();
      }
      assertTrue(
          listener.getWarnings().stream().anyMatch(w -> w.contains("blurpool at epoch 2")),
          listener.getWarnings().toString());
    }
  }

  /**
   * A file saved without surgery, loaded into a model that only a freeze changed (the original
   * architecture takes it): the load was accepted but the model kept its freezing record, so the
   * next trainer froze again what the file does not freeze and a save wrote the record (a fuzzer's
   * case). The model now becomes what the file says.
   */
  @Test
  void aFileWithoutSurgeryLoadedIntoAFrozenModelLeavesNothingFrozen() throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("frozen-then-plain")) {
      ArrayDataset dataset = TestModels.dataset(data, 15);
      train(model, SurgeryListener.builder().build(), 1, dataset);
      model.save(dir, "before");
      train(model, freezingListener(), 1, dataset);
      assertNotEquals(null, model.getProperty(SurgeryListener.PROPERTY), "the freeze is recorded");
      SurgeryCheckpoint.load(model, dir, "before");
      assertEquals(null, model.getProperty(SurgeryListener.PROPERTY));
      try (Model fresh = TestModels.model("frozen-then-plain")) {
        SurgeryCheckpoint.load(fresh, dir, "before");
        assertEquals(trainableAfterNewTrainer(fresh), trainableAfterNewTrainer(model));
      }
    }
  }

  /**
   * A model loaded from a checkpoint and trained without {@code trainer.initialize} (DJL trains a
   * loaded model so): BlurPool failed, since DJL's load restores input shapes but not input names
   * (a fuzzer's case).
   */
  @Test
  void blurPoolRunsOnALoadedModelTrainedWithoutInitialize() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 16);
      try (Model model = TestModels.model("loaded-plain")) {
        train(model, SurgeryListener.builder().build(), 1, dataset);
        model.save(dir, "loaded-plain");
      }
      try (Model loaded = TestModels.model("loaded-plain")) {
        SurgeryCheckpoint.load(loaded, dir, "loaded-plain");
        SurgeryListener listener = blurpoolAt1().optTotalEpochs(2).build();
        try (Trainer trainer = loaded.newTrainer(TestModels.config(listener))) {
          EasyTrain.fit(trainer, 2, dataset, null);
        }
        assertTrue(
            TestModels.count(loaded.getBlock(), "BlurConv2d") > 0,
            TestModels.structure(loaded.getBlock()) + " " + listener.getOutcomes());
      }
    }
  }

  /**
   * A load that fails after the replay (a truncated file) into a model given a new block: it put
   * the old block's property back but left it marked as describing the new block, so the next
   * trial's surgery was taken for applied (a reviewer's case).
   */
  @Test
  void aFailedLoadAfterSetBlockLeavesTheNewBlocksSurgeryToRun() throws Exception {
    SurgeryListener listener = blurpoolAtEpoch1();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("retry")) {
      ArrayDataset dataset = TestModels.dataset(data, 11);
      train(model, listener, 2, dataset);
      model.save(dir, "good");
      byte[] bytes = Files.readAllBytes(SurgeryCheckpoint.resolveParamsFile(dir, "good", null));
      Files.write(dir.resolve("cut-0001.params"), Arrays.copyOf(bytes, bytes.length * 2 / 3));
      model.setBlock(TestModels.cnn());
      assertThrows(Exception.class, () -> SurgeryCheckpoint.load(model, dir, "cut"));
      train(model, listener, 2, dataset);
      assertTrue(
          TestModels.count(model.getBlock(), "BlurConv2d") > 0,
          TestModels.structure(model.getBlock()));
    }
  }

  /**
   * An evaluation trainer built from the same config as the training one (so sharing the listener)
   * never trains: an entry the training trainer applied to their model while the evaluator was open
   * is not "never ran" for the model. It was listed so, with a warning, when the evaluator closed.
   */
  @Test
  void anEvaluationTrainerSharingTheListenerDoesNotReportWhatItsModelRanAsNeverRun()
      throws Exception {
    SurgeryListener listener = blurpoolAt1().optTotalEpochs(2).build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("evaluator-shares-listener")) {
      try (Trainer trainer = model.newTrainer(TestModels.config(listener));
          Trainer evaluator = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 2, TestModels.dataset(data, 4), null);
        evaluator.evaluate(new NDList(data.randomNormal(INPUT)));
      } // the evaluator's training ends first
      assertTrue(TestModels.count(model.getBlock(), "BlurConv2d") > 0);
      assertEquals(List.of(), listener.getWarnings());
      List<SurgeryOutcome> applied =
          listener.getOutcomes().stream()
              .filter(o -> o.status() == SurgeryOutcome.Status.APPLIED)
              .toList();
      assertEquals(1, applied.size(), listener.getOutcomes().toString());
    }
  }

  /**
   * A record whose layer_freezing values were edited so that the replay freezes fewer layers than
   * the saved run did (its changes still list them): refused before any weight is read, the model
   * as it was; freezing more than recorded is no proof (a layer frozen by hand, above).
   */
  @Test
  void anEditedFreezingRecordThatFreezesLessIsRefused() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 23);
      saveAfterFreezing("edited", dataset, false);
    }
    Path file = SurgeryCheckpoint.resolveParamsFile(dir, "edited", null);
    assertFalse(SurgeryCheckpoint.readRecord(file).get(0).changes().isEmpty());
    Path edited =
        CheckpointFiles.edited(
            file, dir.resolve("edited-dir"), "\"freeze_start\":0.0", "\"freeze_start\":0.9");
    try (Model model = TestModels.model("edited")) {
      String before = TestModels.structure(model.getBlock());
      Map<Parameter, Boolean> trainable = new IdentityHashMap<>();
      model
          .getBlock()
          .getParameters()
          .values()
          .forEach(p -> trainable.put(p, p.requiresGradient()));
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class, () -> SurgeryCheckpoint.load(model, edited, "edited"));
      assertTrue(e.getMessage().contains("which is still trainable"), e.getMessage());
      assertEquals(before, TestModels.structure(model.getBlock()));
      for (Parameter p : model.getBlock().getParameters().values()) {
        assertEquals(trainable.get(p), p.requiresGradient(), p.getName());
        assertFalse(p.isInitialized(), p.getName() + " was loaded");
      }
    }
  }

  /**
   * Trains two epochs with layer_freezing at epoch 1 (the first layer frozen by hand before, if
   * asked) and saves the model under {@code name}.
   */
  private void saveAfterFreezing(String name, ArrayDataset dataset, boolean firstFrozenByHand)
      throws Exception {
    try (Model model = TestModels.model(name)) {
      if (firstFrozenByHand) {
        model.getBlock().getChildren().get(0).getValue().freezeParameters(true);
      }
      train(model, freezingListener(), 2, dataset);
      model.save(dir, name);
    }
  }

  /** layer_freezing after the first of three epochs, BlurPool after the second. */
  private static SurgeryListener freezingThenBlurpool() {
    return SurgeryListener.builder()
        .add(TestModels.layerFreezingFromStart(), 1)
        .add(TestModels.blurpool(), 2)
        .optTotalEpochs(3)
        .build();
  }

  /** layer_freezing after the first of two epochs. */
  private static SurgeryListener freezingListener() {
    return SurgeryListener.builder()
        .add(TestModels.layerFreezingFromStart(), 1)
        .optTotalEpochs(2)
        .build();
  }

  /** BlurPool, squeeze-excite and factorize on the lean model: each needs the input shapes. */
  private static final List<SurgeryRecord> LEAN_RECORDS =
      List.of(
          new SurgeryRecord("blurpool", Map.of("min_channels", 4), 0, 0),
          new SurgeryRecord(
              "squeeze_excite", Map.of("min_channels", 4, "latent_channels", 2), 0, 0),
          new SurgeryRecord(
              "factorize",
              Map.of(
                  "min_channels", 4, "latent_channels", 2, "min_features", 4, "latent_features", 2),
              0,
              0));

  /**
   * Replaying BlurPool, squeeze-excite and factorize builds the architecture without computing
   * weights the load then discards: after the replay no parameter has an array (no throwaway
   * initialization, no SVD of random weights), and after the load the model's manager holds exactly
   * one array per parameter, with the saved outputs bit for bit.
   */
  @Test
  void replayAllocatesNothingAndLoadLeavesOnlyTheParameterArrays() throws Exception {
    List<SurgeryRecord> records = LEAN_RECORDS;
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 17);
      float[] saved;
      String savedStructure;
      try (Model model = TestModels.model("lean")) {
        Block block = model.getBlock();
        block.initialize(model.getNDManager(), model.getDataType(), INPUT);
        for (SurgeryRecord r : records) {
          Algorithms.spec(r.algorithm())
              .create(r.hyperparameters())
              .apply(SurgeryContext.of(block));
        }
        savedStructure = TestModels.structure(block);
        assertEquals(1, TestModels.count(block, "BlurConv2d"), savedStructure);
        assertEquals(1, TestModels.count(block, "SqueezeExciteConv2d"), savedStructure);
        assertEquals(1, TestModels.count(block, "FactorizedLinear"), savedStructure);
        saved = outputs(model, batch);
        model.setProperty(SurgeryListener.PROPERTY, SurgeryJson.recordsToJson(records));
        model.save(dir, "lean");
      }
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "lean", null);

      try (Model restored = TestModels.model("lean")) {
        SurgeryCheckpoint.replay(restored, file);
        assertEquals(savedStructure, TestModels.structure(restored.getBlock()));
        for (Parameter p : restored.getBlock().getParameters().values()) {
          assertFalse(p.isInitialized(), p.getName() + " was given an array the load discards");
        }
        assertEquals(0, restored.getNDManager().getManagedArrays().size());
      }

      try (Model restored = TestModels.model("lean")) {
        SurgeryCheckpoint.load(restored, dir, "lean");
        Set<Parameter> parameters = parametersOf(restored.getBlock());
        Set<NDArray> arrays = Collections.newSetFromMap(new IdentityHashMap<>());
        parameters.forEach(p -> arrays.add(p.getArray()));
        assertEquals(
            arrays,
            OpenArrays.managedBy(restored.getNDManager()),
            "the model must hold its parameters' arrays and nothing more");
        assertArrayEquals(saved, outputs(restored, batch), "outputs must match bit for bit");
      }
    }
  }

  /**
   * {@code SqueezeExciteConv2d} once keyed the layer it gates {@code Conv2d} whatever it held; it
   * now keys it after its class ({@code 01BlurConv2d} once BlurPool replaced it). DJL's parameter
   * stream is positional (no child keys), so a file saved under the old key holds the same bytes as
   * one saved under the new, and both load into the original architecture.
   */
  @Test
  void aWrappersChildKeyIsNotPartOfTheCheckpoint() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(algorithm("squeeze_excite", Map.of("min_channels", 1)), 0)
            .add(algorithm("blurpool", Map.of("min_channels", 1)), 0)
            .build();
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 8);
      float[] saved;
      try (Model model = TestModels.model("keys")) {
        try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
          trainer.initialize(INPUT);
          listener.onInitialized(trainer);
        }
        Block wrapper = BlockPaths.resolve(model.getBlock(), "04SqueezeExciteConv2d");
        assertEquals(
            List.of("01BlurConv2d", "02SqueezeExcite2d"),
            DjlBlocks.liveChildren(wrapper).keys(),
            TestModels.structure(model.getBlock()));
        saved = outputs(model, batch);
        model.save(dir.resolve("new"), "keys");
        DjlBlocks.liveChildren(wrapper).keys().set(0, "01Conv2d"); // the former key
        model.save(dir.resolve("old"), "keys");
      }
      Path newFile = SurgeryCheckpoint.resolveParamsFile(dir.resolve("new"), "keys", null);
      Path oldFile = SurgeryCheckpoint.resolveParamsFile(dir.resolve("old"), "keys", null);
      assertArrayEquals(Files.readAllBytes(newFile), Files.readAllBytes(oldFile));
      try (Model restored = TestModels.model("keys")) {
        SurgeryCheckpoint.load(restored, dir.resolve("old"), "keys");
        assertArrayEquals(saved, outputs(restored, batch));
        assertEquals(
            "01BlurConv2d",
            DjlBlocks.liveChildren(BlockPaths.resolve(restored.getBlock(), "04SqueezeExciteConv2d"))
                .keys()
                .get(0));
      }
    }
  }

  @Test
  void aCheckpointWithoutRecordLoadsAsPlainDjl() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 5);
      float[] saved;
      try (Model model = TestModels.model("plain")) {
        model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
        saved = outputs(model, batch);
        model.save(dir, "plain");
      }
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "plain", null);
      assertEquals(List.of(), SurgeryCheckpoint.readRecord(file));
      try (Model restored = TestModels.model("plain")) {
        SurgeryCheckpoint.load(restored, dir, "plain");
        assertArrayEquals(saved, outputs(restored, batch));
      }
    }
  }

  @Test
  void readRecordIgnoresFilesThatAreNotDjlParameters() throws Exception {
    Path other = dir.resolve("model.pt");
    Files.write(other, new byte[] {'P', 'K', 3, 4, 0, 0});
    assertEquals(List.of(), SurgeryCheckpoint.readRecord(other));
    assertNull(SurgeryCheckpoint.readHeader(other));
    assertNull(SurgeryCheckpoint.resolveParamsFile(dir, "absent", null));
  }

  /** An algorithm whose replay, {@code apply(SurgeryContext)}, throws what it is given. */
  private static AlgorithmSpec throwingOnReplay(String name, Supplier<Throwable> thrown) {
    return new AlgorithmSpec(
        name,
        List.of(),
        v ->
            TestAlgorithms.applying(
                name,
                context -> {
                  Throwable t = thrown.get();
                  if (t instanceof Error error) {
                    throw error;
                  }
                  throw (RuntimeException) t;
                }));
  }

  /**
   * A plugin whose replay throws an Error of its own (it escaped raw), or does not support {@code
   * apply(SurgeryContext)} (an event-driven plugin; it was told "cannot be replayed on this
   * architecture", of the right architecture): a clear refusal naming the record, the model as it
   * was.
   */
  @Test
  void aPluginsReplayFailureIsARefusalNamingTheRecord() throws Exception {
    Algorithms.register(throwingOnReplay("t_replay_assert", () -> new AssertionError("broken")));
    Algorithms.register(
        throwingOnReplay(
            "t_event_only", () -> new UnsupportedOperationException("event-driven only")));
    Map<String, String> expected =
        Map.of(
            "t_replay_assert",
            "cannot be replayed on this architecture: java.lang.AssertionError: broken",
            "t_event_only",
            "does not support apply(SurgeryContext), which a checkpoint's replay calls");
    for (Map.Entry<String, String> c : expected.entrySet()) {
      try (Model model = TestModels.model(c.getKey())) {
        model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
        model.setProperty(
            "surgery",
            "[{\"algorithm\":\"" + c.getKey() + "\",\"hyperparameters\":{},\"epoch\":1}]");
        model.save(dir, c.getKey());
      }
      try (Model restored = TestModels.model(c.getKey())) {
        String before = TestModels.structure(restored.getBlock());
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class,
                () -> SurgeryCheckpoint.load(restored, dir, c.getKey()));
        assertTrue(e.getMessage().contains(c.getValue()), e.getMessage());
        assertTrue(e.getMessage().contains(c.getKey()), e.getMessage());
        assertEquals(before, TestModels.structure(restored.getBlock()));
      }
    }
  }

  @Test
  void aRecordNamingAnUnknownAlgorithmFailsClearly() throws Exception {
    try (Model model = TestModels.model("unknown")) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      model.setProperty(
          "surgery", "[{\"algorithm\":\"no_such_algorithm\",\"hyperparameters\":{},\"epoch\":1}]");
      model.save(dir, "unknown");
    }
    try (Model restored = TestModels.model("unknown")) {
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class,
              () -> SurgeryCheckpoint.load(restored, dir, "unknown"));
      assertTrue(e.getMessage().contains("no_such_algorithm"), e.getMessage());
      assertTrue(e.getMessage().contains("unknown-0000.params"), e.getMessage());
      // Both ways in: a program registers it; under the agent its jar comes with extensions=.
      assertTrue(e.getMessage().contains("register it with Algorithms.register"), e.getMessage());
      assertTrue(
          e.getMessage().contains("pass the plugin's jar with the agent argument extensions="),
          e.getMessage());
    }
  }

  /**
   * A record says its format: one written by a newer DJL Surgery (a later format, fields this build
   * may not know) is refused naming it, and the model stays as it was, rather than replayed as far
   * as this build understands it (an outside probe found no way for a file to say so).
   */
  @Test
  void aRecordInALaterFormatIsRefusedAndTheModelStaysAsItWas() throws Exception {
    try (Model model = TestModels.model("later")) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      model.setProperty(
          "surgery",
          "[{\"format\":2,\"algorithm\":\"blurpool\",\"hyperparameters\":{},\"epoch\":1,"
              + "\"total_epochs\":0,\"changes\":{}}]");
      model.save(dir, "later");
    }
    try (Model restored = TestModels.model("later")) {
      String before = TestModels.structure(restored.getBlock());
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class, () -> SurgeryCheckpoint.load(restored, dir, "later"));
      assertTrue(
          e.getMessage().contains("is in record format 2, written by a newer DJL Surgery"),
          e.getMessage());
      assertTrue(e.getMessage().contains("later-0000.params"), e.getMessage());
      assertEquals(before, TestModels.structure(restored.getBlock()));
    }
  }

  /**
   * A record that does not give a hyperparameter (written before it existed, or edited) replays
   * with the default; when that replay is refused, the message names the defaulted value, rather
   * than only blaming the architecture (an outside probe met "replaced nothing" on the very
   * architecture the file came from).
   */
  @Test
  void aRefusedReplayNamesTheHyperparametersTheRecordDidNotGive() throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("defaulted")) {
      train(model, blurpoolAtEpoch1(), 2, TestModels.dataset(data, 5));
      com.google.gson.JsonArray records =
          com.google.gson.JsonParser.parseString(model.getProperty(SurgeryListener.PROPERTY))
              .getAsJsonArray();
      records.get(0).getAsJsonObject().getAsJsonObject("hyperparameters").remove("min_channels");
      model.setProperty(SurgeryListener.PROPERTY, records.toString());
      model.save(dir, "defaulted");
    }
    try (Model restored = TestModels.model("defaulted")) {
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class,
              () -> SurgeryCheckpoint.load(restored, dir, "defaulted"));
      assertTrue(
          e.getMessage().contains("cannot be replayed on this architecture"), e.getMessage());
      assertTrue(
          e.getMessage()
              .contains(
                  "(the record does not give min_channels (default 16), which took the default: a"
                      + " record written by another version of DJL Surgery may have meant another"
                      + " value)"),
          e.getMessage());
    }
  }

  /**
   * A model that carries a record in a later format (a newer build's checkpoint loaded without its
   * replay): an entry cannot add to that record without dropping what it does not understand, so it
   * fails before it changes anything, and the record stays as it was (an outside probe found it
   * replaced, the newer entries lost).
   */
  @Test
  void anEntryOnAModelWithALaterFormatRecordFailsAndLeavesTheRecord() throws Exception {
    List<String> later =
        List.of(
            "[{\"format\":2,\"algorithm\":\"squeeze_excite\",\"hyperparameters\":{},\"epoch\":1}]",
            // Shaped anew, and a key spelled with an escape (a reviewer: both were replaced).
            "[{\"format\":2,\"algorithm\":\"squeeze_excite\",\"at\":{\"epoch\":1}}]",
            "[{\"\\u0066ormat\":2,\"algorithm\":\"squeeze_excite\",\"epoch\":1}]");
    for (String record : later) {
      try (NDManager data = NDManager.newBaseManager();
          Model model = TestModels.model("later-record")) {
        model.setProperty(SurgeryListener.PROPERTY, record);
        String before = TestModels.structure(model.getBlock());
        SurgeryFailedException e =
            assertThrows(
                SurgeryFailedException.class,
                () -> train(model, blurpoolAtEpoch1(), 2, TestModels.dataset(data, 5)),
                record);
        assertTrue(e.getMessage().contains("is in record format 2"), e.getMessage());
        assertTrue(
            e.getMessage().contains("would drop what it does not understand"), e.getMessage());
        assertEquals(record, model.getProperty(SurgeryListener.PROPERTY));
        assertEquals(before, TestModels.structure(model.getBlock()));
      }
    }
  }

  /**
   * An event-driven entry that changes nothing (a plugin that reads or averages) runs on such a
   * model as on any other: only an entry that would add to the record is refused (a reviewer found
   * a read-only plugin failed, which under on_error: fail stops training).
   */
  @Test
  void anEventDrivenEntryThatChangesNothingRunsOnAModelWithALaterFormatRecord() throws Exception {
    String later = "[{\"format\":2,\"algorithm\":\"squeeze_excite\",\"epoch\":1}]";
    List<Integer> asked = new ArrayList<>();
    Algorithm reader =
        new TestAlgorithms.SimpleAlgorithm("t_reads_only", Map.of(), false) {
          @Override
          public Set<dev.surgery.core.events.Event> events() {
            return Set.of(dev.surgery.core.events.Event.EPOCH_END);
          }

          @Override
          public boolean match(
              dev.surgery.core.events.Event event, dev.surgery.core.events.State state) {
            return true;
          }

          @Override
          public SurgeryChanges apply(SurgeryContext context) {
            asked.add(context.completedEpochs());
            return null;
          }
        };
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(reader, dev.surgery.trainer.config.Trigger.onEvents())
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("later-reader")) {
      model.setProperty(SurgeryListener.PROPERTY, later);
      train(model, listener, 2, TestModels.dataset(data, 5));
      assertEquals(later, model.getProperty(SurgeryListener.PROPERTY));
    }
    assertEquals(List.of(1, 2), asked);
  }

  @Test
  void aMalformedRecordFailsClearly() throws Exception {
    try (Model model = TestModels.model("bad")) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), new Shape(1, 3, 8, 8));
      model.setProperty("surgery", "{not json");
      model.save(dir, "bad");
    }
    Path file = SurgeryCheckpoint.resolveParamsFile(dir, "bad", null);
    MalformedModelException e =
        assertThrows(MalformedModelException.class, () -> SurgeryCheckpoint.readRecord(file));
    assertTrue(e.getMessage().contains("not JSON"), e.getMessage());
  }

  /** Saves the lean model, initialized, after {@link #LEAN_RECORDS}; returns its parameter file. */
  private Path saveLean() throws Exception {
    return saveLean(dir, LEAN_RECORDS);
  }

  /**
   * Saves the lean model, initialized, after {@link #LEAN_RECORDS}'s surgery, into {@code folder}
   * with {@code recorded} as its record; returns its parameter file.
   */
  private static Path saveLean(Path folder, List<SurgeryRecord> recorded) throws Exception {
    try (Model model = TestModels.model("lean")) {
      Block block = model.getBlock();
      block.initialize(model.getNDManager(), model.getDataType(), INPUT);
      for (SurgeryRecord r : LEAN_RECORDS) {
        Algorithms.spec(r.algorithm()).create(r.hyperparameters()).apply(SurgeryContext.of(block));
      }
      model.setProperty(SurgeryListener.PROPERTY, SurgeryJson.recordsToJson(recorded));
      model.save(folder, "lean");
    }
    return SurgeryCheckpoint.resolveParamsFile(folder, "lean", null);
  }

  /**
   * {@code replay(Model, Path)} returns the file's records, as its contract says (empty only for a
   * file without any): on a fresh model, and again on the model that carries them all already (the
   * model that was saved, loaded once more), where nothing is replayed; and on a model the program
   * initialized, whose layers the surgery kept keep their arrays.
   */
  @Test
  void aReplayReturnsTheFilesRecordsAlsoWhenTheModelCarriesThemAlready() throws Exception {
    Path file = saveLean();
    List<String> written = LEAN_RECORDS.stream().map(SurgeryRecord::algorithm).toList();
    try (Model restored = TestModels.model("lean")) {
      assertEquals(
          written,
          SurgeryCheckpoint.replay(restored, file).stream().map(SurgeryRecord::algorithm).toList());
      String structure = TestModels.structure(restored.getBlock());
      assertEquals(
          written,
          SurgeryCheckpoint.replay(restored, file).stream().map(SurgeryRecord::algorithm).toList(),
          "a model carrying the records");
      assertEquals(structure, TestModels.structure(restored.getBlock()), "nothing replayed twice");
    }
    try (Model initialized = TestModels.model("lean")) {
      Block block = initialized.getBlock();
      block.initialize(initialized.getNDManager(), initialized.getDataType(), INPUT);
      Map<Parameter, NDArray> arrays = new IdentityHashMap<>();
      block.getParameters().values().forEach(p -> arrays.put(p, p.getArray()));
      assertEquals(
          written,
          SurgeryCheckpoint.replay(initialized, file).stream()
              .map(SurgeryRecord::algorithm)
              .toList(),
          "an initialized model");
      // The layers the surgery kept keep their arrays (only replaced layers' are freed).
      Set<Parameter> kept = parametersOf(block);
      kept.retainAll(arrays.keySet());
      assertFalse(kept.isEmpty());
      for (Parameter p : kept) {
        assertSame(arrays.get(p), p.getArray(), p.getName());
      }
    }
  }

  /**
   * The replay shapes the model without computing a value: it draws no random number (a program
   * that seeds the engine, then loads and trains, draws what it would after DJL's own load, which
   * draws none), and every parameter keeps the initializer it had (the shaping swaps in an
   * allocate-only one), so a program that initializes the replayed model gets its own
   * initialization, not uninitialized memory.
   */
  @Test
  void aReplayDrawsNoRandomNumberAndLeavesTheInitializersAsTheyWere() throws Exception {
    Path file = saveLean();
    Shape draw = new Shape(32);
    try (NDManager data = NDManager.newBaseManager()) {
      data.getEngine().setRandomSeed(23);
      float[] expected = data.randomUniform(0, 1, draw).toFloatArray();
      try (Model restored = TestModels.model("lean")) {
        Map<Parameter, Object> initializers = new IdentityHashMap<>();
        restored
            .getBlock()
            .getParameters()
            .values()
            .forEach(p -> initializers.put(p, p.getInitializer()));
        data.getEngine().setRandomSeed(23);
        SurgeryCheckpoint.replay(restored, file);
        assertArrayEquals(expected, data.randomUniform(0, 1, draw).toFloatArray(), "replay drew");
        Set<Parameter> kept = parametersOf(restored.getBlock());
        kept.retainAll(initializers.keySet());
        assertFalse(kept.isEmpty(), "the replay keeps some of the original parameters");
        for (Parameter p : kept) {
          assertSame(initializers.get(p), p.getInitializer(), p.getName());
        }
      }
      try (Model loaded = TestModels.model("lean")) {
        data.getEngine().setRandomSeed(23);
        SurgeryCheckpoint.load(loaded, dir, "lean");
        assertArrayEquals(expected, data.randomUniform(0, 1, draw).toFloatArray(), "load drew");
      }
    }
  }

  /**
   * The replay's scratch manager is closed: a program that loads checkpoint after checkpoint (an
   * evaluation of every epoch) would otherwise leave one manager per load under the engine's root
   * manager for the life of the JVM.
   */
  @Test
  void aReplayLeavesNoManagerOpen() throws Exception {
    Path file = saveLean();
    try (NDManager data = NDManager.newBaseManager()) {
      NDManager root = data.getParentManager();
      try (Model warm = TestModels.model("lean")) {
        SurgeryCheckpoint.replay(warm, file); // whatever the engine opens once for good
      }
      int before = openSubManagers(root);
      for (int i = 0; i < 3; i++) {
        try (Model restored = TestModels.model("lean")) {
          SurgeryCheckpoint.replay(restored, file);
        }
        try (Model loaded = TestModels.model("lean")) {
          SurgeryCheckpoint.load(loaded, dir, "lean");
        }
      }
      assertEquals(before, openSubManagers(root), "managers left open by the loads");
    }
  }

  /** The managers a DJL manager holds directly (its {@code resources} that are managers). */
  private static int openSubManagers(NDManager manager) throws ReflectiveOperationException {
    java.lang.reflect.Field resources =
        ai.djl.ndarray.BaseNDManager.class.getDeclaredField("resources");
    resources.setAccessible(true);
    Map<?, ?> held = (Map<?, ?>) resources.get(manager);
    return (int) held.values().stream().filter(NDManager.class::isInstance).count();
  }

  /**
   * The model that loaded a checkpoint, trained by a plain trainer (DJL's newTrainer unfreezes
   * every parameter of a loaded model), then given the same checkpoint again: nothing is replayed,
   * but what the record's layer_freezing froze is frozen again and the program's part of that layer
   * (its weight, frozen by hand in the saved run, which the file does not keep) is not, as the same
   * file loaded into a fresh model has them.
   */
  @Test
  void theSameCheckpointLoadedAgainAfterAPlainTrainerFreezesAsAFreshLoad() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(TestModels.layerFreezingFromStart(), 2)
            .optTotalEpochs(4)
            .build();
    try (NDManager data = NDManager.newBaseManager()) {
      savePartlyFrozenRunEveryEpoch(dir, listener, TestModels.dataset(data, 31));
    }
    Map<String, ?> last = Map.of("epoch", 3);
    Predicate<Parameter> frozen = p -> !p.requiresGradient() && !ParameterSets.isStatistic(p);
    try (Model model = TestModels.model("pretrained");
        Model fresh = TestModels.model("pretrained")) {
      SurgeryCheckpoint.load(fresh, dir, "turns", last);
      Set<String> expected = parameterPaths(fresh.getBlock(), frozen);
      assertFalse(expected.isEmpty(), "the record froze layers");
      SurgeryCheckpoint.load(model, dir, "turns", last);
      model.newTrainer(TestModels.config()).close();
      assertEquals(Set.of(), parameterPaths(model.getBlock(), frozen), "DJL unfroze them");
      SurgeryCheckpoint.load(model, dir, "turns", last);
      assertEquals(expected, parameterPaths(model.getBlock(), frozen));
      assertEquals(frozenByReplayPaths(fresh), frozenByReplayPaths(model));
    }
  }

  /**
   * A checkpoint whose record goes on past what the model carries, with an entry the replay
   * refuses: the refusal counts the entries as the file does (the first one replayed is the file's
   * fourth), and the model stays as it was.
   */
  @Test
  void aRefusedEntryAfterTheCarriedOnesIsNamedByItsPlaceInTheFile() throws Exception {
    saveLean();
    List<SurgeryRecord> longer = new ArrayList<>(LEAN_RECORDS);
    longer.add(new SurgeryRecord("no_such_algorithm", Map.of(), 1, 0));
    Path other = dir.resolve("longer");
    saveLean(other, longer);
    try (Model model = TestModels.model("lean")) {
      SurgeryCheckpoint.load(model, dir, "lean");
      String message = loadRefusedChangingNothing(model, other);
      assertTrue(
          message.contains("(from its record entry 4; the model carries the entries before"),
          message);
    }
  }

  /**
   * A checkpoint whose first entry is the same algorithm at the same epoch as the one the model
   * carries, with other values: it is another run's, refused before anything is replayed, saying
   * that the entries differ in their values (not in algorithm or time); the model stays as it was.
   */
  @Test
  void aCarriedEntryWithOtherValuesIsRefusedSayingSo() throws Exception {
    saveLean();
    List<SurgeryRecord> other = new ArrayList<>(LEAN_RECORDS);
    other.set(0, new SurgeryRecord("blurpool", Map.of("min_channels", 8), 0, 0));
    Path folder = dir.resolve("other");
    saveLean(folder, other);
    try (Model model = TestModels.model("lean")) {
      SurgeryCheckpoint.load(model, dir, "lean");
      String message = loadRefusedChangingNothing(model, folder);
      assertTrue(
          message.contains(
              "(its entry 1: blurpool at epoch 0, the file's: blurpool at epoch 0,"
                  + " with other hyperparameters or other layers changed)"),
          message);
    }
  }

  /**
   * A record that says its surgery replaced nothing, where its replay on this architecture replaces
   * layers (an edited record, or another architecture): refused, naming a block the replay replaced
   * that the record does not; the model stays as it was.
   */
  @Test
  void aReplayThatReplacesMoreThanTheRecordSaysIsRefusedNamingTheBlock() throws Exception {
    Path folder = dir.resolve("less");
    saveLean(
        folder, List.of(new SurgeryRecord("blurpool", Map.of("min_channels", 4), 0, 0, Map.of())));
    try (Model model = TestModels.model("lean")) {
      String message = loadRefusedChangingNothing(model, folder);
      assertTrue(
          message.contains("the replay also replaced ")
              && message.contains("which the saved model's surgery did not"),
          message);
    }
  }

  /** Loads the lean checkpoint in {@code folder}: refused, the model's structure as it was. */
  private static String loadRefusedChangingNothing(Model model, Path folder) {
    String structure = TestModels.structure(model.getBlock());
    MalformedModelException e =
        assertThrows(
            MalformedModelException.class, () -> SurgeryCheckpoint.load(model, folder, "lean"));
    assertEquals(structure, TestModels.structure(model.getBlock()));
    return e.getMessage();
  }

  /**
   * A file without a record loaded into a model that loaded a freezing checkpoint forgets that
   * checkpoint wholly: its save writes no record (the file it loaded has none), and after the
   * freezing checkpoint and the plain file once more, with the program's own hand freeze lifted in
   * between, nothing is left frozen, as in a fresh model that loads the plain file.
   */
  @Test
  void aFileWithoutRecordMakesTheModelForgetTheFreezingCheckpointWholly() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      saveAfterFreezing("freezing", TestModels.dataset(data, 37), false);
    }
    TestModels.saveInitialized(dir, "plain");
    Predicate<Parameter> frozen = p -> !p.requiresGradient() && !ParameterSets.isStatistic(p);
    try (Model model = TestModels.model("freezing");
        Model fresh = TestModels.model("freezing")) {
      SurgeryCheckpoint.load(fresh, dir, "plain");
      Set<String> plain = parameterPaths(fresh.getBlock(), frozen);
      model.getBlock().getChildren().get(0).getValue().freezeParameters(true); // by hand
      SurgeryCheckpoint.load(model, dir, "freezing");
      SurgeryCheckpoint.load(model, dir, "plain");
      SurgeryCheckpoint.syncRecord(model);
      model.save(dir.resolve("saved"), "freezing");
      assertEquals(
          List.of(),
          SurgeryCheckpoint.readRecord(
              SurgeryCheckpoint.resolveParamsFile(dir.resolve("saved"), "freezing", null)),
          "the save wrote the record of a checkpoint the model no longer holds");
      model.getBlock().freezeParameters(false); // the program lifts its hand freeze
      SurgeryCheckpoint.load(model, dir, "freezing");
      SurgeryCheckpoint.load(model, dir, "plain");
      assertEquals(plain, parameterPaths(model.getBlock(), frozen));
    }
  }
}
