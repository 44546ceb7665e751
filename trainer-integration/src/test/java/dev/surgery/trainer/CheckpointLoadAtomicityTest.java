package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.testing.ExactnessOracle;
import dev.surgery.core.testing.OpenArrays;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link SurgeryCheckpoint#load} is all or nothing: DJL's own load writes as it reads and keeps no
 * undo, and the replay before it changes the tree; a load that fails at any point (a truncated
 * file, a record refused for the architecture after others replayed) must leave the model as it
 * was, so that the right file then loads into the very same model, bit for bit.
 */
class CheckpointLoadAtomicityTest {

  @TempDir Path dir;

  private static final List<SurgeryRecord> RECORDS =
      List.of(
          new SurgeryRecord("blurpool", Map.of("min_channels", 4), 0, 0),
          new SurgeryRecord(
              "squeeze_excite", Map.of("min_channels", 4, "latent_channels", 2), 0, 0));

  /**
   * The records with factorize, whose replay on an initialized model replaces layers whose arrays
   * it would free.
   */
  private static final List<SurgeryRecord> WITH_FACTORIZE =
      List.of(
          RECORDS.get(0),
          RECORDS.get(1),
          new SurgeryRecord(
              "factorize",
              Map.of("min_features", 4, "latent_features", 2, "factorize_convs", false),
              0,
              0));

  /** Saves the test model after the records' surgery; returns its outputs on the batch. */
  private float[] saveChanged(NDArray batch) throws Exception {
    return saveChanged(batch, RECORDS);
  }

  private float[] saveChanged(NDArray batch, List<SurgeryRecord> records) throws Exception {
    try (Model model = TestModels.model("atomic")) {
      initializeWithSurgery(model, records);
      float[] outputs = SurgeryCheckpointTest.outputs(model, batch);
      model.save(dir, "atomic");
      return outputs;
    }
  }

  /**
   * Initializes the model, makes the records' surgery through the core API and sets them as its
   * record, as a run under the listener would have left it.
   */
  private static void initializeWithSurgery(Model model, List<SurgeryRecord> records) {
    Block block = model.getBlock();
    block.initialize(model.getNDManager(), model.getDataType(), INPUT);
    for (SurgeryRecord r : records) {
      Algorithms.spec(r.algorithm()).create(r.hyperparameters()).apply(SurgeryContext.of(block));
    }
    model.setProperty(SurgeryListener.PROPERTY, SurgeryJson.recordsToJson(records));
  }

  /** Saves a wider model (6 filters, where the test model has 4) after the same records. */
  private Path saveWider(Path folder) throws Exception {
    try (Model model =
        dev.surgery.core.testing.TinyModels.model(
            "atomic", dev.surgery.core.testing.TinyModels.cnn(6))) {
      initializeWithSurgery(model, RECORDS);
      model.save(folder, "atomic");
    }
    return folder;
  }

