package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import com.google.gson.JsonArray;
import com.google.gson.JsonParser;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Records that say which new parameters were born frozen ({@code born_frozen}), edited or of
 * another run, loaded into a model that holds a checkpoint already: what an outside probe of 2,465
 * resumed runs and 731 chains of loads found beside them (all of which trained as in memory).
 */
class BornFrozenRecordTest {

  @TempDir Path dir;

  @BeforeAll
  static void register() {
    TestAlgorithms.ensureRegistered();
  }

  /**
   * An edited {@code born_frozen} (a name no replacement brought) is refused by a fresh model; a
   * model that held the unedited checkpoint took it without a word (the records it carried were
   * matched without that field), and its own next checkpoint was then refused by every fresh load.
   */
  @Test
  void anEditedBornFrozenIsRefusedAlsoByAModelThatHoldsTheCheckpoint() throws Exception {
    SurgeryListener listener = SurgeryListener.builder().add(TestModels.blurpool(), 1).build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("ck")) {
      train(model, listener, data);
      model.save(dir, "ck");
    }
    Path file = SurgeryCheckpoint.resolveParamsFile(dir, "ck", null);
    assertEquals(List.of(), SurgeryCheckpoint.readRecord(file).get(0).bornFrozen());
    Path edited =
        withRecord(
            file,
            dir.resolve("edited"),
            json -> json.replace("\"born_frozen\":[]", "\"born_frozen\":[\"no_such_parameter\"]"));
    try (Model fresh = TestModels.model("ck")) {
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class, () -> SurgeryCheckpoint.load(fresh, edited, "ck"));
      assertTrue(e.getMessage().contains("brought no_such_parameter frozen"), e.getMessage());
    }
    try (Model holding = TestModels.model("ck")) {
      SurgeryCheckpoint.load(holding, dir, "ck");
      String carried = CarriedRecords.carriedBy(holding.getBlock());
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class,
              () -> SurgeryCheckpoint.load(holding, edited, "ck"),
              "a model holding the unedited checkpoint took the edited record");
      assertTrue(
          e.getMessage().contains("with other new parameters born frozen: [] here,")
              && e.getMessage().contains("[no_such_parameter] in the file"),
          e.getMessage());
      assertEquals(carried, CarriedRecords.carriedBy(holding.getBlock()), "its record kept");
    }
  }

  /**
   * Two runs of one schedule (the first layer's weight frozen by hand, layer_freezing freezing its
   * bias, then a second trainer under which factorize replaces the layer), one whose program froze
   * the weight again after the second newTrainer and one that did not: their records differ only in
   * factorize's {@code born_frozen}. The second run's checkpoint loaded into a model holding the
   * first run's was taken for the same run's next one (nothing replayed, the first run's freezes
   * kept), and trained otherwise than loaded alone; it is refused, as another run's is.
   */
  @Test
  void aCheckpointOfAnotherRunWhoseRecordDiffersOnlyInBornFrozenIsRefused() throws Exception {
    TestModels.saveInitialized(dir, "pretrained");
    try (NDManager data = NDManager.newBaseManager()) {
      ArrayDataset dataset = TestModels.dataset(data, 47);
      for (boolean frozenAgain : new boolean[] {true, false}) {
        List<SurgeryListener> stages =
            List.of(
                SurgeryListener.builder()
                    .add(TestModels.layerFreezingFromStart(), 1)
                    .optTotalEpochs(1)
                    .build(),
                SurgeryListener.builder()
                    .add(SurgeryCheckpointTest.smallLayers("factorize"), 1)
                    .build());
        try (Model model = TestModels.model("pretrained")) {
          model.load(dir, "pretrained");
          for (int stage = 1; stage <= 2; stage++) {
            try (Trainer trainer = model.newTrainer(TestModels.config(stages.get(stage - 1)))) {
              trainer.initialize(INPUT);
              if (stage == 1 || frozenAgain) {
                model
                    .getBlock()
                    .getChildren()
                    .get(0)
                    .getValue()
                    .getParameters()
                    .get("weight")
                    .freeze(true);
              }
              EasyTrain.fit(trainer, 1, dataset, null);
            }
          }
          model.save(dir, frozenAgain ? "again" : "lifted");
        }
      }
    }
    List<SurgeryRecord> again =
        SurgeryCheckpoint.readRecord(SurgeryCheckpoint.resolveParamsFile(dir, "again", null));
    List<SurgeryRecord> lifted =
        SurgeryCheckpoint.readRecord(SurgeryCheckpoint.resolveParamsFile(dir, "lifted", null));
    assertEquals(again.get(1).changes(), lifted.get(1).changes());
    assertNotEquals(again.get(1).bornFrozen(), lifted.get(1).bornFrozen());
    try (Model inTurn = TestModels.model("pretrained")) {
      SurgeryCheckpoint.load(inTurn, dir, "again");
      String carried = CarriedRecords.carriedBy(inTurn.getBlock());
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class, () -> SurgeryCheckpoint.load(inTurn, dir, "lifted"));
      assertTrue(
          e.getMessage().contains("this model already carries surgery the file's record does not")
              && e.getMessage().contains("(its entry 2: factorize at epoch 1")
              && e.getMessage().contains("with other new parameters born frozen"),
          e.getMessage());
      assertEquals(carried, CarriedRecords.carriedBy(inTurn.getBlock()), "its record kept");
    }
  }

  /**
   * A record with a replacement's entry removed (an edited record) is refused, as it must be; the
   * refusal was DJL's "Invalid input data." alone, naming neither the file nor what it means.
   */
  @Test
  void aRecordMissingAReplacementIsRefusedNamingTheFile() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(TestModels.layerFreezingFromStart(), 1)
            .add(SurgeryCheckpointTest.smallLayers("factorize"), 1)
            .optTotalEpochs(2)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = TestModels.model("ck")) {
      train(model, listener, data);
      model.save(dir, "ck");
    }
    Path file = SurgeryCheckpoint.resolveParamsFile(dir, "ck", null);
    assertEquals(2, SurgeryCheckpoint.readRecord(file).size());
    Path edited =
        withRecord(
            file,
            dir.resolve("edited"),
            json -> {
              JsonArray a = JsonParser.parseString(json).getAsJsonArray();
              a.remove(1);
              return a.toString();
            });
    try (Model fresh = TestModels.model("ck")) {
      String before = fresh.getBlock().toString();
      MalformedModelException e =
          assertThrows(
              MalformedModelException.class, () -> SurgeryCheckpoint.load(fresh, edited, "ck"));
      assertTrue(
          e.getMessage().startsWith(edited.resolve("ck-0000.params").toString())
              && e.getMessage().contains("DJL could not read the parameters into this model")
              && e.getMessage().contains("edited?)"),
          e.getMessage());
      assertEquals(before, fresh.getBlock().toString(), "the model as it was");
    }
  }

  private static void train(Model model, SurgeryListener listener, NDManager data)
      throws Exception {
    TestModels.train(model, listener, 1, TestModels.dataset(data, 47));
  }

  /**
   * Copies a parameter file into {@code folder} with its {@code surgery} property rewritten (DJL
   * writes a property as two UTF strings: a length in two bytes, then the bytes).
   */
  static Path withRecord(Path file, Path folder, UnaryOperator<String> edit) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    byte[] key = SurgeryListener.PROPERTY.getBytes(StandardCharsets.US_ASCII);
    int at = -1;
    for (int i = 2; i + key.length + 3 < bytes.length && at < 0; i++) {
      if (((bytes[i - 2] & 0xff) << 8 | (bytes[i - 1] & 0xff)) == key.length
          && Arrays.equals(Arrays.copyOfRange(bytes, i, i + key.length), key)
          && bytes[i + key.length + 2] == '[') {
        at = i + key.length;
      }
    }
    if (at < 0) {
      throw new IllegalStateException("no surgery property in " + file);
    }
    int length = (bytes[at] & 0xff) << 8 | (bytes[at + 1] & 0xff);
    String json = new String(bytes, at + 2, length, StandardCharsets.UTF_8);
    byte[] edited = edit.apply(json).getBytes(StandardCharsets.UTF_8);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(bytes, 0, at);
    out.write(edited.length >> 8);
    out.write(edited.length & 0xff);
    out.write(edited, 0, edited.length);
    out.write(bytes, at + 2 + length, bytes.length - at - 2 - length);
    Files.createDirectories(folder);
    Files.write(folder.resolve(file.getFileName()), out.toByteArray());
    return folder;
  }
}
