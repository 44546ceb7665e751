package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.surgery.core.BlockMatcher;
import dev.surgery.core.BlockPaths;
import dev.surgery.core.ModuleSurgery;
import dev.surgery.core.ReplacementFunction;
import dev.surgery.core.SurgeryOptions;
import dev.surgery.core.algorithms.AlgorithmSpec;
import dev.surgery.core.algorithms.Algorithms;
import dev.surgery.core.algorithms.HyperParameter;
import dev.surgery.core.algorithms.HyperParameterValues;
import dev.surgery.core.algorithms.SurgeryChanges;
import dev.surgery.core.algorithms.SurgeryContext;
import dev.surgery.trainer.config.SurgeryConfig;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The parameter counts of a plugin's run in the surgery log and the INFO line are the model's: an
 * outside probe playing a plugin author returned {@code SurgeryChanges} with placeholder counts
 * ({@code 0, 0}, as the samples' EMA does for its replay), and the log said {@code
 * "parameters_before": 0, "parameters_after": 0} for a model of 290 parameters.
 */
class PluginParameterCountsTest {

  private static final HyperParameter<String> KIND =
      HyperParameter.ofChoice(
          "kind", "gate", List.of("gate", "freeze"), "what the plugin does to the model");

  static {
    Algorithms.register(AlgorithmSpec.of("t_counts", List.of(KIND), Counts::new));
  }

  /** A plugin that changes the model truly but reports its parameter counts as 0 and 0. */
  private static final class Counts extends TestAlgorithms.SimpleAlgorithm {
    private final String kind;

    Counts(HyperParameterValues values) {
      super(values.algorithm(), values.asMap(), false);
      this.kind = values.get(KIND);
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      Block root = context.model();
      if (kind.equals("freeze")) {
        Pair<String, Block> first = root.getChildren().get(0);
        ModuleSurgery.freezeParameters(
            first.getValue().getParameters().values(), context.trainers());
        String type = BlockPaths.typeName(first.getValue());
        return placeholderCounts(
            List.of(new SurgeryChanges.Change(first.getKey(), type, "frozen " + type)));
      }
      Map<Block, String> paths = BlockPaths.index(root);
      Map<BlockMatcher, ReplacementFunction> gate = new LinkedHashMap<>();
      gate.put(
          (block, path) -> block.getClass() == Linear.class,
          (block, i) -> new GatedLinear((Linear) block));
      Map<Block, Block> replaced =
          ModuleSurgery.replaceModules(
              root, gate, SurgeryOptions.builder().optTrainers(context.trainers()).build());
      List<SurgeryChanges.Change> changes = new ArrayList<>();
      replaced.forEach(
          (old, now) ->
              changes.add(new SurgeryChanges.Change(paths.get(old), "Linear", "GatedLinear")));
      return placeholderCounts(changes);
    }

    private SurgeryChanges placeholderCounts(List<SurgeryChanges.Change> changes) {
      return new SurgeryChanges(name(), hyperparameters(), changes, 0, 0, 1);
    }
  }

  /** The model's parameter scalars, each distinct parameter once, summed from its shape. */
  private static long scalars(Block root) {
    Set<Parameter> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    long total = 0;
    for (Pair<String, Parameter> p : root.getParameters()) {
      if (seen.add(p.getValue())) {
        total += p.getValue().getArray().getShape().size();
      }
    }
    return total;
  }

  /**
   * Trains two epochs with the plugin's entry at the first one's end; returns its changes as
   * recorded.
   */
  private static SurgeryChanges runAtEpochEnd(Model model, String kind) throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse(
                "algorithms:\n  - {name: t_counts, epoch: 1, kind: " + kind + "}\n",
                "counts.yaml"));
    Engine.getInstance().setRandomSeed(7);
    try (NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, 2, TestModels.dataset(data, 3), null);
    }
    assertEquals(1, listener.getOutcomes().size());
    assertEquals(SurgeryOutcome.Status.APPLIED, listener.getOutcomes().get(0).status());
    return listener.getOutcomes().get(0).changes();
  }

  /** New parameters (a gate of 4 after the last Linear of 4 units): the counts say 4 more. */
  @Test
  void aPluginsReplacementIsLoggedWithTheModelsCounts() throws Exception {
    try (Model model = TestModels.model("counts-gate")) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      long before = scalars(model.getBlock());
      SurgeryChanges changes = runAtEpochEnd(model, "gate");
      assertEquals(1, changes.changes().size(), changes.toString());
      assertEquals(before, changes.parametersBefore(), "before");
      assertEquals(before + 4, changes.parametersAfter(), "after: one gate of 4");
      assertEquals(scalars(model.getBlock()), changes.parametersAfter(), "after");
      assertEquals(
          String.format(
              java.util.Locale.ROOT,
              "Surgery: t_counts at epoch 1 replaced 1 block (Linear->GatedLinear x1),"
                  + " parameters %,d -> %,d, 0 ms",
              before,
              before + 4),
          AppliedEntries.logLine("t_counts", "at epoch 1", changes, 0));
    }
  }

  /** A freeze adds no parameter: before and after are the model's count. */
  @Test
  void aPluginsFreezeIsLoggedWithTheModelsCounts() throws Exception {
    try (Model model = TestModels.model("counts-freeze")) {
      model.getBlock().initialize(model.getNDManager(), model.getDataType(), INPUT);
      long before = scalars(model.getBlock());
      SurgeryChanges changes = runAtEpochEnd(model, "freeze");
      assertEquals(before, changes.parametersBefore(), "before");
      assertEquals(before, changes.parametersAfter(), "after");
    }
  }

  /** A block of the program's own that cannot list its parameters once {@code broken} is set. */
  private static final class Unlistable extends ai.djl.nn.LambdaBlock {
    private boolean broken;

    Unlistable() {
      super(list -> list);
    }

    @Override
    public ai.djl.nn.ParameterList getDirectParameters() {
      if (broken) {
        throw new IllegalStateException("cannot list my parameters now");
      }
      return super.getDirectParameters();
    }
  }

  /**
   * A model that cannot be counted after the run keeps the counts the plugin gave (a reviewer: the
   * fallback had no test), rather than failing the record of a run that succeeded; one that can is
   * given the model's own counts, before and after, from the same {@code BeforeRun}.
   */
  @Test
  void aModelThatCannotBeCountedKeepsThePluginsCounts() {
    try (NDManager manager = NDManager.newBaseManager()) {
      Unlistable own = new Unlistable();
      ai.djl.nn.SequentialBlock root =
          new ai.djl.nn.SequentialBlock().add(Linear.builder().setUnits(3).build()).add(own);
      root.initialize(
          manager, ai.djl.ndarray.types.DataType.FLOAT32, new ai.djl.ndarray.types.Shape(2, 4));
      BeforeRun before = new BeforeRun(0, 0, null, new LossWindows(), root, false);
      SurgeryChanges placeholder =
          new SurgeryChanges(
              "t_counts",
              Map.of(),
              List.of(new SurgeryChanges.Change("01LambdaBlock", "LambdaBlock", "LambdaBlock")),
              0,
              0,
              1);
      SurgeryChanges counted = before.withModelsCounts(placeholder, root);
      assertEquals(4 * 3 + 3, counted.parametersBefore(), "the Linear's weight and bias, before");
      assertEquals(4 * 3 + 3, counted.parametersAfter(), "and after");

      own.broken = true;
      assertSame(placeholder, before.withModelsCounts(placeholder, root));
    }
  }
}
