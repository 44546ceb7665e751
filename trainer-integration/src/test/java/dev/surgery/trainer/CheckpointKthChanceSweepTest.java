package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.util.Pair;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.testing.OpenArrays;
import dev.surgery.core.testing.TinyModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A k-th-chance sweep of {@link SurgeryCheckpoint#load}: a failure injected at the k-th call of the
 * root block's {@code getChildren} / {@code initializeChildBlocks} (the replay walks and shapes the
 * tree through them), and files cut off or damaged at every few bytes (DJL's parameter reads a
 * damaged stream). After every failed attempt the model is exactly as before: blocks, parameters
 * (identity, shape, array, values bit for bit, frozen flag), properties, and the engine's open
 * arrays; the load that finally succeeds computes what was saved, bit for bit.
 */
class CheckpointKthChanceSweepTest {

  @TempDir Path dir;

  /** A root whose getChildren / initializeChildBlocks throws once, at the k-th call. */
  static final class KthRoot extends SequentialBlock {
    static int countdown = -1;
    static int calls;
    static boolean outOfMemory;

    static void arm(int k) {
      countdown = k;
      calls = 0;
    }

    static void tick() {
      calls++;
      if (countdown > 0 && --countdown == 0) {
        if (outOfMemory) {
          throw new OutOfMemoryError("injected at call " + calls);
        }
        throw new IllegalStateException("injected failure at call " + calls);
      }
    }

    @Override
    public BlockList getChildren() {
      tick();
      return super.getChildren();
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
      tick();
      super.initializeChildBlocks(manager, dataType, inputShapes);
    }

    @Override
    public ai.djl.nn.ParameterList getParameters() {
      tick();
      return super.getParameters();
    }

    @Override
    public void loadParameters(NDManager manager, java.io.DataInputStream is)
        throws java.io.IOException, ai.djl.MalformedModelException {
      tick();
      super.loadParameters(manager, is);
    }
  }

  /** The tiny CNN with its tail (relu, pool, flatten, linear) in a nested KthRoot. */
  static Model model(String name) {
    KthRoot root = new KthRoot();
    KthRoot tail = new KthRoot();
    List<Block> children = TinyModels.cnn(4).getChildren().values();
    for (int i = 0; i < children.size(); i++) {
      (i < 4 ? root : tail).add(children.get(i));
    }
    root.add(tail);
    return TinyModels.model(name, root);
  }

  static final List<SurgeryRecord> THREE =
      List.of(
          new SurgeryRecord("blurpool", Map.of("min_channels", 4), 0, 0),
          new SurgeryRecord(
              "squeeze_excite", Map.of("min_channels", 4, "latent_channels", 2), 0, 0),
          new SurgeryRecord(
              "layer_freezing", Map.of("freeze_start", 0.0, "freeze_level", 1.0), 3, 4));

  static final List<SurgeryRecord> FACTORIZE =
      List.of(
          new SurgeryRecord("blurpool", Map.of("min_channels", 4), 0, 0),
          new SurgeryRecord(
              "factorize",
              Map.of("min_features", 4, "latent_features", 2, "factorize_convs", false),
              0,
              0));

  private float[] save(List<SurgeryRecord> records, NDArray batch, Path folder) throws Exception {
    KthRoot.countdown = -1;
    try (Model model = model("sweep")) {
      Block block = model.getBlock();
      block.initialize(model.getNDManager(), model.getDataType(), INPUT);
      for (SurgeryRecord r : records) {
        Algorithms.spec(r.algorithm())
            .create(r.hyperparameters())
            .apply(new SurgeryContext(block, List.of(), r.epoch(), r.totalEpochs()));
      }
      model.setProperty(SurgeryListener.PROPERTY, SurgeryJson.recordsToJson(records));
      float[] out = SurgeryCheckpointTest.outputs(model, batch);
      model.save(folder, "sweep");
      return out;
    }
  }