  /**
   * A file of a wider model is refused (its arrays do not fit the layers the replay built), and
   * DJL's load had meanwhile written the file's layer settings into the blocks (a Linear's input
   * features): they are put back too, so that the model's own file then loads (it was refused).
   */
  @Test
  void aRefusedLoadPutsBackTheLayerSettingsDjlReadFromTheFile() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 9);
      float[] saved = saveChanged(batch);
      Path wider = saveWider(dir.resolve("wider"));
      try (Model model = TestModels.model("atomic")) {
        List<Block> before = blocks(model.getBlock());
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class,
                () -> SurgeryCheckpoint.load(model, wider, "atomic"));
        // The likelier cause first: the model, not the file.
        assertTrue(
            e.getMessage().contains("this model is not the architecture the file was saved from"),
            e.getMessage());
        assertSameBlocks(before, model.getBlock());
        SurgeryCheckpoint.load(model, dir, "atomic");
        assertArrayEquals(saved, SurgeryCheckpointTest.outputs(model, batch));
      }
    }
  }

  /** The blocks of a tree in walk order, to tell the very same objects back in their places. */
  private static List<Block> blocks(Block root) {
    List<Block> all = new ArrayList<>(List.of(root));
    for (int i = 0; i < all.size(); i++) {
      for (Pair<String, Block> child : all.get(i).getChildren()) {
        all.add(child.getValue());
      }
    }
    return all;
  }

  private static void assertSameBlocks(List<Block> expected, Block root) {
    List<Block> now = blocks(root);
    assertEquals(expected.size(), now.size());
    for (int i = 0; i < expected.size(); i++) {
      assertSame(expected.get(i), now.get(i), "block " + i);
    }
  }

  @Test
  void aTruncatedFileLeavesAFreshModelAsItWasAndTheRightFileThenLoads() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 5);
      float[] saved = saveChanged(batch);
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "atomic", null);
      Path cut = CheckpointFiles.truncated(file, dir.resolve("cut"), 100);

      try (Model model = TestModels.model("atomic")) {
        List<Block> before = blocks(model.getBlock());
        String structure = TestModels.structure(model.getBlock());
        Map<String, String> properties = new LinkedHashMap<>(model.getProperties());
        IOException e =
            assertThrows(IOException.class, () -> SurgeryCheckpoint.load(model, cut, "atomic"));
        assertTrue(e.getMessage().contains("atomic-0000.params"), e.getMessage());
        assertEquals(structure, TestModels.structure(model.getBlock()));
        assertSameBlocks(before, model.getBlock());
        for (Parameter p : model.getBlock().getParameters().values()) {
          assertFalse(p.isInitialized(), p.getName() + " kept an array of the failed load");
          assertNull(p.getShape(), p.getName() + " kept a shape of the failed load");
        }
        assertEquals(0, model.getNDManager().getManagedArrays().size(), "arrays left behind");
        assertEquals(properties, model.getProperties());
        assertTrue(SurgeryCheckpoint.frozenByReplay(model.getBlock()).isEmpty());

        SurgeryCheckpoint.load(model, dir, "atomic");
        assertArrayEquals(saved, SurgeryCheckpointTest.outputs(model, batch));
      }
    }
  }

  /**
   * An initialized model whose load fails part way keeps its own arrays (the very objects, their
   * values), and the arrays DJL read before the failure are freed.
   */
  @Test
  void aTruncatedFileLeavesAnInitializedModelWithItsOwnArrays() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 6);
      saveChanged(batch, WITH_FACTORIZE);
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "atomic", null);
      Path cut = CheckpointFiles.truncated(file, dir.resolve("cut"), 40);
      try (Model model = TestModels.model("atomic")) {
        model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
        float[] own = SurgeryCheckpointTest.outputs(model, batch);
        Map<Parameter, NDArray> arrays = new java.util.IdentityHashMap<>();
        for (Parameter p : model.getBlock().getParameters().values()) {
          arrays.put(p, p.getArray());
        }
        java.util.Set<NDArray> open = OpenArrays.managedBy(model.getNDManager());
        assertThrows(IOException.class, () -> SurgeryCheckpoint.load(model, cut, "atomic"));
        for (Map.Entry<Parameter, NDArray> e : arrays.entrySet()) {
          assertSame(e.getValue(), e.getKey().getArray(), e.getKey().getName());
        }
        assertEquals(open, OpenArrays.managedBy(model.getNDManager()));
        assertArrayEquals(own, SurgeryCheckpointTest.outputs(model, batch));
      }
    }
  }

  /**
   * A load into a model the program initialized, that succeeds: the model computes what was saved,
   * every parameter holds an array the load read, and the only other arrays left open are the
   * model's own earlier ones (as DJL's own load leaves them): nothing of the replay.
   */
  @Test
  void aSuccessfulLoadIntoAnInitializedModelLeavesNothingOfTheReplay() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 8);
      float[] saved = saveChanged(batch, WITH_FACTORIZE);
      try (Model model = TestModels.model("atomic")) {
        model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
        java.util.Set<NDArray> own = OpenArrays.managedBy(model.getNDManager());
        SurgeryCheckpoint.load(model, dir, "atomic");
        assertArrayEquals(saved, SurgeryCheckpointTest.outputs(model, batch));
        java.util.Set<NDArray> expected =
            java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        expected.addAll(own);
        for (Parameter p : model.getBlock().getParameters().values()) {
          assertTrue(p.isInitialized(), p.getName());
          assertFalse(own.contains(p.getArray()), p.getName() + " kept an array the file holds");
          expected.add(p.getArray());
        }
        assertEquals(expected, OpenArrays.managedBy(model.getNDManager()));
      }
    }
  }

  /**
   * Training after a load into a model the program had initialized (its arrays are taken off for
   * the load, the replay runs as on a fresh model) is training after a load into a fresh model:
   * three epochs of Adam (12 steps), bit for bit in every parameter and in the optimizer state,
   * finite throughout, and the same file twice gives the same bits.
   */
  @Test
  void trainingAfterALoadIntoAnInitializedModelIsTrainingAfterALoadIntoAFreshOne()
      throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      saveChanged(TestModels.probeBatch(data, 10), WITH_FACTORIZE);
      try (Model fresh = TestModels.model("atomic");
          Model initialized = TestModels.model("atomic")) {
        initialized
            .getBlock()
            .initialize(initialized.getNDManager(), initialized.getDataType(), INPUT);
        SurgeryCheckpoint.load(fresh, dir, "atomic");
        SurgeryCheckpoint.load(initialized, dir, "atomic");
        try (Trainer control = fresh.newTrainer(TestModels.config());
            Trainer subject = initialized.newTrainer(TestModels.config())) {
          control.initialize(INPUT);
          subject.initialize(INPUT);
          ArrayDataset dataset = TestModels.dataset(data, 11);
          for (int epoch = 0; epoch < 3; epoch++) {
            EasyTrain.fit(control, 1, dataset, null);
            EasyTrain.fit(subject, 1, dataset, null);
            ExactnessOracle.assertTwinsBitIdentical(
                EventsTest.params(fresh),
                control,
                EventsTest.params(initialized),
                subject,
                "after epoch " + (epoch + 1));
          }
        }
      }
    }
  }

  /**
   * A record edited so that the replay still replaces the same blocks, but builds them for other
   * shapes (a squeeze-excite gate of 3 channels where the saved one had 2): DJL's load does not
   * check shapes and would put the saved arrays into gates built for others. Refused, naming the
   * parameter, with the model as it was; the unedited file then loads.
   */
  @Test
  void aRecordThatDoesNotDescribeTheSavedArraysIsRefused() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 7);
      float[] saved = saveChanged(batch);
      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "atomic", null);
      Path edited =
          CheckpointFiles.edited(
              file, dir.resolve("edited"), "latent_channels\":2", "latent_channels\":3");
      try (Model model = TestModels.model("atomic")) {
        List<Block> before = blocks(model.getBlock());
        MalformedModelException e =
            assertThrows(
                MalformedModelException.class,
                () -> SurgeryCheckpoint.load(model, edited, "atomic"));
        assertTrue(
            e.getMessage().contains("does not describe the model saved in it"), e.getMessage());
        assertTrue(e.getMessage().contains("reduce_weight"), e.getMessage());
        assertSameBlocks(before, model.getBlock());
        assertEquals(0, model.getNDManager().getManagedArrays().size(), "arrays left behind");
        SurgeryCheckpoint.load(model, dir, "atomic");
        assertArrayEquals(saved, SurgeryCheckpointTest.outputs(model, batch));
      }
    }
  }

  /**
   * A record refused for the architecture after an earlier one replayed: both are undone (the
   * earlier one's BlurPool stayed in the model), and the refused record's own replacements too.
   */
  @Test
  void aRefusedRecordUndoesTheRecordsReplayedBeforeIt() throws Exception {
    List<SurgeryRecord> records =
        List.of(
            // Without changes (an older record): replayed without a check.
            new SurgeryRecord("blurpool", Map.of("min_channels", 0), 0, 0),
            new SurgeryRecord(
                "squeeze_excite",
                Map.of("min_channels", 4, "latent_channels", 2),
                0,
                0,
                Map.of("99Conv2d", "Conv2d->SqueezeExciteConv2d")));
    try (Model model = TestModels.model("refused")) {
      List<Block> before = blocks(model.getBlock());
      String structure = TestModels.structure(model.getBlock());
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class,
              () -> SurgeryCheckpointTest.replayOnModel(model, records, INPUT));
      assertTrue(
          e.getMessage().contains("cannot be replayed on this architecture"), e.getMessage());
      assertEquals(structure, TestModels.structure(model.getBlock()));
      assertSameBlocks(before, model.getBlock());
      for (Parameter p : model.getBlock().getParameters().values()) {
        assertNull(p.getShape(), p.getName() + " kept the shape the replay recorded");
      }
    }
  }

  /**
   * A review: DJL's load marks the model loaded ({@code BaseModel.wasLoaded}) before it reads
   * anything, and the undo of a failed load left that mark: a model the program built and froze by
   * hand then had every freeze lifted by its next {@code newTrainer} (which unfreezes a loaded
   * model), as if the load had succeeded. The undo puts the mark back too.
   */
  @Test
  void aFailedLoadLeavesAModelTheProgramBuiltNotLoadedForItsNextTrainer() throws Exception {
    TestModels.saveInitialized(dir, "built");
    Path file = SurgeryCheckpoint.resolveParamsFile(dir, "built", null);
    Path cut = CheckpointFiles.truncated(file, dir.resolve("cut"), 100);
    try (Model model = TestModels.model("built")) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      Parameter weight =
          model.getBlock().getChildren().get(0).getValue().getParameters().get("weight");
      weight.freeze(true);
      assertThrows(IOException.class, () -> SurgeryCheckpoint.load(model, cut, "built"));
      assertFalse(weight.requiresGradient(), "the undo put the flag back");
      // The program goes on with the model it built, as it would had it not tried the load.
      model.newTrainer(TestModels.config()).close();
      assertFalse(weight.requiresGradient(), "the next newTrainer kept the program's freeze");
    }
  }

  /**
   * A file that holds a parameter saved without an array (DJL writes {@code N} for it and its load
   * skips it), loaded into an initialized model: the load's undo takes the model's arrays off for
   * the time of the load and must put that one back, so that the model ends as DJL's own {@code
   * Model.load} leaves the same initialized model: every parameter with an array, the skipped one
   * with the model's own values.
   */
  @Test
  void aParameterSavedWithoutAnArrayKeepsTheModelsOwnAsDjlsLoadDoes() throws Exception {
    try (Model model = TestModels.model("atomic")) {
      Block block = model.getBlock();
      block.initialize(model.getNDManager(), model.getDataType(), INPUT);
      model.save(dir, "atomic");
      savedWithoutArray(
          SurgeryCheckpoint.resolveParamsFile(dir, "atomic", null),
          block.getParameters().valueAt(0));
    }
    try (NDManager data = NDManager.newBaseManager();
        Model plain = TestModels.model("atomic");
        Model ours = TestModels.model("atomic")) {
      for (Model m : List.of(plain, ours)) {
        data.getEngine().setRandomSeed(5);
        m.getBlock().initialize(m.getNDManager(), m.getDataType(), INPUT);
      }
      plain.load(dir, "atomic");
      SurgeryCheckpoint.load(ours, dir, "atomic");
      List<Parameter> expected = plain.getBlock().getParameters().values();
      List<Parameter> got = ours.getBlock().getParameters().values();
      assertEquals(expected.size(), got.size());
      for (int i = 0; i < expected.size(); i++) {
        assertTrue(expected.get(i).isInitialized(), "DJL's load keeps the model's own");
        assertTrue(got.get(i).isInitialized(), got.get(i).getName() + " left without an array");
        assertArrayEquals(
            expected.get(i).getArray().toFloatArray(),
            got.get(i).getArray().toFloatArray(),
            got.get(i).getName());
      }
    }
  }

  /**
   * {@link ModelLoadUndo#replay} returns the records it replayed (the agent's load takes them from
   * it), as {@code SurgeryCheckpoint.replay} does.
   */
  @Test
  void theLoadUndosReplayReturnsTheRecordsItReplayed() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      saveChanged(TestModels.probeBatch(data, 3));
    }
    try (Model model = TestModels.model("atomic")) {
      ModelLoadUndo undo = ModelLoadUndo.before(model);
      List<SurgeryRecord> replayed =
          undo.replay(SurgeryCheckpoint.resolveParamsFile(dir, "atomic", null));
      undo.failed();
      assertEquals(
          RECORDS.stream().map(SurgeryRecord::algorithm).toList(),
          replayed.stream().map(SurgeryRecord::algorithm).toList());
    }
  }

  /**
   * Rewrites a parameter's record in a parameter file as DJL's {@code Parameter.save} writes one
   * without an array: the char {@code N} in place of {@code P}, its version, name and array. The
   * parameter is the file's first of that name.
   */
  private static void savedWithoutArray(Path file, Parameter p) throws IOException {
    byte[] bytes = java.nio.file.Files.readAllBytes(file);
    java.io.ByteArrayOutputStream record = new java.io.ByteArrayOutputStream();
    try (java.io.DataOutputStream out = new java.io.DataOutputStream(record)) {
      out.writeChar('P');
      out.writeByte(1);
      out.writeUTF(p.getName());
    }
    byte[] start = record.toByteArray();
    int at = -1;
    for (int i = 0; i + start.length <= bytes.length && at < 0; i++) {
      if (java.util.Arrays.equals(bytes, i, i + start.length, start, 0, start.length)) {
        at = i;
      }
    }
    assertTrue(at >= 0, "no record of " + p.getName());
    int end = at + start.length + p.getArray().encode().length;
    java.io.ByteArrayOutputStream edited = new java.io.ByteArrayOutputStream();
    edited.write(bytes, 0, at);
    edited.write(0);
    edited.write('N');
    edited.write(bytes, end, bytes.length - end);
    java.nio.file.Files.write(file, edited.toByteArray());
  }
}
