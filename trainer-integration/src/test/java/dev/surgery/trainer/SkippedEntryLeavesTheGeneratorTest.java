package dev.surgery.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.Dropout;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.core.testing.TinyModels;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * An entry whose surgery is refused after it placed fresh layers, skipped under {@code on_error:
 * skip}, leaves the run as if it had never been there, the engine's random generator included: a
 * model with dropout (which draws at every forward) trains bit for bit as the same run without the
 * entry (the oracle). Before the draws were held back, the refused surgery's fresh {@code Linear}
 * moved the generator, and every later dropout mask differed.
 */
class SkippedEntryLeavesTheGeneratorTest {

  /** Replaces the Linear by a fresh one with one more unit: refused as a change of output shape. */
  private static final String WRONG_UNITS = "t_fresh_wrong_units";

  static {
    Algorithms.register(
        new AlgorithmSpec(
            WRONG_UNITS,
            List.of(),
            v ->
                new TestAlgorithms.SimpleAlgorithm(WRONG_UNITS, Map.of(), true) {
                  @Override
                  public SurgeryChanges apply(SurgeryContext context) {
                    Map<BlockMatcher, ReplacementFunction> policies = new LinkedHashMap<>();
                    policies.put(
                        BlockMatcher.ofClass(Linear.class),
                        (block, index) -> Linear.builder().setUnits(unitsOf(block) + 1).build());
                    ModuleSurgery.replaceModules(
                        context.model(),
                        policies,
                        SurgeryOptions.builder().optTrainers(context.trainers()).build());
                    return new SurgeryChanges(name(), hyperparameters(), List.of(), 0, 0, 0);
                  }
                }));
  }

  private static int unitsOf(Block linear) {
    return (int) linear.getParameters().get("weight").getShape().get(0);
  }

  private static final String WITH_ENTRY =
      "on_error: skip\nalgorithms:\n  - {name: " + WRONG_UNITS + ", epoch: 1}\n";
  private static final String WITHOUT = "algorithms: []\n";

  @Test
  void aRunWithTheRefusedEntryTrainsBitForBitAsTheRunWithoutIt() throws Exception {
    List<float[]> without = train(WITHOUT);
    List<float[]> with = train(WITH_ENTRY);
    assertEquals(without.size(), with.size());
    for (int i = 0; i < without.size(); i++) {
      assertArrayEquals(without.get(i), with.get(i), "parameter " + i + " after three epochs");
      for (float v : with.get(i)) {
        assertTrue(Float.isFinite(v), "parameter " + i + " finite");
      }
    }
    // The same seed gives the same bits: the oracle run itself, again.
    List<float[]> again = train(WITHOUT);
    for (int i = 0; i < without.size(); i++) {
      assertArrayEquals(without.get(i), again.get(i), "parameter " + i + ", the same seed again");
    }
  }

  /** Three epochs of a model with dropout under a listener of this config; its final values. */
  private static List<float[]> train(String yaml) throws Exception {
    SurgeryListener listener = SurgeryListener.fromConfig(SurgeryConfig.parse(yaml, "run.yaml"));
    Engine.getInstance().setRandomSeed(7);
    SequentialBlock net =
        new SequentialBlock().add(Dropout.builder().optRate(0.3f).build()).add(TinyModels.cnn(4));
    try (Model model = Model.newInstance("skipped-entry");
        NDManager data = NDManager.newBaseManager()) {
      model.setBlock(net);
      ArrayDataset dataset = TestModels.dataset(data, 3);
      try (Trainer trainer = model.newTrainer(TestModels.config(listener))) {
        trainer.initialize(TestModels.INPUT);
        listener.onInitialized(trainer);
        Engine.getInstance().setRandomSeed(21);
        EasyTrain.fit(trainer, 3, dataset, null);
      }
      if (yaml.equals(WITH_ENTRY)) {
        List<SurgeryOutcome> outcomes = listener.getOutcomes();
        assertEquals(1, outcomes.size(), outcomes.toString());
        assertEquals(SurgeryOutcome.Status.SKIPPED, outcomes.get(0).status(), outcomes.toString());
        assertTrue(
            outcomes.get(0).error().contains("changes the output shapes"), outcomes.toString());
      }
      List<float[]> values = new ArrayList<>();
      for (Parameter p : model.getBlock().getParameters().values()) {
        values.add(p.getArray().toFloatArray());
      }
      Block last = ((SequentialBlock) net.getChildren().valueAt(1)).getChildren().valueAt(7);
      assertEquals(4, unitsOf(last), "the refused surgery left the Linear as it was");
      return values;
    }
  }
}