  /** Everything the promise says a failed load leaves as it was. */
  private record State(
      List<Block> blocks,
      List<String> names,
      List<Parameter> params,
      List<Shape> shapes,
      List<NDArray> arrays,
      List<int[]> bits,
      List<Boolean> grads,
      Map<String, String> props,
      List<Parameter> frozenByReplay,
      int open) {

    static State of(Model model) {
      List<Block> blocks = new ArrayList<>(List.of(model.getBlock()));
      int saved = KthRoot.countdown;
      KthRoot.countdown = -1; // the check itself must not fire the failure
      try {
        for (int i = 0; i < blocks.size(); i++) {
          for (Pair<String, Block> c : blocks.get(i).getChildren()) {
            blocks.add(c.getValue());
          }
        }
        List<String> names = new ArrayList<>();
        List<Parameter> params = new ArrayList<>();
        List<Shape> shapes = new ArrayList<>();
        List<NDArray> arrays = new ArrayList<>();
        List<int[]> bits = new ArrayList<>();
        List<Boolean> grads = new ArrayList<>();
        for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
          Parameter q = p.getValue();
          names.add(p.getKey());
          params.add(q);
          shapes.add(q.getShape());
          NDArray a = q.isInitialized() ? q.getArray() : null;
          arrays.add(a);
          if (a == null) {
            bits.add(null);
          } else {
            float[] f = a.toFloatArray();
            int[] b = new int[f.length];
            for (int j = 0; j < f.length; j++) {
              b[j] = Float.floatToRawIntBits(f[j]);
            }
            bits.add(b);
          }
          grads.add(q.requiresGradient());
        }
        return new State(
            blocks,
            names,
            params,
            shapes,
            arrays,
            bits,
            grads,
            new LinkedHashMap<>(model.getProperties()),
            new ArrayList<>(SurgeryCheckpoint.frozenByReplay(model.getBlock())),
            OpenArrays.ofEngine(model.getNDManager()).size());
      } finally {
        KthRoot.countdown = saved;
      }
    }

