package dev.surgery.trainer;

import static dev.surgery.trainer.TestModels.INPUT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.Trainer;
import dev.surgery.core.BlockMatcher;
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * What a plugin returns is checked against what it did to the model before it is recorded: an
 * outside probe playing a plugin author found changes that said otherwise recorded as applied, a
 * freeze lost from every checkpoint, and a failure after a freeze reported as leaving the model as
 * it was. Each of those now stops training, naming what is untrue (the change cannot be undone, and
 * no checkpoint record would describe it).
 */
class PluginChangesTruthTest {

  private static final HyperParameter<String> KIND =
      HyperParameter.ofChoice(
          "kind",
          "untrue_freeze",
          List.of(
              "untrue_freeze",
              "freeze_then_throw",
              "freeze_null",
              "empty_after_replace",
              "no_such_block",
              "values_then_throw"),
          "what the plugin does wrong");

  static {
    Algorithms.register(AlgorithmSpec.of("t_untrue", List.of(KIND), Untrue::new));
  }

  /** A structural plugin that does one thing wrong, as {@code kind} says. */
  private static final class Untrue extends TestAlgorithms.SimpleAlgorithm {
    private final String kind;

    Untrue(HyperParameterValues values) {
      super(values.algorithm(), values.asMap(), false);
      this.kind = values.get(KIND);
    }

    @Override
    public SurgeryChanges apply(SurgeryContext context) {
      Block first = context.model().getChildren().get(0).getValue();
      switch (kind) {
        case "untrue_freeze":
          return changes(List.of(new SurgeryChanges.Change("01Conv2d", "Conv2d", "frozen Conv2d")));
        case "freeze_then_throw":
          ModuleSurgery.freezeParameters(first.getParameters().values(), context.trainers());
          throw new IllegalStateException("failed after freezing");
        case "no_such_block":
          return changes(
              List.of(new SurgeryChanges.Change("99NoSuchBlock", "Conv2d", "BlurConv2d")));
        case "values_then_throw":
          first.getParameters().values().forEach(p -> p.getArray().muli(0).addi(7f));
          throw new IllegalStateException("failed after writing values");
        case "freeze_null":
          ModuleSurgery.freezeParameters(first.getParameters().values(), context.trainers());
          return null;
        default: // empty_after_replace
          Map<BlockMatcher, ReplacementFunction> gate = new LinkedHashMap<>();
          gate.put(
              (block, path) -> block.getClass() == Linear.class,
              (block, i) -> new GatedLinear((Linear) block));
          ModuleSurgery.replaceModules(
              context.model(),
              gate,
              SurgeryOptions.builder().optTrainers(context.trainers()).build());
          return changes(List.of());
      }
    }

    private SurgeryChanges changes(List<SurgeryChanges.Change> changes) {
      return new SurgeryChanges(name(), hyperparameters(), changes, 0, 0, 1);
    }
  }

  /** Trains one epoch under one entry of the plugin; returns the error it stopped with, or null. */
  private static SurgeryFailedException trainOneEpoch(
      Model model, String kind, String onError, List<SurgeryOutcome> outcomes) throws Exception {
    SurgeryListener listener =
        SurgeryListener.fromConfig(
            SurgeryConfig.parse(
                "algorithms:\n  - {name: t_untrue, epoch: 1, kind: "
                    + kind
                    + "}\non_error: "
                    + onError
                    + "\ntotal_epochs: 2\n",
                "untrue.yaml"));
    Engine.getInstance().setRandomSeed(7);
    try (NDManager data = NDManager.newBaseManager();
        Trainer trainer = model.newTrainer(TestModels.config(listener))) {
      trainer.initialize(INPUT);
      SurgeryTrain.fit(trainer, 1, TestModels.dataset(data, 3), null);
      return null;
    } catch (SurgeryFailedException e) {
      return e;
    } finally {
      outcomes.addAll(listener.getOutcomes());
    }
  }

  private static boolean firstLayerTrains(Model model) {
    Block first = model.getBlock().getChildren().get(0).getValue();
    return first.getParameters().values().stream().allMatch(Parameter::requiresGradient);
  }

  /**
   * A layer said frozen that the plugin never froze: recorded as applied, training went on, and
   * every checkpoint of the run was refused ("the replay left it trainable"). Nothing changed, so
   * it is a failure as any other: skipped unrecorded under on_error: skip, stopping under fail.
   */
  @Test
  void aFreezeClaimedButNotMadeIsAFailureUnrecorded() throws Exception {
    try (Model model = TestModels.model("untrue")) {
      List<SurgeryOutcome> outcomes = new ArrayList<>();
      assertEquals(null, trainOneEpoch(model, "untrue_freeze", "skip", outcomes));
      assertEquals(SurgeryOutcome.Status.SKIPPED, outcomes.get(0).status());
      assertTrue(
          outcomes
              .get(0)
              .error()
              .contains("its changes say it froze 01Conv2d, which is still trainable"),
          outcomes.get(0).error());
      assertEquals(null, model.getProperty("surgery"), "nothing recorded");
    }
    try (Model model = TestModels.model("untrue")) {
      SurgeryFailedException e = trainOneEpoch(model, "untrue_freeze", "fail", new ArrayList<>());
      assertNotNull(e, "training stopped");
      assertTrue(
          e.getMessage().contains("The model's blocks and frozen layers are as they were before"),
          e.getMessage());
    }
  }

