package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.core.Linear;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.layers.FactorizedLinear;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * An outside tester: the listener factorized the model (its linear head too), then the program gave
 * it a new head for another task through the core API and saved it; the record still said the head
 * was factorized, and every load that replays it refused the file, with nothing said at the save.
 * The record is now checked against the blocks when the model is about to be saved.
 */
class StaleRecordsTest {

  private static SurgeryListener.Builder factorizeAtEpoch1() {
    return SurgeryListener.builder().add(SurgeryCheckpointTest.smallLayers("factorize"), 1);
  }

  private static Model trained(SurgeryListener listener, int epochs, NDManager data)
      throws Exception {
    Model model = TestModels.model("stale");
    ArrayDataset dataset = TestModels.dataset(data, 4);
    try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      EasyTrain.fit(trainer, epochs, dataset, null);
    }
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

  /** Records whose later entries replace or rename what earlier ones made describe the model. */
  @Test
  void chainsOfRecordedSurgeryDescribeTheModel() throws Exception {
    SurgeryListener blurThenStandardizeAndExcite =
        SurgeryListener.builder()
            .add(Algorithms.spec("blurpool").create(Map.of("min_channels", 0)), 1)
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