    void assertSameAs(State before, String what) {
      assertEquals(before.blocks.size(), blocks.size(), what + ": blocks");
      for (int i = 0; i < blocks.size(); i++) {
        assertSame(before.blocks.get(i), blocks.get(i), what + ": block " + i);
      }
      assertEquals(before.names, names, what + ": parameter names");
      for (int i = 0; i < params.size(); i++) {
        String n = what + ": " + names.get(i);
        assertSame(before.params.get(i), params.get(i), n + " identity");
        assertEquals(before.shapes.get(i), shapes.get(i), n + " shape");
        assertSame(before.arrays.get(i), arrays.get(i), n + " array");
        assertTrue(Arrays.equals(before.bits.get(i), bits.get(i)), n + " values");
        assertEquals(before.grads.get(i), grads.get(i), n + " frozen flag");
      }
      assertEquals(before.props, props, what + ": properties");
      assertEquals(before.frozenByReplay.size(), frozenByReplay.size(), what + ": frozenByReplay");
      assertTrue(
          identical(before.frozenByReplay, frozenByReplay), what + ": frozenByReplay identity");
      assertEquals(before.open, open, what + ": open arrays of the engine");
    }
  }

  /** The program froze the first conv by hand before the load (a flag the undo must keep). */
  private static void handFreeze(Model model) {
    int saved = KthRoot.countdown;
    KthRoot.countdown = -1;
    try {
      model.getBlock().getChildren().get(0).getValue().getParameters().get("weight").freeze(true);
    } finally {
      KthRoot.countdown = saved;
    }
  }

  /**
   * The same model, after the failed load, takes the right file as if nothing had happened: what it
   * computes, its frozen flags, what replay froze and its properties are those of a model that
   * loaded the file without a failure first (hidden state the failure may have left would show).
   */
  private static void retry(
      Model model, Path folder, NDArray batch, float[] saved, State before, String what)
      throws Exception {
    State clean;
    try (Model reference = model("sweep")) {
      if (before.arrays.get(0) != null) {
        reference.getBlock().initialize(reference.getNDManager(), reference.getDataType(), INPUT);
      }
      handFreeze(reference);
      if (!before.frozenByReplay.isEmpty() || before.props.containsKey(SurgeryListener.PROPERTY)) {
        return; // a model that loaded an earlier checkpoint: its reference is built elsewhere
      }
      SurgeryCheckpoint.load(reference, folder, "sweep");
      clean = State.of(reference);
    }
    SurgeryCheckpoint.load(model, folder, "sweep");
    State now = State.of(model);
    assertArrayEquals(saved, SurgeryCheckpointTest.outputs(model, batch), what + ": retry");
    assertEquals(clean.grads, now.grads, what + ": retry's frozen flags");
    assertEquals(clean.frozenByReplay.size(), now.frozenByReplay.size(), what + ": retry");
    assertEquals(clean.props, now.props, what + ": retry's properties");
    assertTrue(
        now.open - before.open <= now.params.size(),
        what + ": retry left " + (now.open - before.open) + " arrays more");
  }

  private static boolean identical(List<Parameter> a, List<Parameter> b) {
    java.util.Set<Parameter> s =
        java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
    s.addAll(a);
    return b.stream().allMatch(s::contains);
  }

  /**
   * Brings a fresh model to where each load of a sweep finds it: initialized if asked, frozen by
   * hand, and the earlier checkpoint (saved in {@code first}) loaded where there is one.
   */
  private static void prepareForTheLoad(
      Model model, boolean initialized, List<SurgeryRecord> earlier, Path first) throws Exception {
    if (initialized) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
    }
    handFreeze(model);
    if (earlier != null) {
      SurgeryCheckpoint.load(model, first, "sweep");
    }
  }

  private int sweepInjected(List<SurgeryRecord> records, boolean initialized, long seed)
      throws Exception {
    return sweepInjected(records, initialized, seed, null);
  }

  /** {@code earlier}: records of an earlier checkpoint of the run, loaded first (a prefix). */
  private int sweepInjected(
      List<SurgeryRecord> records, boolean initialized, long seed, List<SurgeryRecord> earlier)
      throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, (int) seed);
      Path folder = dir.resolve("ok" + seed + initialized);
      float[] saved = save(records, batch, folder);
      Path first = dir.resolve("first" + seed + initialized);
      if (earlier != null) {
        save(earlier, batch, first);
      }
      int failures = 0;
      for (int k = 1; ; k++) {
        try (Model model = model("sweep")) {
          prepareForTheLoad(model, initialized, earlier, first);
          State before = State.of(model);
          KthRoot.arm(k);
          try {
            SurgeryCheckpoint.load(model, folder, "sweep");
          } catch (Exception | Error e) {
            KthRoot.countdown = -1;
            failures++;
            State.of(model).assertSameAs(before, "k=" + k + " (" + e + ")");
            retry(model, folder, batch, saved, before, "k=" + k);
            continue;
          } finally {
            KthRoot.countdown = -1;
          }
          int open = OpenArrays.ofEngine(model.getNDManager()).size();
          int params = model.getBlock().getParameters().size();
          assertTrue(
              open - before.open <= params,
              "k="
                  + k
                  + ": "
                  + (open - before.open)
                  + " arrays more after the load, "
                  + params
                  + " parameters");
          assertArrayEquals(saved, SurgeryCheckpointTest.outputs(model, batch), "k=" + k);
          return failures;
        }
      }
    }
  }

  private int sweepFile(List<SurgeryRecord> records, boolean initialized, long seed, boolean cut)
      throws Exception {
    return sweepFile(records, initialized, seed, cut, null);
  }

  private int sweepFile(
      List<SurgeryRecord> records,
      boolean initialized,
      long seed,
      boolean cut,
      List<SurgeryRecord> earlier)
      throws Exception {
    int failures = 0;
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, (int) seed);
      Path folder = dir.resolve("f" + seed + initialized + cut);
      float[] saved = save(records, batch, folder);
      Path first = dir.resolve("f-first" + seed + initialized + cut);
      if (earlier != null) {
        save(earlier, batch, first);
      }
      Path file = SurgeryCheckpoint.resolveParamsFile(folder, "sweep", null);
      byte[] bytes = Files.readAllBytes(file);
      int step = Math.max(1, bytes.length / 90);
      for (int pos = 1; pos < bytes.length; pos += step) {
        byte[] damaged;
        if (cut) {
          damaged = Arrays.copyOf(bytes, pos);
        } else {
          damaged = bytes.clone();
          damaged[pos] = (byte) (damaged[pos] ^ 0x7f);
        }
        Path bad = dir.resolve("bad" + seed + initialized + cut + "_" + pos);
        Files.createDirectories(bad);
        Files.write(bad.resolve(file.getFileName()), damaged);
        try (Model model = model("sweep")) {
          prepareForTheLoad(model, initialized, earlier, first);
          State before = State.of(model);
          try {
            SurgeryCheckpoint.load(model, bad, "sweep");
          } catch (Exception | Error e) {
            failures++;
            State.of(model).assertSameAs(before, "pos=" + pos + " (" + e + ")");
            retry(model, folder, batch, saved, before, "pos=" + pos);
          }
        }
      }
    }
    if (cut && failures == 0) {
      fail("no truncated file failed");
    }
    return failures;
  }

  @Test
  void everyInjectedFailureLeavesTheModelAsItWas() throws Exception {
    int n = 0;
    n += sweepInjected(THREE, false, 1);
    n += sweepInjected(THREE, true, 2);
    n += sweepInjected(FACTORIZE, false, 3);
    n += sweepInjected(FACTORIZE, true, 4);
    n += sweepInjected(THREE, false, 13, THREE.subList(0, 1));
    n += sweepInjected(FACTORIZE, true, 14, FACTORIZE.subList(0, 1));
    n += sweepInjected(THREE, true, 18, THREE); // the same checkpoint again: nothing replayed
    n += sweepInjected(FACTORIZE, false, 19, FACTORIZE);
    System.out.println("SWEEP injected failures: " + n);
    KthRoot.outOfMemory = true;
    try {
      n = 0;
      n += sweepInjected(THREE, false, 15);
      n += sweepInjected(FACTORIZE, true, 16);
      n += sweepInjected(THREE, true, 17, THREE.subList(0, 2));
      System.out.println("SWEEP injected OutOfMemoryErrors: " + n);
    } finally {
      KthRoot.outOfMemory = false;
    }
  }

  @Test
  void everyTruncatedFileLeavesTheModelAsItWas() throws Exception {
    int n = 0;
    n += sweepFile(THREE, false, 5, true);
    n += sweepFile(THREE, true, 6, true);
    n += sweepFile(FACTORIZE, false, 7, true);
    n += sweepFile(FACTORIZE, true, 8, true);
    n += sweepFile(THREE, true, 20, true, THREE.subList(0, 1));
    n += sweepFile(FACTORIZE, false, 21, true, FACTORIZE);
    System.out.println("SWEEP truncated failures: " + n);
  }

  @Test
  void everyDamagedFileThatFailsLeavesTheModelAsItWas() throws Exception {
    int n = 0;
    n += sweepFile(THREE, false, 9, false);
    n += sweepFile(THREE, true, 10, false);
    n += sweepFile(FACTORIZE, false, 11, false);
    n += sweepFile(FACTORIZE, true, 12, false);
    System.out.println("SWEEP damaged failures: " + n);
  }

  /**
   * {@link SurgeryCheckpoint#replay(Model, Path)} on a fresh model that fails at any point leaves
   * it as it was: a failure after the records replayed (while the shapes for the load's check are
   * recorded, or the record is noted on the block) left the replayed blocks in the model.
   */
  @Test
  void aPublicReplayThatFailsAtAnyPointLeavesAFreshModelAsItWas() throws Exception {
    try (NDManager data = NDManager.newBaseManager()) {
      NDArray batch = TestModels.probeBatch(data, 22);
      Path folder = dir.resolve("pub");
      save(THREE, batch, folder);
      Path file = SurgeryCheckpoint.resolveParamsFile(folder, "sweep", null);
      int failures = 0;
      for (boolean oom : new boolean[] {false, true}) {
        KthRoot.outOfMemory = oom;
        try {
          for (int k = 1; ; k++) {
            try (Model model = model("sweep")) {
              State before = State.of(model);
              KthRoot.arm(k);
              try {
                SurgeryCheckpoint.replay(model, file);
              } catch (Exception | Error e) {
                KthRoot.countdown = -1;
                failures++;
                State.of(model).assertSameAs(before, "replay k=" + k + " (" + e + ")");
                continue;
              } finally {
                KthRoot.countdown = -1;
              }
              break;
            }
          }
        } finally {
          KthRoot.outOfMemory = false;
        }
      }
      assertTrue(failures > 0);
    }
  }
}