  /**
   * Changes that name a block the model does not have were recorded as a replacement and saved with
   * every checkpoint (whose replay then claimed the same): a failure like any other untrue change,
   * nothing recorded.
   */
  @Test
  void aReplacementNamedAtNoBlockOfTheModelIsAFailureUnrecorded() throws Exception {
    try (Model model = TestModels.model("nowhere")) {
      List<SurgeryOutcome> outcomes = new ArrayList<>();
      assertEquals(null, trainOneEpoch(model, "no_such_block", "skip", outcomes));
      assertEquals(SurgeryOutcome.Status.SKIPPED, outcomes.get(0).status());
      assertTrue(
          outcomes
              .get(0)
              .error()
              .contains("its changes name 99NoSuchBlock, which is no block of the model"),
          outcomes.get(0).error());
      assertEquals(null, model.getProperty("surgery"), "nothing recorded");
    }
  }

  /**
   * A plugin that wrote values into the model's arrays and then threw: the values stay (nothing the
   * listener sees undoes them), and the failure says so rather than "the model is as it was".
   */
  @Test
  void aPluginThatWroteValuesAndFailedIsNotSaidToLeaveTheModelAsItWas() throws Exception {
    try (Model model = TestModels.model("values-then-throw")) {
      SurgeryFailedException e =
          trainOneEpoch(model, "values_then_throw", "fail", new ArrayList<>());
      assertNotNull(e, "training stopped");
      assertFalse(e.getMessage().contains("The model is as it was before"), e.getMessage());
      assertTrue(
          e.getMessage()
              .contains(
                  "The model's blocks and frozen layers are as they were before t_untrue (values"
                      + " it wrote into parameter arrays itself are not undone)"),
          e.getMessage());
      Parameter written =
          model.getBlock().getChildren().get(0).getValue().getParameters().values().get(0);
      assertEquals(7f, written.getArray().getFloat(0, 0, 0, 0), "the plugin's value stays");
    }
  }

  /**
   * A plugin that froze a layer (dropping its optimizer state) and then threw: under on_error: skip
   * training went on "unchanged" with the layer frozen and unrecorded; under fail the error said
   * the model was as it was. It is a failure after a change, which stops training either way.
   */
  @Test
  void aFailureAfterAFreezeStopsTrainingSayingTheModelChanged() throws Exception {
    for (String onError : List.of("skip", "fail")) {
      try (Model model = TestModels.model("untrue")) {
        SurgeryFailedException e =
            trainOneEpoch(model, "freeze_then_throw", onError, new ArrayList<>());
        assertNotNull(e, onError + ": training stopped");
        assertTrue(
            e.getMessage()
                    .contains(
                        "failed after it had changed the model (its blocks or frozen parameters"
                            + " differ from before)")
                && !e.getMessage().contains("The model is as it was"),
            e.getMessage());
        assertFalse(firstLayerTrains(model), "the freeze the plugin made stays, as said");
      }
    }
  }

  /**
   * A plugin that froze a layer and returned null ("no structural change"): the freeze was kept in
   * memory but not recorded, and every checkpoint trained the layer the model in memory kept
   * frozen.
   */
  @Test
  void aFreezeReturnedAsNoChangesStopsTraining() throws Exception {
    try (Model model = TestModels.model("untrue")) {
      SurgeryFailedException e = trainOneEpoch(model, "freeze_null", "skip", new ArrayList<>());
      assertNotNull(e, "training stopped");
      assertTrue(
          e.getMessage().contains("it froze or unfroze parameters but returned no SurgeryChanges"),
          e.getMessage());
    }
  }

  /**
   * A plugin that replaced a block and returned empty changes: its outcome and record said it
   * changed nothing.
   */
  @Test
  void aReplacementReportedAsNoChangeStopsTraining() throws Exception {
    try (Model model = TestModels.model("untrue")) {
      SurgeryFailedException e =
          trainOneEpoch(model, "empty_after_replace", "skip", new ArrayList<>());
      assertNotNull(e, "training stopped");
      assertTrue(
          e.getMessage().contains("it changed the model's blocks but its changes name no replaced"),
          e.getMessage());
      assertTrue(TestModels.structure(model.getBlock()).contains("GatedLinear"));
    }
  }
}
