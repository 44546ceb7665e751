package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.layers.FactorizedLinear;
import dev.surgery.core.layers.SqueezeExciteConv2d;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An outside tester: the listener factorized the model (its linear head too), then the program gave
 * it a new head for another task through the core API and saved it; the record still said the head
 * was factorized, and every load that replays it refused the file, with nothing said at the save.
 * The record is now checked against the blocks when the model is about to be saved.
 */
class StaleRecordsTest {

  @TempDir Path dir;

  private static SurgeryListener.Builder factorizeAtEpoch1() {
    return SurgeryListener.builder().add(SurgeryCheckpointTest.smallLayers("factorize"), 1);
  }

  private static Model trained(SurgeryListener listener, int epochs, NDManager data)
      throws Exception {
    Model model = TestModels.model("stale");
    TestModels.train(model, listener, epochs, TestModels.dataset(data, 4));
    return model;
  }

  @Test
  void aRecordedBlockReplacedThroughTheCoreApiIsNamedWhenTheModelIsSaved() throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model model = trained(factorizeAtEpoch1().build(), 1, data)) {
      assertEquals(1, TestModels.count(model.getBlock(), "FactorizedLinear"));
      assertNull(StaleRecords.firstStale(model.getBlock(), recordsOf(model)));
      Map<BlockMatcher, ReplacementFunction> newHead =
          Map.of(
              BlockMatcher.ofClass(FactorizedLinear.class),
              (block, index) -> Linear.builder().setUnits(5).build());
      ModuleSurgery.replaceModules(
          model.getBlock(), newHead, SurgeryOptions.builder().optAllowShapeChange(true).build());
      String stale = StaleRecords.firstStale(model.getBlock(), recordsOf(model));
      assertTrue(
          stale != null
              && stale.startsWith("factorize made a FactorizedLinear at ")
              && stale.endsWith(", the model has a Linear"),
          stale);
      String log = Stderr.of(() -> SurgeryCheckpoint.syncRecord(model));
      assertTrue(log.contains("the model's surgery record no longer describes it: " + stale), log);
      // Once per block and record: a job saving every epoch is told once.
      assertEquals("", Stderr.of(() -> SurgeryCheckpoint.syncRecord(model)).strip());
    }
  }

  /**
   * A review: a block a recorded surgery made below a child key that holds '/' (DJL allows any key)
   * was reported gone ("the model has no block there"), the path split at that '/'.
   */
  @Test
  void aBlockMadeBelowAKeyWithASlashIsFound() {
    Block root =
        new SequentialBlock()
            .add(Blocks.batchFlattenBlock())
            .add(new SlashKeyed(Linear.builder().setUnits(6).build()))
            .add(Linear.builder().setUnits(2).build());
    try (NDManager manager = NDManager.newBaseManager()) {
      root.initialize(manager, DataType.FLOAT32, INPUT);
      var factorize = SurgeryCheckpointTest.smallLayers("factorize");
      var changes = factorize.apply(new SurgeryContext(root, List.of(), 1, 2));
      Map<String, String> changed = SurgeryRecord.changesOf(changes);
      assertTrue(changed.keySet().stream().anyMatch(k -> k.contains("dense/part")), "" + changed);
      SurgeryRecord record = new SurgeryRecord("factorize", factorize.settings(), 1, 2, changed);
      assertNull(StaleRecords.firstStale(root, List.of(record)));
    }
  }

  /**
   * Records read as written by hand, against blocks built by hand: a layer frozen in place ({@code
   * Linear->frozen Linear}) made no block, so the model's plain {@code Linear} there is what it
   * should be; a change at or above an earlier place (a later record rebuilt the parent) replaces
   * what the earlier made below it; a key renamed by a surgery ({@code 02Linear} made into a {@code
   * FactorizedLinear} keeps its number) is found by its number.
   */
  @Test
  void freezesMadeNoBlockAndALaterChangeAboveAPlaceReplacesWhatWasMadeBelowIt() {
    Block root =
        new SequentialBlock()
            .add(Linear.builder().setUnits(4).build())
            .add(new SequentialBlock().add(Linear.builder().setUnits(3).build()))
            .add(Linear.builder().setUnits(2).build());
    SurgeryRecord frozen =
        new SurgeryRecord(
            "layer_freezing", Map.of(), 1, 3, Map.of("01Linear", "Linear->frozen Linear"));
    assertNull(StaleRecords.firstStale(root, List.of(frozen)));
    SurgeryRecord blurredInside =
        new SurgeryRecord(
            "t_made_below",
            Map.of(),
            1,
            3,
            Map.of("02SequentialBlock/01Linear", "Linear->FactorizedLinear"));
    String stale = StaleRecords.firstStale(root, List.of(blurredInside));
    assertTrue(
        stale != null
            && stale.contains("made a FactorizedLinear at 02SequentialBlock/01Linear")
            && stale.endsWith("the model has a Linear"),
        stale);
    SurgeryRecord parentRebuilt =
        new SurgeryRecord(
            "t_rebuilt_above",
            Map.of(),
            2,
            3,
            Map.of("02SequentialBlock", "SequentialBlock->SequentialBlock"));
    assertNull(StaleRecords.firstStale(root, List.of(blurredInside, parentRebuilt)));
    // A later change elsewhere leaves the earlier place as it was: still stale.
    SurgeryRecord elsewhere =
        new SurgeryRecord("t_elsewhere", Map.of(), 2, 3, Map.of("03Linear", "Linear->Linear"));
    assertEquals(stale, StaleRecords.firstStale(root, List.of(blurredInside, elsewhere)));
    // The last recorded change at a place wins, and a renamed key is found by its number.
    Block renamed =
        new SequentialBlock()
            .add(Linear.builder().setUnits(4).build())
            .add(new SequentialBlock().add(Linear.builder().setUnits(3).build()));
    SurgeryRecord back =
        new SurgeryRecord(
            "t_back",
            Map.of(),
            2,
            3,
            Map.of("02SequentialBlock/01FactorizedLinear", "FactorizedLinear->Linear"));
    assertNull(StaleRecords.firstStale(renamed, List.of(blurredInside, back)));
  }

  /** A block holding one child under a key with a '/' in it. */
  private static final class SlashKeyed extends AbstractBlock {
    private final Block inner;

    SlashKeyed(Block inner) {
      this.inner = addChildBlock("dense/part", inner);
    }

    @Override
    protected NDList forwardInternal(
        ParameterStore store, NDList inputs, boolean training, PairList<String, Object> params) {
      return inner.forward(store, inputs, training, params);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
      return inner.getOutputShapes(inputs);
    }

    @Override
    protected void initializeChildBlocks(
        NDManager manager, DataType dataType, Shape... inputShapes) {
      inner.initialize(manager, dataType, inputShapes);
    }
  }

  /**
   * An outside tester's case beside the one above: the new head is a factorized layer too, made
   * through the core API; the types at the recorded places all match. Of another rank, the file's
   * replay (which builds the rank the record's factorize made) refuses it: said at the save. Of the
   * same rank, the file loads with the model's outputs: nothing is said.
   */
  @Test
  void aRecordedBlockReplacedByAnotherOfItsTypeIsNamedWhereItsShapesDiffer() throws Exception {
    try (NDManager data = NDManager.newBaseManager();
        Model model = trained(factorizeAtEpoch1().build(), 1, data)) {
      Block made = only(model.getBlock(), FactorizedLinear.class);
      int rank = (int) made.getParameters().valueAt(0).getShape().get(0);
      assertTrue(rank >= 2, "rank " + rank);
      NDArray batch = data.randomNormal(INPUT);

      newHead(model, rank);
      assertNull(StaleRecords.firstStale(model.getBlock(), recordsOf(model)));
      assertEquals("", Stderr.of(() -> SurgeryCheckpoint.syncRecord(model)).strip());
      model.save(dir, "same-rank");
      try (Model restored = TestModels.model("same-rank")) {
        SurgeryCheckpoint.load(restored, dir, "same-rank");
        assertArrayEquals(
            SurgeryCheckpointTest.outputs(model, batch),
            SurgeryCheckpointTest.outputs(restored, batch));
      }

      newHead(model, rank - 1);
      String stale = StaleRecords.firstStale(model.getBlock(), recordsOf(model));
      assertTrue(
          stale != null
              && stale.startsWith("factorize made a FactorizedLinear at ")
              && stale.contains(", the model has another FactorizedLinear there, of shapes "),
          stale);
      String log = Stderr.of(() -> SurgeryCheckpoint.syncRecord(model));
      assertTrue(log.contains("no longer describes it: " + stale), log);
      model.save(dir, "other-rank");
      try (Model restored = TestModels.model("other-rank")) {
        assertThrows(
            MalformedModelException.class,
            () -> SurgeryCheckpoint.load(restored, dir, "other-rank"),
            "what the save warned of");
      }
    }
  }

  /**
   * The same on a model loaded from the checkpoint (fine-tuning it for another task): the record's
   * blocks come from the replay, whose shapes are noted before the old head is gone for good.
   */
  @Test
  void aReplayedBlockReplacedByAnotherOfItsTypeIsNamedWhereItsShapesDiffer() throws Exception {
    int rank;
    try (NDManager data = NDManager.newBaseManager();
        Model model = trained(factorizeAtEpoch1().build(), 1, data)) {
      rank =
          (int)
              only(model.getBlock(), FactorizedLinear.class)
                  .getParameters()
                  .valueAt(0)
                  .getShape()
                  .get(0);
      model.save(dir, "factorized");
    }
    try (Model restored = TestModels.model("factorized")) {
      SurgeryCheckpoint.load(restored, dir, "factorized");
      assertNull(StaleRecords.firstStale(restored.getBlock(), recordsOf(restored)));
      newHead(restored, rank - 1);
      System.gc(); // the old head, held weakly, may go: its noted shapes must not
      String stale = StaleRecords.firstStale(restored.getBlock(), recordsOf(restored));
      assertTrue(
          stale != null && stale.contains(", the model has another FactorizedLinear there"), stale);
    }
  }

  /**
   * A probe: squeeze-excite at {@code epoch: 0} makes its gates before initialization (no shapes to
   * note); the program trains, then puts new gates of another width around the same convolutions:
   * the old gates, gone from the model, are held until the check, which sees their shapes then
   * (they were noted weakly, and a collection lost them).
   */
  @Test
  void gatesMadeBeforeInitializationAndReplacedAfterTrainingAreNamed() throws Exception {
    SurgeryListener excite =
        SurgeryListener.builder()
            .add(
                Algorithms.spec("squeeze_excite")
                    .create(Map.of("min_channels", 1, "latent_channels", 2)),
                0)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = trained(excite, 1, data)) {
      assertNull(StaleRecords.firstStale(model.getBlock(), recordsOf(model)));
      Map<BlockMatcher, ReplacementFunction> wider =
          Map.of(
              BlockMatcher.ofClass(SqueezeExciteConv2d.class),
              (block, index) -> {
                Conv2d conv = (Conv2d) ((SqueezeExciteConv2d) block).getConv();
                return new SqueezeExciteConv2d(conv, 3);
              });
      ModuleSurgery.replaceModules(model.getBlock(), wider, SurgeryOptions.defaults());
      System.gc(); // the old gates: only the note holds them
      String stale = StaleRecords.firstStale(model.getBlock(), recordsOf(model));
      assertTrue(
          stale != null
              && stale.startsWith("squeeze_excite made a SqueezeExciteConv2d at ")
              && stale.contains("the model has another SqueezeExciteConv2d there"),
          stale);
    }
  }

  /** Gives the model a new factorized head of the rank, through the core API. */
  private static void newHead(Model model, int rank) {
    Map<BlockMatcher, ReplacementFunction> head =
        Map.of(
            BlockMatcher.ofClass(FactorizedLinear.class),
            (block, index) -> FactorizedLinear.from(Linear.builder().setUnits(4).build(), rank));
    ModuleSurgery.replaceModules(
        model.getBlock(), head, SurgeryOptions.builder().optAllowShapeChange(true).build());
  }

  private static Block only(Block root, Class<? extends Block> type) {
    List<Block> found = new ArrayList<>();
    BlockPaths.index(root).keySet().stream().filter(type::isInstance).forEach(found::add);
    assertEquals(1, found.size(), String.valueOf(found));
    return found.get(0);
  }

  /** Records whose later entries replace or rename what earlier ones made describe the model. */
  @Test
  void chainsOfRecordedSurgeryDescribeTheModel() throws Exception {
    SurgeryListener blurThenStandardizeAndExcite =
        SurgeryListener.builder()
            .add(TestModels.blurpool(), 1)
            .add(Algorithms.spec("weight_standardization").create(Map.of()), 2)
            .add(Algorithms.spec("squeeze_excite").create(Map.of("min_channels", 1)), 2)
            .build();
    try (NDManager data = NDManager.newBaseManager();
        Model model = trained(blurThenStandardizeAndExcite, 2, data);
        Model factorized = trained(factorizeAtEpoch1().build(), 1, data)) {
      assertTrue(recordsOf(model).size() == 3, String.valueOf(recordsOf(model)));
      assertNull(StaleRecords.firstStale(model.getBlock(), recordsOf(model)));
      assertNull(StaleRecords.firstStale(factorized.getBlock(), recordsOf(factorized)));
      assertEquals("", Stderr.of(() -> SurgeryCheckpoint.syncRecord(model)).strip());
    }
  }

  private static java.util.List<SurgeryRecord> recordsOf(Model model) {
    return SurgeryJson.recordsFromJson(RecordProperty.read(model.getProperties()));
  }
}
