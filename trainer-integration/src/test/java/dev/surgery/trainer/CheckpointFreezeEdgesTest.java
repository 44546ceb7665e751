package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Freezes across checkpoints loaded in turn into one model, and freeze records whose names overlap:
 * the cases a review of the twenty-seventh session's checkpoint changes found wrong.
 */
class CheckpointFreezeEdgesTest {

  @TempDir Path dir;

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
  }

  /** The paths of the trainable kinds of parameters that take no gradient now. */
  private static Set<String> frozenPaths(Model model) {
    Set<String> frozen = new TreeSet<>();
    TestModels.parametersByPath(model.getBlock())
        .forEach(
            (path, p) -> {
              if (!ParameterSets.isStatistic(p) && !p.requiresGradient()) {
                frozen.add(path);
              }
            });
    return frozen;
  }

  /**
   * Trains the test CNN 3 epochs under layer_freezing at epoch 2 (of 4: the first layer), saving
   * after every epoch as {@code name-0001..0003}: the files of epochs 2 and 3 hold the same record.
   */
  private void trainAndSaveEveryEpoch(String name) throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(TestModels.layerFreezingFromStart(), 2)
            .optTotalEpochs(4)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model(name)) {
      ArrayDataset dataset = TestModels.dataset(data, 51);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(INPUT);
        for (int epoch = 1; epoch <= 3; epoch++) {
          EasyTrain.fit(trainer, 1, dataset, null);
          model.setProperty("Epoch", String.valueOf(epoch));
          model.save(dir, name);
        }
      }
    }
  }

  /**
   * The user guide: "Checkpoints of one run loaded in turn into one model end as the last one
   * loaded alone: surgery's freezes that a trainer or the program lifted between the loads are
   * frozen again by the next load." Also where the next checkpoint holds the same record as the one
   * loaded before (two epochs with no surgery between them, the usual case): the block carries
   * every record and nothing is replayed, but what a trainer lifted is frozen again (it stayed
   * lifted before the review).
   */
  @Test
  void aLaterCheckpointWithTheSameRecordFreezesAgainWhatATrainerLifted() throws Exception {
    trainAndSaveEveryEpoch("same");
    try (Model inTurn = TestModels.model("same");
        Model alone = TestModels.model("same")) {
      SurgeryCheckpoint.load(inTurn, dir, "same", Map.of("epoch", 2));
      // DJL's newTrainer (a trainer without the listener) unfreezes every parameter of a loaded
      // model.
      inTurn.newTrainer(TestModels.config()).close();
      SurgeryCheckpoint.load(inTurn, dir, "same", Map.of("epoch", 3));
      SurgeryCheckpoint.load(alone, dir, "same", Map.of("epoch", 3));
      assertEquals(
          frozenPaths(alone),
          frozenPaths(inTurn),
          "the frozen parameters after loading epoch 2 then epoch 3 (same record) into one model,"
              + " against epoch 3 loaded alone");
    }
  }

  /**
   * The same run's checkpoint of epoch 1 (saved before layer_freezing, no record) loaded after the
   * one of epoch 2 into one model: the load forgets the record and what surgery froze, and
   * unfreezes those parameters, as the file loaded alone freezes nothing (before the review they
   * stayed frozen, with nothing left to lift them).
   */
  @Test
  void aCheckpointWithoutARecordLoadedAfterAFreezeLeavesNothingFrozen() throws Exception {
    trainAndSaveEveryEpoch("back");
    try (Model inTurn = TestModels.model("back");
        Model alone = TestModels.model("back")) {
      SurgeryCheckpoint.load(inTurn, dir, "back", Map.of("epoch", 2));
      SurgeryCheckpoint.load(inTurn, dir, "back", Map.of("epoch", 1));
      SurgeryCheckpoint.load(alone, dir, "back", Map.of("epoch", 1));
      assertEquals(
          frozenPaths(alone),
          frozenPaths(inTurn),
          "the frozen parameters after loading epoch 2 then epoch 1 (no record) into one model,"
              + " against epoch 1 loaded alone; frozenByReplay: "
              + SurgeryCheckpoint.frozenByReplay(inTurn.getBlock()).size());
    }
  }

  /**
   * A second review of the fix above: the replay counts a layer the record says layer_freezing
   * froze as surgery's also where the program had frozen it by hand before the load (user guide),
   * and the record-less load then lifted the program's own freeze. A model the program built, froze
   * by hand and loaded the same record-less file into keeps it, and so does this one; also after
   * the run's checkpoints loaded in turn (layer_freezing, then more of it), where the second load
   * must carry on what the first found the program had frozen.
   */
  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void aRecordlessLoadAfterAReplayKeepsTheProgramsHandFreezeMadeBeforeTheLoads(boolean inTurn)
      throws Exception {
    TestModels.saveInitialized(dir, "pretrained");
    SurgeryListener.Builder schedule =
        SurgeryListener.builder().add(TestModels.layerFreezingFromStart(), 1);
    if (inTurn) {
      schedule.add(TestModels.layerFreezingFromStart(), 2); // freezes more layers
    }
    int epochs = inTurn ? 3 : 1;
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("frozen");
        Trainer trainer =
            model.newTrainer(TestModels.config(schedule.optTotalEpochs(epochs).build()))) {
      trainer.initialize(INPUT);
      ArrayDataset dataset = TestModels.dataset(data, 47);
      for (int epoch = 1; epoch <= epochs; epoch++) {
        EasyTrain.fit(trainer, 1, dataset, null);
        model.setProperty("Epoch", String.valueOf(epoch));
        model.save(dir, "frozen");
      }
    }
    Set<String> handFrozen;
    try (Model fresh = TestModels.model("pretrained")) {
      fresh.getBlock().getChildren().get(0).getValue().freezeParameters(true);
      handFrozen = frozenPaths(fresh);
      SurgeryCheckpoint.load(fresh, dir, "pretrained");
      assertEquals(handFrozen, frozenPaths(fresh), "a fresh model keeps the program's freeze");
    }
    try (Model restored = TestModels.model("pretrained")) {
      restored.getBlock().getChildren().get(0).getValue().freezeParameters(true);
      for (int epoch = 1; epoch <= epochs; epoch++) {
        SurgeryCheckpoint.load(restored, dir, "frozen", Map.of("epoch", epoch));
      }
      assertEquals(
          epochs > 1 ? 2 : 1,
          SurgeryCheckpoint.readRecord(
                  SurgeryCheckpoint.resolveParamsFile(dir, "frozen", Map.of("epoch", epochs)))
              .size(),
          "the records of the last checkpoint");
      SurgeryCheckpoint.load(restored, dir, "pretrained");
      Set<String> lost = new TreeSet<>(handFrozen);
      lost.removeAll(frozenPaths(restored));
      assertEquals(Set.of(), lost, "the program's hand freeze, lifted by the record-less load");
    }
  }

  /**
   * SurgeryCheckpointTest's in-turn case ({@code checkpointsOfAPartlyFrozenLayerLoadedInTurn...}:
   * the saved run's program froze the first layer's weight, layer_freezing its bias, factorize then
   * replaced the layer, its new parameters born frozen and kept frozen as surgery's), with one
   * change: the loading program froze the first layer before its first load (it fine-tunes the
   * rest, as in {@code aLayerTheProgramFrozeBeforeTheLoadKeepsSurgerysFreezeOnItsReplacement}).
   * That first load then does not find the saved program's part (the weight was frozen already),
   * keeps none for the next load, and once a trainer lifted the freezes (DJL's newTrainer on a
   * loaded model) the next load replayed factorize on a layer only half frozen: the factorized
   * layer was born trainable and not among the freezes a later trainer's listener puts back, where
   * the last checkpoint loaded alone (by the same program) keeps it frozen. The record's {@code
   * born_frozen} now says how the saved run had it.
   */
  @Test
  void aFreezeBeforeTheFirstOfLoadsInTurnDoesNotHideTheSavedProgramsPart() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(TestModels.layerFreezingFromStart(), 2)
            .add(SurgeryCheckpointTest.smallLayers("factorize"), 3)
            .optTotalEpochs(4)
            .build();
    try (NDManager data = NDManager.newBaseManager()) {
      SurgeryCheckpointTest.savePartlyFrozenRunEveryEpoch(
          dir, listener, TestModels.dataset(data, 41));
    }
    try (Model inTurn = TestModels.model("pretrained");
        Model alone = TestModels.model("pretrained")) {
      // The loading program freezes the first layer of each fresh model before loading.
      inTurn.getBlock().getChildren().get(0).getValue().freezeParameters(true);
      alone.getBlock().getChildren().get(0).getValue().freezeParameters(true);
      SurgeryCheckpoint.load(inTurn, dir, "turns", Map.of("epoch", 2));
      inTurn.newTrainer(TestModels.config()).close(); // DJL unfreezes a loaded model
      SurgeryCheckpoint.load(inTurn, dir, "turns", Map.of("epoch", 3));
      SurgeryCheckpoint.load(alone, dir, "turns", Map.of("epoch", 3));
      assertEquals(
          SurgeryCheckpointTest.frozenByReplayPaths(alone),
          SurgeryCheckpointTest.frozenByReplayPaths(inTurn),
          "frozenByReplay after epochs 2 then 3 loaded in turn, against epoch 3 loaded alone");
    }
  }

  /**
   * A freeze record's names are read whole also where one is the start of another. A layer with
   * parameters {@code w} and {@code w, x}; the program froze {@code w} by hand, layer_freezing
   * froze {@code w, x} and wrote {@code (w, x)}; the load read {@code w} first, then could not
   * place {@code x}, and refused the checkpoint as an edited record.
   */
  @Test
  void aFreezeRecordNamingAParameterWhoseNameStartsWithAnothersLoads() throws Exception {
    assertEquals(
        List.of(true, false),
        loadFreezeRecord(
            List.of("w", "w, x"), "w", "NamedParameterLayer->frozen NamedParameterLayer (w, x)"),
        "w trains (the program's), w, x is frozen (surgery's)");
  }

  /**
   * A freeze record naming two of a layer's parameters, joined by ", " (the program froze the
   * third): both are read, the first although it is the start of the second, and frozen by the
   * load; the program's own is not in the file.
   */
  @Test
  void aFreezeRecordNamingTwoParametersFreezesBoth() throws Exception {
    assertEquals(
        List.of(false, false, true),
        loadFreezeRecord(
            List.of("w", "w, x", "y"),
            "y",
            "NamedParameterLayer->frozen NamedParameterLayer (w, w, x)"),
        "w and w, x frozen (surgery's), y trains (the program's)");
  }

  /**
   * Saves a model whose first layer has parameters of these names, {@code handFrozen} frozen by the
   * program, after layer_freezing (checked to have recorded {@code recorded}); loads it into a
   * fresh model and returns whether each parameter of that layer takes a gradient.
   */
  private List<Boolean> loadFreezeRecord(List<String> names, String handFrozen, String recorded)
      throws Exception {
    Map<String, Object> settings = Map.of("freeze_start", 0.0);
    try (Model model = Model.newInstance("prefix")) {
      model.setBlock(prefixNet(names));
      model.getBlock().initialize(model.getNDManager(), DataType.FLOAT32, new Shape(2, 3));
      model.getBlock().getChildren().get(0).getValue().getParameters().get(handFrozen).freeze(true);
      SurgeryChanges changes =
          Algorithms.spec("layer_freezing")
              .create(settings)
              .apply(new SurgeryContext(model.getBlock(), List.of(), 1, 2));
      SurgeryRecord record =
          new SurgeryRecord("layer_freezing", settings, 1, 2, SurgeryRecord.changesOf(changes));
      assertEquals(
          recorded, record.changes().values().iterator().next(), "what layer_freezing recorded");
      // What the listener writes after such an entry.
      RecordProperty.write(model, SurgeryJson.recordsToJson(List.of(record)));
      model.save(dir, "prefix");
    }
    try (Model restored = Model.newInstance("prefix")) {
      restored.setBlock(prefixNet(names));
      assertDoesNotThrow(
          () -> SurgeryCheckpoint.load(restored, dir, "prefix"),
          "a checkpoint layer_freezing wrote loads");
      Block layer = restored.getBlock().getChildren().get(0).getValue();
      return names.stream().map(n -> layer.getParameters().get(n).requiresGradient()).toList();
    }
  }

  private static SequentialBlock prefixNet(List<String> names) {
    return new SequentialBlock()
        .add(new NamedParameterLayer(names.toArray(new String[0])))
        .add(Linear.builder().setUnits(2).build())
        .add(Linear.builder().setUnits(2).build());
  }
}
