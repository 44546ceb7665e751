package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.testing.GcSafeL2Loss;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A surgery record longer than one model property can hold (DJL writes each with {@code writeUTF},
 * at most 65,535 bytes): saved in parts, read back whole.
 */
class LongRecordTest {

  private static final Shape INPUT = new Shape(4, 1, 2, 2);

  @TempDir Path dir;

  /** Many one-filter 1x1 convolutions: weight standardization records each one it changes. */
  private static SequentialBlock deep(int convolutions) {
    SequentialBlock net = new SequentialBlock();
    for (int i = 0; i < convolutions; i++) {
      net.add(Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(1).build());
    }
    return net.add(Blocks.batchFlattenBlock());
  }

  @Test
  void aRecordOfOverSixtyFourKilobytesIsSavedInPartsAndReplayed() throws Exception {
    SurgeryListener listener =
        SurgeryListener.builder()
            .add(Algorithms.spec("weight_standardization").create(Map.of()), 1)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = Model.newInstance("net")) {
      data.getEngine().setRandomSeed(3);
      ArrayDataset train =
          new ArrayDataset.Builder()
              .setData(data.randomNormal(INPUT))
              .optLabels(data.randomNormal(new Shape(4, 4)))
              .setSampling(4, false)
              .build();
      NDArray batch = data.randomNormal(INPUT);
      model.setBlock(deep(1600));
      try (Trainer trainer =
          model.newTrainer(
              new DefaultTrainingConfig(new GcSafeL2Loss()).addTrainingListeners(listener))) {
        trainer.initialize(INPUT);
        EasyTrain.fit(trainer, 1, train, null);
      }
      String record = CarriedRecords.recordOf(model);
      assertTrue(utfBytes(record) > RecordProperty.MAX_PART_BYTES, "the record needs parts");
      assertTrue(model.getProperty(RecordProperty.PARTS) != null);
      float[] saved = SurgeryCheckpointTest.outputs(model, batch);
      model.save(dir, "net"); // failed with UTFDataFormatException, leaving a cut file

      Path file = SurgeryCheckpoint.resolveParamsFile(dir, "net", null);
      assertEquals(1, SurgeryCheckpoint.readRecord(file).size());
      assertEquals(1600, SurgeryCheckpoint.readRecord(file).get(0).changes().size());
      try (Model restored = Model.newInstance("net")) {
        restored.setBlock(deep(1600));
        SurgeryCheckpoint.load(restored, dir, "net");
        assertEquals(
            TestModels.structure(model.getBlock()), TestModels.structure(restored.getBlock()));
        assertArrayEquals(saved, SurgeryCheckpointTest.outputs(restored, batch));
        assertEquals(record, CarriedRecords.recordOf(restored));
      }
    }
  }

  @Test
  void partsNeverExceedTheLimitNorSplitASurrogatePair() throws IOException {
    String text = "ab\u00e9\u4e2d\ud83d\ude00".repeat(40) + "\ud83d\ude00z";
    for (int max = 6; max <= 40; max++) { // from 6: a surrogate pair takes 6 bytes
      List<String> parts = RecordProperty.split(text, max);
      assertEquals(text, String.join("", parts), "max " + max);
      for (String part : parts) {
        assertFalse(part.isEmpty(), "max " + max);
        assertTrue(utfBytes(part) <= max, "max " + max + ": " + part);
        assertFalse(Character.isLowSurrogate(part.charAt(0)), "max " + max + ": " + part);
      }
    }
    assertEquals(List.of("short"), RecordProperty.split("short", RecordProperty.MAX_PART_BYTES));
  }

  /**
   * At each width where modified UTF-8 changes (NUL takes 2 bytes, U+007F 1, U+0080 and U+07FF 2,
   * U+0800 3), a part is as long as the limit allows: the next character (or pair) would not fit,
   * as writeUTF itself counts.
   */
  @Test
  void partsAreAsLongAsTheLimitAllowsAtEveryEncodingWidth() throws IOException {
    String text = "\u0000\u0001\u007f\u0080\u07ff\u0800\uffff\ud83d\ude00".repeat(30);
    for (int max = 6; max <= 40; max++) {
      List<String> parts = RecordProperty.split(text, max);
      assertEquals(text, String.join("", parts), "max " + max);
      for (int i = 0; i < parts.size(); i++) {
        String part = parts.get(i);
        assertTrue(utfBytes(part) <= max, "max " + max + ": " + part);
        if (i + 1 < parts.size()) {
          String next = parts.get(i + 1);
          int width = Character.isHighSurrogate(next.charAt(0)) ? 2 : 1;
          assertTrue(
              utfBytes(part + next.substring(0, width)) > max,
              "max " + max + ": part " + i + " could have taken the next character");
        }
      }
    }
  }

  @Test
  void partsThatDoNotMatchTheirCountAreNotJoined() {
    Map<String, String> properties = new HashMap<>();
    properties.put("surgery", "[1,");
    properties.put("surgery.part2", "2]");
    properties.put(RecordProperty.PARTS, "2 " + RecordProperty.checksum("[1,2]"));
    assertEquals("[1,2]", RecordProperty.read(properties));

    // A plain Model.load of a file with a short record over a model that had a long one: the
    // loaded 'surgery' is whole, the parts beside it are left over.
    properties.put("surgery", "[]");
    assertEquals("[]", RecordProperty.read(properties));
    properties.put("surgery", "[1,");
    properties.remove("surgery.part2");
    assertEquals("[1,", RecordProperty.read(properties), "a missing part: the first alone");
    properties.put(RecordProperty.PARTS, "two parts");
    assertEquals("[1,", RecordProperty.read(properties));
    assertNull(RecordProperty.read(Map.of()));
  }

  @Test
  void aShorterRecordTakesTheLongerOnesPartsOff() {
    try (Model model = Model.newInstance("m")) {
      String longRecord = "x".repeat(2 * RecordProperty.MAX_PART_BYTES + 10);
      RecordProperty.write(model, longRecord);
      assertEquals("3 " + RecordProperty.checksum(longRecord), model.getProperty("surgery.parts"));
      assertEquals(longRecord, RecordProperty.read(model.getProperties()));
      RecordProperty.write(model, "[]");
      assertEquals(Map.of("surgery", "[]"), model.getProperties());
      RecordProperty.write(model, longRecord);
      RecordProperty.remove(model);
      assertEquals(Map.of(), model.getProperties());
    }
  }

  /**
   * A model whose {@code getProperties()} is a read-only view, or a changeable copy (a wrapper, a
   * decorator): nothing taken off that map reaches the model.
   */
  @ParameterizedTest(name = "properties as a {0}")
  @ValueSource(strings = {"read-only view", "changeable copy"})
  void onAModelWhosePropertiesAreACopyTheLastRecordWrittenIsRead(String kind) {
    try (Model real = Model.newInstance("m")) {
      Model model =
          (Model)
              java.lang.reflect.Proxy.newProxyInstance(
                  Model.class.getClassLoader(),
                  new Class<?>[] {Model.class},
                  (proxy, method, args) ->
                      !method.getName().equals("getProperties")
                          ? method.invoke(real, args)
                          : kind.startsWith("read-only")
                              ? java.util.Collections.unmodifiableMap(real.getProperties())
                              : new HashMap<>(real.getProperties()));
      String four = "x".repeat(3 * RecordProperty.MAX_PART_BYTES + 7);
      String two = "y".repeat(RecordProperty.MAX_PART_BYTES + 7);
      String one = "[]";
      for (String record : List.of(four, two, one, four, one, two)) {
        RecordProperty.write(model, record);
        assertEquals(record, RecordProperty.read(model.getProperties()), "a record was cut");
      }
      // Taking the record off cannot go through such a map: the caller writes "[]" instead.
      assertThrows(UnsupportedOperationException.class, () -> RecordProperty.remove(model));
      RecordProperty.write(model, one);
      assertEquals(one, RecordProperty.read(model.getProperties()));
    }
  }

  /** The length {@code writeUTF} measures. */
  private static int utfBytes(String s) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      if (s.length() > 65_535 / 3) {
        int n = 0;
        for (char c : s.toCharArray()) {
          n += c >= 1 && c <= 0x7f ? 1 : c <= 0x7ff ? 2 : 3;
        }
        return n;
      }
      out.writeUTF(s);
    }
    return bytes.size() - 2;
  }
}
